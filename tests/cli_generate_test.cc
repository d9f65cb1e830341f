// `tailor generate` end to end: output and statistics as in the command-line contract, and one
// clear error (exit 2, nothing on stdout) for each kind of bad model or tokenizer input.
#include <cstring>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_util.h"

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

CommandResult Generate(std::vector<std::string> args) {
  args.insert(args.begin(), {TAILOR_BINARY, "generate"});
  return RunCommand(args);
}

std::string ReferenceText(int case_index) {
  auto ref = nlohmann::json::parse(ReadAll(kShared + "/reference/stories260K_greedy.json"));
  return ref["cases"][case_index]["output_text"].get<std::string>();
}

TEST(Generate, GreedyStoryFromEveryFormat) {
  const std::string expected = ReferenceText(1);  // "Once upon a time" continued
  for (std::vector<std::string> model :
       {std::vector<std::string>{"--model", kStories + "/stories260K.bin", "--tokenizer",
                                 kStories + "/tok512.bin"},
        std::vector<std::string>{"--model", kStories + "/stories260K.gguf"},
        std::vector<std::string>{"--model", kShared + "/models/stories260K-hf"}}) {
    model.insert(model.end(), {"--prompt", "Once upon a time", "--max-tokens", "96"});
    CommandResult r = Generate(model);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, expected) << model[1];
    // The statistics line is the last line on stderr.
    std::string last = r.err.substr(r.err.rfind('\n', r.err.size() - 2) + 1);
    EXPECT_THAT(last, ::testing::MatchesRegex(
                          "prompt: 5 tokens, [0-9.]+ tok/s; generation: 96 tokens, [0-9.]+ tok/s\n"));
  }
}

TEST(Generate, EmptyPromptIsBosAloneAndStoryEndsAtBos) {
  CommandResult r = Generate({"--model", kStories + "/stories260K.bin", "--tokenizer",
                              kStories + "/tok512.model", "--prompt", "", "--max-tokens", "96"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, ReferenceText(0));
  // Long enough to reach the end of a story: generation stops at BOS, well before 500 tokens.
  r = Generate({"--model", kStories + "/stories260K.bin", "--tokenizer", kStories + "/tok512.model",
                "--prompt", "", "--max-tokens", "500"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("generation: 500 tokens")));
}

TEST(Generate, SameSeedSameOutput) {
  std::vector<std::string> args = {"--model", kStories + "/stories260K.gguf", "--prompt",
                                   "Tom and Lily", "--max-tokens", "40", "--temperature", "0.9",
                                   "--top-p", "0.95", "--top-k", "50", "--seed", "42"};
  CommandResult a = Generate(args), b = Generate(args);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  args.back() = "43";
  CommandResult c = Generate(args);
  ASSERT_EQ(c.exit_code, 0);
  EXPECT_NE(a.out, c.out);
}

// Every bad input: exit 2, a message naming the file and the problem, nothing on stdout.
void ExpectBadInput(const CommandResult& r, const std::vector<std::string>& fragments) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.out, "");
  for (const auto& f : fragments) EXPECT_THAT(r.err, HasSubstr(f));
}

class BadInput : public ::testing::Test {
 protected:
  CommandResult Run(const fs::path& model, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--model", model.string(), "--prompt", "hi"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Generate(args);
  }
  // A copy of a Hugging Face directory whose files the test may change.
  fs::path CopyHf(const std::string& name) {
    fs::path dst = tmp_ / name;
    fs::copy(kShared + "/models/" + name, dst, fs::copy_options::recursive);
    for (auto& e : fs::directory_iterator(dst)) {
      fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
    }
    return dst;
  }
  void EditJson(const fs::path& file, const std::function<void(nlohmann::json&)>& edit) {
    auto j = nlohmann::json::parse(ReadAll(file));
    edit(j);
    WriteAll(file, j.dump());
  }
  TempDir tmp_;
};

TEST_F(BadInput, MissingFile) {
  ExpectBadInput(Run(tmp_ / "nope.bin"), {"nope.bin", "no such file"});
}

TEST_F(BadInput, TruncatedLlama2c) {
  std::string bin = ReadAll(kStories + "/stories260K.bin");
  WriteAll(tmp_ / "model.bin", bin.substr(0, bin.size() / 2));
  ExpectBadInput(Run(tmp_ / "model.bin", {"--tokenizer", kStories + "/tok512.model"}),
                 {"model.bin", "truncated"});
}

TEST_F(BadInput, WrongMagic) {
  std::string gguf = ReadAll(kStories + "/stories260K.gguf");
  gguf[0] = 'X';
  WriteAll(tmp_ / "model.gguf", gguf);
  ExpectBadInput(Run(tmp_ / "model.gguf"), {"model.gguf", "magic"});
  WriteAll(tmp_ / "garbage.bin", std::string(4096, '\xff'));
  ExpectBadInput(Run(tmp_ / "garbage.bin", {"--tokenizer", kStories + "/tok512.model"}),
                 {"garbage.bin", "magic"});
}

TEST_F(BadInput, TruncatedGguf) {
  std::string gguf = ReadAll(kStories + "/stories260K.gguf");
  for (size_t cut : {size_t{3}, size_t{100}, gguf.size() / 3, gguf.size() - 10}) {
    WriteAll(tmp_ / "model.gguf", gguf.substr(0, cut));
    ExpectBadInput(Run(tmp_ / "model.gguf"), {"model.gguf"});
  }
}

