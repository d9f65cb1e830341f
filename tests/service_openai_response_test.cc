// OpenAI response builders: exact JSON of completion and chat.completion objects, streamed chunks
// (SSE framing, role/content deltas, usage: null, the final usage chunk, [DONE]), both logprobs
// shapes, ids and the model list.
#include "service/openai_response.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tailor::service {
namespace {

ResponseMeta Meta(const std::string& id) { return ResponseMeta{id, 1700000000, "stories15M"}; }

std::vector<TokenLogprob> TwoTokens() {
  return {
      TokenLogprob{" Hi", -0.5, {{" Hi", -0.5}, {" Hello", -1.25}}},
      TokenLogprob{"\xC3\xA9", -2.0, {{"!", -1.0}}},
  };
}

TEST(OpenAiResponse, MakeResponseId) {
  EXPECT_EQ(MakeResponseId("cmpl", 0x1234, 0xabcdef), "cmpl-00000000000012340000000000abcdef");
  EXPECT_EQ(MakeResponseId("chatcmpl", ~0ull, 0).size(), std::string("chatcmpl-").size() + 32);
}

TEST(OpenAiResponse, CompletionObject) {
  std::vector<CompletionChoice> choices = {
      {0, "Once upon a time", FinishReason::kLength, std::nullopt},
      {1, "The end.", FinishReason::kStop, std::nullopt},
  };
  EXPECT_EQ(DumpJson(CompletionResponse(Meta("cmpl-1"), choices, Usage{5, 7})),
            R"({"id":"cmpl-1","object":"text_completion","created":1700000000,"model":"stories15M",)"
            R"("choices":[{"text":"Once upon a time","index":0,"logprobs":null,"finish_reason":"length"},)"
            R"({"text":"The end.","index":1,"logprobs":null,"finish_reason":"stop"}],)"
            R"("usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}})");
}

TEST(OpenAiResponse, CompletionLogprobs) {
  // The sampled token joins the alternatives when missing; text_offset counts characters.
  EXPECT_EQ(DumpJson(CompletionLogprobsJson(TwoTokens(), 0)),
            "{\"tokens\":[\" Hi\",\"\xC3\xA9\"],\"token_logprobs\":[-0.5,-2.0],"
            "\"top_logprobs\":[{\" Hi\":-0.5,\" Hello\":-1.25},{\"!\":-1.0,\"\xC3\xA9\":-2.0}],"
            "\"text_offset\":[0,3]}");
  EXPECT_EQ(DumpJson(CompletionLogprobsJson(TwoTokens(), 10)["text_offset"]), "[10,13]");
  std::vector<CompletionChoice> choices = {{0, " Hi\xC3\xA9", FinishReason::kLength, TwoTokens()}};
  ResponseJson j = CompletionResponse(Meta("cmpl-2"), choices, Usage{1, 2});
  EXPECT_EQ(j["choices"][0]["logprobs"], CompletionLogprobsJson(TwoTokens(), 0));
  // Duplicate alternative text: the first (most likely) is kept.
  std::vector<TokenLogprob> dup = {TokenLogprob{"a", -0.1, {{"a", -0.1}, {"b", -1}, {"b", -2}}}};
  EXPECT_EQ(DumpJson(CompletionLogprobsJson(dup, 0)["top_logprobs"]), R"([{"a":-0.1,"b":-1.0}])");
}

TEST(OpenAiResponse, ChatObject) {
  std::vector<ChatChoice> choices = {{0, "Hello there!", FinishReason::kStop, std::nullopt, {}}};
  EXPECT_EQ(DumpJson(ChatCompletionResponse(Meta("chatcmpl-1"), choices, Usage{20, 3})),
            R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"stories15M",)"
            R"("choices":[{"index":0,"message":{"role":"assistant","content":"Hello there!"},)"
            R"("logprobs":null,"finish_reason":"stop"}],)"
            R"("usage":{"prompt_tokens":20,"completion_tokens":3,"total_tokens":23}})");
}

