// Chat templates in the style real models ship (written for these tests, not copied): Llama 3.1
// (tools in the system or first user message, custom_tools, strftime_now/date_string,
// tojson(indent=4), namespace), Mistral (raise_exception on role order, loop.index0 % 2),
// Qwen2.5 (tools, tool_call and tool_response turns) and DeepSeek (ns.is_first,
// split('</think>')[-1]), rendered through RenderChatTemplate with the variables transformers
// passes. Every expected string is what jinja2 3.1.6 renders set up as transformers does.
#include <ostream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "service/jinja_template.h"

namespace tailor::service {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ordered_json = nlohmann::ordered_json;

constexpr const char* kLlamaStyle = R"j({{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if tools_in_user_message is not defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if date_string is not defined %}
    {%- set date_string = strftime_now("%d %b %Y") %}
{%- endif %}
{%- set state = namespace(system="", tools_shown=false) %}
{%- if messages and messages[0].role == "system" %}
    {%- set state.system = messages[0].content | trim %}
    {%- set messages = messages[1:] %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Knowledge cutoff: 2023-12\nToday: " ~ date_string ~ "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "Functions you may call (answer with JSON):\n\n" }}
    {%- for fn in tools %}
        {{- fn | tojson(indent=4) ~ "\n\n" }}
    {%- endfor %}
    {%- set state.tools_shown = true %}
{%- endif %}
{{- state.system ~ "<|eot_id|>" }}
{%- for message in messages %}
    {%- if loop.first and tools is not none and not state.tools_shown %}
        {%- if message.role != "user" %}
            {{- raise_exception("Tools need a first user message to go into.") }}
        {%- endif %}
        {{- "<|start_header_id|>user<|end_header_id|>\n\n" }}
        {{- "Call one of these functions with JSON {\"name\": ..., \"parameters\": ...}:\n\n" }}
        {%- for fn in tools %}
            {{- fn | tojson(indent=4) ~ "\n\n" }}
        {%- endfor %}
        {{- message.content | trim ~ "<|eot_id|>" }}
    {%- elif message.tool_calls is defined and message.tool_calls %}
        {%- if message.tool_calls | length > 1 %}
            {{- raise_exception("Only one tool call per turn.") }}
        {%- endif %}
        {%- set call = message.tool_calls[0].function %}
        {{- "<|start_header_id|>assistant<|end_header_id|>\n\n" }}
        {{- '{"name": "' ~ call.name ~ '", "parameters": ' ~ call.arguments | tojson ~ "}<|eot_id|>" }}
    {%- elif message.role in ["tool", "ipython"] %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or (message.content is iterable and message.content is not string) %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- else %}
        {{- "<|start_header_id|>" ~ message.role ~ "<|end_header_id|>\n\n" ~ message.content | trim ~ "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- "<|start_header_id|>assistant<|end_header_id|>\n\n" }}
{%- endif %}
)j";

constexpr const char* kMistralStyle = R"j({%- if messages[0].role == "system" %}
    {%- set preamble = messages[0].content ~ "\n\n" %}
    {%- set turns = messages[1:] %}
{%- else %}
    {%- set preamble = "" %}
    {%- set turns = messages %}
{%- endif %}
{{- bos_token }}
{%- for turn in turns %}
    {%- if (turn.role == "user") != (loop.index0 % 2 == 0) %}
        {{- raise_exception("Roles must alternate user/assistant after an optional system message.") }}
    {%- endif %}
    {%- if turn.role == "user" %}
        {{- "[INST] " ~ (preamble if loop.first else "") ~ turn.content | trim ~ " [/INST]" }}
    {%- elif turn.role == "assistant" %}
        {{- " " ~ turn.content | trim ~ eos_token }}
    {%- else %}
        {{- raise_exception("Unsupported role: " ~ turn.role) }}
    {%- endif %}
{%- endfor %}
)j";

