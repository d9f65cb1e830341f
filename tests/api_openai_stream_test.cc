// SseStreamFormatter: session events -> OpenAI server-sent events, in the documented order.
#include "api/openai_stream.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace tailor {
namespace {

using Json = nlohmann::json;

std::vector<std::string> Events(const std::string& sse) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < sse.size()) {
    const size_t end = sse.find("\n\n", pos);
    if (end == std::string::npos) break;
    EXPECT_EQ(sse.substr(pos, 6), "data: ");
    out.push_back(sse.substr(pos + 6, end - pos - 6));
    pos = end + 2;
  }
  EXPECT_EQ(pos, sse.size());
  return out;
}

SessionEvent Delta(int index, std::string text, std::optional<service::FinishReason> finish = std::nullopt) {
  SessionEvent e;
  e.delta.index = index;
  e.delta.text = std::move(text);
  e.delta.finish = finish;
  return e;
}

SessionEvent Done(int64_t prompt, int64_t completion) {
  SessionEvent e;
  e.kind = SessionEvent::Kind::kDone;
  e.usage = {prompt, completion};
  return e;
}

service::ResponseMeta Meta() { return {"chatcmpl-1", 1700000000, "m"}; }

// Each piece of a tool call is one delta: the first with the call's index, id, type and name
// (and its first arguments, maybe ""), the next ones with the index and more arguments.
TEST(SseStreamFormatterTest, ToolCallsAsIndexedDeltas) {
  SseStreamFormatter f(Meta(), service::Endpoint::kChatCompletions, /*include_usage=*/false, 2);
  SessionEvent a = Delta(1, "");
  a.delta.tool_calls.push_back({0, "call_A", "add", ""});
  a.delta.tool_calls.push_back({0, std::nullopt, std::nullopt, "{\"a\":"});
  SessionEvent b = Delta(1, "", service::FinishReason::kToolCalls);
  b.delta.tool_calls.push_back({0, std::nullopt, std::nullopt, "1}"});
  b.delta.tool_calls.push_back({1, "call_B", "get_weather", "{}"});
  std::string sse = f.Format(a);  // one statement each: the order of + operands is unspecified
  sse += f.Format(b);
  sse += f.Format(Done(1, 2));
  const std::vector<std::string> events = Events(sse);
  ASSERT_EQ(events.size(), 7u);  // role, A head, A args, A args, B head, finish, [DONE]
  EXPECT_EQ(Json::parse(events[0])["choices"][0]["delta"]["role"], "assistant");
  const Json head = Json::parse(events[1])["choices"][0];
  EXPECT_EQ(head["index"], 1);
  EXPECT_EQ(head["delta"]["tool_calls"][0],
            Json::parse(R"({"index":0,"id":"call_A","type":"function","function":{"name":"add","arguments":""}})"));
  EXPECT_EQ(Json::parse(events[2])["choices"][0]["delta"]["tool_calls"][0],
            Json::parse(R"({"index":0,"function":{"arguments":"{\"a\":"}})"));
  EXPECT_EQ(Json::parse(events[3])["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"], "1}");
  EXPECT_EQ(Json::parse(events[4])["choices"][0]["delta"]["tool_calls"][0],
            Json::parse(R"({"index":1,"id":"call_B","type":"function","function":{"name":"get_weather","arguments":"{}"}})"));
  EXPECT_EQ(Json::parse(events[5])["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(events[6], "[DONE]");
}

TEST(SseStreamFormatterTest, ChatSendsRoleThenContentThenFinishThenUsage) {
  SseStreamFormatter f(Meta(), service::Endpoint::kChatCompletions, /*include_usage=*/true, 1);
  std::string sse = f.Format(Delta(0, "Hel"));
  sse += f.Format(Delta(0, "lo", service::FinishReason::kLength));
  sse += f.Format(Done(3, 2));
  const std::vector<std::string> events = Events(sse);
  ASSERT_EQ(events.size(), 6u);
  const Json role = Json::parse(events[0]);
  EXPECT_EQ(role["object"], "chat.completion.chunk");
  EXPECT_EQ(role["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(role.contains("usage") && role["usage"].is_null());
  EXPECT_EQ(Json::parse(events[1])["choices"][0]["delta"]["content"], "Hel");
  EXPECT_EQ(Json::parse(events[2])["choices"][0]["delta"]["content"], "lo");
  const Json finish = Json::parse(events[3]);
  EXPECT_TRUE(finish["choices"][0]["delta"].empty());
  EXPECT_EQ(finish["choices"][0]["finish_reason"], "length");
  const Json usage = Json::parse(events[4]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 5);
  EXPECT_EQ(events[5], "[DONE]");
}

TEST(SseStreamFormatterTest, CompletionsTrackTextOffsetsPerChoice) {
  SseStreamFormatter f({"cmpl-1", 1, "m"}, service::Endpoint::kCompletions, /*include_usage=*/false, 2);
  SessionEvent a = Delta(1, "h\xC3\xA9");  // 2 characters, 3 bytes
  service::TokenLogprob lp;
  lp.token = "h\xC3\xA9";
  lp.logprob = -0.5;
  a.delta.logprobs.push_back(lp);
  std::string sse = f.Format(a);
  SessionEvent b = Delta(1, "x", service::FinishReason::kStop);
  b.delta.logprobs.push_back(lp);
  sse += f.Format(b);
  sse += f.Format(Delta(0, "", service::FinishReason::kStop));
  sse += f.Format(Done(1, 2));
  const std::vector<std::string> events = Events(sse);
  ASSERT_EQ(events.size(), 5u);
  const Json first = Json::parse(events[0]);
  EXPECT_EQ(first["choices"][0]["index"], 1);
  EXPECT_FALSE(first.contains("usage"));
  EXPECT_EQ(first["choices"][0]["logprobs"]["text_offset"][0], 0);
  const Json second = Json::parse(events[1]);
  EXPECT_EQ(second["choices"][0]["text"], "x");
  EXPECT_EQ(second["choices"][0]["logprobs"]["text_offset"][0], 2);
  EXPECT_TRUE(second["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(Json::parse(events[2])["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(Json::parse(events[3])["choices"][0]["index"], 0);
  EXPECT_EQ(events[4], "[DONE]");
}

TEST(SseStreamFormatterTest, ErrorEndsTheStreamWithoutUsage) {
  SseStreamFormatter f(Meta(), service::Endpoint::kChatCompletions, /*include_usage=*/true, 1);
  SessionEvent done = Done(3, 0);
  done.error = service::ApiError::Unavailable("shutting down");
  const std::vector<std::string> events = Events(f.Format(done));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(Json::parse(events[0])["error"]["code"], "unavailable");
  EXPECT_EQ(events[1], "[DONE]");
}

}  // namespace
}  // namespace tailor
