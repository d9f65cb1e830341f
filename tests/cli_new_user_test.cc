// What a new user hits first, through the `tailor` executable (issue 17, item 5): defaults that
// fit a short context, --help and --version everywhere, flag errors naming the flag as typed,
// bad config.json fields, mismatched tokenizers and exec inputs that skip KV positions.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_util.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using testing_util::CommandResult;
using testing_util::ReadAll;
using testing_util::RunTailor;
using testing_util::TempDir;
using testing_util::WriteAll;

const std::string kShared = TAILOR_SHARED_DIR;
const std::string kStories = kShared + "/models/stories260K";

// A stories260K package whose specializations stop at 64 positions (compiled once per process).
const std::string& SmallPackage() {
  static TempDir* tmp = new TempDir();
  static const std::string* path = [] {
    WriteAll(*tmp / "specs.json", R"({"specializations": [
        {"batch_size": "1", "seq_len": "16", "ctx_len": "64"},
        {"batch_size": "2", "seq_len": "1", "ctx_len": "64"}]})");
    const std::string out = (*tmp / "pkg").string();
    CommandResult r = RunTailor({"compile", "--model", kStories + "/stories260K.bin", "--tokenizer",
                                 kStories + "/tok512.bin", "--specializations", (*tmp / "specs.json").string(),
                                 "--out", out, "--compile-only", "--target", "native"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return new std::string(out);
  }();
  return *path;
}

