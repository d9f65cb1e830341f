// Tool calling in the service layer: the tool-call parser (whole text and any chunking of a
// stream), tools and tool turns rendered by the presets and by Qwen3's own template (the
// shared tokenizer_config.json), and the request fields (tools, tool_choice, tool messages,
// response_format, guided_*) with their 400s.
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "service/chat_template.h"
#include "service/chat_tools.h"
#include "service/openai_request.h"
#include "service/tool_call_parser.h"

namespace tailor::service {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using OJson = nlohmann::ordered_json;

ToolCall Call(std::string name, std::string args) { return ToolCall{"", std::move(name), std::move(args)}; }

TEST(ToolCallParser, HermesCallsAndContent) {
  ParsedToolOutput p = ParseToolCalls(
      "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
      "<tool_call>{\"name\": \"get_time\", \"arguments\": \"{\\\"tz\\\": \\\"CET\\\"}\"}</tool_call>",
      ToolCallFormat::kHermes);
  EXPECT_EQ(p.content, "Let me check.");
  // Arguments as written when the block starts {"name", "arguments": {...; re-serialized otherwise.
  EXPECT_THAT(p.calls, ElementsAre(Call("get_weather", R"({"city": "Paris"})"), Call("get_time", R"({"tz":"CET"})")));
}

TEST(ToolCallParser, HermesOnlyWhitespaceAroundCallsIsNoContent) {
  ParsedToolOutput p = ParseToolCalls("\n <tool_call>{\"name\": \"f\"}</tool_call>\n", ToolCallFormat::kHermes);
  EXPECT_EQ(p.content, "");
  EXPECT_THAT(p.calls, ElementsAre(Call("f", "{}")));
}

TEST(ToolCallParser, HermesBadBlocksStayContent) {
  ParsedToolOutput p = ParseToolCalls("a <tool_call>{not json}</tool_call> b", ToolCallFormat::kHermes);
  EXPECT_EQ(p.content, "a <tool_call>{not json}</tool_call> b");
  EXPECT_TRUE(p.calls.empty());
  p = ParseToolCalls("<tool_call>{\"arguments\": {}}</tool_call>", ToolCallFormat::kHermes);  // no name
  EXPECT_TRUE(p.calls.empty());
  p = ParseToolCalls("plain text, no calls  ", ToolCallFormat::kHermes);
  EXPECT_EQ(p.content, "plain text, no calls  ");
}

TEST(ToolCallParser, HermesUnterminatedCallAtTheEnd) {
  ParsedToolOutput p = ParseToolCalls("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n",
                                      ToolCallFormat::kHermes);
  EXPECT_THAT(p.calls, ElementsAre(Call("f", R"({"x": 1})")));
  p = ParseToolCalls("<tool_call>\n{\"arguments\": {\"x\": 1}, \"name\": \"f\"}", ToolCallFormat::kHermes);
  EXPECT_THAT(p.calls, ElementsAre(Call("f", R"({"x":1})")));
  p = ParseToolCalls("<tool_call>\n{\"name\": \"f\", \"argu", ToolCallFormat::kHermes);
  EXPECT_TRUE(p.calls.empty());
  EXPECT_EQ(p.content, "<tool_call>\n{\"name\": \"f\", \"argu");
}

TEST(ToolCallParser, Llama3Json) {
  ParsedToolOutput p = ParseToolCalls(" {\"name\": \"f\", \"parameters\": {\"a\": [1, 2]}}", ToolCallFormat::kLlama3Json);
  EXPECT_EQ(p.content, "");
  EXPECT_THAT(p.calls, ElementsAre(Call("f", R"({"a":[1,2]})")));
  p = ParseToolCalls("<|python_tag|>{\"name\": \"f\", \"parameters\": {}}; {\"name\": \"g\", \"arguments\": {\"s\": \"};\"}}",
                     ToolCallFormat::kLlama3Json);
  EXPECT_THAT(p.calls, ElementsAre(Call("f", "{}"), Call("g", R"({"s":"};"})")));
  p = ParseToolCalls("Hello {\"name\": \"f\"}", ToolCallFormat::kLlama3Json);
  EXPECT_EQ(p.content, "Hello {\"name\": \"f\"}");
  EXPECT_TRUE(p.calls.empty());
  p = ParseToolCalls("{\"not\": \"a call\"}", ToolCallFormat::kLlama3Json);
  EXPECT_EQ(p.content, "{\"not\": \"a call\"}");
}

