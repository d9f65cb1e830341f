// Parsing and validation of OpenAI request bodies for POST /v1/completions and
// POST /v1/chat/completions into plain structs. Pure functions; safe from any thread.
//
// As OpenAI does: unknown fields are ignored; `null` means "not given" for every optional field;
// numbers given as JSON floats with an integral value are accepted where an integer is expected.
// Every error is a 400 ApiError whose `param` names the offending field (e.g. "temperature",
// "messages[1].content", "stream_options.include_usage"); malformed JSON gives code
// "invalid_json" and a message with the line and column.
#ifndef TAILOR_SERVICE_OPENAI_REQUEST_H_
#define TAILOR_SERVICE_OPENAI_REQUEST_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/string_view.h"
#include "service/api_error.h"
#include "service/chat_template.h"

namespace tailor::service {

enum class Endpoint { kCompletions, kChatCompletions };

// One completions prompt: text (the engine prepends BOS when encoding it) or token ids (used as
// given: no BOS is added).
using PromptInput = std::variant<std::string, std::vector<int32_t>>;

// Sampling and stopping, as the engine side needs them. Disabled values are the neutral ones.
struct SamplingParams {
  // Generated-token limit; nullopt = until the context is full (the chat default).
  std::optional<int32_t> max_tokens;
  // True when max_tokens is a default (completions' 16, generation_config's max_new_tokens), not
  // the request's: a default is clamped to the room the context leaves instead of refused.
  bool max_tokens_is_default = false;
  double temperature = 1.0;         // [0, 2]; 0 = greedy
  double top_p = 1.0;               // (0, 1]
  int32_t top_k = 0;                // 0 = disabled (-1 is accepted and stored as 0)
  double min_p = 0.0;               // [0, 1]
  double presence_penalty = 0.0;    // [-2, 2]
  double frequency_penalty = 0.0;   // [-2, 2]
  double repetition_penalty = 1.0;  // (0, 2]; 1 = disabled
  std::optional<int64_t> seed;
  std::vector<std::string> stop;    // <= max_stop non-empty strings (empty strings are dropped)
  std::vector<std::pair<int32_t, double>> logit_bias;  // (token id, bias in [-100, 100]), by id
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;  // vLLM's: finish after generating one of these ids
  int32_t min_tokens = 0;               // vLLM's: no EOS or stop token id before this many tokens
  // Alternatives to report per generated token: nullopt = no logprobs; 0 = only the sampled
  // token's logprob. Completions: `logprobs` (0..5). Chat: `top_logprobs` (0..20) when
  // `logprobs` is true.
  std::optional<int32_t> logprobs;

  bool operator==(const SamplingParams&) const = default;
};

// A constraint on the output's text (structured outputs): OpenAI's `response_format` or vLLM's
// `guided_regex` / `guided_choice` / `guided_json`.
struct StructuredOutput {
  enum class Kind { kNone, kJsonObject, kJsonSchema, kRegex, kChoice };
  Kind kind = Kind::kNone;
  nlohmann::ordered_json schema;     // kJsonSchema: the JSON Schema (an object)
  std::string regex;                 // kRegex
  std::vector<std::string> choices;  // kChoice: >= 1 strings
  // The request field it came from, for errors found when compiling it (e.g. an unsupported
  // schema keyword): "response_format.json_schema.schema", "guided_json", "guided_regex", ...
  std::string param;
  bool operator==(const StructuredOutput&) const = default;
};

// OpenAI's `tool_choice`.
struct ToolChoice {
  enum class Mode { kAuto, kNone, kRequired, kFunction };
  Mode mode = Mode::kAuto;
  std::string function;  // kFunction: the tool's name (one of `tools`)
  bool operator==(const ToolChoice&) const = default;
};

struct OpenAiRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::optional<std::string> model;     // nullopt: use the served model
  std::vector<PromptInput> prompts;     // completions: >= 1 (one per prompt of an array)
  std::vector<ChatMessage> messages;    // chat: >= 1
  // chat: variables for the model's chat template besides the messages (vLLM's field), e.g.
  // {"enable_thinking": false}; null when not given.
  nlohmann::ordered_json chat_template_kwargs;
  SamplingParams sampling;
  // Choices per prompt. For completions, choice index = prompt_index * n + i (as OpenAI).
  int32_t n = 1;
  std::string user;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  // completions: the prompt comes back before the generated text; with `logprobs`, the prompt's
  // tokens come first in the logprobs, scored by the model (the first one's logprob is null).
  // With max_tokens 0 only the prompt comes back (lm-evaluation-harness's loglikelihood).
  bool echo = false;
  StructuredOutput structured;  // both endpoints
  // chat: `tools` as given (an array of {"type": "function", "function": {"name", "description",
  // "parameters"}} objects, checked), or null.
  nlohmann::ordered_json tools;
  ToolChoice tool_choice;           // chat; kAuto when tools are given and it is not
  bool parallel_tool_calls = true;  // chat
};

