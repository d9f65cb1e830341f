// Replays a request trace (make_trace) through the engine core on a package, once per schedule
// policy, in the same run, and reports throughput, TTFT/TPOT percentiles, padding, prefix-cache
// hit rate and the specializations run, as a table (stdout) and as JSON (--json).
//   build/trace_bench --package DIR --trace FILE [--mode realtime|afap] [--speed X]
//                     [--policies cost-model,smallest,largest] [--repeats R] [--kv-cache-mb N]
//                     [--admission arrival,longest-first] [--max-running N] [--no-prefix-caching]
//                     [--warmup N] [--json FILE]
// realtime: each request is submitted at its arrival time / speed; afap: all at once (a full
// queue: the throughput bound). Every policy runs with every admission order (scheduler.h; a
// longest-first run is labelled POLICY/lf), interleaved R times; each one's figures pool its R
// runs. Every request runs greedily with ignore_eos, so outputs have the trace's lengths.
// Exit codes: 0 done, 2 bad arguments, 1 a replay failed.
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/trace_replay.h"
#include "scheduler/trace_simulator.h"
#include "engine/runtime.h"
#include "nlohmann/json.hpp"
#include "scheduler/trace.h"

namespace tailor::bench {
namespace {

constexpr char kUsage[] =
    "usage: trace_bench --package DIR --trace FILE [--mode realtime|afap (realtime)] [--speed X (1)]\n"
    "                   [--policies cost-model,smallest,largest] [--admission arrival,longest-first (arrival)]\n"
    "                   [--repeats R (1)] [--kv-cache-mb N]\n"
    "                   [--max-running N] [--no-prefix-caching] [--no-learn-costs] [--warmup N (16)]\n"
    "                   [--json FILE] [--simulate]\n";

int Fail(const std::string& message) {
  std::fprintf(stderr, "trace_bench: %s\n%s", message.c_str(), kUsage);
  return 2;
}

// Pools several replays of one policy: requests concatenated, walls and counters added.
ReplayResult Pool(const std::vector<ReplayResult>& runs) {
  ReplayResult all;
  for (const ReplayResult& r : runs) {
    all.requests.insert(all.requests.end(), r.requests.begin(), r.requests.end());
    all.wall_seconds += r.wall_seconds;
    all.cpu_seconds += r.cpu_seconds;
    SchedulerStats& s = all.stats;
    const SchedulerStats& t = r.stats;
    s.num_rounds += t.num_rounds;
    s.num_steps += t.num_steps;
    s.num_preemptions += t.num_preemptions;
    s.useful_tokens += t.useful_tokens;
    s.slot_tokens += t.slot_tokens;
    s.busy_seconds += t.busy_seconds;
    s.kv.prefix_query_tokens += t.kv.prefix_query_tokens;
    s.kv.prefix_hit_tokens += t.kv.prefix_hit_tokens;
    s.steps_per_spec.resize(t.steps_per_spec.size(), 0);
    for (size_t i = 0; i < t.steps_per_spec.size(); ++i) s.steps_per_spec[i] += t.steps_per_spec[i];
  }
  return all;
}

// One configuration to replay: a policy and an admission order.
struct Variant {
  SchedulePolicy policy;
  AdmissionOrder admission;
  std::string label;  // "cost-model", or "cost-model/lf" under longest-first
};

// --simulate: the same policies in virtual time (scheduler/trace_simulator.h) with the
// package's cost table and the measured step overhead of a real replay's order (50 us): what the
// cost model believes each policy costs, free of the machine's noise.
int Simulate(const Runtime& rt, const std::vector<TraceRequest>& trace, const std::vector<Variant>& variants,
             bool realtime) {
  std::printf("%-15s %10s %10s %10s %10s %10s %10s %10s %9s %8s\n", "policy", "virt_s", "out_tok/s", "tot_tok/s",
              "ttft_p50", "ttft_p99", "tpot_p50", "tpot_p99", "padding", "steps");
  double first = 0;
  for (const Variant& v : variants) {
    SimulationOptions o;
    o.realtime = realtime;
    o.policy = v.policy;
    o.admission = v.admission;
    o.kv_block_size = rt.kv_block_size();
    o.num_kv_blocks = rt.num_kv_blocks();
    auto r = SimulateTrace(rt.specializations(), rt.costs(), trace, o);
    if (!r.ok()) return Fail(std::string(r.status().message()));
    if (first == 0) first = r->total_tokens_per_s;
    std::printf("%-15s %10.3f %10.1f %10.1f %8.1fms %8.1fms %8.2fms %8.2fms %8.1f%% %8lld  %.3fx\n",
                v.label.c_str(), r->wall_seconds, r->output_tokens_per_s,
                r->total_tokens_per_s, r->ttft_p50_ms, r->ttft_p99_ms, r->tpot_p50_ms, r->tpot_p99_ms,
                100 * r->padding_fraction, static_cast<long long>(r->steps), r->total_tokens_per_s / first);
    std::printf("  steps per spec:");
    for (size_t i = 0; i < r->steps_per_spec.size(); ++i) {
      std::printf(" %s=%lld", rt.specializations()[i].Name().c_str(), static_cast<long long>(r->steps_per_spec[i]));
    }
    std::printf("\n");
  }
  return 0;
}

int Main(int argc, char** argv) {
  std::string package, trace_path, json_path, mode = "realtime", policies = "cost-model,smallest,largest",
              admissions = "arrival";
  ReplayOptions base;
  RuntimeOptions ro;
  int32_t repeats = 1, warmup = 16;
  bool simulate = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (flag == "--no-prefix-caching") {
      base.enable_prefix_caching = false;
      continue;
    }
    if (flag == "--no-learn-costs") {
      base.learn_costs = false;
      continue;
    }
    if (flag == "--simulate") {
      simulate = true;
      continue;
    }
    if (i + 1 >= argc) return Fail(flag + " needs a value");
    const std::string v = argv[++i];
    bool ok = true;
    if (flag == "--package") {
      package = v;
    } else if (flag == "--trace") {
      trace_path = v;
    } else if (flag == "--json") {
      json_path = v;
    } else if (flag == "--mode") {
      mode = v;
      ok = mode == "realtime" || mode == "afap";
    } else if (flag == "--speed") {
      ok = absl::SimpleAtod(v, &base.speed) && base.speed > 0;
    } else if (flag == "--policies") {
      policies = v;
    } else if (flag == "--admission") {
      admissions = v;
    } else if (flag == "--repeats") {
      ok = absl::SimpleAtoi(v, &repeats) && repeats >= 1;
    } else if (flag == "--kv-cache-mb") {
      ok = absl::SimpleAtoi(v, &ro.kv_cache_mb) && ro.kv_cache_mb >= 0;
    } else if (flag == "--max-running") {
      ok = absl::SimpleAtoi(v, &base.max_running) && base.max_running >= 0;
    } else if (flag == "--warmup") {
      ok = absl::SimpleAtoi(v, &warmup) && warmup >= 0;
    } else {
      return Fail("unknown flag " + flag);
    }
    if (!ok) return Fail(flag + " " + v + ": not a valid value");
  }
  if (package.empty() || trace_path.empty()) return Fail("--package and --trace are required");
  base.realtime = mode == "realtime";
  std::vector<AdmissionOrder> admission_list;
  for (absl::string_view name : absl::StrSplit(admissions, ',')) {
    auto a = ParseAdmissionOrder(name);
    if (!a.ok()) return Fail(std::string(a.status().message()));
    admission_list.push_back(*a);
  }
  std::vector<Variant> variants;
  for (absl::string_view name : absl::StrSplit(policies, ',')) {
    auto p = ParseSchedulePolicy(name);
    if (!p.ok()) return Fail(std::string(p.status().message()));
    for (AdmissionOrder a : admission_list) {
      variants.push_back({*p, a, absl::StrCat(SchedulePolicyName(*p), a == AdmissionOrder::kLongestFirst ? "/lf" : "")});
    }
  }
  auto trace = ReadTraceJsonl(trace_path);
  if (!trace.ok()) return Fail(std::string(trace.status().message()));
  ro.warn = [](const std::string& w) { std::fprintf(stderr, "trace_bench: warning: %s\n", w.c_str()); };
  auto rt = Runtime::Open(package, ro);
  if (!rt.ok()) return Fail(std::string(rt.status().message()));
  base.eos_token_ids = (*rt)->package().config.eos_ids;

