#include "common/checksum.h"

#include <cstring>

namespace tailor {
namespace {

inline uint64_t Mix(uint64_t h, uint64_t v) {
  h ^= v * 0x9e3779b97f4a7c15ull;
  h = (h << 31) | (h >> 33);
  return h * 0xbf58476d1ce4e5b9ull;
}

}  // namespace

uint64_t Checksum64(std::span<const std::byte> bytes) {
  // Four independent lanes over 32-byte strides keep the multiply chains short.
  uint64_t lanes[4] = {0x243f6a8885a308d3ull, 0x13198a2e03707344ull, 0xa4093822299f31d0ull,
                       0x082efa98ec4e6c89ull};
  const size_t n = bytes.size();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int l = 0; l < 4; ++l) {
      uint64_t v;
      std::memcpy(&v, bytes.data() + i + 8 * l, 8);
      lanes[l] = Mix(lanes[l], v);
    }
  }
  uint64_t h = n;
  for (uint64_t l : lanes) h = Mix(h, l);
  for (; i < n; ++i) h = Mix(h, static_cast<uint64_t>(bytes[i]));
  return h ^ (h >> 29);
}

std::string ChecksumHex(std::span<const std::byte> bytes) {
  static const char kHex[] = "0123456789abcdef";
  uint64_t h = Checksum64(bytes);
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4) out[i] = kHex[h & 15];
  return out;
}

}  // namespace tailor
