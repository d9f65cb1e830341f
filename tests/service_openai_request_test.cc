// OpenAI request parsing: every parameter's happy path, defaults, and an error naming the
// parameter for each kind of mistake; malformed JSON with line/column; the error body.
#include "service/openai_request.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/api_error.h"

namespace tailor::service {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

OpenAiRequest ParseOk(Endpoint ep, const std::string& body, const ParseLimits& limits = {}) {
  auto r = ParseOpenAiRequest(ep, body, limits);
  EXPECT_TRUE(r.ok()) << body << "\n" << (r.ok() ? "" : r.error().ToJson());
  return r.ok() ? std::move(r).value() : OpenAiRequest{};
}

OpenAiRequest Completion(const std::string& fields) {
  return ParseOk(Endpoint::kCompletions, R"({"prompt": "hi")" + (fields.empty() ? "" : ", " + fields) + "}");
}

OpenAiRequest Chat(const std::string& fields) {
  return ParseOk(Endpoint::kChatCompletions,
                 R"({"messages": [{"role": "user", "content": "hi"}])" +
                     (fields.empty() ? "" : ", " + fields) + "}");
}

// Expects a 400 naming `param` whose message contains `fragment`.
void ExpectError(Endpoint ep, const std::string& body, const std::string& param,
                 const std::string& fragment = "") {
  auto r = ParseOpenAiRequest(ep, body);
  ASSERT_FALSE(r.ok()) << body;
  EXPECT_EQ(r.error().http_status, 400) << body;
  EXPECT_EQ(r.error().type, "invalid_request_error");
  EXPECT_EQ(r.error().param, param) << body << " -> " << r.error().message;
  EXPECT_THAT(r.error().message, HasSubstr(fragment)) << body;
}

void ExpectCompletionError(const std::string& fields, const std::string& param,
                           const std::string& fragment = "") {
  ExpectError(Endpoint::kCompletions, R"({"prompt": "hi", )" + fields + "}", param, fragment);
}

void ExpectChatError(const std::string& fields, const std::string& param,
                     const std::string& fragment = "") {
  ExpectError(Endpoint::kChatCompletions,
              R"({"messages": [{"role": "user", "content": "hi"}], )" + fields + "}", param,
              fragment);
}

TEST(OpenAiRequest, CompletionDefaults) {
  OpenAiRequest r = ParseOk(Endpoint::kCompletions, R"({"prompt": "Once upon"})");
  EXPECT_EQ(r.endpoint, Endpoint::kCompletions);
  EXPECT_FALSE(r.model.has_value());
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(std::get<std::string>(r.prompts[0]), "Once upon");
  EXPECT_EQ(r.sampling.max_tokens, 16);
  EXPECT_EQ(r.sampling.temperature, 1.0);
  EXPECT_EQ(r.sampling.top_p, 1.0);
  EXPECT_EQ(r.sampling.top_k, 0);
  EXPECT_EQ(r.sampling.min_p, 0.0);
  EXPECT_EQ(r.sampling.presence_penalty, 0.0);
  EXPECT_EQ(r.sampling.frequency_penalty, 0.0);
  EXPECT_EQ(r.sampling.repetition_penalty, 1.0);
  EXPECT_FALSE(r.sampling.seed.has_value());
  EXPECT_TRUE(r.sampling.stop.empty());
  EXPECT_TRUE(r.sampling.logit_bias.empty());
  EXPECT_FALSE(r.sampling.ignore_eos);
  EXPECT_FALSE(r.sampling.logprobs.has_value());
  EXPECT_EQ(r.n, 1);
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.include_usage);
  EXPECT_EQ(r.user, "");
}

TEST(OpenAiRequest, ChatDefaultsHaveNoTokenLimit) {
  OpenAiRequest r = Chat("");
  EXPECT_EQ(r.endpoint, Endpoint::kChatCompletions);
  EXPECT_FALSE(r.sampling.max_tokens.has_value());
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0], (ChatMessage{ChatRole::kUser, "hi"}));
  EXPECT_TRUE(r.prompts.empty());
}

