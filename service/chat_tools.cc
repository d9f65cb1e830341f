#include "service/chat_tools.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace tailor::service {
namespace {

using OJson = nlohmann::ordered_json;

// JSON with Python json.dumps' separators (", " and ": "), keys in their given order: how the
// templates' `tojson` writes tools, so presets show them as the model's own template would.
void AppendPythonJson(const OJson& v, std::string* out) {
  if (v.is_object()) {
    out->push_back('{');
    bool first = true;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!first) out->append(", ");
      first = false;
      out->append(OJson(it.key()).dump());
      out->append(": ");
      AppendPythonJson(it.value(), out);
    }
    out->push_back('}');
  } else if (v.is_array()) {
    out->push_back('[');
    for (size_t i = 0; i < v.size(); ++i) {
      if (i > 0) out->append(", ");
      AppendPythonJson(v[i], out);
    }
    out->push_back(']');
  } else {
    out->append(v.dump(-1, ' ', false, OJson::error_handler_t::replace));
  }
}

std::string PythonJson(const OJson& v) {
  std::string out;
  AppendPythonJson(v, &out);
  return out;
}

// The call's arguments in Python json.dumps form when they parse, else as given.
std::string ArgumentsText(const std::string& arguments) {
  OJson parsed = OJson::parse(arguments, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return arguments.empty() ? "{}" : arguments;
  return PythonJson(parsed);
}

bool HasTools(const OJson& tools) { return tools.is_array() && !tools.empty(); }

}  // namespace

std::string ToolsSystemText(ToolCallFormat format, const OJson& tools) {
  std::string out;
  if (format == ToolCallFormat::kLlama3Json) {
    out = "You have access to the following functions. To call a function, respond with a JSON object of the "
          "form {\"name\": function name, \"parameters\": dictionary of argument name and its value}. Do not "
          "use variables.";
    for (const OJson& tool : tools) absl::StrAppend(&out, "\n\n", PythonJson(tool));
    return out;
  }
  out = "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
  for (const OJson& tool : tools) absl::StrAppend(&out, "\n", PythonJson(tool));
  absl::StrAppend(&out,
                  "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
                  "within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
                  "\"arguments\": <args-json-object>}\n</tool_call>");
  return out;
}

std::string ToolCallText(ToolCallFormat format, const ToolCall& call) {
  const std::string name = OJson(call.name).dump();
  if (format == ToolCallFormat::kLlama3Json) {
    return absl::StrCat("{\"name\": ", name, ", \"parameters\": ", ArgumentsText(call.arguments), "}");
  }
  return absl::StrCat("<tool_call>\n{\"name\": ", name, ", \"arguments\": ", ArgumentsText(call.arguments),
                      "}\n</tool_call>");
}

std::vector<ChatMessage> LowerToolMessages(std::span<const ChatMessage> messages, const OJson& tools,
                                           ToolCallFormat format) {
  std::vector<ChatMessage> out;
  out.reserve(messages.size() + 1);
  if (HasTools(tools)) {
    const std::string text = ToolsSystemText(format, tools);
    if (!messages.empty() && messages[0].role == ChatRole::kSystem) {
      ChatMessage system = messages[0];
      system.content = system.content.empty() ? text : absl::StrCat(system.content, "\n\n", text);
      out.push_back(std::move(system));
      messages = messages.subspan(1);
    } else {
      out.push_back(ChatMessage{ChatRole::kSystem, text});
    }
  }
  const bool llama3 = format == ToolCallFormat::kLlama3Json;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == ChatRole::kAssistant && !m.tool_calls.empty()) {
      ChatMessage lowered{ChatRole::kAssistant, m.content};
      std::string calls;
      for (const ToolCall& call : m.tool_calls) {
        if (!calls.empty()) calls += llama3 ? "; " : "\n";
        calls += ToolCallText(format, call);
      }
      if (!lowered.content.empty()) lowered.content += "\n";
      lowered.content += calls;
      out.push_back(std::move(lowered));
    } else if (m.role == ChatRole::kTool && !llama3) {
      std::string text = absl::StrCat("<tool_response>\n", m.content, "\n</tool_response>");
      // Consecutive results share one user turn (as Qwen's template writes them).
      if (i > 0 && messages[i - 1].role == ChatRole::kTool && !out.empty()) {
        absl::StrAppend(&out.back().content, "\n", text);
      } else {
        out.push_back(ChatMessage{ChatRole::kUser, std::move(text)});
      }
    } else {
      ChatMessage copy{m.role, m.content};
      out.push_back(std::move(copy));
    }
  }
  return out;
}

ToolCallSyntax ToolCallSyntaxFor(ToolCallFormat format) {
  if (format == ToolCallFormat::kLlama3Json) return {"", "", "; ", "parameters"};
  return {"<tool_call>\n", "\n</tool_call>", "\n", "arguments"};
}

}  // namespace tailor::service
