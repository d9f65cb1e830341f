// Large, hot, process-private buffers (a runtime's weights, KV cache and arena) on transparent
// huge pages where the kernel allows them.
//
// Why: a decode step streams every weight byte and, in a batch, thousands of 2 KiB runs of KV
// rows scattered over the pool. Measured (README, "Quantized weights"; 110M q8_0, f16 KV, AMD
// EPYC): batch-8 decode 1.14-1.25x faster than from the package's file mapping and heap blocks,
// single-row decode unchanged. Most of it came from reading an anonymous copy rather than the
// file mapping; huge pages on top were within the noise there, and spare the TLB a miss per
// 4 KiB wherever they are granted.
//
// The memory is an anonymous private mapping aligned to 2 MiB and advised MADV_HUGEPAGE, so it
// gets huge pages when /sys/kernel/mm/transparent_hugepage/enabled is "always" or "madvise" and
// 4 KiB pages otherwise (same contents, same results). By default every page is touched when
// allocated, so the memory is resident from the start (steps never fault, RSS does not grow with
// use). Under AddressSanitizer they are plain heap blocks instead, so that overflows are caught.
#ifndef TAILOR_COMMON_HUGE_PAGES_H_
#define TAILOR_COMMON_HUGE_PAGES_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "absl/status/statusor.h"

namespace tailor {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// Under AddressSanitizer the buffers come from the heap, exact-sized, so that reads and writes
// past their end are reported (a mapping rounded up to 2 MiB would hide them).
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kHugePageBuffersOnHeap = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kHugePageBuffersOnHeap = true;
#else
inline constexpr bool kHugePageBuffersOnHeap = false;
#endif
#else
inline constexpr bool kHugePageBuffersOnHeap = false;
#endif

// Owns one mapping; move-only; thread-safe to read (and to write disjoint bytes) concurrently.
class HugePageBuffer {
 public:
  // `bytes` zero-filled bytes (at least one page is mapped even for 0). ResourceExhausted, naming
  // the size, when the mapping fails. touch = false leaves the pages unallocated until first
  // written (a buffer only partly used).
  static absl::StatusOr<HugePageBuffer> Allocate(size_t bytes, bool touch = true);
  // A copy of `bytes`, copied in slices; after each slice, `after_slice(offset, size)` may give
  // the source's pages back (a file mapping's, with MADV_DONTNEED), so that the process never
  // holds both copies whole.
  template <class F>
  static absl::StatusOr<HugePageBuffer> CopyOf(std::span<const std::byte> bytes, F after_slice);

  HugePageBuffer() = default;
  HugePageBuffer(HugePageBuffer&& o) noexcept;
  HugePageBuffer& operator=(HugePageBuffer&& o) noexcept;
  HugePageBuffer(const HugePageBuffer&) = delete;
  HugePageBuffer& operator=(const HugePageBuffer&) = delete;
  ~HugePageBuffer();

  std::byte* data() const { return data_; }  // 2 MiB-aligned; nullptr when default-constructed
  size_t size() const { return size_; }
  // Makes the buffer read-only (weights once copied): a stray write faults instead of corrupting.
  // (Under AddressSanitizer, where buffers are heap memory, it does nothing.)
  void Protect() const;

 private:
  void Release();

  void* mapping_ = nullptr;  // what mmap returned (data_ rounded up to 2 MiB lies inside)
  size_t mapping_size_ = 0;
  std::byte* data_ = nullptr;
  size_t size_ = 0;
  bool heap_ = false;  // AddressSanitizer builds: data_ is std::aligned_alloc'ed, no mapping
};

// Bytes of `p`'s range [p, p + size) that the kernel backs with huge pages now, from
// /proc/self/smaps (AnonHugePages of the mappings that overlap it, whole: a neighbour merged
// into the same mapping counts too); -1 if it cannot tell.
int64_t HugePageBytesIn(const std::byte* p, size_t size);

template <class F>
absl::StatusOr<HugePageBuffer> HugePageBuffer::CopyOf(std::span<const std::byte> bytes, F after_slice) {
  absl::StatusOr<HugePageBuffer> buf = Allocate(bytes.size());
  if (!buf.ok()) return buf;
  constexpr size_t kSlice = size_t{64} << 20;
  for (size_t at = 0; at < bytes.size(); at += kSlice) {
    const size_t n = bytes.size() - at < kSlice ? bytes.size() - at : kSlice;
    std::memcpy(buf->data() + at, bytes.data() + at, n);
    after_slice(at, n);
  }
  return buf;
}

}  // namespace tailor

#endif  // TAILOR_COMMON_HUGE_PAGES_H_
