#include "service/chat_template.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/chat_tools.h"

namespace tailor::service {
namespace {

// Accumulates pieces, merging adjacent text and dropping empty text.
class PieceBuilder {
 public:
  void Bos() { pieces_.push_back({PromptPiece::Kind::kBos, ""}); }
  void Eos() { pieces_.push_back({PromptPiece::Kind::kEos, ""}); }
  void Text(absl::string_view text) {
    if (text.empty()) return;
    if (!pieces_.empty() && pieces_.back().kind == PromptPiece::Kind::kText) {
      absl::StrAppend(&pieces_.back().text, text);
    } else {
      pieces_.push_back({PromptPiece::Kind::kText, std::string(text)});
    }
  }
  RenderedChat Finish() && { return RenderedChat{std::move(pieces_)}; }

 private:
  std::vector<PromptPiece> pieces_;
};

// Python's str.strip() for ASCII whitespace (what the Llama-2 template applies to each turn).
absl::string_view Strip(absl::string_view s) { return absl::StripAsciiWhitespace(s); }

std::string Index(size_t i) { return absl::StrCat("messages[", i, "]"); }

// Llama-2 and Mistral: an optional first system message, then user/assistant alternating,
// starting and ending with user. Returns the system content (or "" when absent) through `system`
// and the index of the first conversation message through `first`.
absl::Status CheckAlternating(std::span<const ChatMessage> messages, absl::string_view family,
                              std::string* system, size_t* first) {
  *first = 0;
  system->clear();
  if (!messages.empty() && messages[0].role == ChatRole::kSystem) {
    *system = messages[0].content;
    *first = 1;
  }
  if (*first == messages.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("messages: the ", family, " chat template needs at least one user message"));
  }
  for (size_t i = *first; i < messages.size(); ++i) {
    const ChatRole want = (i - *first) % 2 == 0 ? ChatRole::kUser : ChatRole::kAssistant;
    const ChatRole got = messages[i].role;
    if (got == ChatRole::kSystem) {
      return absl::InvalidArgumentError(absl::StrCat(
          Index(i), ": the ", family,
          " chat template supports a system message only as the first message"));
    }
    if (got != want) {
      return absl::InvalidArgumentError(absl::StrCat(
          Index(i), ": expected role '", ChatRoleName(want), "' but got '", ChatRoleName(got),
          "'; the ", family,
          " chat template needs user and assistant messages to alternate, starting with user"));
    }
  }
  if (messages.back().role != ChatRole::kUser) {
    return absl::InvalidArgumentError(absl::StrCat(
        Index(messages.size() - 1), ": the last message must have role 'user' for the ", family,
        " chat template"));
  }
  return absl::OkStatus();
}

absl::StatusOr<RenderedChat> RenderLlama2(std::span<const ChatMessage> messages) {
  std::string system;
  size_t first = 0;
  if (absl::Status s = CheckAlternating(messages, "llama-2", &system, &first); !s.ok()) return s;
  const bool has_system = first == 1;
  PieceBuilder b;
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == ChatRole::kUser) {
      std::string content = (i == first && has_system)
                                ? absl::StrCat("<<SYS>>\n", system, "\n<</SYS>>\n\n", m.content)
                                : m.content;
      b.Bos();
      b.Text(absl::StrCat("[INST] ", Strip(content), " [/INST]"));
    } else {
      b.Text(absl::StrCat(" ", Strip(m.content), " "));
      b.Eos();
    }
  }
  return std::move(b).Finish();
}

absl::StatusOr<RenderedChat> RenderMistral(std::span<const ChatMessage> messages) {
  std::string system;
  size_t first = 0;
  if (absl::Status s = CheckAlternating(messages, "mistral", &system, &first); !s.ok()) return s;
  const bool has_system = first == 1;
  PieceBuilder b;
  b.Bos();
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == ChatRole::kUser) {
      if (i == first && has_system) {
        b.Text(absl::StrCat("[INST] ", system, "\n\n", m.content, " [/INST]"));
      } else {
        b.Text(absl::StrCat("[INST] ", m.content, " [/INST]"));
      }
    } else {
      b.Text(absl::StrCat(" ", m.content));
      b.Eos();
    }
  }
  return std::move(b).Finish();
}

absl::StatusOr<RenderedChat> RenderZephyr(std::span<const ChatMessage> messages) {
  PieceBuilder b;
  b.Bos();
  for (const ChatMessage& m : messages) {
    b.Text(absl::StrCat("<|", ChatRoleName(m.role), "|>\n", m.content));
    b.Eos();
    b.Text("\n");
  }
  b.Text("<|assistant|>\n");
  return std::move(b).Finish();
}

