// Chat templates: render an OpenAI-style message list into the prompt a chat model was trained
// on. The model's own template (tokenizer_config.json's Jinja `chat_template`) renders to text
// in which special tokens appear as their text; the built-in presets (--chat-template NAME)
// render to text pieces and BOS/EOS markers.
//
// The model's own template: rendered as transformers' apply_chat_template does (service/
// jinja_template.h), with the model's bos_token/eos_token text; the text is encoded with
// special-token text matched as those tokens and nothing added (RenderedChat::special_text).
//
// Built-in presets:
// Token convention (the one thing callers must follow exactly):
//   - A rendered prompt is a list of pieces. A kBos/kEos piece is the model's BOS/EOS token id;
//     templates never write "<s>" or "</s>" as text. Every rendered prompt starts with kBos, so the
//     caller must NOT prepend another BOS (unlike raw completions prompts, where the engine adds it).
//   - Each kText piece is encoded on its own with the tokenizer's ordinary settings (SentencePiece
//     adds its dummy-prefix space at the start of each piece) and without adding BOS/EOS. This is
//     how the reference implementations tokenize Llama-2 (Meta's generation.py: one encode() per
//     [INST] turn, between BOS and EOS) and Mistral (mistral-common), so those two match exactly.
//   - Text may contain markers such as "<|im_start|>" or "<|user|>"; a tokenizer whose vocabulary
//     has them as added/special tokens should map the exact string to that token, else they are
//     plain text.
// Templates and the functions here are immutable/pure and safe to use from any thread.
#ifndef TAILOR_SERVICE_CHAT_TEMPLATE_H_
#define TAILOR_SERVICE_CHAT_TEMPLATE_H_

#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/jinja_template.h"

namespace tailor::service {

// kTool: a tool's result (OpenAI's role "tool"), answering an assistant message's tool call.
enum class ChatRole { kSystem, kUser, kAssistant, kTool };

const char* ChatRoleName(ChatRole role);  // "system", "user", "assistant", "tool"

// One function call, as an assistant message carries it and as parsed from model output.
struct ToolCall {
  std::string id;         // "call_..." (may be empty in a request's history)
  std::string name;       // the function's name
  std::string arguments;  // JSON text (OpenAI sends and returns the arguments as a string)
  bool operator==(const ToolCall&) const = default;
};

struct ChatMessage {
  ChatMessage() = default;
  ChatMessage(ChatRole r, std::string text) : role(r), content(std::move(text)) {}

  ChatRole role = ChatRole::kUser;
  std::string content;  // UTF-8 ("" for an assistant message with only tool calls)
  std::vector<ToolCall> tool_calls;  // assistant: the calls it made
  std::string tool_call_id;          // tool: the call it answers ("" if not given)
  bool operator==(const ChatMessage&) const = default;
};

// How a model writes a tool call, chosen from its template (ChatTemplate::tool_format()):
//   kHermes:     <tool_call>\n{"name": NAME, "arguments": {...}}\n</tool_call>  (Qwen, Hermes;
//                every built-in preset)
//   kLlama3Json: {"name": NAME, "parameters": {...}}  (Llama 3.x JSON tool calling)
enum class ToolCallFormat { kHermes, kLlama3Json };

struct PromptPiece {
  enum class Kind { kText, kBos, kEos };
  Kind kind = Kind::kText;
  std::string text;  // only for kText; never empty there
  bool operator==(const PromptPiece&) const = default;
};

struct RenderedChat {
  // Presets: starts with kBos; adjacent text is merged into one piece. The model's template: one
  // text piece (none if it rendered nothing).
  std::vector<PromptPiece> pieces;
  // The text holds special tokens as text ("<|im_start|>", "<s>"): encode it with special-token
  // matching and without adding BOS/EOS (the model's own template).
  bool special_text = false;
  // For logs and tests: text with BOS written as "<s>" and EOS as "</s>".
  std::string DebugString() const;
};

// kModel: the model's own Jinja template.
enum class ChatTemplateKind { kPlain, kLlama2, kMistral, kZephyr, kChatml, kModel };

// The names accepted by --chat-template, in this order: llama-2, mistral, zephyr, chatml, plain.
std::vector<std::string> ChatTemplateNames();
const char* ChatTemplateName(ChatTemplateKind kind);  // kModel: "model"

// The family of a Hugging Face jinja `chat_template` (tokenizer_config.json), recognised by its
// markers: "<|im_start|>" -> chatml; "<<SYS>>" -> llama-2; "[INST]" -> mistral; "<|user|>" and
// "<|assistant|>" without "<|end|>" (Phi-3) -> zephyr. Anything else, or empty, -> plain.
ChatTemplateKind DetectChatTemplate(absl::string_view hf_chat_template);

class ChatTemplate {
 public:
  explicit ChatTemplate(ChatTemplateKind kind) : kind_(kind) {}