TEST(OpenAiRequest, CompletionDefaultMaxTokensIsConfigurable) {
  ParseLimits limits;
  limits.default_completion_max_tokens = 256;
  EXPECT_EQ(ParseOk(Endpoint::kCompletions, R"({"prompt": ""})", limits).sampling.max_tokens, 256);
}

// tailor serve --max-tokens-limit: an explicit value above it is a 400 naming the field and the
// limit; defaults (completions' 16, chat's "the rest of the context") are clamped to it.
TEST(OpenAiRequest, MaxTokensLimit) {
  ParseLimits limits;
  limits.max_tokens_limit = 8;
  auto r = ParseOpenAiRequest(Endpoint::kCompletions, R"({"prompt": "x", "max_tokens": 9})", limits);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().http_status, 400);
  EXPECT_EQ(r.error().param, "max_tokens");
  EXPECT_THAT(r.error().message, AllOf(HasSubstr("is 9"), HasSubstr("at most 8"), HasSubstr("--max-tokens-limit")));
  r = ParseOpenAiRequest(Endpoint::kChatCompletions,
                         R"({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 100})", limits);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().param, "max_completion_tokens");
  EXPECT_EQ(ParseOk(Endpoint::kCompletions, R"({"prompt": "x", "max_tokens": 8})", limits).sampling.max_tokens, 8);
  OpenAiRequest d = ParseOk(Endpoint::kCompletions, R"({"prompt": "x"})", limits);
  EXPECT_EQ(d.sampling.max_tokens, 8);
  EXPECT_TRUE(d.sampling.max_tokens_is_default);
  OpenAiRequest chat = ParseOk(Endpoint::kChatCompletions, R"({"messages": [{"role": "user", "content": "x"}]})", limits);
  EXPECT_EQ(chat.sampling.max_tokens, 8);
  EXPECT_TRUE(chat.sampling.max_tokens_is_default);
  limits.max_n = 3;
  r = ParseOpenAiRequest(Endpoint::kCompletions, R"({"prompt": "x", "n": 4})", limits);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().param, "n");
  EXPECT_THAT(r.error().message, AllOf(HasSubstr("is 4"), HasSubstr("at most 3"), HasSubstr("--max-n")));
}

// The model's generation_config.json fills the sampling fields a request omits; given ones win.
TEST(OpenAiRequest, ModelDefaultsFillOmittedSamplingFields) {
  ParseLimits limits;
  limits.default_temperature = 0.6;
  limits.default_top_p = 0.95;
  limits.default_top_k = 20;
  limits.default_min_p = 0.05;
  limits.default_repetition_penalty = 1.1;
  for (Endpoint ep : {Endpoint::kCompletions, Endpoint::kChatCompletions}) {
    const std::string base = ep == Endpoint::kCompletions ? R"("prompt": "hi")" : R"("messages": [{"role": "user", "content": "hi"}])";
    const SamplingParams omitted = ParseOk(ep, "{" + base + "}", limits).sampling;
    EXPECT_EQ(omitted.temperature, 0.6);
    EXPECT_EQ(omitted.top_p, 0.95);
    EXPECT_EQ(omitted.top_k, 20);
    EXPECT_EQ(omitted.min_p, 0.05);
    EXPECT_EQ(omitted.repetition_penalty, 1.1);
    const SamplingParams given =
        ParseOk(ep, "{" + base + R"(, "temperature": 0, "top_p": 1, "top_k": -1, "min_p": null, "repetition_penalty": 1})",
                limits).sampling;
    EXPECT_EQ(given.temperature, 0.0);
    EXPECT_EQ(given.top_p, 1.0);
    EXPECT_EQ(given.top_k, 0);
    EXPECT_EQ(given.min_p, 0.05) << "null means not given";
    EXPECT_EQ(given.repetition_penalty, 1.0);
  }
}

