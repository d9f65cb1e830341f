#include "bench/trace_replay.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "scheduler/engine_core.h"

namespace tailor::bench {
namespace {

using Clock = std::chrono::steady_clock;

double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec); };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

SamplingOptions SamplingFor(const TraceRequest& r) {
  SamplingOptions o;
  o.temperature = 0.0f;
  o.max_tokens = r.max_tokens;
  o.ignore_eos = true;
  return o;
}

// Written by the engine's loop thread (callbacks), read by the replaying thread after `done`
// reaches the number of requests (under `mu`).
struct Progress {
  std::mutex mu;
  std::condition_variable cv;
  size_t done = 0;
  double last_event_s = 0;
};

}  // namespace

absl::StatusOr<ReplayResult> ReplayTrace(Executor& executor, const std::vector<TraceRequest>& trace,
                                         const ReplayOptions& options) {
  if (!(options.speed > 0)) return absl::InvalidArgumentError(absl::StrCat("speed ", options.speed, ": expected > 0"));
  const RequestLimits limits = LimitsOf(executor);
  for (const TraceRequest& r : trace) {
    if (absl::Status s = ValidateRequest(limits, r.prompt_ids, SamplingFor(r)); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("trace request ", r.id, ": ", s.message()));
    }
  }
  EngineOptions eo;
  eo.scheduler.policy = options.policy;
  eo.scheduler.admission = options.admission;
  eo.scheduler.step_overhead_seconds = -1.0;  // measured, as when serving
  eo.scheduler.max_running = options.max_running;
  eo.scheduler.enable_prefix_caching = options.enable_prefix_caching;
  eo.scheduler.learn_costs = options.learn_costs;
  eo.scheduler.eos_token_ids = options.eos_token_ids;
  auto core = EngineCore::Start(executor, std::move(eo));
  if (!core.ok()) return core.status();

  ReplayResult result;
  result.requests.resize(trace.size());
  Progress progress;
  const double cpu0 = ProcessCpuSeconds();
  const Clock::time_point t0 = Clock::now();
  auto since = [t0] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  for (size_t i = 0; i < trace.size(); ++i) {
    const TraceRequest& r = trace[i];
    if (options.realtime) {
      std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(r.arrival_s / options.speed)));
    }
    RequestTiming& timing = result.requests[i];
    timing.submit_s = since();
    timing.prompt_tokens = static_cast<int32_t>(r.prompt_ids.size());
    auto callback = [&timing, &progress, since](const TokenEvent& e) {
      const double now = since();
      if (e.token >= 0) {
        if (timing.first_token_s < 0) timing.first_token_s = now;
        timing.last_token_s = now;
        ++timing.generated;
      }
      if (e.finish == FinishReason::kNone) return;
      timing.ok = e.finish == FinishReason::kLength || e.finish == FinishReason::kStop;
      timing.cached_prompt_tokens = e.num_cached_prompt_tokens;
      std::lock_guard<std::mutex> lock(progress.mu);
      ++progress.done;
      progress.last_event_s = now;
      progress.cv.notify_all();
    };
    auto id = (*core)->Submit(r.prompt_ids, SamplingFor(r), std::move(callback));
    if (!id.ok()) {
      (*core)->Shutdown(ShutdownMode::kCancel);
      return absl::Status(id.status().code(), absl::StrCat("trace request ", r.id, ": ", id.status().message()));
    }
  }
  {
    std::unique_lock<std::mutex> lock(progress.mu);
    progress.cv.wait(lock, [&] { return progress.done == trace.size(); });
    result.wall_seconds = progress.last_event_s;
  }
  result.cpu_seconds = ProcessCpuSeconds() - cpu0;
  result.stats = (*core)->stats();
  (*core)->Shutdown(ShutdownMode::kDrain);
  return result;
}

ReplaySummary Summarize(const ReplayResult& result, SchedulePolicy policy, const Executor& executor) {
  ReplaySummary s;
  s.policy = std::string(SchedulePolicyName(policy));
  s.requests = static_cast<int32_t>(result.requests.size());
  s.wall_seconds = result.wall_seconds;
  std::vector<double> ttft, tpot;
  for (const RequestTiming& t : result.requests) {
    if (!t.ok) ++s.failed;
    s.prompt_tokens += t.prompt_tokens;
    s.generated_tokens += t.generated;
    if (t.first_token_s >= 0) ttft.push_back(1e3 * (t.first_token_s - t.submit_s));
    if (t.generated >= 2) tpot.push_back(1e3 * (t.last_token_s - t.first_token_s) / (t.generated - 1));
  }
  if (s.wall_seconds > 0) {
    s.output_tokens_per_s = static_cast<double>(s.generated_tokens) / s.wall_seconds;
    s.total_tokens_per_s = static_cast<double>(s.prompt_tokens + s.generated_tokens) / s.wall_seconds;
  }
  s.cpu_seconds = result.cpu_seconds;
  if (s.cpu_seconds > 0) s.output_tokens_per_cpu_s = static_cast<double>(s.generated_tokens) / s.cpu_seconds;
  s.ttft_p50_ms = Percentile(ttft, 50);
  s.ttft_p99_ms = Percentile(ttft, 99);
  s.tpot_p50_ms = Percentile(tpot, 50);
  s.tpot_p99_ms = Percentile(tpot, 99);
  const SchedulerStats& st = result.stats;
  if (st.slot_tokens > 0) {
    s.padding_fraction = static_cast<double>(st.slot_tokens - st.useful_tokens) / static_cast<double>(st.slot_tokens);
  }
  if (st.kv.prefix_query_tokens > 0) {
    s.prefix_hit_rate = static_cast<double>(st.kv.prefix_hit_tokens) / static_cast<double>(st.kv.prefix_query_tokens);
  }
  s.preemptions = st.num_preemptions;
  s.steps = st.num_steps;
  s.rounds = st.num_rounds;
  s.modeled_busy_seconds = st.busy_seconds;
  const auto specs = executor.specializations();
  for (size_t i = 0; i < specs.size() && i < st.steps_per_spec.size(); ++i) {
    s.steps_per_spec.emplace_back(specs[i].Name(), st.steps_per_spec[i]);
  }
  return s;
}