  // --chat-template NAME (also accepts "llama2"). InvalidArgument listing the valid names.
  static absl::StatusOr<ChatTemplate> ByName(absl::string_view name);
  static ChatTemplate Detect(absl::string_view hf_chat_template) {
    return ChatTemplate(DetectChatTemplate(hf_chat_template));
  }
  // The model's own template. InvalidArgument (line and column) if it does not parse.
  // `bos_token`/`eos_token`: their text, as the template receives them ("" = not passed).
  static absl::StatusOr<ChatTemplate> FromJinja(absl::string_view source, std::string bos_token,
                                                std::string eos_token);

  ChatTemplateKind kind() const { return kind_; }
  const char* name() const { return ChatTemplateName(kind_); }
  // The model's own template renders `tools` itself (its source uses a `tools` variable);
  // otherwise Render() describes the tools in the system message (service/chat_tools.h).
  bool renders_tools() const { return renders_tools_; }
  // How this template's model writes tool calls: kLlama3Json for a Llama 3 template
  // ("<|start_header_id|>") that does not use Hermes tags, else kHermes.
  ToolCallFormat tool_format() const { return tool_format_; }

  // Renders `messages` followed by the assistant generation prompt. InvalidArgument naming the
  // offending index as "messages[i]" for an empty list, or (llama-2, mistral) a system message
  // that is not first, roles that do not alternate user/assistant after the optional system
  // message, or a last message that is not from the user.
  //
  //   llama-2:  <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] ...
  //             (each turn's content is strip()ped, as Meta's template does)
  //   mistral:  <s>[INST] {system}\n\n{user} [/INST] {assistant}</s>[INST] {user} [/INST]
  //   zephyr:   <s><|system|>\n{system}</s>\n<|user|>\n{user}</s>\n<|assistant|>\n
  //   chatml:   <s><|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n
  //   plain:    <s>{system}\n\nUser: {user}\nAssistant: {assistant}\nUser: {user}\nAssistant:
  // The model's own template gets `add_generation_prompt` (presets always add the assistant's
  // turn); what it raises (raise_exception, an undefined callable) is InvalidArgument with the
  // template's message.
  // `extra`: more variables for the model's template (chat_template_kwargs: enable_thinking, ...),
  // an object or null; presets ignore it.
  // `tools`: null or an array of OpenAI tool objects ({"type": "function", "function": {...}}).
  // A template that renders tools gets them as the variable `tools` (as transformers'
  // apply_chat_template passes them) and messages with their `tool_calls` ({"id", "type",
  // "function": {"name", "arguments": object}}) and `tool_call_id`; for any other template the
  // tools are described in the system message and tool calls/results written as text in
  // tool_format() (see service/chat_tools.h).
  absl::StatusOr<RenderedChat> Render(std::span<const ChatMessage> messages, bool add_generation_prompt = true,
                                      const nlohmann::ordered_json& extra = nullptr,
                                      const nlohmann::ordered_json& tools = nullptr) const;

  // Text that ends the assistant's turn besides the EOS token, to pass to the stop-string matcher:
  // chatml {"<|im_end|>"}, plain {"\nUser:"}, others none (their turns end with EOS; the model's
  // own template ends them with its EOS ids).
  std::vector<std::string> StopStrings() const;

 private:
  absl::StatusOr<RenderedChat> RenderLowered(std::span<const ChatMessage> messages, bool add_generation_prompt,
                                             const nlohmann::ordered_json& extra) const;
  // kModel: renders a JSON message list with `vars` (an object or null) besides the messages.
  absl::StatusOr<RenderedChat> RenderJinja(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                           const nlohmann::ordered_json& vars) const;

  ChatTemplateKind kind_;
  bool renders_tools_ = false;
  ToolCallFormat tool_format_ = ToolCallFormat::kHermes;
  std::shared_ptr<const JinjaTemplate> jinja_;  // kModel; immutable, shared by copies
  std::string bos_token_, eos_token_;
};

}  // namespace tailor::service

#endif  // TAILOR_SERVICE_CHAT_TEMPLATE_H_
