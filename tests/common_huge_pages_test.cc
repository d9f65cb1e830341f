// HugePageBuffer: alignment, zero fill, copies in slices, and (where the kernel allows THP and
// the build is not sanitized) that the memory really is backed by huge pages.
#include "common/huge_pages.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

namespace tailor {
namespace {

constexpr bool kAsan = kHugePageBuffersOnHeap;  // heap blocks under AddressSanitizer

TEST(HugePageBuffer, IsAlignedZeroedAndWritable) {
  const size_t bytes = (size_t{5} << 20) + 123;
  absl::StatusOr<HugePageBuffer> buf = HugePageBuffer::Allocate(bytes);
  ASSERT_TRUE(buf.ok()) << buf.status();
  ASSERT_NE(buf->data(), nullptr);
  EXPECT_EQ(buf->size(), bytes);
  const size_t align = kAsan ? 64 : kHugePageBytes;
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buf->data()) % align, 0u);
  for (size_t i = 0; i < bytes; i += 4093) ASSERT_EQ(buf->data()[i], std::byte{0}) << i;
  EXPECT_EQ(buf->data()[bytes - 1], std::byte{0});
  buf->data()[0] = std::byte{7};
  buf->data()[bytes - 1] = std::byte{9};
  HugePageBuffer moved = *std::move(buf);
  EXPECT_EQ(moved.data()[0], std::byte{7});
  EXPECT_EQ(moved.data()[bytes - 1], std::byte{9});
  HugePageBuffer assigned;
  assigned = std::move(moved);
  EXPECT_EQ(moved.data(), nullptr);
  EXPECT_EQ(assigned.data()[bytes - 1], std::byte{9});
}

TEST(HugePageBuffer, EmptyAndUntouchedBuffersWork) {
  absl::StatusOr<HugePageBuffer> empty = HugePageBuffer::Allocate(0);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_NE(empty->data(), nullptr);
  EXPECT_EQ(empty->size(), 0u);
  absl::StatusOr<HugePageBuffer> lazy = HugePageBuffer::Allocate(size_t{3} << 20, /*touch=*/false);
  ASSERT_TRUE(lazy.ok()) << lazy.status();
  EXPECT_EQ(lazy->data()[(size_t{3} << 20) - 1], std::byte{0});
}

TEST(HugePageBuffer, CopyOfCopiesEveryByteInSlices) {
  // Past one 64 MiB slice, and not a multiple of anything.
  std::vector<std::byte> src((size_t{65} << 20) + 3);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<std::byte>((i * 131 + (i >> 20)) & 0xff);
  std::vector<std::pair<size_t, size_t>> slices;
  absl::StatusOr<HugePageBuffer> copy =
      HugePageBuffer::CopyOf(src, [&](size_t at, size_t n) { slices.emplace_back(at, n); });
  ASSERT_TRUE(copy.ok()) << copy.status();
  ASSERT_EQ(copy->size(), src.size());
  EXPECT_EQ(std::memcmp(copy->data(), src.data(), src.size()), 0);
  ASSERT_EQ(slices.size(), 2u);
  EXPECT_EQ(slices[0], std::make_pair(size_t{0}, size_t{64} << 20));
  EXPECT_EQ(slices[1], std::make_pair(size_t{64} << 20, size_t{1} << 20 | 3));
  copy->Protect();  // reads still work
  EXPECT_EQ(copy->data()[src.size() - 1], src.back());
}

// The mode the kernel runs transparent huge pages in: "always", "madvise" or "never" ("" if
// unknown).
std::string ThpMode() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  std::getline(in, line);
  const size_t open = line.find('['), close = line.find(']');
  return open == std::string::npos || close == std::string::npos ? "" : line.substr(open + 1, close - open - 1);
}

TEST(HugePageBuffer, IsBackedByHugePagesWhereTheKernelAllowsThem) {
  const std::string mode = ThpMode();
  if (kAsan || (mode != "always" && mode != "madvise")) {
    GTEST_SKIP() << "transparent huge pages: '" << mode << "'" << (kAsan ? " (ASan build: heap buffers)" : "");
  }
  absl::StatusOr<HugePageBuffer> buf = HugePageBuffer::Allocate(size_t{16} << 20);
  ASSERT_TRUE(buf.ok()) << buf.status();
  const int64_t huge = HugePageBytesIn(buf->data(), buf->size());
  ASSERT_GE(huge, 0) << "cannot read /proc/self/smaps";
  // The kernel may fall back to small pages for some 2 MiB ranges (fragmented memory), not all.
  EXPECT_GE(huge, int64_t{4} << 20) << "of 16 MiB advised MADV_HUGEPAGE with THP '" << mode << "'";
}

}  // namespace
}  // namespace tailor