  int64_t prompt_tokens = 0, output_tokens = 0;
  for (const TraceRequest& r : *trace) {
    prompt_tokens += static_cast<int64_t>(r.prompt_ids.size());
    output_tokens += r.max_tokens;
  }
  std::printf("package: %s (%zu specializations, %d KV blocks of %d positions)\n", package.c_str(),
              (*rt)->specializations().size(), (*rt)->num_kv_blocks(), (*rt)->kv_block_size());
  std::printf("trace: %s (%zu requests over %.2f s, %lld prompt + %lld output tokens); mode %s, speed %g, "
              "%d repeat(s); %u hardware threads\n",
              trace_path.c_str(), trace->size(), trace->empty() ? 0.0 : trace->back().arrival_s,
              static_cast<long long>(prompt_tokens), static_cast<long long>(output_tokens), mode.c_str(), base.speed,
              repeats, std::thread::hardware_concurrency());
  if (simulate) return Simulate(**rt, *trace, variants, base.realtime);
  std::printf("absolute figures depend on the machine's load; compare policies within this run\n\n");

  if (warmup > 0 && !trace->empty()) {  // pages in weights and kernels, warms the caches
    std::vector<TraceRequest> head(trace->begin(), trace->begin() + std::min<size_t>(warmup, trace->size()));
    ReplayOptions w = base;
    w.realtime = false;
    auto r = ReplayTrace(**rt, head, w);
    if (!r.ok()) return Fail(std::string(r.status().message()));
  }
  std::vector<std::vector<ReplayResult>> runs(variants.size());
  for (int32_t rep = 0; rep < repeats; ++rep) {
    for (size_t p = 0; p < variants.size(); ++p) {
      ReplayOptions o = base;
      o.policy = variants[p].policy;
      o.admission = variants[p].admission;
      auto r = ReplayTrace(**rt, *trace, o);
      if (!r.ok()) {
        std::fprintf(stderr, "trace_bench: %s\n", std::string(r.status().message()).c_str());
        return r.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
      }
      std::fprintf(stderr, "trace_bench: %s run %d: %.3f s\n", variants[p].label.c_str(), rep + 1, r->wall_seconds);
      runs[p].push_back(std::move(*r));
    }
  }
  std::vector<ReplaySummary> summaries;
  for (size_t p = 0; p < variants.size(); ++p) {
    summaries.push_back(Summarize(Pool(runs[p]), variants[p].policy, **rt));
    summaries.back().policy = variants[p].label;
  }
  std::fputs(SummaryTable(summaries).c_str(), stdout);