constexpr const char* kQwenStyle = R"j({%- set default_system = "You are a helpful assistant." %}
{%- set has_system = messages[0].role == "system" %}
{{- "<|im_start|>system\n" ~ (messages[0].content if has_system else default_system) }}
{%- if tools %}
    {{- "\n\n# Tools\n\nYou can call these functions; their signatures are inside <tools></tools>:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" ~ tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nReply with a call inside <tool_call></tool_call> tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>" }}
{%- endif %}
{{- "<|im_end|>\n" }}
{%- for message in messages %}
    {%- if message.role == "system" and loop.first %}
    {%- elif message.role == "assistant" and message.tool_calls %}
        {{- "<|im_start|>assistant" }}
        {%- if message.content %}
            {{- "\n" ~ message.content }}
        {%- endif %}
        {%- for call in message.tool_calls %}
            {%- set fn = call.function if call.function is defined else call %}
            {{- "\n<tool_call>\n{\"name\": \"" ~ fn.name ~ "\", \"arguments\": " }}
            {{- fn.arguments if fn.arguments is string else fn.arguments | tojson }}
            {{- "}\n</tool_call>" }}
        {%- endfor %}
        {{- "<|im_end|>\n" }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or messages[loop.index0 - 1].role != "tool" %}
            {{- "<|im_start|>user" }}
        {%- endif %}
        {{- "\n<tool_response>\n" ~ message.content ~ "\n</tool_response>" }}
        {%- if loop.last or messages[loop.index0 + 1].role != "tool" %}
            {{- "<|im_end|>\n" }}
        {%- endif %}
    {%- else %}
        {{- "<|im_start|>" ~ message.role ~ "\n" ~ message.content ~ "<|im_end|>\n" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- "<|im_start|>assistant\n" }}
{%- endif %}
)j";

constexpr const char* kDeepSeekStyle =
    R"j({%- if add_generation_prompt is not defined %}{% set add_generation_prompt = false %}{% endif %}
{%- set ns = namespace(system="", is_first=true, in_tool=false, first_output=true) %}
{%- for m in messages if m.role == "system" %}
    {%- set ns.system = ns.system ~ ("" if loop.first else "\n\n") ~ m.content %}
{%- endfor %}
{{- bos_token ~ ns.system }}
{%- for m in messages %}
    {%- if m.role == "user" %}
        {%- set ns.in_tool = false %}
        {{- "<｜User｜>" ~ m.content }}
    {%- elif m.role == "assistant" and m.tool_calls is defined %}
        {%- set ns.in_tool = false %}
        {%- set ns.is_first = true %}
        {%- for call in m.tool_calls %}
            {%- set block = "<｜tool▁call▁begin｜>" ~ call.type ~ "<｜tool▁sep｜>" ~ call.function.name ~ "\n```json\n" ~ call.function.arguments ~ "\n```<｜tool▁call▁end｜>" %}
            {%- if ns.is_first %}
                {{- "<｜Assistant｜>" ~ (m.content or "") ~ "<｜tool▁calls▁begin｜>" ~ block }}
                {%- set ns.is_first = false %}
            {%- else %}
                {{- "\n" ~ block }}
            {%- endif %}
        {%- endfor %}
        {{- "<｜tool▁calls▁end｜><｜end▁of▁sentence｜>" }}
    {%- elif m.role == "assistant" %}
        {%- set answer = m.content %}
        {%- if "</think>" in answer %}
            {%- set answer = answer.split("</think>")[-1].strip() %}
        {%- endif %}
        {%- if ns.in_tool %}
            {{- "<｜tool▁outputs▁end｜>" ~ answer ~ "<｜end▁of▁sentence｜>" }}
            {%- set ns.in_tool = false %}
        {%- else %}
            {{- "<｜Assistant｜>" ~ answer ~ "<｜end▁of▁sentence｜>" }}
        {%- endif %}
    {%- elif m.role == "tool" %}
        {%- if not ns.in_tool %}
            {{- "<｜tool▁outputs▁begin｜>" }}
            {%- set ns.in_tool = true %}
        {%- endif %}
        {{- "<｜tool▁output▁begin｜>" ~ m.content ~ "<｜tool▁output▁end｜>" }}
    {%- endif %}
{%- endfor %}
{%- if ns.in_tool %}{{ "<｜tool▁outputs▁end｜>" }}{% endif %}
{%- if add_generation_prompt and not ns.in_tool %}{{ "<｜Assistant｜><think>\n" }}{% endif %}
)j";

constexpr const char* kWeatherTool = R"j({
 "type": "function",
 "function": {
  "name": "get_weather",
  "description": "Current weather in a city",
  "parameters": {
   "type": "object",
   "properties": {
    "city": {
     "type": "string",
     "description": "City, e.g. Zürich"
    },
    "unit": {
     "type": "string",
     "enum": [
      "celsius",
      "fahrenheit"
     ]
    }
   },
   "required": [
    "city"
   ]
  }
 }
})j";