struct ParseLimits {
  int32_t max_n = 16;  // `n` (choices per prompt): tailor serve --max-n
  // The largest max_tokens / max_completion_tokens a request may ask for (tailor serve
  // --max-tokens-limit): more is a 400 naming the field; a default is clamped to it. nullopt:
  // only the context limits it.
  std::optional<int32_t> max_tokens_limit;
  int32_t max_stop = 4;
  int32_t max_completion_logprobs = 5;  // completions `logprobs`
  int32_t max_top_logprobs = 20;        // chat `top_logprobs`
  int32_t max_prompts = 64;             // completions: prompts in one request
  int32_t default_completion_max_tokens = 16;  // OpenAI's default for /v1/completions
  // generation_config.json's max_new_tokens: the default for both endpoints when set.
  std::optional<int32_t> default_max_tokens;
  int32_t max_json_depth = 64;          // nesting of the body, checked before parsing
  // What a request that omits a sampling field gets: OpenAI's neutral values, or the model's
  // generation_config.json (as vLLM applies it; see SamplingDefaultsFrom in the session).
  double default_temperature = 1.0;
  double default_top_p = 1.0;
  int32_t default_top_k = 0;
  double default_min_p = 0.0;
  double default_repetition_penalty = 1.0;
};

// Parses JSON text (the HTTP body). Never throws.
ApiResult<OpenAiRequest> ParseOpenAiRequest(Endpoint endpoint, absl::string_view body,
                                            const ParseLimits& limits = {});
// The same from an already-parsed JSON value (the batch front end's "body"). Never throws.
ApiResult<OpenAiRequest> ParseOpenAiRequestJson(Endpoint endpoint, const nlohmann::json& body,
                                                const ParseLimits& limits = {});

// POST /tokenize (vLLM's shape): {"prompt": text} or {"messages": [...]}, with
// "add_special_tokens" (default true for a prompt: what a completion prompt gets, e.g. BOS;
// false for messages, whose template writes them) and, for messages, "add_generation_prompt"
// (default true).
struct TokenizeRequest {
  std::optional<std::string> prompt;
  std::vector<ChatMessage> messages;  // when prompt is unset
  nlohmann::ordered_json chat_template_kwargs;  // as in OpenAiRequest
  bool add_special_tokens = true;
  bool add_generation_prompt = true;
};
ApiResult<TokenizeRequest> ParseTokenizeRequest(absl::string_view body, const ParseLimits& limits = {});
// POST /detokenize: {"tokens": [ids]} -> the ids (range-checked against the vocabulary later).
ApiResult<std::vector<int32_t>> ParseDetokenizeRequest(absl::string_view body, const ParseLimits& limits = {});

// Checks what needs the model: token ids in prompts and logit_bias keys must be < vocab_size
// (params "prompt", "logit_bias"). nullopt when fine.
std::optional<ApiError> ValidateForVocabulary(const OpenAiRequest& request, int32_t vocab_size);

// The generated-token limit for one prompt of `prompt_tokens` tokens (BOS included) in a context
// of `context_length` tokens: `max_tokens` if it fits, else a 400 naming `max_tokens`
// ("max_completion_tokens" is reported as "max_tokens"); unset means context_length -
// prompt_tokens, and a default (max_tokens_is_default) is clamped to that room, as vLLM does. A prompt that leaves no room for one token is a 400 naming `prompt_param`
// ("prompt" or "messages").
ApiResult<int32_t> ResolveMaxTokens(const SamplingParams& sampling, int64_t prompt_tokens,
                                    int64_t context_length, absl::string_view prompt_param);

// Human-readable 1-based line and column of byte `offset` in `text` (for JSON error messages).
std::pair<int64_t, int64_t> LineAndColumn(absl::string_view text, size_t offset);

}  // namespace tailor::service

#endif  // TAILOR_SERVICE_OPENAI_REQUEST_H_