TEST(OpenAiRequest, AllParameters) {
  OpenAiRequest r = ParseOk(Endpoint::kCompletions, R"({
    "model": "stories", "prompt": "x", "max_tokens": 5, "temperature": 0.5, "top_p": 0.9,
    "top_k": 40, "min_p": 0.05, "n": 3, "best_of": 3, "stop": ["\n", "END"], "seed": -7,
    "logprobs": 2, "presence_penalty": -1.5, "frequency_penalty": 2, "repetition_penalty": 1.1,
    "logit_bias": {"50256": -100, "7": 2.5}, "user": "u1", "stream": true,
    "stream_options": {"include_usage": true}, "ignore_eos": true, "echo": false, "suffix": null,
    "some_future_field": {"x": [1, 2]}})");
  EXPECT_EQ(r.model, "stories");
  EXPECT_EQ(r.sampling.max_tokens, 5);
  EXPECT_EQ(r.sampling.temperature, 0.5);
  EXPECT_EQ(r.sampling.top_p, 0.9);
  EXPECT_EQ(r.sampling.top_k, 40);
  EXPECT_EQ(r.sampling.min_p, 0.05);
  EXPECT_EQ(r.n, 3);
  EXPECT_THAT(r.sampling.stop, ElementsAre("\n", "END"));
  EXPECT_EQ(r.sampling.seed, -7);
  EXPECT_EQ(r.sampling.logprobs, 2);
  EXPECT_EQ(r.sampling.presence_penalty, -1.5);
  EXPECT_EQ(r.sampling.frequency_penalty, 2.0);
  EXPECT_EQ(r.sampling.repetition_penalty, 1.1);
  EXPECT_THAT(r.sampling.logit_bias, ElementsAre(Pair(7, 2.5), Pair(50256, -100.0)));
  EXPECT_EQ(r.user, "u1");
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_TRUE(r.sampling.ignore_eos);
}

TEST(OpenAiRequest, NullMeansAbsent) {
  OpenAiRequest r = ParseOk(Endpoint::kChatCompletions, R"({
    "messages": [{"role": "user", "content": "hi"}], "model": null, "max_tokens": null,
    "temperature": null, "top_p": null, "n": null, "stop": null, "seed": null, "logprobs": null,
    "top_logprobs": null, "logit_bias": null, "user": null, "stream": null,
    "stream_options": null, "best_of": null})");
  EXPECT_FALSE(r.model.has_value());
  EXPECT_FALSE(r.sampling.max_tokens.has_value());
  EXPECT_EQ(r.sampling, SamplingParams{});
}

TEST(OpenAiRequest, EmptyModelMeansServedModel) {
  EXPECT_FALSE(Completion(R"("model": "")").model.has_value());
}

TEST(OpenAiRequest, PromptForms) {
  OpenAiRequest strings = Completion("");
  strings = ParseOk(Endpoint::kCompletions, R"({"prompt": ["a", "b", ""]})");
  ASSERT_EQ(strings.prompts.size(), 3u);
  EXPECT_EQ(std::get<std::string>(strings.prompts[1]), "b");
  EXPECT_EQ(std::get<std::string>(strings.prompts[2]), "");

  OpenAiRequest ids = ParseOk(Endpoint::kCompletions, R"({"prompt": [1, 15043, 3.0]})");
  ASSERT_EQ(ids.prompts.size(), 1u);
  EXPECT_THAT(std::get<std::vector<int32_t>>(ids.prompts[0]), ElementsAre(1, 15043, 3));

  OpenAiRequest nested = ParseOk(Endpoint::kCompletions, R"({"prompt": [[1, 2], [3]]})");
  ASSERT_EQ(nested.prompts.size(), 2u);
  EXPECT_THAT(std::get<std::vector<int32_t>>(nested.prompts[0]), ElementsAre(1, 2));
  EXPECT_THAT(std::get<std::vector<int32_t>>(nested.prompts[1]), ElementsAre(3));

  EXPECT_EQ(std::get<std::string>(ParseOk(Endpoint::kCompletions, R"({"prompt": ""})").prompts[0]),
            "");
}

