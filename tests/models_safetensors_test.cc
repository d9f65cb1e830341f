// The safetensors header parser on hand-made files (regressions of the fuzz target
// tests/fuzz/safetensors_fuzz.cc): shapes are checked against the data before anything is
// multiplied or allocated.
#include <cstdint>
#include <cstring>
#include <string>

#include "common/mapped_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/safetensors.h"

namespace tailor {
namespace {

using ::testing::HasSubstr;

// An 8-byte little-endian header length, the header, then `data_bytes` zero bytes.
std::string File(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + std::string(data_bytes, '\0');
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> Parse(const std::string& bytes) {
  return SafetensorsFile::Parse(MappedFile::FromBytes(bytes, "t.safetensors"));
}

TEST(SafetensorsTest, ReadsAWellFormedFile) {
  auto st = Parse(File(R"({"__metadata__": {"format": "pt"}, "w": {"dtype": "F32", "shape": [2, 3],
                           "data_offsets": [0, 24]}, "e": {"dtype": "BF16", "shape": [0, 5], "data_offsets": [24, 24]}})",
                       24));
  ASSERT_TRUE(st.ok()) << st.status();
  ASSERT_EQ((*st)->tensors().size(), 2u);
  const SafetensorsTensor& w = (*st)->tensors().at("w");
  EXPECT_EQ(w.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(w.nbytes, 24u);
}

TEST(SafetensorsTest, RefusesAShapeLargerThanTheFile) {
  // 2^40 x 2^40 elements: refused by size, before the byte count is compared.
  auto st = Parse(File(R"({"w": {"dtype": "F32", "shape": [1099511627776, 1099511627776], "data_offsets": [0, 8]}})", 8));
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.status().message(), HasSubstr("tensor 'w'"));
  EXPECT_THAT(st.status().message(), HasSubstr("more elements than the file's 8 data bytes"));
}

TEST(SafetensorsTest, RefusesAShapeWhoseProductOverflows) {
  // 2^62 x 4 is 2^64 elements: the old int64 product overflowed (undefined behaviour, reported
  // by UBSan). The unknown dtype skips the byte-count check, so only the element count refuses it.
  auto st = Parse(File(R"({"w": {"dtype": "X9", "shape": [4611686018427387904, 4], "data_offsets": [0, 0]}})", 0));
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.status().message(), HasSubstr("has more elements than the file's 0 data bytes"));
}

TEST(SafetensorsTest, AZeroDimensionMakesAnEmptyTensorWhateverTheOthers) {
  auto st = Parse(File(R"({"w": {"dtype": "F16", "shape": [9223372036854775807, 0], "data_offsets": [0, 0]}})", 0));
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ((*st)->tensors().at("w").nbytes, 0u);
}

TEST(SafetensorsTest, RefusesAHeaderLongerThanTheFile) {
  std::string bytes = File(R"({})", 0);
  const uint64_t huge = uint64_t{1} << 40;
  std::memcpy(bytes.data(), &huge, 8);
  auto st = Parse(bytes);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.status().message(), HasSubstr("header length 1099511627776 exceeds the file size"));
}

}  // namespace
}  // namespace tailor
