// `tailor compile`, `inspect`, `exec` and `generate --package` as a user runs them.
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_util.h"
#include "tokenizer/tokenizer.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing_util::CommandResult;
using testing_util::ReadAll;
using testing_util::RunCommand;
using testing_util::TempDir;
using testing_util::WriteAll;

const std::string kShared = TAILOR_SHARED_DIR;
const std::string kStories = kShared + "/models/stories260K";

std::string Piece(int32_t id) {
  static const auto* tok = Tokenizer::Load(kStories + "/tok512.model", 512)->release();
  return std::string(tok->Piece(id));
}

CommandResult Tailor(std::vector<std::string> args) { return testing_util::RunTailor(std::move(args)); }

class CliPackage : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new TempDir();
    WriteAll(*tmp_ / "specs.json", R"({"specializations": [
        {"batch_size": "1", "seq_len": "1", "ctx_len": "128"},
        {"batch_size": "1", "seq_len": "1", "ctx_len": "512"},
        {"batch_size": "2", "seq_len": "1", "ctx_len": "512", "compile_opts": "-ols=2"},
        {"batch_size": "1", "seq_len": "16", "ctx_len": "512"}]})");
    // The seed's qaic-compile spellings.
    compile_ = new CommandResult(Tailor({"compile", "-m=" + kStories + "/stories260K.bin", "--tokenizer",
                                         kStories + "/tok512.bin", "-network-specialization-config=" +
                                         (*tmp_ / "specs.json").string(), "-aic-binary-dir=" +
                                         (*tmp_ / "pkg").string(), "-aic-hw", "-aic-num-cores=2"}));
  }
  static void TearDownTestSuite() {
    delete compile_;
    delete tmp_;
  }
  static fs::path Package() { return *tmp_ / "pkg"; }
  static TempDir* tmp_;
  static CommandResult* compile_;
};
TempDir* CliPackage::tmp_ = nullptr;
CommandResult* CliPackage::compile_ = nullptr;

TEST_F(CliPackage, CompileReportsEachSpecialization) {
  ASSERT_EQ(compile_->exit_code, 0) << compile_->err;
  EXPECT_THAT(compile_->err, AllOf(HasSubstr("[1/4] b1_s1_c128"), HasSubstr("[4/4] b1_s16_c512"),
                                   HasSubstr("arena"), HasSubstr("ms per step")));
  EXPECT_TRUE(fs::exists(Package() / "manifest.json"));
  EXPECT_TRUE(fs::exists(Package() / "kernels" / "b1_s16_c512_ols1.cc"));
}

TEST_F(CliPackage, InspectPrintsTheTable) {
  CommandResult r = Tailor({"inspect", Package().string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, AllOf(HasSubstr("batch_size"), HasSubstr("seq_len"), HasSubstr("ctx_len"),
                           HasSubstr("measured"), HasSubstr("tokens/s"), HasSubstr("stories260K"),
                           HasSubstr("family llama")));
  // One row per specialization: index, batch_size, seq_len, ctx_len, -ols.
  EXPECT_THAT(r.out, ::testing::ContainsRegex("\n +0 +1 +1 +128 +1 "));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("\n +2 +2 +1 +512 +2 "));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("\n +3 +1 +16 +512 +1 "));
}

