// An exhaustive search over the step plans of one scheduling round, for checking the planner
// (scheduler/step_planner.h) against the best plan the same cost table allows.
//
// The space is the planner's: at most one step carries prefill rows (any subset of the prefill
// items that includes the oldest, each with the longest chunk the step's specialization allows,
// and any subset of the decode items in its spare rows); every other decode item runs in some
// decode step, the decode items split into groups in every possible way (not only contiguous
// runs by position, as the planner's dynamic programming does), each group on its cheapest
// covering specialization. The objective is the planner's: seconds (with the table's per-step
// overhead) per useful token. Exponential: for rounds of up to ~12 decode and ~4 prefill items.
#ifndef TAILOR_BENCH_PLANNER_ORACLE_H_
#define TAILOR_BENCH_PLANNER_ORACLE_H_

#include <cstdint>
#include <span>

#include "engine/executor.h"
#include "scheduler/step_planner.h"

namespace tailor::bench {

struct OracleResult {
  double seconds_per_token = 0;  // the best plan's seconds / useful tokens (inf: no plan)
  double seconds = 0;
  int64_t useful_tokens = 0;
};

// The best plan's figures for one round (arguments as PlanRound's). Decode items no
// specialization covers are left out, as the planner leaves them out.
OracleResult OracleRound(std::span<const Specialization> specs, const CostTable& costs,
                         std::span<const PrefillItem> prefill, std::span<const int32_t> decode_starts);

// seconds / useful tokens of a plan PlanRound made (inf for an empty plan).
double SecondsPerToken(const RoundPlan& plan);

}  // namespace tailor::bench

#endif  // TAILOR_BENCH_PLANNER_ORACLE_H_