TEST_F(BadInput, TruncatedAndCorruptSafetensors) {
  fs::path dir = CopyHf("stories260K-hf");
  std::string st = ReadAll(dir / "model.safetensors");
  WriteAll(dir / "model.safetensors", st.substr(0, st.size() - 1000));
  ExpectBadInput(Run(dir), {"model.safetensors", "truncated"});
  std::string corrupt = st;
  std::memset(corrupt.data() + 8, '#', 16);
  WriteAll(dir / "model.safetensors", corrupt);
  ExpectBadInput(Run(dir), {"model.safetensors", "corrupt"});
}

TEST_F(BadInput, TensorWithWrongShape) {
  fs::path dir = CopyHf("stories260K-hf");
  EditJson(dir / "config.json", [](auto& j) { j["intermediate_size"] = 100; });
  ExpectBadInput(Run(dir), {"stories260K-hf", "gate", "shape"});
}

TEST_F(BadInput, MissingTensor) {
  fs::path dir = CopyHf("tiny-mistral-f16");
  EditJson(dir / "config.json", [](auto& j) { j["num_hidden_layers"] = 3; });
  ExpectBadInput(Run(dir), {"tiny-mistral-f16", "missing tensor", "model.layers.2."});
}

TEST_F(BadInput, UnsupportedArchitectureAndConfig) {
  fs::path dir = CopyHf("tiny-mistral-f16");
  EditJson(dir / "config.json", [](auto& j) { j["architectures"] = {"GPT2LMHeadModel"}; });
  ExpectBadInput(Run(dir), {"config.json", "unsupported architecture", "GPT2LMHeadModel", "supported: ",
                            "LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"});
  EditJson(dir / "config.json", [](auto& j) {
    j["architectures"] = {"MistralForCausalLM"};
    j["sliding_window"] = 64;
  });
  ExpectBadInput(Run(dir), {"config.json", "sliding_window 64"});
  EditJson(dir / "config.json", [](auto& j) {
    j["sliding_window"] = nullptr;
    j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"high_freq_factor", 4.0}};  // no low_freq_factor
  });
  ExpectBadInput(Run(dir), {"config.json", "malformed rope_scaling", "low_freq_factor", "positive number"});
  EditJson(dir / "config.json", [](auto& j) { j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}}; });
  ExpectBadInput(Run(dir), {"config.json", "rope_scaling", "yarn", "not implemented", "linear, llama3"});
  EditJson(dir / "config.json", [](auto& j) { j["rope_scaling"] = "big"; });
  ExpectBadInput(Run(dir), {"config.json", "malformed rope_scaling", "expected an object"});
  EditJson(dir / "config.json", [](auto& j) {
    j["rope_scaling"] = nullptr;
    j["hidden_act"] = "gelu";
  });
  ExpectBadInput(Run(dir), {"config.json", "gelu"});
}

TEST_F(BadInput, UnsupportedDtype) {
  // Rewrite the header of a safetensors file so one tensor claims I32 (same byte count as F32).
  fs::path dir = CopyHf("stories260K-hf");
  std::string st = ReadAll(dir / "model.safetensors");
  uint64_t len;
  std::memcpy(&len, st.data(), 8);
  std::string header = st.substr(8, len);
  auto pos = header.find("\"F32\"");
  ASSERT_NE(pos, std::string::npos);
  header.replace(pos, 5, "\"I32\"");
  WriteAll(dir / "model.safetensors", st.substr(0, 8) + header + st.substr(8 + len));
  ExpectBadInput(Run(dir), {"model.safetensors", "I32", "supported: F32, F16, BF16"});
}

TEST_F(BadInput, TokenizerLargerThanVocabulary) {
  ExpectBadInput(Run(kStories + "/stories260K.bin",
                     {"--tokenizer", kShared + "/models/tokenizers/llama2-tokenizer.model"}),
                 {"llama2-tokenizer.model", "32000", "512"});
}

TEST_F(BadInput, Llama2cWithoutTokenizerListsPathsTried) {
  fs::copy(kStories + "/stories260K.bin", tmp_ / "stories260K.bin");
  CommandResult r = Run(tmp_ / "stories260K.bin");
  ExpectBadInput(r, {"stories260K.bin", "no tokenizer", (tmp_ / "tokenizer.model").string(),
                     (tmp_ / "tokenizer.bin").string()});
}

TEST_F(BadInput, PromptPlusMaxTokensBeyondMaxPositions) {
  // The HF copy declares max_position_embeddings 512 (the GGUF copy says 2048).
  ExpectBadInput(Run(kShared + "/models/stories260K-hf", {"--max-tokens", "600"}),
                 {"--max-tokens 600", "512"});
}

TEST_F(BadInput, BadFlags) {
  ExpectBadInput(Generate({"--model", kStories + "/stories260K.gguf", "--prompt", "x", "--top-p", "abc"}),
                 {"--top-p", "abc"});
  ExpectBadInput(Generate({"--model", kStories + "/stories260K.gguf", "--prompt", "x", "--bogus", "1"}),
                 {"--bogus"});
  ExpectBadInput(Generate({"--prompt", "x", "--package", (tmp_ / "none").string()}), {"none"});
}

}  // namespace
}  // namespace tailor
