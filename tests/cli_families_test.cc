// Llama 3 and Qwen as users run them, through the `tailor` executable: `generate --model` on the
// Hugging Face directories, `tokenize`/`detokenize`, and `serve` on compiled packages whose chat
// prompts (rendered by the model's own Jinja template) and /tokenize ids equal the references
// (../shared/reference/chat_templates.json, tokenizer_vectors.json, families_logits.json);
// generation_config.json defaults for omitted sampling fields.
#include <httplib.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/package_trust.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/serve_process.h"
#include "tests/test_util.h"
#include "tokenizer/tokenizer.h"

namespace tailor {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using Json = nlohmann::json;
using testing_util::CommandResult;
using testing_util::RunCommand;
using testing_util::RunTailor;
using testing_util::ServeProcess;
using testing_util::TempDir;

const std::string kShared = TAILOR_SHARED_DIR;
const std::string kModels = kShared + "/models";

const Json& Reference(const std::string& file) {
  static std::map<std::string, Json>* cache = new std::map<std::string, Json>();
  auto it = cache->find(file);
  if (it == cache->end()) {
    std::ifstream in(kShared + "/reference/" + file);
    it = cache->emplace(file, Json::parse(in)).first;
  }
  return it->second;
}

std::string TokenizerJson(const std::string& name) { return kModels + "/tokenizers/" + name + "/tokenizer.json"; }

// `tailor generate --model` on each family's directory with its tokenizer: the greedy text is the
// reference's 24 greedy ids decoded (Llama 3's BOS written as text, which the tokenizer matches).
TEST(FamiliesCli, GenerateFromModelDirectories) {
  for (const auto& [dir, tokenizer] : {std::pair{"tiny-llama3", "llama3"}, {"tiny-qwen2", "qwen3"},
                                       {"tiny-qwen3", "qwen3"}}) {
    const Json& c = Reference("families_logits.json")["families"][dir]["cases"][0];
    auto tok = Tokenizer::Load(TokenizerJson(tokenizer), 0);
    ASSERT_TRUE(tok.ok()) << tok.status();
    const auto prompt_ids = c["prompt_ids"].get<std::vector<int32_t>>();
    const auto greedy = c["greedy_ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> all = prompt_ids;
    all.insert(all.end(), greedy.begin(), greedy.end());
    const std::string prompt_text = (*tok)->Decode(prompt_ids);
    const std::string expected = (*tok)->Decode(all).substr(prompt_text.size());
    CommandResult r = RunTailor({"generate", "--model", kModels + "/" + dir, "--tokenizer", TokenizerJson(tokenizer),
                                 "--prompt", prompt_text, "--max-tokens", "24"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, expected) << dir;
    EXPECT_THAT(r.err, HasSubstr(absl::StrCat("prompt: ", prompt_ids.size(), " tokens")));
  }
}

TEST(FamiliesCli, TokenizeAndDetokenize) {
  const Json& vectors = Reference("tokenizer_vectors.json")["tokenizers"];
  for (const std::string name : {"llama3", "qwen3", "gemma3"}) {
    const Json& cases = vectors[name]["cases"];
    for (size_t i : {size_t{5}, cases.size() - 1}) {
      const Json& c = cases[i];
      const std::string text = c["text"].get<std::string>();
      CommandResult r = RunTailor({"tokenize", "--tokenizer", TokenizerJson(name), "--text", text});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(Json::parse(r.out), c["ids"]) << name << " case " << i;
      // From standard input, with what a prompt gets added (Gemma's <bos>).
      r = RunCommand({TAILOR_BINARY, "tokenize", "--tokenizer", TokenizerJson(name), "--add-special-tokens"}, text);
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(Json::parse(r.out), c["ids_with_special"]) << name << " case " << i;
      r = RunTailor({"detokenize", "--tokenizer", TokenizerJson(name), "--tokens", c["ids"].dump()});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(r.out, c["decoded"].get<std::string>()) << name << " case " << i;
    }
  }
  // A model directory finds its tokenizer (tokenizer.model beside config.json).
  CommandResult r = RunTailor({"tokenize", "--model", kModels + "/stories260K-hf", "--text", "Once upon a time",
                               "--add-special-tokens"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out).front(), 1) << "SentencePiece adds BOS";
  // Bad input: exit 2, a message naming the problem, nothing on stdout.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"tokenize", "--text", "hi"},
        {"tokenize", "--tokenizer", TokenizerJson("qwen3"), "--model", kModels + "/tiny-qwen3"},
        {"detokenize", "--tokenizer", TokenizerJson("qwen3"), "--tokens", "[1, 999999999]"},
        {"detokenize", "--tokenizer", TokenizerJson("qwen3"), "--tokens", "hello"}}) {
    r = RunTailor(args);
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(args, " ") << "\n" << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_THAT(r.err, testing::AnyOf(HasSubstr("exactly one of"), HasSubstr("not a token id"),
                                      HasSubstr("JSON array")));
  }
}

// One package per family (native target: no kernels to build), served; each chat template case
// of the reference through /tokenize, a chat completion's prompt_tokens, /detokenize.
class FamiliesServe : public ::testing::TestWithParam<std::pair<std::string, std::string>> {
 protected:
  static std::string Compile(const std::string& dir, const std::string& tokenizer, TempDir& tmp) {
    testing_util::WriteAll(tmp / "specs.json", R"({"specializations": [
        {"batch_size": "1", "seq_len": "16", "ctx_len": "256"},
        {"batch_size": "2", "seq_len": "1", "ctx_len": "256"}]})");
    const std::string out = (tmp / dir).string();
    CommandResult r = RunTailor({"compile", "--model", kModels + "/" + dir, "--tokenizer", TokenizerJson(tokenizer),
                                 "--specializations", (tmp / "specs.json").string(), "--out", out,
                                 "--compile-only", "--target", "native"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return out;
  }
  static Json Post(int port, const std::string& path, const Json& body, int* status = nullptr) {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(60);
    auto res = client.Post(path, body.dump(), "application/json");
    if (!res) return Json();
    if (status != nullptr) *status = res->status;
    return Json::parse(res->body, nullptr, false);
  }
};

TEST_P(FamiliesServe, ChatPromptsFollowTheModelsTemplate) {
  const auto& [dir, tokenizer] = GetParam();
  TempDir tmp;
  const std::string package = Compile(dir, tokenizer, tmp);
  ServeProcess server({"--package", package});
  ASSERT_GT(server.port(), 0) << server.stderr_text();
  const Json& templates = Reference("chat_templates.json")["templates"][tokenizer];
  for (const Json& c : templates["cases"]) {
    Json request = {{"messages", c["messages"]}, {"add_generation_prompt", c["add_generation_prompt"]}};
    if (c.contains("extra")) request["chat_template_kwargs"] = c["extra"];
    int status = 0;
    const Json tokenized = Post(server.port(), "/tokenize", request, &status);
    ASSERT_EQ(status, 200) << tokenized.dump();
    EXPECT_EQ(tokenized["tokens"], c["ids"]) << dir << " " << c["name"];
    EXPECT_EQ(tokenized["count"], c["ids"].size());
    EXPECT_EQ(tokenized["max_model_len"], 256);
    const Json text = Post(server.port(), "/detokenize", {{"tokens", c["ids"]}}, &status);
    ASSERT_EQ(status, 200) << text.dump();
    EXPECT_EQ(text["prompt"], c["rendered"]) << dir << " " << c["name"];
    if (c["add_generation_prompt"].get<bool>()) {  // what a chat completion runs
      Json chat = {{"messages", c["messages"]}, {"max_tokens", 2}, {"temperature", 0}};
      if (c.contains("extra")) chat["chat_template_kwargs"] = c["extra"];
      const Json reply = Post(server.port(), "/v1/chat/completions", chat, &status);
      ASSERT_EQ(status, 200) << reply.dump();
      EXPECT_EQ(reply["usage"]["prompt_tokens"], c["ids"].size()) << dir << " " << c["name"];
    }
  }
  // A prompt's ids: as the tokenizer adds special tokens (Qwen and this Llama 3 file add none).
  int status = 0;
  const Json plain = Post(server.port(), "/tokenize", {{"prompt", "Hello<|im_end|>"}}, &status);
  ASSERT_EQ(status, 200);
  auto tok = Tokenizer::Load(TokenizerJson(tokenizer), 0);
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ(plain["tokens"].get<std::vector<int32_t>>(), (*tok)->Encode("Hello<|im_end|>", EncodeOptions{true, false}));
  // Errors name the field.
  Json bad = Post(server.port(), "/tokenize", {{"prompt", "a"}, {"messages", Json::array()}}, &status);
  EXPECT_EQ(status, 400);
  bad = Post(server.port(), "/detokenize", {{"tokens", {1, 1 << 30}}}, &status);
  EXPECT_EQ(status, 400);
  EXPECT_EQ(bad["error"]["param"], "tokens");
  EXPECT_EQ(server.Stop(), 0) << server.stderr_text();
}

INSTANTIATE_TEST_SUITE_P(LlamaAndQwen, FamiliesServe,
                         ::testing::Values(std::pair<std::string, std::string>{"tiny-llama3", "llama3"},
                                           std::pair<std::string, std::string>{"tiny-qwen3", "qwen3"}),
                         [](const auto& info) { return info.param.second; });

// tiny-qwen3's generation_config.json (temperature 0.6, top_p 0.95, top_k 20) fills the fields a
// request omits: the same seed gives what those values given explicitly give.
TEST_F(FamiliesServe, GenerationConfigFillsOmittedSamplingFields) {
  TempDir tmp;
  const std::string package = Compile("tiny-qwen3", "qwen3", tmp);
  ServeProcess server({"--package", package});
  ASSERT_GT(server.port(), 0) << server.stderr_text();
  auto complete = [&](Json body) {
    body["prompt"] = "The capital of France is";
    body["max_tokens"] = 24;
    body["seed"] = 1234;
    int status = 0;
    Json r = Post(server.port(), "/v1/completions", body, &status);
    EXPECT_EQ(status, 200) << r.dump();
    return r["choices"][0]["text"].get<std::string>();
  };
  const std::string omitted = complete(Json::object());
  EXPECT_EQ(omitted, complete({{"temperature", 0.6}, {"top_p", 0.95}, {"top_k", 20}}));
  EXPECT_NE(omitted, complete({{"temperature", 1.0}, {"top_p", 1.0}, {"top_k", -1}}));
  EXPECT_EQ(server.Stop(), 0) << server.stderr_text();
}

// A model's template that does not parse: chat requests get a 400 that says where; completions
// and the rest of the server keep working. A tokenizer.json of an unknown model type is refused
// before anything is written.
TEST_F(FamiliesServe, BrokenTemplateAndTokenizerAreClearErrors) {
  TempDir tmp;
  const std::string package = Compile("tiny-qwen3", "qwen3", tmp);
  Json manifest = Json::parse(testing_util::ReadAll(package + "/manifest.json"));
  manifest["chat_template"] = "{% for m in messages %}{{ m.content }{% endfor %}";
  testing_util::WriteAll(package + "/manifest.json", SealManifestText(manifest.dump()).value());
  ServeProcess server({"--package", package});
  ASSERT_GT(server.port(), 0) << server.stderr_text();
  int status = 0;
  Json r = Post(server.port(), "/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "hi"}}}}}, &status);
  EXPECT_EQ(status, 400) << r.dump();
  EXPECT_EQ(r["error"]["param"], "messages");
  EXPECT_THAT(r["error"]["message"].get<std::string>(), AllOf(HasSubstr("chat template"), HasSubstr("line 1")));
  r = Post(server.port(), "/v1/completions", {{"prompt", "hi"}, {"max_tokens", 2}}, &status);
  EXPECT_EQ(status, 200) << r.dump();
  // A template that raises: its message, as a 400.
  EXPECT_EQ(server.Stop(), 0) << server.stderr_text();
  manifest["chat_template"] = "{{ raise_exception('Conversation roles must alternate') }}";
  testing_util::WriteAll(package + "/manifest.json", SealManifestText(manifest.dump()).value());
  ServeProcess again({"--package", package});
  ASSERT_GT(again.port(), 0) << again.stderr_text();
  r = Post(again.port(), "/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "hi"}}}}}, &status);
  EXPECT_EQ(status, 400) << r.dump();
  EXPECT_THAT(r["error"]["message"].get<std::string>(), HasSubstr("Conversation roles must alternate"));
  EXPECT_EQ(again.Stop(), 0) << again.stderr_text();

  Json bad = Json::parse(testing_util::ReadAll(TokenizerJson("qwen3")));
  bad["model"]["type"] = "WordPiece";
  testing_util::WriteAll(tmp / "tokenizer.json", bad.dump());
  CommandResult c = RunTailor({"compile", "--model", kModels + "/tiny-qwen3", "--tokenizer", (tmp / "tokenizer.json").string(),
                               "--specializations", (tmp / "specs.json").string(), "--out", (tmp / "never").string(),
                               "--compile-only", "--target", "native"});
  EXPECT_EQ(c.exit_code, 2) << c.err;
  EXPECT_THAT(c.err, AllOf(HasSubstr("tokenizer.json"), HasSubstr("WordPiece")));
  EXPECT_FALSE(std::filesystem::exists(tmp / "never"));
}

}  // namespace
}  // namespace tailor
