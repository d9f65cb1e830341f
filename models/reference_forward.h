// The reference forward pass of the llama family: fp32 activations, float64 accumulation,
// one position at a time. Slow and obviously correct; every optimized path is tested against it.
#ifndef TAILOR_MODELS_REFERENCE_FORWARD_H_
#define TAILOR_MODELS_REFERENCE_FORWARD_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "models/llama_model.h"

namespace tailor {

// Keys and values of one sequence: per layer [length, kv_dim] floats (rope already applied to
// keys). Grows as tokens are appended. Owned by the caller; one per sequence; not thread-safe.
class ReferenceKvCache {
 public:
  explicit ReferenceKvCache(const LlamaConfig& config) : k_(config.n_layers), v_(config.n_layers) {}
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

class ReferenceForward {
 public:
  explicit ReferenceForward(const LlamaModel& model) : model_(model) {}

  // Runs every row (any batch size, any number of new tokens per row) and returns, per row,
  // the logits of each new token: [tokens.size() * vocab_size] floats, row-major.
  // Errors (token id out of range, more positions than the model allows) change no cache.
  absl::StatusOr<std::vector<std::vector<float>>> Run(std::span<const ReferenceRow> rows) const;

 private:
  // Appends one token at position cache->length_ and writes its logits.
  void Step(int32_t token, ReferenceKvCache& cache, float* logits) const;

  const LlamaModel& model_;
};

}  // namespace tailor

#endif  // TAILOR_MODELS_REFERENCE_FORWARD_H_
