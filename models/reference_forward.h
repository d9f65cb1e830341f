// The reference forward pass of every family: the family's graph (models/family.h) run one
// token at a time with fp32 activations and float64 accumulation (kernels/reference_kernels.h),
// in the source's own weight layout. Slow and obviously correct; every optimized path is tested
// against it.
#ifndef TAILOR_MODELS_REFERENCE_FORWARD_H_
#define TAILOR_MODELS_REFERENCE_FORWARD_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "models/model.h"

namespace tailor {

// Keys and values of one sequence: per layer [length, kv_dim] floats (rope already applied to
// keys). Grows as tokens are appended. Owned by the caller; one per sequence; not thread-safe.
class ReferenceKvCache {
 public:
  explicit ReferenceKvCache(const ModelConfig& config) : k_(config.n_layers), v_(config.n_layers) {}
  int32_t length() const { return length_; }
  void Clear();

 private:
  friend class ReferenceForward;
  std::vector<std::vector<float>> k_, v_;
  int32_t length_ = 0;
};

// One row of a batch: new tokens appended to `cache` at positions cache->length() onwards.
struct ReferenceRow {
  ReferenceKvCache* cache = nullptr;
  std::span<const int32_t> tokens;
};

// Holds a reference to the model, which must outlive it. Run is const and keeps no state of
// its own, so one ReferenceForward may serve several threads with separate caches.
class ReferenceForward {
 public:
  // Records the family's graph for the model's configuration.
  explicit ReferenceForward(const Model& model);

  // Runs every row (any batch size, any number of new tokens per row) and returns, per row,
  // the logits of each new token: [tokens.size() * vocab_size] floats, row-major.
  // Errors (token id out of range, more positions than the model allows) change no cache.
  absl::StatusOr<std::vector<std::vector<float>>> Run(std::span<const ReferenceRow> rows) const;

  // One recorded op of the graph (see GraphBuilder).
  struct Op {
    enum class Kind { kEmbed, kRmsNorm, kHeadRmsNorm, kMatMul, kAddBias, kRope, kAttention, kAdd, kSwiGlu, kLastTokens };
    Kind kind;
    int32_t a = -1, b = -1, c = -1;  // value ids: operands, then the result (for Attention: q, k, v)
    int32_t out = -1;                // the value written (a new one, or an operand in place)
    int32_t tensor = -1;             // index into model.weights
    int32_t layer = -1;
  };

 private:
  // Appends one token at position cache->length_ and writes its logits.
  void Step(int32_t token, ReferenceKvCache& cache, float* logits) const;

  const Model& model_;
  std::vector<double> inv_freq_;  // rotary frequencies, head_dim / 2
  std::vector<Op> ops_;
  std::vector<int32_t> widths_;  // per value id
  int32_t logits_ = -1;          // value id of the output
};

}  // namespace tailor

#endif  // TAILOR_MODELS_REFERENCE_FORWARD_H_