// Arguments stream before the call ends; only a tail that may close the call is held back.
TEST(ToolCallParser, HermesArgumentsStreamAsWritten) {
  ToolCallStreamParser parser(ToolCallFormat::kHermes);
  auto a = parser.Push("Hi <tool_call>\n{\"name\": \"f\", \"arguments\": {\"s\": \"a}");
  EXPECT_EQ(a.content, "Hi");
  EXPECT_THAT(a.pieces, ElementsAre(ToolCallPiece{0, true, "f", ""}, ToolCallPiece{0, false, "", "{\"s\": \"a"}));
  auto b = parser.Push(" b\"}}\n</tool_");
  EXPECT_THAT(b.pieces, ElementsAre(ToolCallPiece{0, false, "", "} b\"}"}));
  auto c = parser.Push("call>");
  EXPECT_TRUE(c.pieces.empty());
  auto d = parser.Finish();
  EXPECT_TRUE(d.pieces.empty());
  EXPECT_EQ(d.content, "");
  EXPECT_EQ(parser.num_calls(), 1);
}

// Streaming gives the whole text's result for every way of cutting it into two, and byte by byte.
TEST(ToolCallParser, StreamMatchesWholeTextForAnyChunking) {
  const std::string texts[] = {
      "Sure <tool_call>\n{\"name\": \"a\", \"arguments\": {\"q\": \"</tool\"}}\n</tool_call> and <tool_ then",
      "<tool_call>{\"name\": \"a\"}</tool_call><tool_call>{\"name\": \"b\"}</tool_call>\n",
      "no calls at all <tool_cal",
  };
  for (const std::string& text : texts) {
    for (ToolCallFormat format : {ToolCallFormat::kHermes, ToolCallFormat::kLlama3Json}) {
      const ParsedToolOutput whole = ParseToolCalls(text, format);
      for (size_t cut = 0; cut <= text.size(); ++cut) {
        ToolCallStreamParser parser(format);
        std::string content;
        std::vector<ToolCall> calls;
        for (auto out : {parser.Push(text.substr(0, cut)), parser.Push(text.substr(cut)), parser.Finish()}) {
          content += out.content;
          AppendPieces(out.pieces, &calls);
        }
        if (!calls.empty() && content.find_first_not_of(" \n") == std::string::npos) content.clear();
        EXPECT_EQ(content, whole.content) << text << " cut at " << cut;
        EXPECT_EQ(calls, whole.calls) << text << " cut at " << cut;
      }
    }
  }
  ToolCallStreamParser parser(ToolCallFormat::kHermes);
  std::string content;
  int calls = 0;
  const std::string text = texts[0];
  for (char c : text) {
    auto out = parser.Push(std::string(1, c));
    content += out.content;
    for (const ToolCallPiece& p : out.pieces) calls += p.head;
    // Nothing that could still be a tag is ever sent as content.
    EXPECT_THAT(content, ::testing::Not(HasSubstr("<tool_call")));
  }
  auto out = parser.Finish();
  EXPECT_EQ(content + out.content, "Sure  and <tool_ then");
  EXPECT_EQ(calls, 1);
}

const OJson kTools = OJson::parse(R"([{"type": "function", "function": {"name": "get_weather",
    "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
    "required": ["city"]}}}])");

std::vector<ChatMessage> ToolConversation() {
  ChatMessage assistant{ChatRole::kAssistant, ""};
  assistant.tool_calls.push_back(ToolCall{"call_1", "get_weather", R"({"city": "Paris"})"});
  ChatMessage tool{ChatRole::kTool, R"({"temp": 21})"};
  tool.tool_call_id = "call_1";
  return {{ChatRole::kSystem, "Be brief."}, {ChatRole::kUser, "Weather in Paris?"}, assistant, tool};
}

// What Qwen3's template renders for ToolConversation() with kTools (worked out from the
// template: tools in the system turn, the call in <tool_call> tags, the result as a user turn).
const char kQwen3Expected[] =
    "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist with the user "
    "query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather\", "
    "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": "
    "[\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\n</tool_call><|im_end|>\n"
    "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
    "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
    "</tool_call><|im_end|>\n"
    "<|im_start|>user\n<tool_response>\n{\"temp\": 21}\n</tool_response><|im_end|>\n"
    "<|im_start|>assistant\n";

std::string Qwen3Template() {
  std::ifstream in(std::string(TAILOR_SHARED_DIR) + "/models/tokenizers/qwen3/tokenizer_config.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str()).at("chat_template").get<std::string>();
}

TEST(ChatTools, Qwen3TemplateRendersToolsCallsAndResults) {
  auto t = ChatTemplate::FromJinja(Qwen3Template(), "", "<|im_end|>");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(t->renders_tools());
  EXPECT_EQ(t->tool_format(), ToolCallFormat::kHermes);
  const std::vector<ChatMessage> messages = ToolConversation();
  auto r = t->Render(messages, true, nullptr, kTools);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->DebugString(), kQwen3Expected);
  // tool_choice "none": no tools passed; the history still renders.
  auto none = t->Render(messages, true, nullptr, nullptr);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(none->DebugString(), ::testing::StartsWith("<|im_start|>system\nBe brief.<|im_end|>\n"));
  EXPECT_THAT(none->DebugString(), HasSubstr("<tool_response>\n{\"temp\": 21}\n</tool_response>"));
}