constexpr const char* kChat = R"j([
  {"role": "system", "content": "  Be brief.  "},
  {"role": "user", "content": "Hi there é\n"},
  {"role": "assistant", "content": "Hello!"},
  {"role": "user", "content": "Bye"}
])j";
constexpr const char* kToolTurns = R"j([
  {"role": "user", "content": "Weather in Paris?"},
  {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
  {"role": "tool", "content": "{\"temp\": 21}"},
  {"role": "assistant", "content": "It is 21 °C."},
  {"role": "user", "content": "Thanks"}
])j";
constexpr const char* kParallelCalls = R"j([
  {"role": "user", "content": "Paris and Rome?"},
  {"role": "assistant", "content": "Checking both.", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}, {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}}]},
  {"role": "tool", "content": "18"},
  {"role": "tool", "content": "25"}
])j";
constexpr const char* kThinking = R"j([
  {"role": "system", "content": "S1"},
  {"role": "system", "content": "S2"},
  {"role": "user", "content": "2+2?"},
  {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4"},
  {"role": "user", "content": "3+3?"}
])j";
constexpr const char* kUserUser = R"j([
  {"role": "user", "content": "a"},
  {"role": "user", "content": "b"}
])j";
constexpr const char* kUserTool = R"j([
  {"role": "user", "content": "a"},
  {"role": "tool", "content": "b"}
])j";
constexpr const char* kChatNoSystem = R"j([
  {"role": "user", "content": "Hi there é\n"},
  {"role": "assistant", "content": "Hello!"},
  {"role": "user", "content": "Bye"}
])j";
constexpr const char* kOneExchange = R"j([
  {"role": "user", "content": "Hi there é\n"},
  {"role": "assistant", "content": "Hello!"}
])j";
constexpr const char* kParallelAnswered = R"j([
  {"role": "user", "content": "Paris and Rome?"},
  {"role": "assistant", "content": "Checking both.", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}, {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}}]},
  {"role": "tool", "content": "18"},
  {"role": "tool", "content": "25"},
  {"role": "assistant", "content": "Rome is warmer."}
])j";

ordered_json Json(const char* text) {
  ordered_json j = ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << text;
  return j;
}

struct ModelCase {
  const char* name;
  const char* source;
  const char* messages;
  bool add_generation_prompt;
  const char* extra;      // JSON object
  const char* tools_key;  // where kWeatherTool goes ("tools", "custom_tools"), or null
  const char* expected;
};

void PrintTo(const ModelCase& c, std::ostream* os) { *os << c.name; }

// clang-format off
const ModelCase kCases[] = {
    {"llama_style_chat", kLlamaStyle, kChat, true, R"j({"date_string": "26 Jul 2024"})j", nullptr,
     R"j(<s><|start_header_id|>system<|end_header_id|>

Knowledge cutoff: 2023-12
Today: 26 Jul 2024

Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>

Hi there é<|eot_id|><|start_header_id|>assistant<|end_header_id|>

Hello!<|eot_id|><|start_header_id|>user<|end_header_id|>

Bye<|eot_id|><|start_header_id|>assistant<|end_header_id|>

)j"},
    {"llama_style_no_system_no_generation", kLlamaStyle, kChatNoSystem, false, R"j({"date_string": "26 Jul 2024"})j", nullptr,
     R"j(<s><|start_header_id|>system<|end_header_id|>

Knowledge cutoff: 2023-12
Today: 26 Jul 2024

<|eot_id|><|start_header_id|>user<|end_header_id|>

Hi there é<|eot_id|><|start_header_id|>assistant<|end_header_id|>

Hello!<|eot_id|><|start_header_id|>user<|end_header_id|>

Bye<|eot_id|>)j"},
    {"llama_style_tools_in_user_message", kLlamaStyle, kChat, true, R"j({"date_string": "26 Jul 2024"})j", "tools",
     R"j(<s><|start_header_id|>system<|end_header_id|>

Environment: ipython
Knowledge cutoff: 2023-12
Today: 26 Jul 2024

Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>

Call one of these functions with JSON {"name": ..., "parameters": ...}:

{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {
                    "type": "string",
                    "description": "City, e.g. Zürich"
                },
                "unit": {
                    "type": "string",
                    "enum": [
                        "celsius",
                        "fahrenheit"
                    ]
                }
            },
            "required": [
                "city"
            ]
        }
    }
}

Hi there é<|eot_id|><|start_header_id|>assistant<|end_header_id|>

Hello!<|eot_id|><|start_header_id|>user<|end_header_id|>