// Item 1: generate's default --max-tokens (256) is clamped to what the 64-position context leaves;
// an explicit --max-tokens that does not fit is still refused, naming the flag.
TEST(NewUser, GenerateDefaultsFitTheContext) {
  CommandResult r = RunTailor({"generate", "--package", SmallPackage(), "--prompt", "Once upon a time"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
  // 5 prompt tokens (BOS included): at most 59 generated.
  EXPECT_THAT(r.err, ::testing::ContainsRegex("prompt: 5 tokens, [0-9.]+ tok/s; generation: [0-9]+ tokens"));
  const size_t at = r.err.find("generation: ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_LE(std::stoi(r.err.substr(at + 12)), 59);

  r = RunTailor({"generate", "--package", SmallPackage(), "--prompt", "Once upon a time", "--max-tokens", "64"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--max-tokens"));
  EXPECT_TRUE(r.out.empty());
}

// Item 4: every command prints its usage on stdout with exit 0 for --help and -h.
TEST(NewUser, HelpAndVersion) {
  for (const std::string command : {"generate", "compile", "inspect", "exec", "serve", "chat", "batch", "tokenize",
                                    "detokenize", "perplexity", "calibrate", "profile", "plan"}) {
    for (const std::string flag : {"--help", "-h"}) {
      CommandResult r = RunTailor({command, flag});
      EXPECT_EQ(r.exit_code, 0) << command << " " << flag << ": " << r.err;
      EXPECT_THAT(r.out, HasSubstr("usage: tailor " + command)) << command << " " << flag;
    }
  }
  // Help after other flags, and not mistaken for a flag's value.
  CommandResult r = RunTailor({"generate", "--prompt", "hello", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("--max-tokens"));
  for (const std::string flag : {"--help", "-h"}) {
    r = RunTailor({flag});
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_THAT(r.out, HasSubstr("usage: tailor <command>"));
  }
  r = RunTailor({"--version"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::MatchesRegex("tailor [0-9]+\\.[0-9]+\\.[0-9]+ \\(git ([0-9a-f]+|unknown)\\)\n"));
}

// Item 5: the flag as the user typed it, exit 2.
TEST(NewUser, FlagErrorsNameTheFlagAsTyped) {
  TempDir tmp;
  CommandResult r = RunTailor({"compile", "-m=" + kStories + "/stories260K.bin", "-aic-num-cores=many",
                               "-network-specialization-config=x.json", "-aic-binary-dir=" + (tmp / "p").string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("-aic-num-cores: 'many'"));
  EXPECT_THAT(r.err, Not(HasSubstr("--threads")));

  r = RunTailor({"compile", "-m=" + kStories + "/stories260K.bin", "-aic-num-cores=2", "--threads=3"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--threads given twice (as -aic-num-cores before)"));

  // An impossible KV pool: zero, negative, larger than the machine.
  for (const std::string mb : {"0", "-5", "1073741824"}) {
    WriteAll(tmp / "in.json", R"({"inputs": [{"input_ids": [[1, 2]], "position_ids": [[0, 1]]}]})");
    r = RunTailor({"exec", "--package", SmallPackage(), "--json-input-file", (tmp / "in.json").string(),
                   "--kv-cache-mb", mb});
    EXPECT_EQ(r.exit_code, 2) << mb << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("--kv-cache-mb")) << mb;
    EXPECT_TRUE(r.out.empty()) << mb;
  }
}

// Item 6: config.json fields of the wrong type, non-integers and overflowing numbers.
TEST(NewUser, ConfigJsonFieldsAreChecked) {
  const std::string hf = kShared + "/models/stories260K-hf";
  const nlohmann::json base = nlohmann::json::parse(ReadAll(hf + "/config.json"));
  struct Case {
    const char* field;
    nlohmann::json value;
    const char* shown;
  };
  for (const Case& c : {Case{"tie_word_embeddings", "yes", "\"yes\""}, Case{"hidden_size", 64.5, "64.5"},
                        Case{"vocab_size", 1e20, "1e+20"}, Case{"intermediate_size", int64_t{4294967296}, "4294967296"},
                        Case{"num_hidden_layers", "5", "\"5\""}}) {
    TempDir dir;
    nlohmann::json config = base;
    config[c.field] = c.value;
    WriteAll(dir / "config.json", config.dump());
    for (const char* f : {"model.safetensors", "tokenizer.model", "tokenizer_config.json", "generation_config.json"}) {
      fs::create_symlink(hf + "/" + f, dir / f);
    }
    CommandResult r = RunTailor({"generate", "--model", dir.path().string(), "--prompt", "Hi", "--max-tokens", "1"});
    EXPECT_EQ(r.exit_code, 2) << c.field << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.field));
    EXPECT_THAT(r.err, HasSubstr(c.shown)) << c.field;
    EXPECT_TRUE(r.out.empty()) << c.field;
  }
}

// Item 7: a tokenizer with more tokens than the model's embedding rows, or one thousands of rows
// short of them (another family's), is refused at compile time; Qwen's padded embedding is not.
TEST(NewUser, TokenizerOfAnotherModelIsRefused) {
  TempDir tmp;
  WriteAll(tmp / "specs.json", R"({"specializations": [{"batch_size": "1", "seq_len": "1", "ctx_len": "64"}]})");
  auto compile = [&](const std::string& model, const std::string& tokenizer) {
    return RunTailor({"compile", "--model", model, "--tokenizer", tokenizer, "--specializations",
                      (tmp / "specs.json").string(), "--out", (tmp / "pkg").string(), "--compile-only", "--target",
                      "native"});
  };
  CommandResult r = compile(kStories + "/stories260K.bin", kShared + "/models/tokenizers/llama2-tokenizer.model");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("32000"));
  EXPECT_THAT(r.err, HasSubstr("512"));

  r = compile(kShared + "/models/tiny-qwen3", kShared + "/models/tokenizers/llama3/tokenizer.json");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("128256"));
  EXPECT_THAT(r.err, HasSubstr("151936"));

  r = compile(kShared + "/models/tiny-qwen3", kShared + "/models/tokenizers/qwen3/tokenizer.json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// Item 8: exec refuses a row that starts past the KV positions written so far.
TEST(NewUser, ExecRefusesSkippedPositions) {
  TempDir tmp;
  WriteAll(tmp / "skip.json", R"({"inputs": [
      {"input_ids": [[1, 2, 3]], "position_ids": [[0, 1, 2]]},
      {"input_ids": [[4]], "position_ids": [[7]]}]})");
  CommandResult r = RunTailor({"exec", "--package", SmallPackage(), "--json-input-file", (tmp / "skip.json").string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("inputs[1] row 0 starts at position 7"));
  EXPECT_THAT(r.err, HasSubstr("at most 3"));
  EXPECT_TRUE(r.out.empty());

  // Continuing where the slot ends, or rewriting earlier positions, is fine.
  WriteAll(tmp / "ok.json", R"({"inputs": [
      {"input_ids": [[1, 2, 3]], "position_ids": [[0, 1, 2]]},
      {"input_ids": [[4]], "position_ids": [[3]]},
      {"input_ids": [[5, 6]], "position_ids": [[1, 2]]}]})");
  r = RunTailor({"exec", "--package", SmallPackage(), "--json-input-file", (tmp / "ok.json").string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

}  // namespace
}  // namespace tailor
