// Runs one sequence on an Executor, as `tailor generate --package` does: prompts are prefilled
// in chunks on prefill specializations and tokens decoded on decode specializations, choosing
// each step the specialization with the lowest cost per token that fits. The sequence owns
// KV blocks [0, blocks needed) of the executor's pool. Not thread-safe.
#ifndef TAILOR_ENGINE_SEQUENCE_RUNNER_H_
#define TAILOR_ENGINE_SEQUENCE_RUNNER_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/executor.h"

namespace tailor {

class SequenceRunner {
 public:
  explicit SequenceRunner(Executor& executor) : executor_(executor) {}

  // Appends `tokens` to the sequence (several steps if needed) and returns the logits after the
  // last one. Errors if the sequence would exceed the largest ctx_len or the KV pool.
  absl::StatusOr<std::vector<float>> Feed(std::span<const int32_t> tokens);

  int32_t length() const { return length_; }
  // Specialization index of every step run so far.
  const std::vector<int32_t>& steps() const { return steps_; }

 private:
  Executor& executor_;
  int32_t length_ = 0;
  std::vector<BlockId> table_;
  std::vector<int32_t> steps_;
};

// The chunk of `remaining` tokens to run next at position `start`, and the specialization for
// it: the lowest cost per token among the specializations that fit. nullopt if none fits.
struct ChunkChoice {
  int32_t spec_index = 0;
  int32_t tokens = 0;
};
std::optional<ChunkChoice> ChooseChunk(std::span<const Specialization> specs, const CostTable& costs,
                                       int32_t start, int32_t remaining);

}  // namespace tailor

#endif  // TAILOR_ENGINE_SEQUENCE_RUNNER_H_
