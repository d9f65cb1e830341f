// The per-round choice of steps and specializations: a pure function of the work offered and
// the cost table, so it can be tested (and reasoned about) without sequences or an executor.
//
// A round advances every running sequence once: each decode item by one token, and at least the
// oldest prefill item by one chunk. The round is split into steps; each step runs one
// specialization on <= batch_size rows, <= seq_len tokens per row, positions < ctx_len.
//
// Policies:
//  - kCostModel (default): minimise the round's seconds per useful token using the measured cost
//    table. Decode items are sorted by the position they need and partitioned into contiguous
//    groups by dynamic programming, each group run on the cheapest specialization that covers it
//    (so decode rows may be split by ctx_len or batch_size when that is cheaper than one padded
//    step). The prefill step is chosen among one candidate per specialization (its rows filled
//    with prefill chunks in order, optionally the spare rows with decode items: "mixed"), each
//    scored as (its cost + the decode partition cost of the decode items left) / useful tokens.
//  - kSmallestFitting: what other engines do: work packed in order into as few steps as
//    possible, each padded to the covering specialization with the smallest volume
//    (batch_size * seq_len * ctx_len). Prefill and decode are not mixed.
//  - kLargest: the same packing, each step on the covering specialization with the largest
//    volume (one static shape where a single specialization covers everything).
#ifndef TAILOR_SCHEDULER_STEP_PLANNER_H_
#define TAILOR_SCHEDULER_STEP_PLANNER_H_

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/executor.h"

namespace tailor {

enum class SchedulePolicy { kCostModel, kSmallestFitting, kLargest };

// Accepts "cost-model" (or "cost"), "smallest" (or "smallest-fitting"), "largest".
absl::StatusOr<SchedulePolicy> ParseSchedulePolicy(absl::string_view name);
absl::string_view SchedulePolicyName(SchedulePolicy policy);

// A sequence that may run 1..max_tokens new tokens from position `start` this round.
struct PrefillItem {
  int32_t start = 0;
  int32_t max_tokens = 1;
};

struct PlannedRow {
  bool decode = false;  // index into the decode list, else into the prefill list
  int32_t index = 0;
  int32_t tokens = 1;
};

struct PlannedStep {
  int32_t spec_index = 0;
  std::vector<PlannedRow> rows;
};

struct RoundPlan {
  std::vector<PlannedStep> steps;  // run in this order (the prefill or mixed step first)
  double seconds = 0.0;            // sum of the steps' costs
  int64_t useful_tokens = 0;       // sum of the rows' tokens
};

// Plans one round. `prefill`: in priority order (oldest first). `decode_starts`: the position of
// each decode item's one token, in priority order. Items no specialization can run are left out
// (the scheduler validates requests so that this does not happen).
RoundPlan PlanRound(std::span<const Specialization> specs, const CostTable& costs, SchedulePolicy policy,
                    std::span<const PrefillItem> prefill, std::span<const int32_t> decode_starts);

}  // namespace tailor

#endif  // TAILOR_SCHEDULER_STEP_PLANNER_H_