absl::StatusOr<RenderedChat> RenderChatml(std::span<const ChatMessage> messages) {
  PieceBuilder b;
  b.Bos();
  for (const ChatMessage& m : messages) {
    b.Text(absl::StrCat("<|im_start|>", ChatRoleName(m.role), "\n", m.content, "<|im_end|>\n"));
  }
  b.Text("<|im_start|>assistant\n");
  return std::move(b).Finish();
}

absl::StatusOr<RenderedChat> RenderPlain(std::span<const ChatMessage> messages) {
  PieceBuilder b;
  b.Bos();
  for (const ChatMessage& m : messages) {
    switch (m.role) {
      case ChatRole::kSystem:
        b.Text(absl::StrCat(m.content, "\n\n"));
        break;
      case ChatRole::kUser:
      case ChatRole::kTool:  // not reached: Render() lowers tool results to user messages
        b.Text(absl::StrCat("User: ", m.content, "\n"));
        break;
      case ChatRole::kAssistant:
        b.Text(absl::StrCat("Assistant: ", m.content, "\n"));
        break;
    }
  }
  b.Text("Assistant:");
  return std::move(b).Finish();
}

}  // namespace

const char* ChatRoleName(ChatRole role) {
  switch (role) {
    case ChatRole::kSystem:
      return "system";
    case ChatRole::kUser:
      return "user";
    case ChatRole::kAssistant:
      return "assistant";
    case ChatRole::kTool:
      return "tool";
  }
  return "user";
}

std::string RenderedChat::DebugString() const {
  std::string out;
  for (const PromptPiece& p : pieces) {
    switch (p.kind) {
      case PromptPiece::Kind::kBos:
        out += "<s>";
        break;
      case PromptPiece::Kind::kEos:
        out += "</s>";
        break;
      case PromptPiece::Kind::kText:
        out += p.text;
        break;
    }
  }
  return out;
}

std::vector<std::string> ChatTemplateNames() {
  return {"llama-2", "mistral", "zephyr", "chatml", "plain"};
}

const char* ChatTemplateName(ChatTemplateKind kind) {
  switch (kind) {
    case ChatTemplateKind::kLlama2:
      return "llama-2";
    case ChatTemplateKind::kMistral:
      return "mistral";
    case ChatTemplateKind::kZephyr:
      return "zephyr";
    case ChatTemplateKind::kChatml:
      return "chatml";
    case ChatTemplateKind::kPlain:
      return "plain";
    case ChatTemplateKind::kModel:
      return "model";
  }
  return "plain";
}

ChatTemplateKind DetectChatTemplate(absl::string_view t) {
  if (absl::StrContains(t, "<|im_start|>")) return ChatTemplateKind::kChatml;
  if (absl::StrContains(t, "<<SYS>>")) return ChatTemplateKind::kLlama2;
  if (absl::StrContains(t, "[INST]")) return ChatTemplateKind::kMistral;
  if (absl::StrContains(t, "<|user|>") && absl::StrContains(t, "<|assistant|>") &&
      !absl::StrContains(t, "<|end|>")) {
    return ChatTemplateKind::kZephyr;
  }
  return ChatTemplateKind::kPlain;
}

absl::StatusOr<ChatTemplate> ChatTemplate::ByName(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "llama2") return ChatTemplate(ChatTemplateKind::kLlama2);
  for (ChatTemplateKind k : {ChatTemplateKind::kLlama2, ChatTemplateKind::kMistral,
                             ChatTemplateKind::kZephyr, ChatTemplateKind::kChatml,
                             ChatTemplateKind::kPlain}) {
    if (lower == ChatTemplateName(k)) return ChatTemplate(k);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown chat template '", name,
                                                 "'; expected one of: ",
                                                 absl::StrJoin(ChatTemplateNames(), ", ")));
}

absl::StatusOr<ChatTemplate> ChatTemplate::FromJinja(absl::string_view source, std::string bos_token,
                                                     std::string eos_token) {
  absl::StatusOr<JinjaTemplate> parsed = JinjaTemplate::Parse(source);
  if (!parsed.ok()) return parsed.status();
  ChatTemplate t(ChatTemplateKind::kModel);
  t.jinja_ = std::make_shared<const JinjaTemplate>(*std::move(parsed));
  t.bos_token_ = std::move(bos_token);
  t.eos_token_ = std::move(eos_token);
  t.renders_tools_ = absl::StrContains(source, "tools");
  if (!absl::StrContains(source, "<tool_call>") && absl::StrContains(source, "<|start_header_id|>")) {
    t.tool_format_ = ToolCallFormat::kLlama3Json;
  }
  return t;
}

