// Element types of weights and KV storage, and exact scalar conversions to float.
#ifndef TAILOR_COMMON_DTYPE_H_
#define TAILOR_COMMON_DTYPE_H_

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace tailor {

enum class DType : uint8_t {
  kF32,
  kF16,
  kBF16,
  // GGUF's block formats, as files store them (ggml's layouts), along the row:
  kQ8_0,  // blocks of 32: one f16 scale then 32 int8 (34 bytes)
  kQ4_0,  // blocks of 32: one f16 scale then 16 bytes of 4-bit values (18 bytes)
  kQ4_K,  // super-blocks of 256 (144 bytes)
  kQ5_K,  // super-blocks of 256 (176 bytes)
  kQ6_K,  // super-blocks of 256 (210 bytes)
  // tailor's package formats, packed for its int8 kernels (kernels/q8_kernels.h): blocks of 32
  // with an f16 scale, in groups of 16 rows; value = scale * q.
  kQ8,  // q in [-127, 127]: 34 bytes per block
  kQ4,  // q in [-8, 7]: 18 bytes per block
  // w8a8: int8 with one f32 scale per row (k + 4 bytes a row), for static activation scales.
  kW8,
  // KV cache only (never a weight): int8 values with one f32 scale per (token slot, kv head),
  // laid out by kernels/cpu_ops.h (KvWriteOp). BlockBytes counts the values alone.
  kI8,
};

inline constexpr int kQ8_0BlockSize = 32;
inline constexpr int kQ8_0BlockBytes = 34;

// Elements per block (1 for the float types) and bytes per block.
int64_t BlockElements(DType t);
int64_t BlockBytes(DType t);

// "f32", "f16", "bf16"; GGUF's "gguf_q8_0", "gguf_q4_0", "gguf_q4_k", "gguf_q5_k", "gguf_q6_k";
// the package formats "q8_0" (kQ8), "q4" (kQ4) and "w8a8" (kW8); the KV format "int8" (kI8).
const char* DTypeName(DType t);
std::optional<DType> ParseDType(std::string_view name);  // DTypeName's inverse

// Bytes taken by `n` elements of one row (n must be a multiple of BlockElements).
int64_t RowBytes(DType t, int64_t n);

inline float F16ToF32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round-to-nearest-even float -> f16.
uint16_t F32ToF16(float f);

inline float BF16ToF32(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round-to-nearest-even float -> bf16 (NaN stays NaN).
inline uint16_t F32ToBF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

}  // namespace tailor

#endif  // TAILOR_COMMON_DTYPE_H_
