#include "common/huge_pages.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tailor {

absl::StatusOr<HugePageBuffer> HugePageBuffer::Allocate(size_t bytes, bool touch) {
  if constexpr (kHugePageBuffersOnHeap) {
    const size_t size = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, size);
    if (p == nullptr) return absl::ResourceExhaustedError(absl::StrCat("cannot allocate ", bytes, " bytes of memory"));
    std::memset(p, 0, size);
    HugePageBuffer buf;
    buf.data_ = static_cast<std::byte*>(p);
    buf.size_ = bytes;
    buf.heap_ = true;
    return buf;
  }
  // Whole huge pages, so the last one can be huge too; mapped with a huge page of slack, then the
  // unaligned head and the tail past the rounded size are unmapped.
  const size_t rounded = (std::max<size_t>(bytes, 1) + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  if (rounded < bytes || rounded + kHugePageBytes < rounded) {
    return absl::ResourceExhaustedError(absl::StrCat("cannot map ", bytes, " bytes: too large"));
  }
  void* m = ::mmap(nullptr, rounded + kHugePageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot map ", bytes, " bytes of memory: ", std::strerror(errno)));
  }
  const auto base = reinterpret_cast<uintptr_t>(m);
  const uintptr_t aligned = (base + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  if (aligned > base) ::munmap(m, aligned - base);
  const uintptr_t end = base + rounded + kHugePageBytes;
  if (end > aligned + rounded) ::munmap(reinterpret_cast<void*>(aligned + rounded), end - aligned - rounded);
  // Advice only: where THP is off (or the call is refused) the buffer is plain 4 KiB pages.
  ::madvise(reinterpret_cast<void*>(aligned), rounded, MADV_HUGEPAGE);
  HugePageBuffer buf;
  buf.mapping_ = reinterpret_cast<void*>(aligned);
  buf.mapping_size_ = rounded;
  buf.data_ = reinterpret_cast<std::byte*>(aligned);
  buf.size_ = bytes;
  // Touch every 4 KiB page (zero already): the memory is resident before the first step.
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  for (size_t at = 0; touch && at < rounded; at += page) buf.data_[at] = std::byte{0};
  return buf;
}

HugePageBuffer::HugePageBuffer(HugePageBuffer&& o) noexcept
    : mapping_(std::exchange(o.mapping_, nullptr)),
      mapping_size_(std::exchange(o.mapping_size_, 0)),
      data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      heap_(std::exchange(o.heap_, false)) {}

HugePageBuffer& HugePageBuffer::operator=(HugePageBuffer&& o) noexcept {
  if (this != &o) {
    Release();
    mapping_ = std::exchange(o.mapping_, nullptr);
    mapping_size_ = std::exchange(o.mapping_size_, 0);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    heap_ = std::exchange(o.heap_, false);
  }
  return *this;
}

HugePageBuffer::~HugePageBuffer() { Release(); }

void HugePageBuffer::Release() {
  if (heap_) std::free(data_);
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
  mapping_ = nullptr;
  data_ = nullptr;
}

void HugePageBuffer::Protect() const {
  if (mapping_ != nullptr) ::mprotect(mapping_, mapping_size_, PROT_READ);
}

int64_t HugePageBytesIn(const std::byte* p, size_t size) {
  std::FILE* f = std::fopen("/proc/self/smaps", "r");
  if (f == nullptr) return -1;
  const auto lo = reinterpret_cast<uintptr_t>(p), hi = lo + size;
  char line[512];
  bool overlaps = false, found = false;
  int64_t total = 0;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    uintptr_t start = 0, end = 0;
    if (std::sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &start, &end) == 2) {  // a mapping's header line
      overlaps = start < hi && lo < end;
      continue;
    }
    long long kb = 0;
    if (overlaps && std::sscanf(line, "AnonHugePages: %lld kB", &kb) == 1) {
      total += kb * 1024;
      found = true;
    }
  }
  std::fclose(f);
  return found ? total : -1;
}

}  // namespace tailor