TEST(OpenAiRequest, PromptErrors) {
  ExpectError(Endpoint::kCompletions, R"({})", "prompt", "required");
  ExpectError(Endpoint::kCompletions, R"({"prompt": null})", "prompt", "required");
  ExpectError(Endpoint::kCompletions, R"({"prompt": 5})", "prompt", "got number");
  ExpectError(Endpoint::kCompletions, R"({"prompt": {"a": 1}})", "prompt", "got object");
  ExpectError(Endpoint::kCompletions, R"({"prompt": []})", "prompt", "empty");
  ExpectError(Endpoint::kCompletions, R"({"prompt": ["a", 1]})", "prompt", "element 1");
  ExpectError(Endpoint::kCompletions, R"({"prompt": [true]})", "prompt", "element 0 is a boolean");
  ExpectError(Endpoint::kCompletions, R"({"prompt": [1, "a"]})", "prompt", "element 1");
  ExpectError(Endpoint::kCompletions, R"({"prompt": [1, -2]})", "prompt", "invalid token id -2");
  ExpectError(Endpoint::kCompletions, R"({"prompt": [1, 4294967296]})", "prompt", "invalid token id");
  ExpectError(Endpoint::kCompletions, R"({"prompt": [1, 2.5]})", "prompt", "element 1");
  ExpectError(Endpoint::kCompletions, R"({"prompt": [[1], []]})", "prompt", "element 1 is an empty");
  ExpectError(Endpoint::kCompletions, R"({"prompt": [[1], ["a"]]})", "prompt", "integers");
  ParseLimits limits;
  limits.max_prompts = 2;
  auto r = ParseOpenAiRequest(Endpoint::kCompletions, R"({"prompt": ["a", "b", "c"]})", limits);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().param, "prompt");
  EXPECT_THAT(r.error().message, HasSubstr("at most 2"));
}

TEST(OpenAiRequest, Messages) {
  OpenAiRequest r = ParseOk(Endpoint::kChatCompletions, R"({"messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]},
      {"role": "assistant", "content": "Hi!", "name": "bot"},
      {"role": "assistant", "content": null},
      {"role": "developer", "content": "dev"},
      {"role": "user", "content": ""}]})");
  EXPECT_THAT(r.messages, ElementsAre(ChatMessage{ChatRole::kSystem, "Be brief."},
                                      ChatMessage{ChatRole::kUser, "Hello\nthere"},
                                      ChatMessage{ChatRole::kAssistant, "Hi!"},
                                      ChatMessage{ChatRole::kAssistant, ""},
                                      ChatMessage{ChatRole::kSystem, "dev"},
                                      ChatMessage{ChatRole::kUser, ""}));
}

TEST(OpenAiRequest, MessageErrorsNameTheField) {
  const Endpoint c = Endpoint::kChatCompletions;
  ExpectError(c, R"({})", "messages", "required");
  ExpectError(c, R"({"messages": "hi"})", "messages", "must be an array, got string");
  ExpectError(c, R"({"messages": []})", "messages", "at least one");
  ExpectError(c, R"({"messages": ["hi"]})", "messages[0]", "an object");
  ExpectError(c, R"({"messages": [{"content": "x"}]})", "messages[0].role", "required");
  ExpectError(c, R"({"messages": [{"role": 1, "content": "x"}]})", "messages[0].role", "a string");
  ExpectError(c, R"({"messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "x"}]})",
              "messages[1].role", "invalid role 'robot'");
  ExpectError(c, R"({"messages": [{"role": "function", "content": "x"}]})", "messages[0].role",
              "not supported");
  ExpectError(c, R"({"messages": [{"role": "user"}]})", "messages[0].content", "required");
  ExpectError(c, R"({"messages": [{"role": "user", "content": null}]})", "messages[0].content",
              "required");
  ExpectError(c, R"({"messages": [{"role": "user", "content": 3}]})", "messages[0].content",
              "got number");
  ExpectError(c, R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})",
              "messages[0].content[0].type", "'image_url' is not supported");
  ExpectError(c, R"({"messages": [{"role": "user", "content": [{"text": "x"}]}]})",
              "messages[0].content[0].type");
  ExpectError(c, R"({"messages": [{"role": "user", "content": [{"type": "text"}]}]})",
              "messages[0].content[0].text", "required");
  ExpectError(c, R"({"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]})",
              "messages[0].content[0].text", "a string");
  ExpectError(c, R"({"messages": [{"role": "user", "content": ["x"]}]})", "messages[0].content[0]",
              "an object");
}