TEST(OpenAiResponse, ChatLogprobs) {
  EXPECT_EQ(DumpJson(ChatLogprobsJson(TwoTokens())),
            "{\"content\":[{\"token\":\" Hi\",\"logprob\":-0.5,\"bytes\":[32,72,105],"
            "\"top_logprobs\":[{\"token\":\" Hi\",\"logprob\":-0.5,\"bytes\":[32,72,105]},"
            "{\"token\":\" Hello\",\"logprob\":-1.25,\"bytes\":[32,72,101,108,108,111]}]},"
            "{\"token\":\"\xC3\xA9\",\"logprob\":-2.0,\"bytes\":[195,169],"
            "\"top_logprobs\":[{\"token\":\"!\",\"logprob\":-1.0,\"bytes\":[33]}]}],"
            "\"refusal\":null}");
  std::vector<ChatChoice> choices = {{0, " Hi\xC3\xA9", FinishReason::kLength, TwoTokens(), {}}};
  ResponseJson j = ChatCompletionResponse(Meta("c"), choices, Usage{});
  EXPECT_EQ(j["choices"][0]["logprobs"], ChatLogprobsJson(TwoTokens()));
}

TEST(OpenAiResponse, PartialUtf8TokensNeverThrow) {
  // A byte-fallback token that is half of "é": the text is replaced, the bytes are exact.
  std::vector<TokenLogprob> partial = {TokenLogprob{"\xC3", -1, {{"\xA9", -2}}}};
  EXPECT_EQ(DumpJson(ChatLogprobsJson(partial)),
            "{\"content\":[{\"token\":\"\xEF\xBF\xBD\",\"logprob\":-1.0,\"bytes\":[195],"
            "\"top_logprobs\":[{\"token\":\"\xEF\xBF\xBD\",\"logprob\":-2.0,\"bytes\":[169]}]}],"
            "\"refusal\":null}");
  std::string out = DumpJson(CompletionLogprobsJson(partial, 0));
  EXPECT_THAT(out, ::testing::HasSubstr("\"text_offset\":[0]"));
  std::vector<ChatChoice> choices = {{0, "bad \xC3", FinishReason::kStop, std::nullopt, {}}};
  EXPECT_THAT(SseData(ChatCompletionResponse(Meta("c"), choices, Usage{})),
              ::testing::HasSubstr("\"content\":\"bad \xEF\xBF\xBD\""));
}

TEST(OpenAiResponse, ChatToolCalls) {
  const ResponseMeta m = Meta("chatcmpl-7");
  ChatChoice c;
  c.finish_reason = FinishReason::kToolCalls;
  c.tool_calls.push_back(ToolCall{"call_abc", "get_weather", "{\"city\":\"Paris\"}"});
  ResponseJson j = ChatCompletionResponse(m, std::vector<ChatChoice>{c}, Usage{3, 9});
  EXPECT_EQ(DumpJson(j["choices"][0]),
            "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":"
            "\"call_abc\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":"
            "\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}");
  c.content = "Checking.";  // text besides the calls stays
  j = ChatCompletionResponse(m, std::vector<ChatChoice>{c}, Usage{3, 9});
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Checking.");
  c.tool_calls.clear();  // no calls: no tool_calls field, content a string even when empty
  c.content = "";
  j = ChatCompletionResponse(m, std::vector<ChatChoice>{c}, Usage{3, 9});
  EXPECT_FALSE(j["choices"][0]["message"].contains("tool_calls"));
  EXPECT_EQ(j["choices"][0]["message"]["content"], "");

  ChatDelta head;
  head.tool_calls.push_back({1, "call_x", "add", ""});
  EXPECT_EQ(DumpJson(ChatChunk(m, 0, head, std::nullopt, nullptr, false)["choices"][0]["delta"]),
            "{\"tool_calls\":[{\"index\":1,\"id\":\"call_x\",\"type\":\"function\",\"function\":{\"name\":"
            "\"add\",\"arguments\":\"\"}}]}");
  ChatDelta args;
  args.tool_calls.push_back({1, std::nullopt, std::nullopt, "{\"a\":1}"});
  EXPECT_EQ(DumpJson(ChatChunk(m, 0, args, std::nullopt, nullptr, false)["choices"][0]["delta"]),
            "{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}]}");
  EXPECT_STREQ(FinishReasonName(FinishReason::kToolCalls), "tool_calls");
}

