// The contract between the scheduler and whatever runs steps: the specialization Runtime
// (engine/) or a fake in tests. Ownership as in DESIGN.md: the executor owns the KV memory
// (a pool of blocks of kv_block_size() positions); the scheduler's KV-cache manager owns the
// bookkeeping. Only block ids cross.
#ifndef TAILOR_ENGINE_EXECUTOR_H_
#define TAILOR_ENGINE_EXECUTOR_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tailor {

using BlockId = int32_t;
using RequestId = int64_t;

struct SpecShape {
  int32_t batch_size = 1;
  int32_t seq_len = 1;  // new tokens per row per step; 1 = decode
  int32_t ctx_len = 1;  // positions a row may reach (cached + new)
  bool operator==(const SpecShape&) const = default;
};

struct Specialization {
  SpecShape shape;
  int32_t ols = 1;  // -ols=N: parallel partitions along output dimensions
  std::string Name() const;  // "b4_s1_c512" (used in metrics labels and tables)
};

// Measured (or estimated) seconds per step of each specialization, indexed like
// specializations(). Immutable once the executor is open.
//
// A step costs more the further its rows are into their context (attention reads every earlier
// position), so a specialization may carry two figures: seconds_per_step with every row at its
// last positions (ending at ctx_len) and seconds_at_start with every row at its first (ending at
// seq_len). A step's cost is interpolated linearly in its largest end position. Without
// seconds_at_start (empty) the cost is seconds_per_step whatever the positions.
struct CostTable {
  std::vector<double> seconds_per_step;
  std::vector<double> seconds_at_start;  // empty, or one entry per specialization
  // Added to every step: work a step costs outside the executor (its caller's planning and
  // sampling), so that splitting work into more steps is charged for. 0 in an executor's table.
  double step_overhead_seconds = 0.0;

  // Seconds of a step of specialization `spec` (shape `shape`) whose rows end by `max_end_pos`.
  double Seconds(int32_t spec, const SpecShape& shape, int32_t max_end_pos) const;
};

// One row of a step: `tokens` are appended at positions start_pos, start_pos+1, ...; the row's
// KV lives in `block_table` (block i holds positions [i*B, (i+1)*B)). Logits are returned for the
// last `logits_to_keep` tokens of the row (0: none, e.g. a prompt chunk that is not the last).
struct StepRow {
  RequestId id = 0;
  std::span<const int32_t> tokens;
  int32_t start_pos = 0;
  std::span<const BlockId> block_table;
  int32_t logits_to_keep = 1;
};

struct StepPlan {
  int32_t spec_index = 0;
  std::vector<StepRow> rows;  // rows.size() <= batch_size of the specialization
};

struct StepOutput {
  // Per row of the plan: logits_to_keep * vocab floats, row-major (oldest kept token first).
  std::vector<std::vector<float>> logits;
};

// What a step needs from a specialization.
struct StepShape {
  int32_t rows = 0;
  int32_t max_tokens_per_row = 0;
  int32_t max_end_pos = 0;  // largest start_pos + tokens over the rows (positions needed)
};

class Executor {
 public:
  virtual ~Executor() = default;
  virtual std::span<const Specialization> specializations() const = 0;
  virtual const CostTable& costs() const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t kv_block_size() const = 0;  // positions per KV block
  virtual int32_t num_kv_blocks() const = 0;  // size of the pool
  // Runs one step. Refuses (InvalidArgument) a plan that does not fit its specialization:
  // too many rows, too many tokens, positions beyond ctx_len, block ids out of range.
  virtual absl::StatusOr<StepOutput> Execute(const StepPlan& plan) = 0;
};

// True when `spec` can run a step of `shape`.
bool Covers(const SpecShape& spec, const StepShape& shape);

// The cheapest specialization covering `shape` (ties: the lower index), or nullopt if none does.
std::optional<int32_t> SelectSpecialization(std::span<const Specialization> specs,
                                            const CostTable& costs, const StepShape& shape);

}  // namespace tailor

#endif  // TAILOR_ENGINE_EXECUTOR_H_
