// Choosing a specialization set for a request trace (`tailor plan`): among subsets of a
// candidate grid, each candidate with its step cost model, the set of at most `budget`
// specializations whose simulated serving of the trace (scheduler/trace_simulator.h) has the
// highest throughput.
//
// Objective: total tokens/s of the simulation (for a given trace, the same order as output
// tokens/s: both are fixed token counts over the simulated wall time); within a relative
// `tie_tolerance`, the lower TPOT p99, then fewer specializations, then the candidates' order.
//
// A set can serve the trace when it has a decode specialization (seq_len 1, which the spec
// config requires), a prefill one (seq_len > 1), and a ctx_len covering the longest request.
//
// SearchSpecSet: greedy forward selection from the best pair, then best-improvement local
// search over swaps (a member for a non-member), removals and additions, until no neighbour
// is better or `max_passes` passes. ExhaustiveSpecSet: every servable subset (small grids and
// tests). Both simulate each set once (memoized), on `threads` threads; results do not depend
// on the number of threads.
#ifndef TAILOR_SCHEDULER_SPEC_SET_SEARCH_H_
#define TAILOR_SCHEDULER_SPEC_SET_SEARCH_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/executor.h"
#include "scheduler/trace.h"
#include "scheduler/trace_simulator.h"

namespace tailor {

// A specialization that may be chosen, with what its steps cost on the target machine.
struct SpecCandidate {
  Specialization spec;
  StepCostModel cost;
};

// "b4_s1_c512_ols2": the specialization's name with its -ols (the kernel objects' names).
std::string CandidateName(const Specialization& spec);
// Inverse of CandidateName; "_olsN" may be omitted (ols 1). InvalidArgument naming the text.
absl::StatusOr<Specialization> ParseCandidateName(absl::string_view name);

struct SearchOptions {
  int32_t budget = 6;  // most specializations in a set, >= 2
  SimulationOptions simulation;
  double tie_tolerance = 1e-3;  // relative difference in total tokens/s counted as a tie
  int32_t max_passes = 8;       // local-search passes after the forward selection
  int32_t threads = 1;          // simulations in parallel
};

struct SetResult {
  std::vector<int32_t> members;  // indices into the candidates, ascending
  SimulationResult simulation;
};

struct SearchStats {
  int64_t simulations = 0;  // distinct sets simulated
  int32_t passes = 0;       // local-search passes run
};

// The positions the longest request of `trace` needs (prompt + max_tokens).
int32_t LongestRequest(std::span<const TraceRequest> trace);

// Whether the candidates `members` can serve requests of up to `longest` positions (see above).
bool CanServe(std::span<const SpecCandidate> candidates, std::span<const int32_t> members, int32_t longest);
// Whether no two of `members` have the same shape (a spec config holds a shape once, whatever
// its -ols). Every set the searches consider has distinct shapes and can serve the trace.
bool DistinctShapes(std::span<const SpecCandidate> candidates, std::span<const int32_t> members);

// True when `a` is strictly better than `b` under the objective (members break exact ties).
bool BetterSet(const SetResult& a, const SetResult& b, double tie_tolerance);

// The specializations and cost table of `members`, in that order.
std::vector<Specialization> SpecsOf(std::span<const SpecCandidate> candidates, std::span<const int32_t> members);
CostTable CostsOf(std::span<const SpecCandidate> candidates, std::span<const int32_t> members);

// InvalidArgument when no subset of at most `budget` candidates can serve the trace, or a
// request cannot be served at all (its message from the simulation).
absl::StatusOr<SetResult> SearchSpecSet(std::span<const SpecCandidate> candidates,
                                        std::span<const TraceRequest> trace, const SearchOptions& options,
                                        SearchStats* stats = nullptr);
absl::StatusOr<SetResult> ExhaustiveSpecSet(std::span<const SpecCandidate> candidates,
                                            std::span<const TraceRequest> trace, const SearchOptions& options,
                                            SearchStats* stats = nullptr);

}  // namespace tailor

#endif  // TAILOR_SCHEDULER_SPEC_SET_SEARCH_H_
