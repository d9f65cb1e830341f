// Token sampling from one row of logits: greedy, temperature, top-k, top-p (nucleus), min-p.
// Deterministic for a given Rng state: the same seed gives the same tokens on every machine.
#ifndef TAILOR_KERNELS_SAMPLING_H_
#define TAILOR_KERNELS_SAMPLING_H_

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace tailor {

struct SamplingParams {
  float temperature = 1.0f;  // <= 0: greedy (argmax, lowest id on ties)
  float top_p = 1.0f;        // keep the smallest set of most likely tokens with mass >= top_p
  int32_t top_k = 0;         // keep the k most likely tokens; 0: all
  float min_p = 0.0f;        // drop tokens with probability < min_p * p(most likely)
};

// splitmix64-seeded xoshiro256**: small, fast, and identical on every platform.
// One per request; not thread-safe.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t Next();
  double Uniform();  // in [0, 1), 53 random bits

 private:
  uint64_t s_[4];
};

// Index of the largest value (lowest index on ties).
int32_t Argmax(std::span<const float> logits);

// Samples one token id. `scratch` is reused between calls to avoid allocation.
// Consumes exactly one Uniform() draw unless greedy: the inverse CDF of the softmax at
// temperature over the candidates (finite logits) after top-k, min-p (relative to the most
// likely) and top-p (of what min-p kept), walked by id, or by logit once top-k or top-p sorted
// them. NaN and -inf logits are never drawn.
int32_t SampleToken(std::span<const float> logits, const SamplingParams& params, Rng& rng,
                    std::vector<std::pair<float, int32_t>>& scratch);

}  // namespace tailor

#endif  // TAILOR_KERNELS_SAMPLING_H_
