// Tool calls out of model output, in the template's ToolCallFormat (service/chat_template.h):
// whole texts (non-streamed responses) and streamed text (SSE), with the same result for any
// chunking of the text. Not thread-safe (a parser per choice); the free function is pure.
//
// kHermes: a `<tool_call>` block that starts `{"name": "NAME", "arguments": {` is a call whose
// arguments are the text up to the block's last "}" (as written; streamed as it comes, so they
// may be invalid JSON when the model erred, as OpenAI warns); any other block whose JSON is an
// object with a string "name" (and "arguments": an object, or a string holding JSON; absent = {})
// is a call with the arguments re-serialized; text outside the blocks is content. A block that is
// neither stays content, tags and all. An unterminated block at the end (generation cut short) is
// a call if it started as above or its JSON parses, else content.
// kLlama3Json: output that is, after whitespace and an optional "<|python_tag|>", JSON objects
// {"name", "parameters" (or "arguments")} separated by ";" is a list of calls; anything else is
// content.
// Without calls the content is the text unchanged. With calls, whitespace before the first and
// after the last piece of content is dropped (whitespace-only content becomes "": the response's
// content is null then); whitespace between pieces of content is kept. Streamed, whitespace is
// held until non-space content follows, so any chunking gives the same result.
#ifndef TAILOR_SERVICE_TOOL_CALL_PARSER_H_
#define TAILOR_SERVICE_TOOL_CALL_PARSER_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "service/chat_template.h"

namespace tailor::service {

// One piece of a streamed call: the first (`head`) names call `index`, the later ones carry
// pieces of its arguments' JSON text, in order.
struct ToolCallPiece {
  int32_t index = 0;  // the call's position among the output's calls
  bool head = false;
  std::string name;       // head only
  std::string arguments;  // may be empty
  bool operator==(const ToolCallPiece&) const = default;
};

struct ParsedToolOutput {
  std::string content;          // text outside the calls ("" when only whitespace)
  std::vector<ToolCall> calls;  // in order; ids empty (the server assigns them)
};

ParsedToolOutput ParseToolCalls(absl::string_view text, ToolCallFormat format);

// Appends the calls that `pieces` begin, and their arguments, to `calls` (arguments of a piece
// for an earlier call than the last go to the last: pieces arrive in order).
void AppendPieces(const std::vector<ToolCallPiece>& pieces, std::vector<ToolCall>* calls);

class ToolCallStreamParser {
 public:
  explicit ToolCallStreamParser(ToolCallFormat format) : format_(format) {}

  struct Output {
    std::string content;                // content text safe to send now
    std::vector<ToolCallPiece> pieces;  // calls begun and arguments written by this input
  };
  // Text that may still become (part of) a call is held back until it is decided.
  Output Push(absl::string_view text);
  // The end of the output: what is held back, decided.
  Output Finish();
  // Calls reported so far.
  int32_t num_calls() const { return num_calls_; }

 private:
  void EmitContent(absl::string_view text, Output* out);
  Output PushHermes();
  Output PushLlama3(bool finish);
  void AddCall(const ToolCall& call, Output* out);  // a whole call: head + arguments
  // The current call's arguments up to buffer_[end] that were not sent yet.
  void SendArguments(size_t end, Output* out);

  ToolCallFormat format_;
  std::string buffer_;        // undecided text
  bool in_call_ = false;      // kHermes: inside <tool_call>, buffer_ holds the block's body
  std::string pending_space_;  // whitespace content held until non-space content arrives
  bool emitted_ = false;       // some content was sent
  bool llama3_decided_ = false;  // kLlama3Json: the output is known to be content
  // kHermes, inside a call whose head ({"name": NAME, "arguments": ) has been read: its
  // arguments stream as they come, but for a tail that may be the call's closing brace.
  bool streaming_ = false;
  int32_t call_index_ = 0;
  size_t args_start_ = 0;  // offset of the arguments in buffer_
  size_t args_sent_ = 0;   // bytes of them sent
  int32_t num_calls_ = 0;
  bool finished_ = false;
};

}  // namespace tailor::service

#endif  // TAILOR_SERVICE_TOOL_CALL_PARSER_H_
