// A model's chat template (Jinja, service/jinja_*): ChatTemplate::FromJinja as a package or
// tokenizer_config.json gives it, rendered with a conversation that has every role, a tool call
// and tools, as the server renders a chat request.
#include "service/chat_template.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using tailor::service::ChatMessage;
using tailor::service::ChatRole;

std::vector<ChatMessage> Conversation() {
  std::vector<ChatMessage> m = {{ChatRole::kSystem, "You are terse."},
                                {ChatRole::kUser, "What is the weather in Paris?"},
                                {ChatRole::kAssistant, ""},
                                {ChatRole::kTool, "{\"temp\": 21}"},
                                {ChatRole::kUser, "Thanks! And  caf\xc3\xa9?"}};
  m[2].tool_calls.push_back({"call_1", "get_weather", "{\"city\": \"Paris\"}"});
  m[3].tool_call_id = "call_1";
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto t = tailor::service::ChatTemplate::FromJinja(tailor::fuzz::AsText(data, size), "<s>", "</s>");
  if (!t.ok()) return 0;
  static const std::vector<ChatMessage> kMessages = Conversation();
  static const nlohmann::ordered_json kTools = nlohmann::ordered_json::parse(R"({"x":[{"type": "function",
      "function": {"name": "get_weather", "description": "Weather of a city",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                  "required": ["city"]}}}]})")["x"];
  static const nlohmann::ordered_json kExtra = {{"enable_thinking", false}};
  (void)t->Render(kMessages, /*add_generation_prompt=*/true, kExtra, kTools);
  (void)t->Render(std::span(kMessages).subspan(0, 2), /*add_generation_prompt=*/false);
  return 0;
}