  if (!json_path.empty()) {
    nlohmann::json specs = nlohmann::json::array();
    for (size_t i = 0; i < (*rt)->specializations().size(); ++i) {
      specs.push_back({{"name", (*rt)->specializations()[i].Name()},
                       {"cost_seconds", (*rt)->costs().FullStep(static_cast<int32_t>(i),
                                                                (*rt)->specializations()[i].shape)}});
    }
    nlohmann::json j = {{"package", package},
                        {"trace", trace_path},
                        {"mode", mode},
                        {"speed", base.speed},
                        {"repeats", repeats},
                        {"hardware_threads", std::thread::hardware_concurrency()},
                        {"requests", trace->size()},
                        {"specializations", specs},
                        {"policies", nlohmann::json::array()}};
    for (size_t p = 0; p < summaries.size(); ++p) {
      nlohmann::json entry = SummaryJson(summaries[p]);
      entry["admission"] = std::string(AdmissionOrderName(variants[p].admission));
      entry["run_wall_seconds"] = nlohmann::json::array();  // each repeat: shows the noise
      for (const ReplayResult& r : runs[p]) entry["run_wall_seconds"].push_back(r.wall_seconds);
      j["policies"].push_back(entry);
    }
    std::ofstream(json_path) << j.dump(2) << "\n";
  }
  for (const ReplaySummary& s : summaries) {
    if (s.failed > 0) return 1;
  }
  return 0;
}

}  // namespace
}  // namespace tailor::bench

int main(int argc, char** argv) { return tailor::bench::Main(argc, argv); }