TEST(OpenAiRequest, MaxTokens) {
  EXPECT_EQ(Completion(R"("max_tokens": 1)").sampling.max_tokens, 1);
  EXPECT_EQ(Completion(R"("max_tokens": 100.0)").sampling.max_tokens, 100);
  EXPECT_EQ(Chat(R"("max_tokens": 7)").sampling.max_tokens, 7);
  EXPECT_EQ(Chat(R"("max_completion_tokens": 9)").sampling.max_tokens, 9);
  EXPECT_EQ(Chat(R"("max_tokens": 7, "max_completion_tokens": 9)").sampling.max_tokens, 9);
  ExpectCompletionError(R"("max_tokens": -1)", "max_tokens", "at least 0, got -1");
  EXPECT_EQ(Completion(R"("max_tokens": 0)").sampling.max_tokens, 0);  // scoring a prompt (echo)
  ExpectChatError(R"("max_tokens": 0)", "max_tokens", "at least 1, got 0");
  ExpectCompletionError(R"("max_tokens": -3)", "max_tokens");
  ExpectCompletionError(R"("max_tokens": "5")", "max_tokens", "an integer, got string");
  ExpectCompletionError(R"("max_tokens": 2.5)", "max_tokens", "an integer");
  ExpectCompletionError(R"("max_tokens": 3000000000)", "max_tokens");
  ExpectCompletionError(R"("max_tokens": true)", "max_tokens", "got boolean");
  ExpectChatError(R"("max_completion_tokens": 0)", "max_completion_tokens");
  // max_completion_tokens is a chat parameter: ignored (unknown) on completions.
  EXPECT_EQ(Completion(R"("max_completion_tokens": 0)").sampling.max_tokens, 16);
}

TEST(OpenAiRequest, SamplingRanges) {
  EXPECT_EQ(Completion(R"("temperature": 0)").sampling.temperature, 0.0);
  EXPECT_EQ(Completion(R"("temperature": 2)").sampling.temperature, 2.0);
  ExpectCompletionError(R"("temperature": 2.01)", "temperature", "between 0 and 2");
  ExpectCompletionError(R"("temperature": -0.1)", "temperature");
  ExpectCompletionError(R"("temperature": "hot")", "temperature", "a number, got string");
  // A number beyond double range is malformed JSON for the parser: still a 400.
  auto huge = ParseOpenAiRequest(Endpoint::kCompletions, R"({"prompt": "a", "temperature": 1e400})");
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().http_status, 400);
  EXPECT_EQ(huge.error().code, "invalid_json");
  EXPECT_EQ(Completion(R"("top_p": 1)").sampling.top_p, 1.0);
  ExpectCompletionError(R"("top_p": 0)", "top_p", "greater than 0");
  ExpectCompletionError(R"("top_p": 1.5)", "top_p");
  EXPECT_EQ(Completion(R"("top_k": -1)").sampling.top_k, 0);
  EXPECT_EQ(Completion(R"("top_k": 0)").sampling.top_k, 0);
  ExpectCompletionError(R"("top_k": -2)", "top_k");
  ExpectCompletionError(R"("top_k": 1.5)", "top_k");
  ExpectCompletionError(R"("min_p": 1.5)", "min_p");
  ExpectCompletionError(R"("min_p": -0.5)", "min_p");
  ExpectCompletionError(R"("presence_penalty": 2.5)", "presence_penalty", "between -2 and 2");
  ExpectCompletionError(R"("presence_penalty": -2.5)", "presence_penalty");
  ExpectCompletionError(R"("frequency_penalty": 3)", "frequency_penalty");
  ExpectCompletionError(R"("frequency_penalty": [1])", "frequency_penalty", "got array");
  ExpectCompletionError(R"("repetition_penalty": 0)", "repetition_penalty");
  ExpectCompletionError(R"("repetition_penalty": 2.5)", "repetition_penalty");
  ExpectCompletionError(R"("ignore_eos": 1)", "ignore_eos", "a boolean");
}

TEST(OpenAiRequest, NAndBestOf) {
  EXPECT_EQ(Completion(R"("n": 16)").n, 16);
  ExpectCompletionError(R"("n": 0)", "n", "between 1 and 16");
  ExpectCompletionError(R"("n": 17)", "n");
  ExpectCompletionError(R"("n": "2")", "n");
  EXPECT_EQ(Completion(R"("n": 2, "best_of": 2)").n, 2);
  ExpectCompletionError(R"("best_of": 2)", "best_of", "not supported");
  ExpectCompletionError(R"("n": 2, "best_of": 3)", "best_of");
  ExpectChatError(R"("n": 40)", "n");
}

