// Prompt log-probabilities as evaluation harnesses ask for them (lm-evaluation-harness's
// loglikelihood: POST /v1/completions with echo, logprobs and max_tokens 0), through `tailor
// serve`, checked against the float64 reference forward pass computed here.
#include <httplib.h>

#include <cmath>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/model_loader.h"
#include "models/reference_forward.h"
#include "nlohmann/json.hpp"
#include "tests/serve_package.h"
#include "tests/serve_process.h"

namespace tailor {
namespace {

using Json = nlohmann::json;
using testing_util::ServePackage;
using testing_util::ServeProcess;
using testing_util::StoriesDir;

// log p(prompt[i] | prompt[0..i)) for i >= 1, from the reference forward over the whole prompt.
std::vector<double> ReferenceScores(const std::vector<int32_t>& prompt) {
  LoadOptions options;
  options.tokenizer = StoriesDir() + "/tok512.model";
  auto model = LoadModel(StoriesDir() + "/stories260K.bin", options);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return {};
  ReferenceKvCache cache((*model)->config);
  ReferenceRow row{&cache, prompt};
  auto logits = ReferenceForward(**model).Run({&row, 1});
  EXPECT_TRUE(logits.ok()) << logits.status();
  if (!logits.ok()) return {};
  const size_t V = static_cast<size_t>((*model)->config.vocab_size);
  std::vector<double> scores;
  for (size_t i = 0; i + 1 < prompt.size(); ++i) {
    const float* l = (*logits)[0].data() + i * V;
    double max = l[0], sum = 0.0;
    for (size_t v = 0; v < V; ++v) max = std::max<double>(max, l[v]);
    for (size_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(l[v]) - max);
    scores.push_back(static_cast<double>(l[prompt[i + 1]]) - max - std::log(sum));
  }
  return scores;
}

class PromptLogprobs : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string err;
    package_ = new std::string(ServePackage(&err));
    ASSERT_FALSE(package_->empty()) << err;
    server_ = new ServeProcess({"--package", *package_});
    ASSERT_GT(server_->port(), 0) << server_->stderr_text();
  }
  static void TearDownTestSuite() {
    if (server_) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->stderr_text();
    }
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); ASSERT_GT(server_->port(), 0); }

  static Json Post(const Json& body, int expected_status = 200) {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(60, 0);
    auto r = c.Post("/v1/completions", body.dump(), "application/json");
    EXPECT_TRUE(r) << "no response";
    if (!r) return Json();
    EXPECT_EQ(r->status, expected_status) << r->body;
    return Json::parse(r->body, nullptr, false);
  }

  static std::string* package_;
  static ServeProcess* server_;
};
std::string* PromptLogprobs::package_ = nullptr;
ServeProcess* PromptLogprobs::server_ = nullptr;

// The reference file's first prompt: BOS + "Once upon a time, there was a little girl named Lily."
const std::vector<int32_t> kPrompt = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426};

TEST_F(PromptLogprobs, EchoWithMaxTokensZeroScoresThePromptLikeTheReference) {
  const std::vector<double> ref = ReferenceScores(kPrompt);
  ASSERT_EQ(ref.size(), kPrompt.size() - 1);
  const Json j = Post({{"prompt", kPrompt}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 3}, {"temperature", 0}});
  const Json& choice = j["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 0);
  EXPECT_EQ(j["usage"]["prompt_tokens"], kPrompt.size());
  const Json& lp = choice["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), kPrompt.size());
  ASSERT_EQ(lp["token_logprobs"].size(), kPrompt.size());
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  double sum = 0.0, ref_sum = 0.0;
  for (size_t i = 1; i < kPrompt.size(); ++i) {
    const double got = lp["token_logprobs"][i].get<double>();
    EXPECT_NEAR(got, ref[i - 1], 2e-4) << "token " << i;
    sum += got;
    ref_sum += ref[i - 1];
    // The top 3 alternatives plus the prompt token itself when it is not among them.
    const Json& top = lp["top_logprobs"][i];
    EXPECT_GE(top.size(), 3u);
    EXPECT_LE(top.size(), 4u);
    for (const auto& [text, value] : top.items()) EXPECT_GE(value.get<double>(), -1e9) << text;
  }
  EXPECT_NEAR(sum, ref_sum, 1e-3);
  // The echoed text is the prompt's, and the tokens spell it.
  const std::string text = choice["text"];
  EXPECT_EQ(text, "Once upon a time, there was a little girl named Lily.");
  std::string spelled;
  for (const auto& t : lp["tokens"]) spelled += t.get<std::string>();
  EXPECT_EQ(spelled, text);
}

TEST_F(PromptLogprobs, EchoWithGenerationReturnsPromptThenContinuation) {
  const Json plain = Post({{"prompt", "Once upon a time"}, {"max_tokens", 6}, {"temperature", 0}, {"logprobs", 1}});
  const Json echoed =
      Post({{"prompt", "Once upon a time"}, {"max_tokens", 6}, {"temperature", 0}, {"logprobs", 1}, {"echo", true}});
  const std::string generated = plain["choices"][0]["text"];
  EXPECT_EQ(echoed["choices"][0]["text"], "Once upon a time" + generated);
  // BOS + 4 prompt tokens, then the same 6 generated tokens with the same logprobs.
  const Json& a = plain["choices"][0]["logprobs"];
  const Json& b = echoed["choices"][0]["logprobs"];
  ASSERT_EQ(a["tokens"].size(), 6u);
  ASSERT_EQ(b["tokens"].size(), 11u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(b["tokens"][5 + i], a["tokens"][i]);
    EXPECT_DOUBLE_EQ(b["token_logprobs"][5 + i].get<double>(), a["token_logprobs"][i].get<double>());
  }
  // text_offset follows the echoed text.
  EXPECT_EQ(b["text_offset"][5], 16);
  // Streamed: the first chunk carries the prompt.
  httplib::Client c("127.0.0.1", server_->port());
  auto r = c.Post("/v1/completions",
                  Json({{"prompt", "Once upon a time"}, {"max_tokens", 2}, {"echo", true}, {"stream", true}}).dump(),
                  "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  const std::string first = r->body.substr(0, r->body.find("\n\n"));
  const Json chunk = Json::parse(first.substr(6), nullptr, false);
  EXPECT_THAT(chunk["choices"][0]["text"].get<std::string>(), ::testing::StartsWith("Once upon a time"));
}

TEST_F(PromptLogprobs, MaxTokensZeroWithoutLogprobsEchoesOnlyAndChatRefusesIt) {
  const Json j = Post({{"prompt", "Once upon"}, {"max_tokens", 0}, {"echo", true}});
  EXPECT_EQ(j["choices"][0]["text"], "Once upon");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  httplib::Client c("127.0.0.1", server_->port());
  auto r = c.Post("/v1/chat/completions",
                  R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_THAT(r->body, ::testing::HasSubstr("max_tokens"));
}

}  // namespace
}  // namespace tailor