TEST(OpenAiResponse, ChatStream) {
  const ResponseMeta m = Meta("chatcmpl-9");
  EXPECT_EQ(SseData(ChatChunk(m, 0, ChatDelta{true, "", {}}, std::nullopt, nullptr, false)),
            "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
            "\"model\":\"stories15M\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
            "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
  EXPECT_EQ(SseData(ChatChunk(m, 1, ChatDelta{false, "Hel", {}}, std::nullopt, nullptr, true)),
            "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
            "\"model\":\"stories15M\",\"choices\":[{\"index\":1,\"delta\":{\"content\":\"Hel\"},"
            "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n");
  EXPECT_EQ(SseData(ChatChunk(m, 0, ChatDelta{}, FinishReason::kLength, nullptr, false)),
            "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
            "\"model\":\"stories15M\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
            "\"finish_reason\":\"length\"}]}\n\n");
  const auto lps = TwoTokens();
  ResponseJson with_lp = ChatChunk(m, 0, ChatDelta{false, " Hi\xC3\xA9", {}}, std::nullopt, &lps, false);
  EXPECT_EQ(with_lp["choices"][0]["logprobs"], ChatLogprobsJson(lps));
  EXPECT_EQ(SseData(UsageChunk(m, Endpoint::kChatCompletions, Usage{4, 6})),
            "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
            "\"model\":\"stories15M\",\"choices\":[],\"usage\":{\"prompt_tokens\":4,"
            "\"completion_tokens\":6,\"total_tokens\":10}}\n\n");
  EXPECT_EQ(SseDone(), "data: [DONE]\n\n");
}

TEST(OpenAiResponse, CompletionStream) {
  const ResponseMeta m = Meta("cmpl-9");
  EXPECT_EQ(SseData(CompletionChunk(m, 2, "Once", std::nullopt, nullptr, 0, false)),
            "data: {\"id\":\"cmpl-9\",\"object\":\"text_completion\",\"created\":1700000000,"
            "\"model\":\"stories15M\",\"choices\":[{\"text\":\"Once\",\"index\":2,\"logprobs\":null,"
            "\"finish_reason\":null}]}\n\n");
  EXPECT_EQ(SseData(CompletionChunk(m, 0, "", FinishReason::kStop, nullptr, 0, true)),
            "data: {\"id\":\"cmpl-9\",\"object\":\"text_completion\",\"created\":1700000000,"
            "\"model\":\"stories15M\",\"choices\":[{\"text\":\"\",\"index\":0,\"logprobs\":null,"
            "\"finish_reason\":\"stop\"}],\"usage\":null}\n\n");
  const auto lps = TwoTokens();
  ResponseJson with_lp = CompletionChunk(m, 0, " Hi\xC3\xA9", std::nullopt, &lps, 7, false);
  EXPECT_EQ(with_lp["choices"][0]["logprobs"], CompletionLogprobsJson(lps, 7));
  EXPECT_EQ(SseData(UsageChunk(m, Endpoint::kCompletions, Usage{1, 2})),
            "data: {\"id\":\"cmpl-9\",\"object\":\"text_completion\",\"created\":1700000000,"
            "\"model\":\"stories15M\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,"
            "\"completion_tokens\":2,\"total_tokens\":3}}\n\n");
}

TEST(OpenAiResponse, ModelList) {
  EXPECT_EQ(DumpJson(ModelList("stories15M", 1700000000)),
            R"({"object":"list","data":[{"id":"stories15M","object":"model","created":1700000000,"owned_by":"tailor"}]})");
}

TEST(OpenAiResponse, FinishReasonNames) {
  EXPECT_STREQ(FinishReasonName(FinishReason::kStop), "stop");
  EXPECT_STREQ(FinishReasonName(FinishReason::kLength), "length");
}

}  // namespace
}  // namespace tailor::service