// The chatml preset describes the tools as Qwen's template does: the same text after BOS.
TEST(ChatTools, ChatmlPresetMatchesQwen3) {
  const std::vector<ChatMessage> messages = ToolConversation();
  auto r = ChatTemplate(ChatTemplateKind::kChatml).Render(messages, true, nullptr, kTools);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->DebugString(), std::string("<s>") + kQwen3Expected);
}

TEST(ChatTools, AlternatingPresetsAcceptToolTurns) {
  std::vector<ChatMessage> messages = ToolConversation();
  for (ChatTemplateKind kind : {ChatTemplateKind::kLlama2, ChatTemplateKind::kMistral, ChatTemplateKind::kZephyr,
                                ChatTemplateKind::kPlain}) {
    auto r = ChatTemplate(kind).Render(messages, true, nullptr, kTools);
    ASSERT_TRUE(r.ok()) << ChatTemplateName(kind) << ": " << r.status();
    EXPECT_THAT(r->DebugString(), HasSubstr("<tools>\n{\"type\": \"function\""));
    EXPECT_THAT(r->DebugString(), HasSubstr("<tool_response>\n{\"temp\": 21}\n</tool_response>"));
  }
}

TEST(ChatTools, Llama3TemplateWithoutToolsGetsJsonStyle) {
  const std::string llama3 =
      "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
      "message['content'] + '<|eot_id|>' }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}";
  auto t = ChatTemplate::FromJinja(llama3, "<|begin_of_text|>", "<|eot_id|>");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_FALSE(t->renders_tools());
  EXPECT_EQ(t->tool_format(), ToolCallFormat::kLlama3Json);
  auto r = t->Render(ToolConversation(), true, nullptr, kTools);
  ASSERT_TRUE(r.ok()) << r.status();
  const std::string text = r->DebugString();
  EXPECT_THAT(text, HasSubstr("system<|end_header_id|>\n\nBe brief.\n\nYou have access to the following functions."));
  EXPECT_THAT(text, HasSubstr("assistant<|end_header_id|>\n\n{\"name\": \"get_weather\", \"parameters\": "
                              "{\"city\": \"Paris\"}}<|eot_id|>"));
  EXPECT_THAT(text, HasSubstr("<|start_header_id|>ipython<|end_header_id|>\n\n{\"temp\": 21}<|eot_id|>"));
}

ApiError ChatError(const std::string& fields) {
  auto r = ParseOpenAiRequest(Endpoint::kChatCompletions,
                              R"({"messages": [{"role": "user", "content": "hi"}], )" + fields + "}");
  EXPECT_FALSE(r.ok()) << fields;
  return r.ok() ? ApiError{} : r.error();
}

TEST(ToolRequest, ParsesToolsChoiceAndToolMessages) {
  auto r = ParseOpenAiRequest(Endpoint::kChatCompletions, R"({"messages": [
      {"role": "user", "content": "hi"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "call_9", "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
      {"role": "tool", "tool_call_id": "call_9", "content": "cold"}],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}}, "parallel_tool_calls": false})");
  ASSERT_TRUE(r.ok()) << r.error().ToJson();
  ASSERT_EQ(r->messages.size(), 3u);
  EXPECT_THAT(r->messages[1].tool_calls, ElementsAre(ToolCall{"call_9", "get_weather", "{\"city\": \"Oslo\"}"}));
  EXPECT_EQ(r->messages[2].role, ChatRole::kTool);
  EXPECT_EQ(r->messages[2].tool_call_id, "call_9");
  EXPECT_EQ(r->tool_choice.mode, ToolChoice::Mode::kFunction);
  EXPECT_EQ(r->tool_choice.function, "get_weather");
  EXPECT_FALSE(r->parallel_tool_calls);
  ASSERT_TRUE(r->tools.is_array());
  EXPECT_EQ(r->tools[0]["function"]["name"], "get_weather");
}