TEST(OpenAiRequest, Stop) {
  EXPECT_THAT(Completion(R"("stop": "###")").sampling.stop, ElementsAre("###"));
  EXPECT_THAT(Completion(R"("stop": "")").sampling.stop, ElementsAre());
  EXPECT_THAT(Completion(R"("stop": [])").sampling.stop, ElementsAre());
  EXPECT_THAT(Completion(R"("stop": ["a", "", "b", "c"])").sampling.stop, ElementsAre("a", "b", "c"));
  ExpectCompletionError(R"("stop": ["a", "b", "c", "d", "e"])", "stop", "at most 4");
  ExpectCompletionError(R"("stop": ["a", 1])", "stop", "element 1");
  ExpectCompletionError(R"("stop": 5)", "stop", "a string or an array of strings");
}

TEST(OpenAiRequest, Seed) {
  EXPECT_EQ(Completion(R"("seed": 0)").sampling.seed, 0);
  EXPECT_EQ(Completion(R"("seed": 9223372036854775807)").sampling.seed,
            int64_t{9223372036854775807});
  EXPECT_EQ(Completion(R"("seed": -9223372036854775808)").sampling.seed,
            std::numeric_limits<int64_t>::min());
  ExpectCompletionError(R"("seed": 9223372036854775808)", "seed", "out of range");
  ExpectCompletionError(R"("seed": "42")", "seed");
  ExpectCompletionError(R"("seed": 4.5)", "seed");
}

TEST(OpenAiRequest, CompletionLogprobs) {
  EXPECT_EQ(Completion(R"("logprobs": 0)").sampling.logprobs, 0);
  EXPECT_EQ(Completion(R"("logprobs": 5)").sampling.logprobs, 5);
  ExpectCompletionError(R"("logprobs": 6)", "logprobs", "between 0 and 5");
  ExpectCompletionError(R"("logprobs": true)", "logprobs", "an integer, got boolean");
  // top_logprobs is a chat parameter: ignored on completions.
  EXPECT_FALSE(Completion(R"("top_logprobs": 3)").sampling.logprobs.has_value());
}

TEST(OpenAiRequest, ChatLogprobs) {
  EXPECT_FALSE(Chat(R"("logprobs": false)").sampling.logprobs.has_value());
  EXPECT_EQ(Chat(R"("logprobs": true)").sampling.logprobs, 0);
  EXPECT_EQ(Chat(R"("logprobs": true, "top_logprobs": 20)").sampling.logprobs, 20);
  ExpectChatError(R"("logprobs": true, "top_logprobs": 21)", "top_logprobs", "between 0 and 20");
  ExpectChatError(R"("top_logprobs": 2)", "top_logprobs", "requires 'logprobs'");
  ExpectChatError(R"("logprobs": false, "top_logprobs": 2)", "top_logprobs");
  ExpectChatError(R"("logprobs": 3)", "logprobs", "a boolean");
}

TEST(OpenAiRequest, LogitBias) {
  EXPECT_THAT(Completion(R"("logit_bias": {})").sampling.logit_bias, ElementsAre());
  ExpectCompletionError(R"("logit_bias": {"abc": 1})", "logit_bias", "'abc'");
  ExpectCompletionError(R"("logit_bias": {"-1": 1})", "logit_bias");
  ExpectCompletionError(R"("logit_bias": {"99999999999": 1})", "logit_bias");
  ExpectCompletionError(R"("logit_bias": {"5": 101})", "logit_bias", "between -100 and 100");
  ExpectCompletionError(R"("logit_bias": {"5": "1"})", "logit_bias", "must be a number");
  ExpectCompletionError(R"("logit_bias": [1])", "logit_bias");
}

TEST(OpenAiRequest, StreamAndUser) {
  EXPECT_TRUE(Chat(R"("stream": true)").stream);
  EXPECT_FALSE(Chat(R"("stream": true)").include_usage);
  EXPECT_FALSE(Chat(R"("stream": true, "stream_options": {})").include_usage);
  EXPECT_TRUE(Chat(R"("stream": true, "stream_options": {"include_usage": true})").include_usage);
  ExpectChatError(R"("stream": "yes")", "stream", "a boolean");
  ExpectChatError(R"("stream_options": {"include_usage": true})", "stream_options",
                  "only allowed when 'stream' is true");
  ExpectChatError(R"("stream": true, "stream_options": {"include_usage": 1})",
                  "stream_options.include_usage");
  ExpectChatError(R"("stream": true, "stream_options": 1)", "stream_options");
  ExpectChatError(R"("user": 5)", "user", "a string");
  ExpectChatError(R"("model": 5)", "model", "a string");
}

TEST(OpenAiRequest, UnsupportedCompletionFeatures) {
  EXPECT_TRUE(Completion(R"("echo": true)").echo);
  ExpectCompletionError(R"("echo": "yes")", "echo");
  ExpectCompletionError(R"("suffix": "end")", "suffix", "not supported");
  EXPECT_EQ(Completion(R"("suffix": "")").n, 1);
}

TEST(OpenAiRequest, MalformedJsonHasLineAndColumn) {
  auto r = ParseOpenAiRequest(Endpoint::kCompletions, "{\n  \"prompt\": \"a\",\n  x\n}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().http_status, 400);
  EXPECT_EQ(r.error().code, "invalid_json");
  EXPECT_EQ(r.error().param, "");
  EXPECT_THAT(r.error().message, HasSubstr("line 3, column 3"));
  EXPECT_THAT(r.error().message, HasSubstr("Invalid JSON body"));
  EXPECT_THAT(r.error().message, ::testing::Not(HasSubstr("json.exception")));

  for (const char* bad : {"", "{", "{\"prompt\": \"a\"", "[1,]", "nul", "{\"prompt\": \"\xff\"}",
                          "{\"prompt\": \"a\"} trailing", "\"\\u12\""}) {
    auto e = ParseOpenAiRequest(Endpoint::kCompletions, bad);
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_EQ(e.error().code, "invalid_json") << bad;
    EXPECT_THAT(e.error().message, HasSubstr("line 1, column")) << bad;
  }
}

TEST(OpenAiRequest, BodyMustBeAnObject) {
  for (const char* body : {"[]", "3", "\"x\"", "null"}) {
    auto r = ParseOpenAiRequest(Endpoint::kChatCompletions, body);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.error().http_status, 400);
    EXPECT_THAT(r.error().message, HasSubstr("must be a JSON object"));
  }
}

TEST(OpenAiRequest, DeepNestingIsRejectedBeforeParsing) {
  std::string deep = R"({"prompt": "a", "x": )" + std::string(100000, '[') +
                     std::string(100000, ']') + "}";
  auto r = ParseOpenAiRequest(Endpoint::kCompletions, deep);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "invalid_json");
  EXPECT_THAT(r.error().message, HasSubstr("nesting deeper than 64"));
  // Brackets inside strings do not count.
  std::string in_string = R"({"prompt": ")" + std::string(1000, '[') + R"(\"{"})";
  EXPECT_TRUE(ParseOpenAiRequest(Endpoint::kCompletions, in_string).ok());
}