namespace {

// One message as the model's Jinja template sees it. `native_tools`: the template renders tool
// calls itself, so they go in as {"id", "type", "function": {"name", "arguments": object}}.
nlohmann::ordered_json MessageJson(const ChatMessage& m, bool native_tools, ToolCallFormat format) {
  using OJson = nlohmann::ordered_json;
  const char* role = ChatRoleName(m.role);
  if (m.role == ChatRole::kTool && !native_tools && format == ToolCallFormat::kLlama3Json) role = "ipython";
  OJson j = {{"role", role}, {"content", m.content}};
  if (!native_tools) return j;
  if (!m.tool_calls.empty()) {
    OJson calls = OJson::array();
    for (const ToolCall& c : m.tool_calls) {
      OJson args = OJson::parse(c.arguments, nullptr, /*allow_exceptions=*/false);
      if (args.is_discarded()) args = c.arguments;  // the template writes a string as given
      calls.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", args}}}});
    }
    j["tool_calls"] = std::move(calls);
  }
  if (m.role == ChatRole::kTool && !m.tool_call_id.empty()) j["tool_call_id"] = m.tool_call_id;
  return j;
}

}  // namespace

absl::StatusOr<RenderedChat> ChatTemplate::Render(std::span<const ChatMessage> messages,
                                                  bool add_generation_prompt,
                                                  const nlohmann::ordered_json& extra,
                                                  const nlohmann::ordered_json& tools) const {
  if (messages.empty()) {
    return absl::InvalidArgumentError("messages: at least one message is required");
  }
  const bool has_tools = tools.is_array() && !tools.empty();
  const bool has_tool_parts = std::any_of(messages.begin(), messages.end(), [](const ChatMessage& m) {
    return m.role == ChatRole::kTool || !m.tool_calls.empty();
  });
  if (kind_ == ChatTemplateKind::kModel && renders_tools_) {
    nlohmann::ordered_json vars = extra.is_object() ? extra : nlohmann::ordered_json::object();
    if (has_tools) vars["tools"] = tools;
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const ChatMessage& m : messages) list.push_back(MessageJson(m, /*native_tools=*/true, tool_format_));
    return RenderJinja(list, add_generation_prompt, vars);
  }
  if (has_tools || has_tool_parts) {
    const std::vector<ChatMessage> lowered = LowerToolMessages(messages, tools, tool_format_);
    return RenderLowered(lowered, add_generation_prompt, extra);
  }
  return RenderLowered(messages, add_generation_prompt, extra);
}

absl::StatusOr<RenderedChat> ChatTemplate::RenderLowered(std::span<const ChatMessage> messages,
                                                         bool add_generation_prompt,
                                                         const nlohmann::ordered_json& extra) const {
  switch (kind_) {
    case ChatTemplateKind::kModel: {
      nlohmann::ordered_json list = nlohmann::ordered_json::array();
      for (const ChatMessage& m : messages) list.push_back(MessageJson(m, /*native_tools=*/false, tool_format_));
      return RenderJinja(list, add_generation_prompt, extra);
    }
    case ChatTemplateKind::kLlama2:
      return RenderLlama2(messages);
    case ChatTemplateKind::kMistral:
      return RenderMistral(messages);
    case ChatTemplateKind::kZephyr:
      return RenderZephyr(messages);
    case ChatTemplateKind::kChatml:
      return RenderChatml(messages);
    case ChatTemplateKind::kPlain:
      return RenderPlain(messages);
  }
  return absl::InternalError("unknown chat template kind");
}

absl::StatusOr<RenderedChat> ChatTemplate::RenderJinja(const nlohmann::ordered_json& messages,
                                                       bool add_generation_prompt,
                                                       const nlohmann::ordered_json& vars) const {
  absl::StatusOr<std::string> text =
      RenderChatTemplate(*jinja_, messages, add_generation_prompt, bos_token_, eos_token_, vars);
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("messages: the model's chat template failed: ",
                                                   text.status().message()));
  }
  RenderedChat out;
  out.special_text = true;
  if (!text->empty()) out.pieces.push_back({PromptPiece::Kind::kText, *std::move(text)});
  return out;
}

std::vector<std::string> ChatTemplate::StopStrings() const {
  switch (kind_) {
    case ChatTemplateKind::kChatml:
      return {"<|im_end|>"};
    case ChatTemplateKind::kPlain:
      return {"\nUser:"};
    default:
      return {};
  }
}

}  // namespace tailor::service
