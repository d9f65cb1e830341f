// Serving a request trace (scheduler/trace.h) in virtual time: the real Scheduler (continuous
// batching, KV-cache manager with prefix caching, the step planner) over an executor that
// computes nothing. Each step advances a virtual clock by the cost table's modeled seconds of
// that step (StepCostModel over the step's rows and attended positions) plus a fixed per-step
// overhead; the scheduler plans with the same table and overhead. Requests run greedily with
// ignore_eos, so every output has the trace's max_tokens.
//
// Pure and deterministic: no wall clock, no threads, no global state; the same inputs give the
// same figures. Several simulations may run at once on different threads.
//
// What `tailor plan` predicts a specialization set's throughput and latencies with, before
// anything is compiled for it.
#ifndef TAILOR_SCHEDULER_TRACE_SIMULATOR_H_
#define TAILOR_SCHEDULER_TRACE_SIMULATOR_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/executor.h"
#include "scheduler/scheduler.h"
#include "scheduler/step_planner.h"
#include "scheduler/trace.h"

namespace tailor {

struct SimulationOptions {
  // false ("afap"): every request arrives at time 0 (throughput under a full queue); true
  // ("realtime"): each at its arrival_s. Requests that arrive during a round join at the next
  // round, as with the engine core.
  bool realtime = false;
  // Seconds added to the clock per step, and charged per step by the planner (what a step costs
  // outside the executor: planning, sampling, bookkeeping).
  double step_overhead_seconds = 50e-6;
  SchedulePolicy policy = SchedulePolicy::kCostModel;
  AdmissionOrder admission = AdmissionOrder::kArrival;
  int32_t kv_block_size = 16;  // positions per KV block
  // Size of the KV pool in blocks; 0: enough for the largest specialization's full batch (what
  // Runtime allocates without --kv-cache-mb).
  int32_t num_kv_blocks = 0;
  bool enable_prefix_caching = true;
  int32_t max_running = 0;  // 0: the largest batch_size
  // Token ids of the trace must be below it (0: any id >= 0). The simulation renames ids
  // internally (keeping which prompts share which prefixes), so its cost does not grow with the
  // vocabulary.
  int32_t vocab_size = 0;
};

struct SimulationResult {
  int32_t requests = 0;
  // Virtual seconds from time 0 (the trace's start) to the last token.
  double wall_seconds = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0;
  double output_tokens_per_s = 0;  // generated tokens / wall_seconds
  double total_tokens_per_s = 0;   // (prompt + generated tokens) / wall_seconds
  // Time to first token (first token - arrival) and time per output token ((last - first token)
  // / (tokens - 1), requests with >= 2 tokens), nearest-rank percentiles, in milliseconds. A
  // token's time is the end of the round that produced it (when the engine core reports it).
  double ttft_p50_ms = 0, ttft_p99_ms = 0;
  double tpot_p50_ms = 0, tpot_p99_ms = 0;
  double padding_fraction = 0;  // (slot tokens - useful tokens) / slot tokens (SchedulerStats)
  double prefix_hit_rate = 0;   // prefix-cache hit tokens / looked-up tokens
  int64_t rounds = 0, steps = 0, preemptions = 0;
  double busy_seconds = 0;              // modeled seconds of the steps (overhead not included)
  std::vector<int64_t> steps_per_spec;  // indexed like the specializations
  int32_t num_kv_blocks = 0;            // the pool simulated
};

// Simulates `trace` on `specs` with `costs` (indexed like specs; its step_overhead_seconds and
// scale are ignored: options.step_overhead_seconds applies). InvalidArgument for a set that
// cannot run (no specializations, bad sizes, a cost table of another length) or a request it
// can never serve (naming the request's id and why: too long for the largest ctx_len, more KV
// blocks than the pool, a token id outside the vocabulary).
absl::StatusOr<SimulationResult> SimulateTrace(std::span<const Specialization> specs, const CostTable& costs,
                                               std::span<const TraceRequest> trace,
                                               const SimulationOptions& options);

// The KV pool Runtime allocates for `specs` without --kv-cache-mb: the largest batch_size *
// ceil(ctx_len / block_size) over the specializations.
int32_t FullBatchKvBlocks(std::span<const Specialization> specs, int32_t block_size);

}  // namespace tailor

#endif  // TAILOR_SCHEDULER_TRACE_SIMULATOR_H_