TEST(OpenAiRequest, FromParsedJson) {
  auto r = ParseOpenAiRequestJson(Endpoint::kChatCompletions,
                                  nlohmann::json::parse(R"({"messages": [{"role": "user", "content": "x"}], "n": 2})"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->n, 2);
  auto bad = ParseOpenAiRequestJson(Endpoint::kChatCompletions, nlohmann::json::array());
  ASSERT_FALSE(bad.ok());
}

TEST(OpenAiRequest, ValidateForVocabulary) {
  OpenAiRequest ok = ParseOk(Endpoint::kCompletions, R"({"prompt": [[1, 31999]], "logit_bias": {"31999": 1}})");
  EXPECT_FALSE(ValidateForVocabulary(ok, 32000).has_value());
  auto e = ValidateForVocabulary(ok, 31999);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->param, "prompt");
  EXPECT_THAT(e->message, HasSubstr("31999"));
  OpenAiRequest bias = ParseOk(Endpoint::kCompletions, R"({"prompt": "a", "logit_bias": {"32000": 1}})");
  e = ValidateForVocabulary(bias, 32000);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->param, "logit_bias");
}

TEST(OpenAiRequest, ResolveMaxTokens) {
  SamplingParams s;
  auto r = ResolveMaxTokens(s, 10, 512, "messages");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 502);
  s.max_tokens = 502;
  EXPECT_EQ(*ResolveMaxTokens(s, 10, 512, "prompt"), 502);
  s.max_tokens = 503;
  auto over = ResolveMaxTokens(s, 10, 512, "prompt");
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().param, "max_tokens");
  EXPECT_THAT(over.error().message, HasSubstr("maximum context length is 512"));
  auto full = ResolveMaxTokens(SamplingParams{}, 512, 512, "messages");
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().param, "messages");
  EXPECT_EQ(full.error().http_status, 400);
}