Bye<|eot_id|><|start_header_id|>assistant<|end_header_id|>

)j"},
    {"llama_style_tools_in_system", kLlamaStyle, kToolTurns, true, R"j({"date_string": "1 Jan 2025", "tools_in_user_message": false})j", "tools",
     R"j(<s><|start_header_id|>system<|end_header_id|>

Environment: ipython
Knowledge cutoff: 2023-12
Today: 1 Jan 2025

Functions you may call (answer with JSON):

{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {
                    "type": "string",
                    "description": "City, e.g. Zürich"
                },
                "unit": {
                    "type": "string",
                    "enum": [
                        "celsius",
                        "fahrenheit"
                    ]
                }
            },
            "required": [
                "city"
            ]
        }
    }
}

<|eot_id|><|start_header_id|>user<|end_header_id|>

Weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

{"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>

{"temp": 21}<|eot_id|><|start_header_id|>assistant<|end_header_id|>

It is 21 °C.<|eot_id|><|start_header_id|>user<|end_header_id|>

Thanks<|eot_id|><|start_header_id|>assistant<|end_header_id|>

)j"},
    {"llama_style_custom_tools", kLlamaStyle, kToolTurns, true, R"j({"date_string": "1 Jan 2025"})j", "custom_tools",
     R"j(<s><|start_header_id|>system<|end_header_id|>

Environment: ipython
Knowledge cutoff: 2023-12
Today: 1 Jan 2025

<|eot_id|><|start_header_id|>user<|end_header_id|>

Call one of these functions with JSON {"name": ..., "parameters": ...}:

{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {
                    "type": "string",
                    "description": "City, e.g. Zürich"
                },
                "unit": {
                    "type": "string",
                    "enum": [
                        "celsius",
                        "fahrenheit"
                    ]
                }
            },
            "required": [
                "city"
            ]
        }
    }
}

Weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

