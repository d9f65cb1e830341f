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

// What a step asks of a specialization.
struct StepShape {
  int32_t rows = 0;
  int32_t max_tokens_per_row = 0;
  int32_t max_end_pos = 0;  // largest start_pos + tokens over the rows (positions needed)
  // KV positions attention reads: the sum over the rows' new tokens of (position + 1). 0: not
  // given (then taken as rows * max_tokens_per_row * max_end_pos, an upper bound).
  int64_t attended = 0;
  int64_t Attended() const;
};

// The attended positions of `rows` rows of `tokens` new tokens each, ending at `end`.
int64_t AttendedPositions(int32_t rows, int32_t tokens, int32_t end);

// Seconds of one step of a specialization, linear in what the step does:
//   fixed + per_row * rows used + per_position * attended positions.
// Matmuls run every row of the batch (padding included), so their time is in `fixed`; attention
// reads each row's KV up to its position, so it grows with the attended positions and skips
// unused rows; `per_row` holds what else a used row costs (RoPE, KV writes, logits).
struct StepCostModel {
  double fixed_seconds = 0;
  double per_row_seconds = 0;
  double per_position_seconds = 0;
  double Seconds(int32_t rows, int64_t attended) const {
    return fixed_seconds + per_row_seconds * rows + per_position_seconds * static_cast<double>(attended);
  }
  // The model through two figures of a full batch: `full` with every row ending at ctx_len and
  // `at_start` (0: not known; then the cost is `full` whatever the positions) ending at seq_len.
  static StepCostModel FromEnds(const SpecShape& shape, double full, double at_start);
};

// The executor's cost model per specialization (indexed like specializations()), as measured
// when the package was compiled, and the run time's corrections. An executor's table is
// immutable once open; the scheduler keeps a copy that it corrects from the step times it
// observes (`scale`, a robust running ratio of measured to modeled seconds).
struct CostTable {
  std::vector<StepCostModel> models;
  std::vector<double> scale;  // empty, or one factor per specialization (1: as modeled)
  // Added to every step: work a step costs outside the executor (its caller's planning and
  // sampling), so that splitting work into more steps is charged for. 0 in an executor's table.
  double step_overhead_seconds = 0.0;

  // A table whose costs do not depend on positions or rows (tests, --cost-table).
  static CostTable Fixed(std::vector<double> seconds);

  // The model's seconds of a step of `spec`, without correction or overhead.
  double Modeled(int32_t spec, const StepShape& shape) const {
    return models[spec].Seconds(shape.rows, shape.Attended());
  }
  // What the planner charges: the modeled seconds times the correction, plus the overhead.
  double Seconds(int32_t spec, const StepShape& shape) const {
    return Modeled(spec, shape) * (scale.empty() ? 1.0 : scale[spec]) + step_overhead_seconds;
  }
  // The modeled seconds of a full batch of `shape` with every row ending at ctx_len (the figure
  // a package lists as cost_seconds and /metrics reports).
  double FullStep(int32_t spec, const SpecShape& shape) const;
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