TEST(OpenAiRequest, LineAndColumn) {
  EXPECT_EQ(LineAndColumn("abc", 0), std::make_pair(int64_t{1}, int64_t{1}));
  EXPECT_EQ(LineAndColumn("ab\ncd", 4), std::make_pair(int64_t{2}, int64_t{2}));
  EXPECT_EQ(LineAndColumn("ab", 99), std::make_pair(int64_t{1}, int64_t{3}));
}

TEST(ApiError, JsonBody) {
  EXPECT_EQ(ApiError::InvalidRequest("temperature", "bad \"t\"").ToJson(),
            R"({"error":{"message":"bad \"t\"","type":"invalid_request_error","param":"temperature","code":null}})");
  EXPECT_EQ(ApiError::ModelNotFound("gpt-9").ToJson(),
            R"({"error":{"message":"The model 'gpt-9' does not exist.","type":"invalid_request_error","param":"model","code":"model_not_found"}})");
  EXPECT_EQ(ApiError::Internal("bad \xff byte").ToJson(),
            "{\"error\":{\"message\":\"bad \xEF\xBF\xBD byte\",\"type\":\"server_error\",\"param\":null,\"code\":null}}");
}

TEST(ApiError, StatusCodes) {
  EXPECT_EQ(ApiError::InvalidJson("x").http_status, 400);
  EXPECT_EQ(ApiError::Unauthorized().http_status, 401);
  EXPECT_EQ(ApiError::Unauthorized().code, "invalid_api_key");
  EXPECT_EQ(ApiError::ModelNotFound("m").http_status, 404);
  EXPECT_EQ(ApiError::NotFound("x").http_status, 404);
  EXPECT_EQ(ApiError::MethodNotAllowed("x").http_status, 405);
  EXPECT_EQ(ApiError::PayloadTooLarge(1024).http_status, 413);
  EXPECT_THAT(ApiError::PayloadTooLarge(1024).message, HasSubstr("1024 bytes"));
  EXPECT_EQ(ApiError::QueueFull().http_status, 429);
  EXPECT_EQ(ApiError::QueueFull().type, "rate_limit_error");
  EXPECT_EQ(ApiError::Internal("x").http_status, 500);
  EXPECT_EQ(ApiError::Unavailable("x").http_status, 503);
}

TEST(ApiError, FromStatus) {
  ApiError e = ApiError::FromStatus(absl::InvalidArgumentError("messages[1]: bad"), "messages");
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.param, "messages");
  EXPECT_EQ(e.message, "messages[1]: bad");
  EXPECT_EQ(ApiError::FromStatus(absl::NotFoundError("x")).http_status, 404);
  EXPECT_EQ(ApiError::FromStatus(absl::ResourceExhaustedError("x")).http_status, 429);
  EXPECT_EQ(ApiError::FromStatus(absl::UnauthenticatedError("x")).http_status, 401);
  EXPECT_EQ(ApiError::FromStatus(absl::PermissionDeniedError("x")).http_status, 403);
  EXPECT_EQ(ApiError::FromStatus(absl::UnavailableError("x")).http_status, 503);
  EXPECT_EQ(ApiError::FromStatus(absl::DeadlineExceededError("x")).http_status, 504);
  EXPECT_EQ(ApiError::FromStatus(absl::InternalError("x")).http_status, 500);
  EXPECT_EQ(ApiError::FromStatus(absl::DataLossError("x")).type, "server_error");
}

}  // namespace
}  // namespace tailor::service