{"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>

{"temp": 21}<|eot_id|><|start_header_id|>assistant<|end_header_id|>

It is 21 °C.<|eot_id|><|start_header_id|>user<|end_header_id|>

Thanks<|eot_id|><|start_header_id|>assistant<|end_header_id|>

)j"},
    {"mistral_style_chat", kMistralStyle, kChat, true, R"j({})j", nullptr,
     "<s>[INST]   Be brief.  \n\nHi there é [/INST] Hello!</s>[INST] Bye [/INST]"},
    {"mistral_style_no_system", kMistralStyle, kOneExchange, true, R"j({})j", nullptr,
     R"j(<s>[INST] Hi there é [/INST] Hello!</s>)j"},
    {"qwen_style_chat", kQwenStyle, kChat, true, R"j({})j", nullptr,
     R"j(<|im_start|>system
  Be brief.  <|im_end|>
<|im_start|>user
Hi there é
<|im_end|>
<|im_start|>assistant
Hello!<|im_end|>
<|im_start|>user
Bye<|im_end|>
<|im_start|>assistant
)j"},
    {"qwen_style_default_system", kQwenStyle, kChatNoSystem, false, R"j({})j", nullptr,
     R"j(<|im_start|>system
You are a helpful assistant.<|im_end|>
<|im_start|>user
Hi there é
<|im_end|>
<|im_start|>assistant
Hello!<|im_end|>
<|im_start|>user
Bye<|im_end|>
)j"},
    {"qwen_style_tools", kQwenStyle, kToolTurns, true, R"j({})j", "tools",
     R"j(<|im_start|>system
You are a helpful assistant.

# Tools

You can call these functions; their signatures are inside <tools></tools>:
<tools>
{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City, e.g. Zürich"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}
</tools>

Reply with a call inside <tool_call></tool_call> tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
<|im_start|>user
Weather in Paris?<|im_end|>
<|im_start|>assistant
<tool_call>
{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
</tool_call><|im_end|>
<|im_start|>user
<tool_response>
{"temp": 21}
</tool_response><|im_end|>
<|im_start|>assistant
It is 21 °C.<|im_end|>
<|im_start|>user
Thanks<|im_end|>
<|im_start|>assistant
)j"},
    {"qwen_style_parallel_calls", kQwenStyle, kParallelCalls, true, R"j({})j", "tools",
     R"j(<|im_start|>system
You are a helpful assistant.

# Tools

You can call these functions; their signatures are inside <tools></tools>:
<tools>
{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City, e.g. Zürich"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}
</tools>

Reply with a call inside <tool_call></tool_call> tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
<|im_start|>user
Paris and Rome?<|im_end|>
<|im_start|>assistant
Checking both.
<tool_call>
{"name": "get_weather", "arguments": {"city": "Paris"}}
</tool_call>
<tool_call>
{"name": "get_weather", "arguments": {"city": "Rome"}}
</tool_call><|im_end|>
<|im_start|>user
<tool_response>
18
</tool_response>
<tool_response>
25
</tool_response><|im_end|>
<|im_start|>assistant
)j"},
    {"deepseek_style_chat", kDeepSeekStyle, kChat, true, R"j({})j", nullptr,
     R"j(<s>  Be brief.  <｜User｜>Hi there é
<｜Assistant｜>Hello!<｜end▁of▁sentence｜><｜User｜>Bye<｜Assistant｜><think>
)j"},
    {"deepseek_style_thinking_history", kDeepSeekStyle, kThinking, true, R"j({})j", nullptr,
     R"j(<s>S1

S2<｜User｜>2+2?<｜Assistant｜>4<｜end▁of▁sentence｜><｜User｜>3+3?<｜Assistant｜><think>
)j"},
    {"deepseek_style_tool_calls", kDeepSeekStyle, kParallelCalls, true, R"j({})j", nullptr,
     R"j(<s><｜User｜>Paris and Rome?<｜Assistant｜>Checking both.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather
```json
{"city": "Paris"}
```<｜tool▁call▁end｜>
<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather
```json
{"city": "Rome"}
```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18<｜tool▁output▁end｜><｜tool▁output▁begin｜>25<｜tool▁output▁end｜><｜tool▁outputs▁end｜>)j"},
    {"deepseek_style_tool_then_answer", kDeepSeekStyle, kParallelAnswered, false, R"j({})j", nullptr,
     R"j(<s><｜User｜>Paris and Rome?<｜Assistant｜>Checking both.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather
```json
{"city": "Paris"}
```<｜tool▁call▁end｜>
<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather
```json
{"city": "Rome"}
```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18<｜tool▁output▁end｜><｜tool▁output▁begin｜>25<｜tool▁output▁end｜><｜tool▁outputs▁end｜>Rome is warmer.<｜end▁of▁sentence｜>)j"},
};
// clang-format on

class ModelStyleTemplates : public ::testing::TestWithParam<ModelCase> {};

TEST_P(ModelStyleTemplates, RenderAsJinja2Does) {
  const ModelCase& c = GetParam();
  auto parsed = JinjaTemplate::Parse(c.source);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ordered_json extra = Json(c.extra);
  if (c.tools_key != nullptr) extra[c.tools_key] = ordered_json::array({Json(kWeatherTool)});
  auto rendered =
      RenderChatTemplate(*parsed, Json(c.messages), c.add_generation_prompt, "<s>", "</s>", extra);
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  EXPECT_EQ(*rendered, c.expected);
}

INSTANTIATE_TEST_SUITE_P(Cases, ModelStyleTemplates, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<ModelCase>& info) {
                           return std::string(info.param.name);
                         });

absl::Status RenderError(const char* source, const char* messages) {
  auto parsed = JinjaTemplate::Parse(source);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  if (!parsed.ok()) return parsed.status();
  return RenderChatTemplate(*parsed, Json(messages), true, "<s>", "</s>",
                            Json(R"({"date_string": "x"})"))
      .status();
}

// raise_exception("msg") fails the render with exactly "msg".
TEST(ModelStyleTemplates, RaiseExceptionMessagesComeThrough) {
  absl::Status s = RenderError(kMistralStyle, kUserUser);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "Roles must alternate user/assistant after an optional system message.");
  EXPECT_EQ(RenderError(kMistralStyle, kUserTool).message(), "Unsupported role: tool");
  EXPECT_EQ(RenderError(kLlamaStyle, kParallelCalls).message(), "Only one tool call per turn.");
}

// Without date_string, the Llama-style template asks strftime_now for today's date.
TEST(ModelStyleTemplates, StrftimeNowFillsTheDate) {
  auto parsed = JinjaTemplate::Parse(kLlamaStyle);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  auto rendered = RenderChatTemplate(*parsed, Json(kChat), true, "<s>", "</s>");
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  EXPECT_THAT(*rendered, HasSubstr("\nToday: "));
  const size_t at = rendered->find("Today: ") + 7;
  EXPECT_THAT(rendered->substr(at, rendered->find('\n', at) - at),
              MatchesRegex("[0-3][0-9] [A-Z][a-z][a-z] 20[0-9][0-9]"));
}

}  // namespace
}  // namespace tailor::service
