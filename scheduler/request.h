// What a request's stream carries: one TokenEvent per generated token, and a last event with a
// finish reason. Shared by the scheduler (which produces events) and the front ends.
#ifndef TAILOR_SCHEDULER_REQUEST_H_
#define TAILOR_SCHEDULER_REQUEST_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "engine/executor.h"

namespace tailor {

enum class FinishReason {
  kNone,       // not finished: more events follow
  kStop,       // an EOS id (unless ignore_eos) or one of the request's stop_token_ids
  kLength,     // max_tokens generated
  kCancelled,  // Cancel() by the client
  kAborted,    // the engine shut down without draining
  kError,      // the executor failed a step that held this request (see TokenEvent::status)
};

// "stop", "length", "cancelled", "aborted", "error" ("" for kNone).
absl::string_view FinishReasonName(FinishReason reason);

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;  // natural log
};

// One prompt token scored by the model: its log-probability given the tokens before it (under
// the raw logits: no penalties, bias or temperature) and the `prompt_logprobs` most likely
// alternatives at its position, most likely first.
struct PromptTokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;  // natural log
  std::vector<TokenLogprob> top_logprobs;
};

struct TokenEvent {
  RequestId id = 0;
  int32_t token = -1;  // -1: this event carries no token (cancelled, aborted or failed)
  int32_t index = 0;   // 0-based index of `token` among the generated tokens
  // Log-probability of `token`, when the request asked for logprobs (SamplingOptions::logprobs
  // >= 0), and its `logprobs` most likely alternatives, most likely first.
  std::optional<float> logprob;
  std::vector<TokenLogprob> top_logprobs;
  // On the request's first event only, when it asked for prompt log-probabilities
  // (SamplingOptions::prompt_logprobs >= 0): one entry per prompt token after the first (the
  // first has no context to be scored in), in prompt order.
  std::vector<PromptTokenLogprob> prompt_logprobs;
  FinishReason finish = FinishReason::kNone;  // set on the last event of the request
  absl::Status status;                        // not OK only with kError
  // Set on the last event: token counts of the request.
  int32_t num_prompt_tokens = 0;
  int32_t num_generated_tokens = 0;
  int32_t num_cached_prompt_tokens = 0;  // prompt tokens served from the prefix cache at admission
};

// Called on the engine's step-loop thread, never while the engine holds a lock: it may call
// Submit() and Cancel(), but should return quickly (it delays every other request).
using TokenCallback = std::function<void(const TokenEvent&)>;

}  // namespace tailor

#endif  // TAILOR_SCHEDULER_REQUEST_H_