TEST_F(CliPackage, GenerateOnThePackageMatchesTheReference) {
  auto ref = nlohmann::json::parse(ReadAll(kShared + "/reference/stories260K_greedy.json"));
  for (int c : {1, 2, 3}) {
    const auto& cs = ref["cases"][c];
    CommandResult r = Tailor({"generate", "--package", Package().string(), "--prompt",
                              cs["prompt"].get<std::string>(), "--max-tokens", "96"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // The reference decoded its output ids alone, which drops the first piece's word-boundary
    // space; on stdout the continuation reads after the prompt, that space kept.
    std::string expected = cs["output_text"].get<std::string>();
    if (Piece(cs["output_ids"][0].get<int32_t>()).starts_with("\xe2\x96\x81")) expected = " " + expected;
    EXPECT_EQ(r.out, expected);
  }
}

TEST_F(CliPackage, ExecRunsInputsWithRetainedState) {
  // Two slots: slot 0 gets a prompt of 5 then one decode token; slot 1 joins at the second input.
  WriteAll(*tmp_ / "in.json", R"({"inputs": [
      {"input_ids": [[1, 403, 407, 261, 378]], "position_ids": [[0, 1, 2, 3, 4]]},
      {"input_ids": [[432], [1]], "position_ids": [[5], [0]]},
      {"input_ids": [[0], [403]], "position_ids": [[-1], [1]]}]})");
  CommandResult r = Tailor({"exec", "--package", Package().string(), "--json-input-file",
                            (*tmp_ / "in.json").string(), "--output", (*tmp_ / "out.jsonl").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(*tmp_ / "out.jsonl");
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["specialization"]["seq_len"], 16);
  EXPECT_EQ(lines[1]["specialization"]["batch_size"], 2);
  EXPECT_TRUE(lines[2]["logits"][0].is_null());
  auto argmax = [](const nlohmann::json& v) {
    auto f = v.get<std::vector<float>>();
    return std::max_element(f.begin(), f.end()) - f.begin();
  };
  // Greedy continuation of "Once upon a time" is ", there" (432, 383): slot 0 kept its prompt.
  EXPECT_EQ(argmax(lines[0]["logits"][0]), 432);
  EXPECT_EQ(argmax(lines[1]["logits"][0]), 383);
  // Slot 1 ran BOS then "Once": the model continues with "upon" (407).
  EXPECT_EQ(argmax(lines[2]["logits"][1]), 407);
}

TEST_F(CliPackage, ExecErrorsNameTheProblem) {
  WriteAll(*tmp_ / "bad.json", R"({"inputs": [{"input_ids": [[1, 2, 3]], "position_ids": [[0, 1]]}]})");
  CommandResult r = Tailor({"exec", "--package", Package().string(), "--json-input-file", (*tmp_ / "bad.json").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, AllOf(HasSubstr("bad.json"), HasSubstr("3 ids but 2 positions")));
  WriteAll(*tmp_ / "big.json", R"({"inputs": [{"input_ids": [[1], [1], [1]], "position_ids": [[0], [0], [0]]}]})");
  r = Tailor({"exec", "--package", Package().string(), "--json-input-file", (*tmp_ / "big.json").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, AllOf(HasSubstr("rows 3"), HasSubstr("no specialization fits"),
                           HasSubstr("(batch_size 2, seq_len 1, ctx_len 512)")));
}

TEST_F(CliPackage, CompileErrors) {
  WriteAll(*tmp_ / "nodecode.json", R"({"specializations": [{"batch_size": "1", "seq_len": "4", "ctx_len": "8"}]})");
  CommandResult r = Tailor({"compile", "--model", kStories + "/stories260K.gguf", "--specializations",
                            (*tmp_ / "nodecode.json").string(), "--out", (*tmp_ / "x").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, AllOf(HasSubstr("nodecode.json"), HasSubstr("no decode specialization")));
  r = Tailor({"compile", "--model", kStories + "/stories260K.gguf", "--specializations",
              (*tmp_ / "specs.json").string(), "--out", (*tmp_ / "x").string(), "--dtype", "f8"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--dtype"));
  r = Tailor({"inspect", (*tmp_ / "nothing").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("not a tailor package"));
}

TEST_F(CliPackage, NativeTargetAndCostTable) {
  WriteAll(*tmp_ / "costs.json", R"({"b1_s1_c128": 0.5, "b1_s1_c512": 0.25, "b2_s1_c512": 0.125, "b1_s16_c512": 1})");
  CommandResult r = Tailor({"compile", "--model", kShared + "/models/stories260K-hf", "--specializations",
                            (*tmp_ / "specs.json").string(), "--out", (*tmp_ / "native").string(),
                            "--target", "native", "--cost-table", (*tmp_ / "costs.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(*tmp_ / "native" / "kernels"));
  r = Tailor({"inspect", (*tmp_ / "native").string()});
  EXPECT_THAT(r.out, AllOf(HasSubstr("table"), HasSubstr("125.0000"), HasSubstr("native")));
  // The cheapest decode specialization (b2, by the table) runs a single sequence too.
  r = Tailor({"generate", "--package", (*tmp_ / "native").string(), "--prompt", "Once upon a time",
              "--max-tokens", "20"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::StartsWith(", there was a little girl named Lily."));
}

// scripts/setup.sh compiles the default package (CI runs it before the tests); then generate
// needs no --package. Without it (a build that skipped set-up) the error says what to do.
TEST(DefaultPackage, GenerateWithoutPackageUsesIt) {
  const fs::path dir = TAILOR_DEFAULT_PACKAGE;
  CommandResult r = Tailor({"generate", "--prompt", "Once upon a time", "--max-tokens", "8"});
  if (!fs::exists(dir / "manifest.json")) {
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_THAT(r.err, AllOf(HasSubstr(dir.string()), HasSubstr("scripts/setup.sh")));
    GTEST_SKIP() << "no default package: run scripts/setup.sh";
  }
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, ", there was a little girl");
}

}  // namespace
}  // namespace tailor
