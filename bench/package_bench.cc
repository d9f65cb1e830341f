// Benchmark of a compiled package against the machine's own ceilings, measured in the same run.
//   build/package_bench --package DIR [--steps N] [--rounds R] [--json FILE] [--profile]
// Per specialization: tokens/s; for decode (seq_len 1) achieved GB/s and the fraction of the
// bandwidth bound; for prefill achieved GFLOP/s and the fraction of the fp32 FMA peak; and the
// speed of generated kernels relative to the native path. A shared machine's speed drifts over
// seconds (other tenants on the memory bus and on the cores' siblings), so the measurement runs
// R rounds (default 3); in each, every specialization is timed right after the ceilings are
// measured again (each the best of several passes), and its fractions are against those
// ceilings: what the machine could do at that moment. Interference only ever adds time, so
// speeds and fractions are the best round's (every round's fractions are in the JSON);
// gen/native is the median, over every turn of every round, of the ratio within a turn.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/machine_ceilings.h"
#include "engine/runtime.h"
#include "nlohmann/json.hpp"

namespace tailor::bench {
namespace {

struct Row {
  std::string name;
  int ols = 1;
  double gen_tokens_per_s = 0, native_tokens_per_s = 0;
  double bytes_per_step = 0, flops_per_step = 0, gen_seconds = 0;
  std::vector<double> ratios;  // native / generated seconds of each turn, every round
  std::vector<double> bw_fractions, peak_fractions;  // per round, against that round's ceilings
};

// Long enough for the other runtime's pool workers to stop spinning (thread_pool.cc spins ~1 ms
// before sleeping): on a machine with as many cores as threads, a spinning worker of the runtime
// not being timed would take a core from the one being timed.
constexpr auto kSettle = std::chrono::milliseconds(4);

// Seconds per step of the generated and the native path, each the fastest of `steps` runs taken
// in turns (each going first every other turn), so that both see the same interference (which
// only ever adds time). Appends each turn's native / generated time to `ratios`: a pair runs
// within milliseconds, so their ratio is robust to drift that spans seconds.
bool TimeSteps(Runtime& gen, Runtime& nat, const StepPlan& plan, int steps, double* tg, double* tn,
               std::vector<double>* ratios) {
  if (!gen.Execute(plan).ok() || !nat.Execute(plan).ok()) return false;  // warm-up
  *tg = *tn = 1e30;
  for (int i = 0; i < steps; ++i) {
    double t[2];
    for (int k = 0; k < 2; ++k) {
      const int which = (i + k) % 2;  // who goes first alternates too
      Runtime& rt = which == 0 ? gen : nat;
      std::this_thread::sleep_for(kSettle);
      const auto t0 = std::chrono::steady_clock::now();
      if (!rt.Execute(plan).ok()) return false;
      t[which] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    *tg = std::min(*tg, t[0]);
    *tn = std::min(*tn, t[1]);
    ratios->push_back(t[1] / t[0]);
  }
  return true;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int Main(int argc, char** argv) {
  std::string package, json_path;
  int steps = 20, rounds = 3;
  bool profile = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--profile") profile = true;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--profile") {
      --i;  // takes no value
      continue;
    }
    if (a == "--package") package = argv[i + 1];
    if (a == "--steps") steps = std::max(1, std::atoi(argv[i + 1]));
    if (a == "--rounds") rounds = std::max(1, std::atoi(argv[i + 1]));
    if (a == "--json") json_path = argv[i + 1];
  }
  if (package.empty()) {
    std::fprintf(stderr, "usage: package_bench --package DIR [--steps N] [--rounds R] [--json FILE] [--profile]\n");
    return 2;
  }
  RuntimeOptions gen_options, native_options;
  // The programs' speed, not the pool's fallback to one thread under contention (which
  // contention_bench measures): with the fallback on, the pauses between timed steps made an idle
  // pool run 10-80% of its jobs on one thread.
  gen_options.threads.adaptive = native_options.threads.adaptive = false;
  native_options.force_native = true;
  auto gen = Runtime::Open(package, gen_options);
  auto nat = Runtime::Open(package, native_options);
  if (!gen.ok() || !nat.ok()) {
    std::fprintf(stderr, "package_bench: %s\n", std::string((gen.ok() ? nat : gen).status().message()).c_str());
    return 2;
  }
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const Package& pkg = (*gen)->package();
  const ModelConfig& c = pkg.config;
  // KV bytes per element, scales included (int8 blocks carry one f32 scale per token and head).
  const double kv_elem = static_cast<double>(kern::KvBlockBytes(KernelType(pkg.kv_dtype), c.n_layers, pkg.kv_block,
                                                                 c.n_kv_heads, c.head_dim)) /
                         (2.0 * c.n_layers * pkg.kv_block * c.kv_dim());

  std::vector<Row> rows;
  std::vector<std::unique_ptr<SyntheticStep>> steps_of;
  for (size_t i = 0; i < (*gen)->specializations().size(); ++i) {
    const Specialization& spec = (*gen)->specializations()[i];
    const SpecShape& s = spec.shape;
    // Full batch, each row ending half-way into its context: a typical step.
    auto step = MakeSyntheticStep(**gen, static_cast<int32_t>(i), s.ctx_len / 2);
    if (!step.ok()) {
      std::fprintf(stderr, "package_bench: %s\n", std::string(step.status().message()).c_str());
      return 1;
    }
    const int32_t start = (*step)->plan.rows[0].start_pos;
    Row row;
    row.name = spec.Name();
    row.ols = spec.ols;
    const Program& prog = (*gen)->program(static_cast<int32_t>(i));
    const double positions = start + s.seq_len;
    row.bytes_per_step = prog.weight_bytes_read + s.batch_size * positions * c.kv_dim() * 2.0 * c.n_layers * kv_elem;
    row.flops_per_step = prog.flops + 4.0 * s.batch_size * s.seq_len * positions * c.q_dim() * c.n_layers;
    rows.push_back(row);
    steps_of.push_back(std::move(*step));
  }
  CeilingMeter meter(threads);
  std::vector<double> read_seen, fma_seen;  // every ceiling measurement
  for (int round = 0; round < rounds; ++round) {
    for (size_t i = 0; i < rows.size(); ++i) {
      const Ceilings now = meter.Measure();
      read_seen.push_back(now.read_gb_per_s);
      fma_seen.push_back(now.fma_gflop_per_s);
      const StepPlan& plan = steps_of[i]->plan;
      double tg, tn;
      if (!TimeSteps(**gen, **nat, plan, steps, &tg, &tn, &rows[i].ratios)) {
        std::fprintf(stderr, "package_bench: %s failed to run\n", rows[i].name.c_str());
        return 1;
      }
      const SpecShape& s = (*gen)->specializations()[i].shape;
      Row& row = rows[i];
      if (row.gen_seconds == 0 || tg < row.gen_seconds) row.gen_seconds = tg;
      row.gen_tokens_per_s = s.batch_size * s.seq_len / row.gen_seconds;
      row.native_tokens_per_s = std::max(row.native_tokens_per_s, s.batch_size * s.seq_len / tn);
      row.bw_fractions.push_back(row.bytes_per_step / tg / 1e9 / now.read_gb_per_s);
      row.peak_fractions.push_back(row.flops_per_step / tg / 1e9 / now.fma_gflop_per_s);
    }
  }

  const auto [read_lo, read_hi] = std::minmax_element(read_seen.begin(), read_seen.end());
  const auto [fma_lo, fma_hi] = std::minmax_element(fma_seen.begin(), fma_seen.end());
  std::printf("machine: %d threads; ceilings before each of %zu timings (%d rounds): read bandwidth %.1f-%.1f GB/s, "
              "fp32 FMA peak %.1f-%.1f GFLOP/s\n",
              threads, read_seen.size(), rounds, *read_lo, *read_hi, *fma_lo, *fma_hi);
  std::printf("package: %s (%s weights, %s KV)\n\n", package.c_str(), DTypeName(pkg.weight_dtype),
              DTypeName(pkg.kv_dtype));
  std::printf("%-16s %4s %12s %10s %9s %10s %9s %10s\n", "specialization", "ols", "tokens/s", "GB/s", "of_bw",
              "GFLOP/s", "of_peak", "gen/native");
  nlohmann::json j = {{"machine", {{"threads", threads}, {"read_gb_per_s", Median(read_seen)},
                                   {"fma_gflop_per_s", Median(fma_seen)}, {"read_gb_per_s_all", read_seen},
                                   {"fma_gflop_per_s_all", fma_seen}}},
                      {"rounds", rounds},
                      {"package", package}, {"specializations", nlohmann::json::array()}};
  for (const Row& r : rows) {
    const double gbs = r.bytes_per_step / r.gen_seconds / 1e9, gfs = r.flops_per_step / r.gen_seconds / 1e9;
    const double of_bw = *std::max_element(r.bw_fractions.begin(), r.bw_fractions.end());
    const double of_peak = *std::max_element(r.peak_fractions.begin(), r.peak_fractions.end());
    std::printf("%-16s %4d %12.1f %10.2f %8.1f%% %10.2f %8.1f%% %10.2f\n", r.name.c_str(), r.ols,
                r.gen_tokens_per_s, gbs, 100 * of_bw, gfs, 100 * of_peak, Median(r.ratios));
    j["specializations"].push_back({{"name", r.name}, {"ols", r.ols}, {"tokens_per_s", r.gen_tokens_per_s},
                                    {"native_tokens_per_s", r.native_tokens_per_s}, {"gb_per_s", gbs},
                                    {"fraction_of_bandwidth", of_bw}, {"fraction_of_bandwidth_rounds", r.bw_fractions},
                                    {"gflop_per_s", gfs}, {"fraction_of_fma_peak", of_peak},
                                    {"fraction_of_fma_peak_rounds", r.peak_fractions},
                                    {"generated_over_native", Median(r.ratios)},
                                    {"generated_over_native_best", r.gen_tokens_per_s / r.native_tokens_per_s}});
  }
  if (profile) {  // where a step's time goes, by op kind (generated kernels, a clock read per op)
    RuntimeOptions po;
    po.threads.adaptive = false;
    po.profile_ops = true;
    auto prof = Runtime::Open(package, po);
    if (!prof.ok()) return 1;
    std::printf("\nshare of a step's time by op kind (--profile):\n");
    for (size_t i = 0; i < rows.size(); ++i) {
      (*prof)->reset_op_seconds();
      for (int step = 0; step < steps; ++step) {
        if (!(*prof)->Execute(steps_of[i]->plan).ok()) return 1;
      }
      const std::vector<double>& sec = (*prof)->op_seconds();
      double total = 0;
      for (double v : sec) total += v;
      std::printf("%-16s", rows[i].name.c_str());
      nlohmann::json kinds = nlohmann::json::object();
      for (int k = 0; k < kern::kNumOpKinds; ++k) {
        if (sec[k] <= 0) continue;
        std::printf(" %s %.1f%%", kern::kOpKinds[k].name, 100 * sec[k] / total);
        kinds[kern::kOpKinds[k].name] = sec[k] / steps;
      }
      std::printf("  (%.3f ms per step)\n", 1e3 * total / steps);
      j["specializations"][i]["op_seconds_per_step"] = kinds;
    }
  }
  if (!json_path.empty()) std::ofstream(json_path) << j.dump(2) << "\n";
  return 0;
}

}  // namespace
}  // namespace tailor::bench

int main(int argc, char** argv) { return tailor::bench::Main(argc, argv); }