std::string SummaryTable(const std::vector<ReplaySummary>& summaries) {
  std::string out = absl::StrFormat("%-12s %8s %9s %9s %9s %9s %9s %9s %9s %8s %8s %7s %7s %7s %7s\n", "policy",
                                    "wall_s", "out_tok/s", "tot_tok/s", "tok/cpu_s", "ttft_p50", "ttft_p99",
                                    "tpot_p50", "tpot_p99", "padding", "prefix", "preempt", "steps", "vs_1st",
                                    "cpu_vs");
  for (const ReplaySummary& s : summaries) {
    // Ratios to the first policy: by wall time and by CPU time.
    const double base = summaries.front().output_tokens_per_s;
    const double cpu_base = summaries.front().output_tokens_per_cpu_s;
    absl::StrAppend(&out, absl::StrFormat("%-12s %8.3f %9.1f %9.1f %9.1f %7.1fms %7.1fms %7.3fms %7.3fms %7.1f%% "
                                          "%7.1f%% %7lld %7lld %6.2fx %6.2fx\n",
                                          s.policy, s.wall_seconds, s.output_tokens_per_s, s.total_tokens_per_s,
                                          s.output_tokens_per_cpu_s, s.ttft_p50_ms, s.ttft_p99_ms, s.tpot_p50_ms,
                                          s.tpot_p99_ms, 100 * s.padding_fraction, 100 * s.prefix_hit_rate,
                                          static_cast<long long>(s.preemptions), static_cast<long long>(s.steps),
                                          base > 0 ? s.output_tokens_per_s / base : 0.0,
                                          cpu_base > 0 ? s.output_tokens_per_cpu_s / cpu_base : 0.0));
    if (s.failed > 0) absl::StrAppend(&out, "  ", s.failed, " requests failed\n");
  }
  if (summaries.empty()) return out;
  absl::StrAppend(&out, "\nsteps per specialization\n", absl::StrFormat("%-16s", "specialization"));
  for (const ReplaySummary& s : summaries) absl::StrAppend(&out, absl::StrFormat(" %12s", s.policy));
  absl::StrAppend(&out, "\n");
  for (size_t i = 0; i < summaries.front().steps_per_spec.size(); ++i) {
    absl::StrAppend(&out, absl::StrFormat("%-16s", summaries.front().steps_per_spec[i].first));
    for (const ReplaySummary& s : summaries) {
      absl::StrAppend(&out, absl::StrFormat(" %12lld", static_cast<long long>(s.steps_per_spec[i].second)));
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

nlohmann::json SummaryJson(const ReplaySummary& s) {
  nlohmann::json spec = nlohmann::json::object();
  for (const auto& [name, n] : s.steps_per_spec) spec[name] = n;
  return {{"policy", s.policy},
          {"requests", s.requests},
          {"failed", s.failed},
          {"wall_seconds", s.wall_seconds},
          {"prompt_tokens", s.prompt_tokens},
          {"generated_tokens", s.generated_tokens},
          {"output_tokens_per_s", s.output_tokens_per_s},
          {"total_tokens_per_s", s.total_tokens_per_s},
          {"cpu_seconds", s.cpu_seconds},
          {"output_tokens_per_cpu_s", s.output_tokens_per_cpu_s},
          {"ttft_ms", {{"p50", s.ttft_p50_ms}, {"p99", s.ttft_p99_ms}}},
          {"tpot_ms", {{"p50", s.tpot_p50_ms}, {"p99", s.tpot_p99_ms}}},
          {"padding_fraction", s.padding_fraction},
          {"prefix_hit_rate", s.prefix_hit_rate},
          {"preemptions", s.preemptions},
          {"steps", s.steps},
          {"rounds", s.rounds},
          {"modeled_busy_seconds", s.modeled_busy_seconds},
          {"steps_per_specialization", spec}};
}

}  // namespace tailor::bench
