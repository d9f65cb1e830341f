// Builders for OpenAI response bodies: non-streamed `text_completion` and `chat.completion`
// objects, streamed chunks as server-sent events, logprobs in both APIs' shapes, usage, and the
// model list. Pure functions over plain structs; safe from any thread.
//
// JSON values are nlohmann::ordered_json so fields appear in OpenAI's order. Serialize with
// DumpJson()/SseData(), which never throw (bytes that are not UTF-8, e.g. a token that is part of
// a multi-byte character, become U+FFFD in strings; chat logprobs also carry the exact "bytes").
//
// Streaming protocol (the HTTP layer follows it):
//   completions: for each piece of text, CompletionChunk(..) with finish_reason unset; then one
//     chunk per choice with its finish_reason (text may be empty); then, if include_usage,
//     UsageChunk(..); then SseDone().
//   chat: first ChatChunk with delta {role: "assistant", content: ""} per choice; then content
//     deltas; then a chunk with an empty delta and the finish_reason; then UsageChunk if
//     include_usage; then SseDone(). With include_usage every chunk before the last carries
//     "usage": null, as OpenAI documents.
#ifndef TAILOR_SERVICE_OPENAI_RESPONSE_H_
#define TAILOR_SERVICE_OPENAI_RESPONSE_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/string_view.h"
#include "service/openai_request.h"

namespace tailor::service {

using ResponseJson = nlohmann::ordered_json;

// kToolCalls: chat, the model called tools (message.tool_calls / delta.tool_calls).
enum class FinishReason { kStop, kLength, kToolCalls };
const char* FinishReasonName(FinishReason reason);  // "stop", "length", "tool_calls"

struct TopLogprob {
  std::string token;  // the token's text (raw bytes)
  double logprob = 0;
};

// One generated token with its log probability and the most likely alternatives at its position
// (most likely first; as many as requested, or fewer).
struct TokenLogprob {
  std::string token;  // the token's text (raw bytes; may be part of a UTF-8 character)
  double logprob = 0;
  std::vector<TopLogprob> top;
  // The first token of an echoed prompt: nothing precedes it, so its "token_logprobs" and
  // "top_logprobs" entries are null (completions only).
  bool unscored = false;
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

// Shared by every object and chunk of one response.
struct ResponseMeta {
  std::string id;       // e.g. MakeResponseId("cmpl", ...) or ("chatcmpl", ...)
  int64_t created = 0;  // Unix seconds; the same in every chunk
  std::string model;
};

// "{prefix}-{32 hex digits}" from two caller-supplied random words (no global RNG here).
std::string MakeResponseId(absl::string_view prefix, uint64_t hi, uint64_t lo);

// {"prompt_tokens", "completion_tokens", "total_tokens"}.
ResponseJson UsageJson(const Usage& usage);

// Completions logprobs: {"tokens": [...], "token_logprobs": [...], "top_logprobs": [{token:
// logprob, ...}, ...], "text_offset": [...]}. Each top_logprobs map holds the alternatives plus
// the sampled token (so up to logprobs+1 entries, as OpenAI); if two alternatives decode to the
// same text, the first is kept. text_offset counts characters (code points) from
// `initial_text_offset` (0 for the start of a choice's text; in a stream, the characters already
// sent for that choice).
ResponseJson CompletionLogprobsJson(std::span<const TokenLogprob> tokens,
                                    int64_t initial_text_offset);
// Chat logprobs: {"content": [{"token", "logprob", "bytes": [...], "top_logprobs": [{"token",
// "logprob", "bytes"}, ...]}, ...], "refusal": null}.
ResponseJson ChatLogprobsJson(std::span<const TokenLogprob> tokens);

struct CompletionChoice {
  int32_t index = 0;
  std::string text;
  FinishReason finish_reason = FinishReason::kStop;
  std::optional<std::vector<TokenLogprob>> logprobs;  // nullopt: "logprobs": null
};

struct ChatChoice {
  int32_t index = 0;
  std::string content;  // "content": null when empty and there are tool calls
  FinishReason finish_reason = FinishReason::kStop;
  std::optional<std::vector<TokenLogprob>> logprobs;  // nullopt: "logprobs": null
  std::vector<ToolCall> tool_calls;  // "tool_calls": [{"id", "type": "function", "function": {"name", "arguments"}}]
};

// {"id", "object": "text_completion", "created", "model", "choices": [{"text", "index",
// "logprobs", "finish_reason"}], "usage"}.
ResponseJson CompletionResponse(const ResponseMeta& meta, std::span<const CompletionChoice> choices,
                                const Usage& usage);
// {"id", "object": "chat.completion", "created", "model", "choices": [{"index", "message":
// {"role": "assistant", "content", "tool_calls" (only when there are calls)}, "logprobs",
// "finish_reason"}], "usage"}.
ResponseJson ChatCompletionResponse(const ResponseMeta& meta, std::span<const ChatChoice> choices,
                                    const Usage& usage);

// One streamed completions chunk for choice `index`: {"id", "object": "text_completion",
// "created", "model", "choices": [{"text", "index", "logprobs", "finish_reason"}]} (+ "usage":
// null when include_usage). `logprobs` non-null -> CompletionLogprobsJson(*logprobs,
// text_offset).
ResponseJson CompletionChunk(const ResponseMeta& meta, int32_t index, absl::string_view text,
                             std::optional<FinishReason> finish_reason,
                             const std::vector<TokenLogprob>* logprobs, int64_t text_offset,
                             bool include_usage);

// One piece of a streamed tool call: the first of a call carries its id and name (and
// "arguments": ""), the later ones pieces of the arguments' JSON text.
struct ToolCallDelta {
  int32_t index = 0;  // the call's position among the choice's calls
  std::optional<std::string> id;    // with "type": "function"
  std::optional<std::string> name;
  std::string arguments;
};

struct ChatDelta {
  bool role = false;                   // include "role": "assistant" (the first chunk)
  std::optional<std::string> content;  // include "content"
  std::vector<ToolCallDelta> tool_calls;  // include "tool_calls" when not empty
};
// One streamed chat chunk: {"id", "object": "chat.completion.chunk", "created", "model",
// "choices": [{"index", "delta", "logprobs", "finish_reason"}]} (+ "usage": null when
// include_usage). `logprobs` non-null -> ChatLogprobsJson(*logprobs).
ResponseJson ChatChunk(const ResponseMeta& meta, int32_t index, const ChatDelta& delta,
                       std::optional<FinishReason> finish_reason,
                       const std::vector<TokenLogprob>* logprobs, bool include_usage);

// The final usage chunk: the endpoint's chunk object with "choices": [] and "usage".
ResponseJson UsageChunk(const ResponseMeta& meta, Endpoint endpoint, const Usage& usage);

// GET /v1/models: {"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}.
ResponseJson ModelList(absl::string_view model_id, int64_t created,
                       absl::string_view owned_by = "tailor");

// Compact serialization; never throws.
std::string DumpJson(const ResponseJson& value);
// "data: {json}\n\n".
std::string SseData(const ResponseJson& value);
// "data: [DONE]\n\n".
std::string SseDone();

}  // namespace tailor::service

#endif  // TAILOR_SERVICE_OPENAI_RESPONSE_H_
