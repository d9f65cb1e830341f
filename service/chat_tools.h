// Tools for chat templates that do not render them: the text that describes the tools in the
// system message, and tool calls and tool results written as text in the model's tool-call
// format (service/chat_template.h, ToolCallFormat). Pure functions; safe from any thread.
//
// kHermes (Qwen 2.5/3 and Hermes write this; used for every built-in preset). The system
// message gets, after its own content and a blank line:
//
//   # Tools
//
//   You may call one or more functions to assist with the user query.
//
//   You are provided with function signatures within <tools></tools> XML tags:
//   <tools>
//   {"type": "function", "function": {...}}          (one line per tool, as given)
//   </tools>
//
//   For each function call, return a json object with function name and arguments within
//   <tool_call></tool_call> XML tags:
//   <tool_call>
//   {"name": <function-name>, "arguments": <args-json-object>}
//   </tool_call>
//
// An assistant's call is written `<tool_call>\n{"name": "NAME", "arguments": ARGS}\n</tool_call>`
// after its content (a newline between); consecutive tool results become one user message of
// `<tool_response>\nCONTENT\n</tool_response>` blocks joined by newlines.
//
// kLlama3Json (Llama 3.1's JSON tool calling): the system message gets
//
//   You have access to the following functions. To call a function, respond with a JSON object
//   of the form {"name": function name, "parameters": dictionary of argument name and its
//   value}. Do not use variables.
//
//   {"type": "function", "function": {...}}          (one block per tool, blank lines between)
//
// An assistant's call is written `{"name": "NAME", "parameters": ARGS}` (calls joined by "; ");
// tool results stay role kTool (the template sees role "ipython", as Llama 3.1 names it).
#ifndef TAILOR_SERVICE_CHAT_TOOLS_H_
#define TAILOR_SERVICE_CHAT_TOOLS_H_

#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "service/chat_template.h"

namespace tailor::service {

// The system-message text describing `tools` (an array of OpenAI tool objects).
std::string ToolsSystemText(ToolCallFormat format, const nlohmann::ordered_json& tools);

// One call as the model writes it. `arguments` that are not valid JSON are written as given.
std::string ToolCallText(ToolCallFormat format, const ToolCall& call);

// `messages` with the tools described in the (first, possibly new) system message when `tools`
// is a non-empty array, assistant tool calls appended to their content as text, and tool results
// rewritten as described above. Messages without tool parts are unchanged.
std::vector<ChatMessage> LowerToolMessages(std::span<const ChatMessage> messages,
                                           const nlohmann::ordered_json& tools, ToolCallFormat format);

// What surrounds one call's JSON object in model output, for constrained decoding: the call is
// `prefix` + {"name": NAME, ARGUMENTS_KEY: {...}} + `suffix`; several calls are separated by
// `separator`.
struct ToolCallSyntax {
  std::string prefix;
  std::string suffix;
  std::string separator;
  std::string arguments_key;  // "arguments" or "parameters"
};
ToolCallSyntax ToolCallSyntaxFor(ToolCallFormat format);

}  // namespace tailor::service

#endif  // TAILOR_SERVICE_CHAT_TOOLS_H_
