// The llama2.c checkpoint loader over bytes in memory: headers the fuzz target (tests/fuzz/
// llama2c_fuzz.cc) found are refused with the loader's message, never undefined behaviour.
#include <cstdint>
#include <cstring>
#include <string>

#include "common/mapped_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/loader_util.h"

namespace tailor {
namespace {

using ::testing::HasSubstr;

// A legacy (version 0) header: dim, hidden, layers, heads, kv heads, vocab, seq_len.
std::string Header(int32_t dim, int32_t hidden, int32_t layers, int32_t heads, int32_t kv_heads,
                   int32_t vocab, int32_t seq_len) {
  const int32_t h[7] = {dim, hidden, layers, heads, kv_heads, vocab, seq_len};
  std::string bytes(sizeof h, '\0');
  std::memcpy(bytes.data(), h, sizeof h);
  return bytes;
}

absl::Status Load(const std::string& bytes) {
  return loader::LoadLlama2c(MappedFile::FromBytes(bytes, "fuzz.bin"), LoadOptions{}).status();
}

TEST(Llama2cLoader, AVocabSizeOfInt32MinIsRefusedNotNegated) {
  // Found by the fuzzer: -INT32_MIN overflowed int32 (UBSan) while reading the "unshared
  // classifier" sign of the vocab size.
  const absl::Status s = Load(Header(64, 172, 10, 8, 4, INT32_MIN, 512) + std::string(12, '\0'));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("not a llama2.c checkpoint"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("vocab 0"));
}

TEST(Llama2cLoader, ANegativeVocabSizeStillMeansUnsharedWeights) {
  // Plausible header, negative vocab (unshared classifier), but no weights: refused as truncated.
  const absl::Status s = Load(Header(64, 172, 2, 8, 4, -512, 512));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("fuzz.bin"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("truncated llama2.c checkpoint"));
}

}  // namespace
}  // namespace tailor