TEST(ToolRequest, ErrorsNameTheField) {
  EXPECT_EQ(ChatError(R"("tools": {})").param, "tools");
  EXPECT_EQ(ChatError(R"("tools": [{"type": "retrieval"}])").param, "tools[0].type");
  EXPECT_EQ(ChatError(R"("tools": [{"type": "function", "function": {"name": "a b"}}])").param,
            "tools[0].function.name");
  EXPECT_EQ(ChatError(R"("tools": [{"type": "function", "function": {"name": "f", "parameters": 3}}])").param,
            "tools[0].function.parameters");
  EXPECT_EQ(ChatError(R"("tool_choice": "required")").param, "tool_choice");
  EXPECT_EQ(ChatError(R"("tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "maybe")").param,
            "tool_choice");
  EXPECT_EQ(ChatError(R"("tools": [{"type": "function", "function": {"name": "f"}}],
                         "tool_choice": {"type": "function", "function": {"name": "g"}})").param,
            "tool_choice");
  EXPECT_EQ(ChatError(R"("parallel_tool_calls": "yes")").param, "parallel_tool_calls");
  auto r = ParseOpenAiRequest(Endpoint::kChatCompletions,
                              R"({"messages": [{"role": "assistant", "tool_calls": [{"function": {}}]}]})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().param, "messages[0].tool_calls[0].function.name");
  r = ParseOpenAiRequest(Endpoint::kChatCompletions, R"({"messages": [{"role": "tool"}]})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().param, "messages[0].content");
}

TEST(StructuredRequest, ParsesEveryForm) {
  auto c = ParseOpenAiRequest(Endpoint::kCompletions, R"({"prompt": "x", "response_format": {"type": "json_schema",
      "json_schema": {"name": "p", "schema": {"type": "object", "properties": {"b": {}, "a": {}}}, "strict": true}}})");
  ASSERT_TRUE(c.ok()) << c.error().ToJson();
  EXPECT_EQ(c->structured.kind, StructuredOutput::Kind::kJsonSchema);
  EXPECT_EQ(c->structured.param, "response_format.json_schema.schema");
  EXPECT_EQ(c->structured.schema["type"], "object");
  EXPECT_EQ(c->structured.schema["properties"].begin().key(), "b");  // the body's order, not sorted
  auto j = ParseOpenAiRequest(Endpoint::kChatCompletions,
                              R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}})");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->structured.kind, StructuredOutput::Kind::kJsonObject);
  auto t = ParseOpenAiRequest(Endpoint::kCompletions, R"({"prompt": "x", "response_format": {"type": "text"}})");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->structured.kind, StructuredOutput::Kind::kNone);
  auto g = ParseOpenAiRequest(Endpoint::kCompletions, R"({"prompt": "x", "guided_choice": ["yes", "no"]})");
  ASSERT_TRUE(g.ok());
  EXPECT_THAT(g->structured.choices, ElementsAre("yes", "no"));
  auto re = ParseOpenAiRequest(Endpoint::kCompletions, R"({"prompt": "x", "guided_regex": "[0-9]+"})");
  ASSERT_TRUE(re.ok());
  EXPECT_EQ(re->structured.regex, "[0-9]+");
  auto gj = ParseOpenAiRequest(Endpoint::kCompletions, R"({"prompt": "x", "guided_json": "{\"type\": \"array\"}"})");
  ASSERT_TRUE(gj.ok());
  EXPECT_EQ(gj->structured.schema["type"], "array");
  EXPECT_EQ(gj->structured.param, "guided_json");
}

TEST(StructuredRequest, ErrorsNameTheField) {
  auto err = [](const std::string& fields) {
    auto r = ParseOpenAiRequest(Endpoint::kCompletions, R"({"prompt": "x", )" + fields + "}");
    EXPECT_FALSE(r.ok()) << fields;
    return r.ok() ? std::string("(ok)") : r.error().param;
  };
  EXPECT_EQ(err(R"("response_format": "json")"), "response_format");
  EXPECT_EQ(err(R"("response_format": {"type": "yaml"})"), "response_format.type");
  EXPECT_EQ(err(R"("response_format": {"type": "json_schema"})"), "response_format.json_schema");
  EXPECT_EQ(err(R"("response_format": {"type": "json_schema", "json_schema": {"name": "x"}})"),
            "response_format.json_schema.schema");
  EXPECT_EQ(err(R"("response_format": {"type": "json_schema", "json_schema": {"schema": []}})"),
            "response_format.json_schema.schema");
  EXPECT_EQ(err(R"("response_format": {"type": "json_schema", "json_schema": {"schema": {}, "strict": 1}})"),
            "response_format.json_schema.strict");
  EXPECT_EQ(err(R"("guided_regex": 5)"), "guided_regex");
  EXPECT_EQ(err(R"("guided_choice": [])"), "guided_choice");
  EXPECT_EQ(err(R"("guided_choice": ["a", 1])"), "guided_choice");
  EXPECT_EQ(err(R"("guided_json": "not json")"), "guided_json");
  EXPECT_EQ(err(R"("response_format": {"type": "json_object"}, "guided_regex": "a")"), "guided_regex");
  const ApiError e = ChatError(R"("tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required",
                                 "response_format": {"type": "json_object"})");
  EXPECT_EQ(e.param, "response_format");
}

}  // namespace
}  // namespace tailor::service
