// Per-request sampling on top of kernels/sampling.h: penalties, logit bias and user logits
// processors, then temperature / top-k / top-p / min-p sampling with the request's own Rng, and
// the stop conditions (EOS, stop token ids, max_tokens). One RequestSampler per request; it lives
// as long as the request (also across preemption), so a seeded request draws the same random
// numbers whatever else is batched with it. Not thread-safe: used by the step loop only.
#ifndef TAILOR_SCHEDULER_SAMPLER_H_
#define TAILOR_SCHEDULER_SAMPLER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "kernels/sampling.h"
#include "scheduler/request.h"

namespace tailor {

// Modifies one row of logits (vocab_size floats) in place before sampling. `prompt` and
// `generated` are the request's tokens so far. Runs on the step-loop thread.
using LogitsProcessor = std::function<void(std::span<const int32_t> prompt,
                                           std::span<const int32_t> generated, std::span<float> logits)>;

struct SamplingOptions {
  float temperature = 1.0f;  // <= 0: greedy
  float top_p = 1.0f;        // (0, 1]
  int32_t top_k = 0;         // 0: all
  float min_p = 0.0f;        // [0, 1]
  // > 1 discourages every token already in the prompt or the output (as HF / vLLM: a positive
  // logit is divided by it, a negative one multiplied). 1: off.
  float repetition_penalty = 1.0f;
  // OpenAI semantics over the generated tokens: logit -= presence * (count > 0) + frequency * count.
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  // (token id, bias added to its logit), applied through a logits processor.
  std::vector<std::pair<int32_t, float>> logit_bias;
  // Seeds this request's Rng; without one the engine derives a seed from its own and the id.
  std::optional<uint64_t> seed;
  std::vector<int32_t> stop_token_ids;  // finish (kStop) after generating one of these
  // >= 0. 0: generate nothing; the request ends with kLength once its prompt is computed (to
  // score the prompt: see prompt_logprobs).
  int32_t max_tokens = 16;
  bool ignore_eos = false;              // keep going past the engine's EOS ids (benchmarks)
  // No EOS id or stop token id is generated before this many tokens (vLLM's min_tokens): their
  // logits are masked to -inf until then. 0: off; at most max_tokens.
  int32_t min_tokens = 0;
  // -1: no log-probabilities; k >= 0: the chosen token's logprob and the k most likely
  // alternatives. Log-probabilities are of the processed logits (after penalties, bias and
  // processors) at temperature 1, before top-k/top-p/min-p filtering.
  int32_t logprobs = -1;
  // -1: off; k >= 0: score the prompt (for evaluation harnesses: OpenAI's echo + logprobs): each
  // prompt token after the first gets its log-probability under the model's raw logits and the
  // k most likely alternatives (TokenEvent::prompt_logprobs). Such a prompt is computed one
  // token per step and never served from the prefix cache, so it costs a step per token.
  int32_t prompt_logprobs = -1;
  // Run in order after the penalties and the logit bias.
  std::vector<LogitsProcessor> logits_processors;
};

// InvalidArgument naming the field when an option is out of range for `vocab_size`.
absl::Status ValidateSamplingOptions(const SamplingOptions& options, int32_t vocab_size);

struct SampledToken {
  int32_t token = 0;
  std::optional<float> logprob;
  std::vector<TokenLogprob> top_logprobs;
};

// The log-probability of `token` under log_softmax(logits) (float64 accumulation; NaN logits
// count as -inf) and, when k > 0, the k most likely tokens (ties: the lower id first).
// `scratch` is reused between calls.
struct LogprobsResult {
  float logprob = 0.0f;
  std::vector<TokenLogprob> top;
};
LogprobsResult ComputeLogprobs(std::span<const float> logits, int32_t token, int32_t k,
                               std::vector<std::pair<float, int32_t>>& scratch);

class RequestSampler {
 public:
  // `seed` is used when options.seed is unset. `eos_token_ids`: the model's end-of-sequence ids.
  RequestSampler(SamplingOptions options, uint64_t seed, std::vector<int32_t> eos_token_ids);

  // Samples the next token from one row of `logits` (modified in place).
  SampledToken Sample(std::span<float> logits, std::span<const int32_t> prompt,
                      std::span<const int32_t> generated);

  // The finish reason once `token` has been generated as the `num_generated`-th token (1-based),
  // kNone to continue.
  FinishReason CheckFinish(int32_t token, int32_t num_generated) const;

  const SamplingOptions& options() const { return options_; }

 private:
  void ApplyPenalties(std::span<float> logits, std::span<const int32_t> prompt,
                      std::span<const int32_t> generated);

  SamplingOptions options_;
  SamplingParams params_;
  Rng rng_;
  std::vector<int32_t> eos_token_ids_;
  std::vector<LogitsProcessor> processors_;  // logit bias first, then the user's
  std::vector<std::pair<float, int32_t>> scratch_;
  absl::flat_hash_map<int32_t, int32_t> counts_;  // scratch: token -> count in `generated`
};

}  // namespace tailor

#endif  // TAILOR_SCHEDULER_SAMPLER_H_
