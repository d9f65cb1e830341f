// Replays a request trace (scheduler/trace.h) through the engine core on an executor and summarises
// what a serving benchmark reports: throughput, TTFT and TPOT percentiles, padding, prefix-cache
// hit rate, and how often each specialization ran.
#ifndef TAILOR_BENCH_TRACE_REPLAY_H_
#define TAILOR_BENCH_TRACE_REPLAY_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/executor.h"
#include "nlohmann/json.hpp"
#include "scheduler/scheduler.h"
#include "scheduler/trace.h"

namespace tailor::bench {

struct ReplayOptions {
  SchedulePolicy policy = SchedulePolicy::kCostModel;
  AdmissionOrder admission = AdmissionOrder::kArrival;
  // True: each request is submitted at its arrival time (divided by `speed`); false: all are
  // submitted at once (as fast as possible: throughput under a full queue).
  bool realtime = true;
  double speed = 1.0;
  std::vector<int32_t> eos_token_ids;  // ignored anyway: requests run with ignore_eos
  int32_t max_running = 0;             // 0: the largest batch_size
  bool enable_prefix_caching = true;
  bool learn_costs = true;  // as when serving: the cost table corrected from observed step times
};

// Times in seconds from the start of the replay (steady clock).
struct RequestTiming {
  double submit_s = 0, first_token_s = -1, last_token_s = -1;
  int32_t prompt_tokens = 0;
  int32_t generated = 0;
  int32_t cached_prompt_tokens = 0;
  bool ok = false;  // finished by length or stop, not by an error
};

struct ReplayResult {
  std::vector<RequestTiming> requests;  // like the trace
  double wall_seconds = 0;              // first submission to last event
  // CPU seconds the process used meanwhile (all threads): on a shared machine, less sensitive
  // to other load than wall time, as long as the executor does not spin on idle cores.
  double cpu_seconds = 0;
  SchedulerStats stats;                 // after the last request finished
};

// Runs every request of `trace` greedily with ignore_eos (so outputs have the trace's lengths)
// on a fresh EngineCore over `executor` (which must not be in use elsewhere), and waits for all.
// InvalidArgument when a request cannot run on the executor (it names the request).
absl::StatusOr<ReplayResult> ReplayTrace(Executor& executor, const std::vector<TraceRequest>& trace,
                                         const ReplayOptions& options);

// The figures of one replay.
struct ReplaySummary {
  std::string policy;
  int32_t requests = 0, failed = 0;
  double wall_seconds = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0;
  double output_tokens_per_s = 0;  // generated tokens / wall seconds
  double total_tokens_per_s = 0;   // (prompt + generated tokens) / wall seconds
  double cpu_seconds = 0;
  double output_tokens_per_cpu_s = 0;  // generated tokens / CPU seconds
  double ttft_p50_ms = 0, ttft_p99_ms = 0;  // first token - submission
  double tpot_p50_ms = 0, tpot_p99_ms = 0;  // (last - first token) / (tokens - 1), requests with >= 2
  double padding_fraction = 0;  // (slot tokens - useful tokens) / slot tokens
  double prefix_hit_rate = 0;   // prefix-cache hit tokens / looked-up tokens
  int64_t preemptions = 0, steps = 0, rounds = 0;
  double modeled_busy_seconds = 0;  // the cost table's seconds of the steps run
  std::vector<std::pair<std::string, int64_t>> steps_per_spec;  // spec name, steps
};

ReplaySummary Summarize(const ReplayResult& result, SchedulePolicy policy, const Executor& executor);

// A fixed-width table of the summaries (one row per policy) and the specialization counts.
std::string SummaryTable(const std::vector<ReplaySummary>& summaries);
nlohmann::json SummaryJson(const ReplaySummary& summary);

}  // namespace tailor::bench

#endif  // TAILOR_BENCH_TRACE_REPLAY_H_
