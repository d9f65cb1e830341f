// `tailor generate` and `tailor compile` on GGUF files with quantized tensors (llama.cpp's
// Q4_K_M mix of Q4_K, Q6_K and F32), and the refusal (exit 2) of a tensor type tailor does not
// load, named as ggml names it.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing_util::CommandResult;
using testing_util::ReadAll;
using testing_util::RunTailor;
using testing_util::TempDir;
using testing_util::WriteAll;

const std::string kShared = TAILOR_SHARED_DIR;
const std::string kQ4KM = kShared + "/models/quant-test/quant-test-Q4_K_M.gguf";

TEST(GenerateQuantGguf, Q4KMGenerates) {
  CommandResult r = RunTailor(
      {"generate", "--model", kQ4KM, "--prompt", "Once upon a time", "--max-tokens", "8"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
  EXPECT_THAT(r.err, ::testing::ContainsRegex("generation: [0-9]+ tokens, [0-9.]+ tok/s\n$"));
}

TEST(GenerateQuantGguf, CompiledPackageGenerates) {
  TempDir tmp;
  const std::string specs = (tmp / "specs.json").string();
  WriteAll(specs, R"({"specializations": [{"batch_size": "1", "seq_len": "1", "ctx_len": "64"},
                                          {"batch_size": "1", "seq_len": "8", "ctx_len": "64"}]})");
  const std::string pkg = (tmp / "pkg").string();
  CommandResult c = RunTailor({"compile", "--model", kQ4KM, "--specializations", specs, "--out",
                               pkg, "--target", "native", "--compile-only"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  CommandResult r = RunTailor(
      {"generate", "--package", pkg, "--prompt", "Once upon a time", "--max-tokens", "8"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
}

TEST(GenerateQuantGguf, UnsupportedTypeIsExit2) {
  // Tensor infos are: u64 name length, name, u32 n_dims, u64 dims[n_dims], u32 type, u64 offset.
  // Set blk.0.ffn_up.weight's type (Q4_K, 144 bytes a block) to Q2_K (84 bytes a block: its data
  // still lies inside the file, so only the loader's type check can refuse it).
  std::string bytes = ReadAll(kQ4KM);
  const std::string name = "blk.0.ffn_up.weight";
  std::string key(8, '\0');
  const uint64_t len = name.size();
  std::memcpy(key.data(), &len, 8);
  key += name;
  const size_t at = bytes.find(key);
  ASSERT_NE(at, std::string::npos);
  uint32_t n_dims;
  std::memcpy(&n_dims, bytes.data() + at + key.size(), 4);
  const size_t type_at = at + key.size() + 4 + 8 * n_dims;
  uint32_t type;
  std::memcpy(&type, bytes.data() + type_at, 4);
  ASSERT_EQ(type, 12u);  // Q4_K
  type = 10;             // Q2_K
  std::memcpy(bytes.data() + type_at, &type, 4);
  TempDir tmp;
  WriteAll(tmp / "q2k.gguf", bytes);

  CommandResult r = RunTailor({"generate", "--model", (tmp / "q2k.gguf").string(), "--prompt",
                               "Once upon a time", "--max-tokens", "8"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("q2k.gguf"));
  EXPECT_THAT(r.err, HasSubstr("blk.0.ffn_up.weight"));
  EXPECT_THAT(r.err, HasSubstr("Q2_K (10)"));
  EXPECT_THAT(r.err, HasSubstr("supported: F32 (0)"));
}

}  // namespace
}  // namespace tailor
