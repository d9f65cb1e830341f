// `tailor plan --model M --trace T.jsonl [--budget N] [--kv-cache-mb X] [--ctx-max C] --out specs.json`:
// proposes the specialization set (at most N specializations, each with its -ols) that
// maximizes the trace's simulated throughput, and writes it in the specialization config format
// that `tailor compile --specializations` reads.
//
//  1. The trace is read and checked (ids in the model's vocabulary, every request within
//     --ctx-max, itself within the model's positions) before anything is measured.
//  2. Candidates: --candidates, else the entries of --costs, else a grid (decode batch 1, 2, 4,
//     8, 16; prefill seq_len 16, 32, 64, 128 at batch 1, 2, 4; ctx_len C and C/2; -ols 1 and 2),
//     plus the shapes of the baseline set (configs/default-specializations.json), their ctx_len
//     clamped to C.
//  3. Costs: --costs FILE, else measured on this machine (api/plan_costs.h: native target,
//     cached on disk).
//  4. Search (scheduler/spec_set_search.h) with the trace simulator (the real Scheduler and step
//     planner in virtual time), on the first --search-requests requests; the chosen set and the
//     baseline are then simulated on the whole trace and printed side by side (stdout).
// Bad input (exit 2, nothing written): a missing or malformed trace, --budget < 2, a request
// longer than --ctx-max, --ctx-max beyond the model, unknown candidates, costs missing for one.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <thread>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "api/commands.h"
#include "api/flags.h"
#include "api/plan_costs.h"
#include "common/status_macros.h"
#include "engine/ops.h"
#include "engine/spec_config.h"
#include "kernels/cpu_ops.h"
#include "models/model_loader.h"
#include "scheduler/spec_set_search.h"
#include "scheduler/trace.h"
#include "scheduler/trace_simulator.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;

constexpr char kUsage[] =
    "usage: tailor plan --model M --trace T.jsonl [--budget N] [--kv-cache-mb X] [--ctx-max C] --out specs.json "
    "[options]\n";

const std::vector<FlagSpec>& PlanFlags() {
  static const auto* specs = new std::vector<FlagSpec>{
      {"model", true, {"m"}, "HF directory, .gguf file or llama2.c .bin (measured; its positions and vocabulary)"},
      {"tokenizer", true, {}, "tokenizer to use instead of the model's (only to load the model)"},
      {"trace", true, {}, "request trace, JSONL (build/make_trace writes one)"},
      {"out", true, {}, "the specialization config to write (JSON, for tailor compile --specializations)"},
      {"budget", true, {}, "most specializations in the set, >= 2 (default 6)"},
      {"kv-cache-mb", true, {}, "KV pool as tailor serve --kv-cache-mb (default 0: the largest full batch)"},
      {"ctx-max", true, {}, "ctx_len of the candidates (default: the longest request rounded up to 64, at most the model's positions)"},
      {"costs", true, {}, "inject costs instead of measuring: JSON {\"b4_s1_c512_ols1\": {\"fixed_seconds\", \"per_row_seconds\", \"per_position_seconds\"}, ...}"},
      {"candidates", true, {}, "candidate names (b4_s1_c512_ols2,...) or a specialization config file (.json)"},
      {"baseline", true, {}, "the set to compare with (default: configs/default-specializations.json)"},
      {"mode", true, {}, "afap (default: every request at time 0) or realtime (arrival times)"},
      {"step-overhead-us", true, {}, "simulated seconds per step outside the executor, in microseconds (default 50)"},
      {"search-requests", true, {}, "simulate the first N requests while searching (default 200; 0: all)"},
      {"threads", true, {}, "simulations in parallel (default: the hardware threads)"},
      {"cache-dir", true, {}, "where measured costs are kept (default $XDG_CACHE_HOME/tailor or ~/.cache/tailor)"},
      {"remeasure", false, {}, "measure every candidate again (replacing cached costs)"},
      {"repeats", true, {}, "timed runs per measured point, the fastest kept (default 3)"},
      {"max-point-seconds", true, {}, "stop repeating a measured point after two runs and this much timing (default 1; 0: never)"},
      {"share-ctx-costs", false, {}, "time only a shape's largest ctx_len, the smaller ones taking its costs (faster, less exact)"},
      {"dtype", true, {}, "weights when measuring: f32, f16, bf16, q8_0 or q4 (default: as tailor compile without --dtype)"},
      {"kv-dtype", true, {}, "KV cache element when measuring: f32 (default), f16, bf16 or int8"},
      {"kv-block", true, {}, "positions per KV block (default 16)"},
      {"help", false, {"h"}, "this help"},
  };
  return *specs;
}

absl::Status Usage(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(what, "\n", kUsage, FlagsHelp(PlanFlags())));
}

// Shapes in a fixed order: decode first, then by seq_len, batch_size, ctx_len and -ols.
bool ShapeLess(const Specialization& a, const Specialization& b) {
  const SpecShape &x = a.shape, &y = b.shape;
  return std::tie(x.seq_len, x.batch_size, x.ctx_len, a.ols) < std::tie(y.seq_len, y.batch_size, y.ctx_len, b.ols);
}

std::vector<Specialization> DefaultGrid(int32_t ctx) {
  std::vector<int32_t> ctxs = {ctx};
  if (ctx / 2 >= 64) ctxs.push_back(ctx / 2);
  std::vector<Specialization> out;
  for (int32_t c : ctxs) {
    for (int32_t ols : {1, 2}) {
      for (int32_t b : {1, 2, 4, 8, 16}) out.push_back(Specialization{SpecShape{b, 1, c}, ols});
      for (int32_t s : {16, 32, 64, 128}) {
        if (s > c) continue;
        for (int32_t b : {1, 2, 4}) out.push_back(Specialization{SpecShape{b, s, c}, ols});
      }
    }
  }
  return out;
}

// --candidates: names separated by commas, or a specialization config file.
absl::StatusOr<std::vector<Specialization>> ParseCandidates(const std::string& value, int32_t max_positions) {
  if (absl::EndsWith(value, ".json")) {
    auto specs = LoadSpecConfig(value, max_positions);
    if (!specs.ok()) return absl::InvalidArgumentError(absl::StrCat("--candidates: ", specs.status().message()));
    return *specs;
  }
  std::vector<Specialization> out;
  for (absl::string_view name : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
    auto s = ParseCandidateName(absl::StripAsciiWhitespace(name));
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("--candidates: ", s.status().message()));
    if (s->shape.ctx_len > max_positions) {
      return absl::InvalidArgumentError(absl::StrCat("--candidates: ", CandidateName(*s), " has ctx_len ",
                                                     s->shape.ctx_len, ", beyond the model's ", max_positions,
                                                     " positions"));
    }
    out.push_back(*s);
  }
  if (out.empty()) return absl::InvalidArgumentError("--candidates: no candidate named");
  return out;
}

// The baseline set with ctx_len clamped to `ctx` (notes say what changed).
struct Baseline {
  std::string source;
  std::vector<Specialization> specs;
  std::vector<std::string> notes;
  std::string missing;  // why it is not simulated ("" when it is)
};

Baseline LoadBaseline(const std::string& path, int32_t ctx) {
  Baseline b;
  b.source = path;
  auto specs = LoadSpecConfig(path, INT32_MAX);
  if (!specs.ok()) {
    b.missing = std::string(specs.status().message());
    return b;
  }
  for (Specialization s : *specs) {
    const std::string name = CandidateName(s);
    if (s.shape.ctx_len > ctx) {
      if (s.shape.seq_len > ctx) {
        b.notes.push_back(absl::StrCat(name, " skipped (seq_len above ctx_len ", ctx, ")"));
        continue;
      }
      s.shape.ctx_len = ctx;
      b.notes.push_back(absl::StrCat(name, " clamped to ctx_len ", ctx));
    }
    const bool dup = std::any_of(b.specs.begin(), b.specs.end(), [&](const Specialization& t) {
      return t.shape == s.shape && t.ols == s.ols;
    });
    if (dup) {
      b.notes.push_back(absl::StrCat(name, " merged with ", CandidateName(s), " (the same after clamping)"));
      continue;
    }
    b.specs.push_back(s);
  }
  return b;
}

std::string SpecsJson(const std::vector<Specialization>& specs) {
  std::string out = "{\n  \"specializations\": [\n";
  for (size_t i = 0; i < specs.size(); ++i) {
    const Specialization& s = specs[i];
    absl::StrAppend(&out, absl::StrFormat(
                              "    { \"batch_size\": \"%d\", \"seq_len\": \"%d\", \"ctx_len\": \"%d\", "
                              "\"compile_opts\": \"-ols=%d\" }%s\n",
                              s.shape.batch_size, s.shape.seq_len, s.shape.ctx_len, s.ols,
                              i + 1 < specs.size() ? "," : ""));
  }
  absl::StrAppend(&out, "  ]\n}\n");
  return out;
}

std::string ResultRow(absl::string_view label, size_t n_specs, const SimulationResult& r) {
  return absl::StrFormat("%-9s %5d %10.1f %10.1f %8.1f%% %10.2f %10.2f %9.3f %9.3f %7d\n", label, n_specs,
                         r.output_tokens_per_s, r.total_tokens_per_s, 100 * r.padding_fraction, r.ttft_p50_ms,
                         r.ttft_p99_ms, r.tpot_p50_ms, r.tpot_p99_ms, r.steps);
}

std::string SetLines(const std::vector<Specialization>& specs, const CostTable& costs, const SimulationResult& r) {
  std::string out;
  for (size_t i = 0; i < specs.size(); ++i) {
    const int32_t k = static_cast<int32_t>(i);
    absl::StrAppend(&out, absl::StrFormat("  %-16s -ols=%-3d %8.3f ms per full step %9d steps\n", specs[i].Name(),
                                          specs[i].ols, 1e3 * costs.FullStep(k, specs[i].shape),
                                          i < r.steps_per_spec.size() ? r.steps_per_spec[i] : 0));
  }
  return out;
}

absl::StatusOr<DType> WeightDType(const std::string& v) {
  auto t = ParseDType(v);
  if (!t || !(*t == DType::kF32 || *t == DType::kF16 || *t == DType::kBF16 || *t == DType::kQ8 || *t == DType::kQ4)) {
    return absl::InvalidArgumentError(absl::StrCat("--dtype: '", v, "' (expected f32, f16, bf16, q8_0 or q4)"));
  }
  return *t;
}

absl::StatusOr<DType> KvDType(const std::string& v) {
  auto t = ParseDType(v);
  if (!t || !(*t == DType::kF32 || *t == DType::kF16 || *t == DType::kBF16 || *t == DType::kI8)) {
    return absl::InvalidArgumentError(absl::StrCat("--kv-dtype: '", v, "' (expected f32, f16, bf16 or int8)"));
  }
  return *t;
}

// The command's settings, from its flags.
struct PlanSettings {
  std::string model, trace, costs, candidates, baseline;  // "" when not given (baseline: default)
  std::optional<std::string> tokenizer;
  fs::path out;
  int32_t budget = 6;
  int64_t kv_cache_mb = 0;
  std::optional<int32_t> ctx_max;
  std::string mode = "afap";
  double overhead_us = 50;
  int64_t search_requests = 200;
  int32_t threads = 1;
  CostMeasureOptions measure;
};

absl::StatusOr<PlanSettings> ParsePlanFlags(const ParsedFlags& f, const Environment& env) {
  if (!f.positional().empty()) return Usage(absl::StrCat("unexpected argument '", f.positional()[0], "'"));
  for (const char* required : {"model", "trace", "out"}) {
    if (!f.Has(required)) return Usage(absl::StrCat("plan needs --", required));
  }
  PlanSettings p;
  p.model = *f.Get("model");
  p.trace = *f.Get("trace");
  p.out = *f.Get("out");
  p.costs = f.Get("costs").value_or("");
  p.candidates = f.Get("candidates").value_or("");
  p.baseline = f.Get("baseline").value_or("");
  p.tokenizer = f.Get("tokenizer");
  TAILOR_ASSIGN_OR_RETURN(int64_t budget, f.GetInt("budget", 6, INT32_MIN, INT32_MAX));
  if (budget < 2 || budget > 64) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--budget ", budget, ": expected 2 to 64 specializations (a set needs a decode and a prefill one)"));
  }
  p.budget = static_cast<int32_t>(budget);
  TAILOR_ASSIGN_OR_RETURN(p.kv_cache_mb, f.GetInt("kv-cache-mb", 0, 0, int64_t{1} << 30));
  if (f.Has("ctx-max")) {
    TAILOR_ASSIGN_OR_RETURN(int64_t c, f.GetInt("ctx-max", 0, 1, INT32_MAX));
    p.ctx_max = static_cast<int32_t>(c);
  }
  p.mode = f.Get("mode").value_or("afap");
  if (p.mode != "afap" && p.mode != "realtime") {
    return absl::InvalidArgumentError(absl::StrCat("--mode: '", p.mode, "' (expected afap or realtime)"));
  }
  TAILOR_ASSIGN_OR_RETURN(p.overhead_us, f.GetDouble("step-overhead-us", 50, 0, 1e7));
  TAILOR_ASSIGN_OR_RETURN(p.search_requests, f.GetInt("search-requests", 200, 0, INT32_MAX));
  const int64_t hw = std::max(1u, std::thread::hardware_concurrency());
  TAILOR_ASSIGN_OR_RETURN(int64_t threads, f.GetInt("threads", hw, 1, 1024));
  p.threads = static_cast<int32_t>(threads);
  CostMeasureOptions& mo = p.measure;
  TAILOR_ASSIGN_OR_RETURN(int64_t repeats, f.GetInt("repeats", 3, 1, 1000));
  mo.repeats = static_cast<int>(repeats);
  TAILOR_ASSIGN_OR_RETURN(mo.max_point_seconds, f.GetDouble("max-point-seconds", 1.0, 0, 1e6));
  mo.share_across_ctx = f.Has("share-ctx-costs");
  TAILOR_ASSIGN_OR_RETURN(int64_t kv_block, f.GetInt("kv-block", 16, 1, 4096));
  mo.kv_block = static_cast<int32_t>(kv_block);
  if (f.Has("dtype")) {
    TAILOR_ASSIGN_OR_RETURN(mo.weight_dtype, WeightDType(*f.Get("dtype")));
    mo.keep_source_formats = false;
    mo.weights_label = DTypeName(mo.weight_dtype);
  }
  TAILOR_ASSIGN_OR_RETURN(mo.kv_dtype, KvDType(f.Get("kv-dtype").value_or("f32")));
  mo.remeasure = f.Has("remeasure");
  mo.cache_dir = f.Get("cache-dir").value_or(env.cache_dir);
  mo.progress = [](const std::string& line) { std::cerr << "plan: " << line << "\n"; };
  mo.warn = [](const std::string& line) { std::cerr << "plan: warning: " << line << "\n"; };
  return p;
}

// What the command needs to know of the trace, checked against the model.
struct TraceFacts {
  int64_t prompt_tokens = 0, output_tokens = 0;
  int32_t longest = 0;      // positions of the longest request (prompt + max_tokens)
  int64_t longest_id = 0;   // its id
  int32_t ctx = 0;          // the candidates' ctx_len (--ctx-max or the default)
};

absl::StatusOr<TraceFacts> CheckTrace(const std::vector<TraceRequest>& trace, const PlanSettings& p,
                                      const ModelConfig& config) {
  if (trace.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the trace ", p.trace, " has no requests (expected JSONL lines of {\"arrival_s\", "
                     "\"prompt_ids\", \"max_tokens\"})"));
  }
  TraceFacts t;
  const TraceRequest* longest = &trace[0];
  for (const TraceRequest& r : trace) {
    for (size_t k = 0; k < r.prompt_ids.size(); ++k) {
      if (r.prompt_ids[k] < 0 || r.prompt_ids[k] >= config.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("the trace ", p.trace, ": request ", r.id, " has token id ",
                                                       r.prompt_ids[k], " at prompt position ", k,
                                                       ", outside the model's vocabulary [0, ", config.vocab_size, ")"));
      }
    }
    t.prompt_tokens += static_cast<int64_t>(r.prompt_ids.size());
    t.output_tokens += r.max_tokens;
    if (r.prompt_ids.size() + r.max_tokens > longest->prompt_ids.size() + longest->max_tokens) longest = &r;
  }
  t.longest = LongestRequest(trace);
  t.longest_id = longest->id;
  auto too_long = [&](absl::string_view limit) {
    return absl::InvalidArgumentError(absl::StrCat("the trace ", p.trace, ": request ", longest->id, " needs ",
                                                   t.longest, " positions (prompt ", longest->prompt_ids.size(),
                                                   " + max_tokens ", longest->max_tokens, "), more than ", limit));
  };
  if (p.ctx_max) {
    if (*p.ctx_max > config.max_positions) {
      return absl::InvalidArgumentError(absl::StrCat("--ctx-max ", *p.ctx_max, " is beyond the model's ",
                                                     config.max_positions, " positions"));
    }
    if (t.longest > *p.ctx_max) {
      return too_long(absl::StrCat("--ctx-max ", *p.ctx_max, ": raise --ctx-max or shorten the request"));
    }
    t.ctx = *p.ctx_max;
  } else {
    if (t.longest > config.max_positions) return too_long(absl::StrCat("the model's ", config.max_positions, " positions"));
    t.ctx = std::min((t.longest + 63) / 64 * 64, config.max_positions);
  }
  return t;
}

// The candidate shapes (sorted, unique; the baseline's among them when it can be costed), the
// baseline, and the injected costs (--costs) if any.
struct CandidateSet {
  std::vector<Specialization> specs;
  Baseline baseline;
  std::optional<std::map<std::string, StepCostModel>> injected;
};

absl::StatusOr<CandidateSet> ChooseCandidates(const PlanSettings& p, const TraceFacts& t, int32_t max_positions) {
  CandidateSet c;
  if (!p.costs.empty()) {
    TAILOR_ASSIGN_OR_RETURN(auto costs, ReadInjectedCosts(p.costs));
    c.injected = std::move(costs);
  }
  if (!p.candidates.empty()) {
    TAILOR_ASSIGN_OR_RETURN(c.specs, ParseCandidates(p.candidates, max_positions));
  } else if (c.injected) {
    for (const auto& [name, cost] : *c.injected) {
      Specialization s = *ParseCandidateName(name);
      if (s.shape.ctx_len > max_positions) {
        p.measure.warn(absl::StrCat("--costs: ", name, " is beyond the model's ", max_positions, " positions; left out"));
        continue;
      }
      c.specs.push_back(s);
    }
  } else {
    c.specs = DefaultGrid(t.ctx);
  }
  c.baseline = LoadBaseline(p.baseline.empty() ? std::string(TAILOR_DEFAULT_SPECIALIZATIONS) : p.baseline, t.ctx);
  for (const Specialization& s : c.baseline.specs) {
    if (c.injected && !c.injected->contains(CandidateName(s))) {
      c.baseline.missing = absl::StrCat("no cost for ", CandidateName(s), " in ", p.costs);
      break;
    }
  }
  if (c.baseline.missing.empty()) c.specs.insert(c.specs.end(), c.baseline.specs.begin(), c.baseline.specs.end());
  std::sort(c.specs.begin(), c.specs.end(), ShapeLess);
  c.specs.erase(std::unique(c.specs.begin(), c.specs.end(),
                            [](const Specialization& a, const Specialization& b) {
                              return a.shape == b.shape && a.ols == b.ols;
                            }),
                c.specs.end());
  // Refused before anything is measured: a grid that cannot serve the trace.
  std::vector<SpecCandidate> shapes;
  std::vector<int32_t> all;
  for (const Specialization& s : c.specs) {
    all.push_back(static_cast<int32_t>(shapes.size()));
    shapes.push_back(SpecCandidate{s, {}});
  }
  if (!CanServe(shapes, all, t.longest)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the candidates cannot serve the trace: a set needs a decode candidate (seq_len 1), a prefill candidate "
        "(seq_len > 1) and a ctx_len of at least ", t.longest, " (request ", t.longest_id, ")"));
  }
  return c;
}

// The KV pool of --kv-cache-mb in blocks (0: each set's largest full batch); it must hold the
// longest request.
absl::StatusOr<int32_t> KvPoolBlocks(const PlanSettings& p, const TraceFacts& t, const ModelConfig& config) {
  if (p.kv_cache_mb == 0) return 0;
  const int32_t B = p.measure.kv_block;
  const int64_t block_bytes =
      kern::KvBlockBytes(KernelType(p.measure.kv_dtype), config.n_layers, B, config.n_kv_heads, config.head_dim);
  const int64_t blocks = (p.kv_cache_mb << 20) / block_bytes;
  const int64_t needed = (t.longest + B - 1) / B;
  if (blocks < needed) {
    return absl::InvalidArgumentError(absl::StrCat("--kv-cache-mb ", p.kv_cache_mb, " holds ", blocks,
                                                   " KV blocks of ", B, " positions (", block_bytes,
                                                   " bytes each): request ", t.longest_id, " of the trace needs ",
                                                   needed));
  }
  return static_cast<int32_t>(std::min<int64_t>(blocks, INT32_MAX / 2));
}

// The candidates' costs: injected, or measured (cached); `line` says which.
absl::StatusOr<std::vector<StepCostModel>> CandidateCosts(const PlanSettings& p, const CandidateSet& c,
                                                          const Model& model, std::string* line) {
  std::vector<StepCostModel> models;
  if (c.injected) {
    for (const Specialization& s : c.specs) {
      auto it = c.injected->find(CandidateName(s));
      if (it == c.injected->end()) {
        return absl::InvalidArgumentError(absl::StrCat("--costs ", p.costs, " has no cost for candidate ",
                                                       CandidateName(s), " (every candidate needs one)"));
      }
      models.push_back(it->second);
    }
    *line = absl::StrCat("injected from ", p.costs);
    return models;
  }
  CostMeasureReport report;
  TAILOR_ASSIGN_OR_RETURN(models, MeasuredCosts(model, c.specs, p.measure, &report));
  *line = absl::StrFormat("measured on the native path on %s (%d cached, %d measured now in %.1f s, %d from a "
                          "larger ctx_len%s)",
                          report.cpu, report.cached, report.measured, report.measure_seconds, report.derived,
                          report.cache_file.empty() ? "; no cache" : absl::StrCat("; cache ", report.cache_file.string()));
  return models;
}

// A set and its simulation of the whole trace.
struct SimulatedSet {
  std::vector<Specialization> specs;
  CostTable costs;
  SimulationResult result;
};

std::string Report(const PlanSettings& p, const TraceFacts& t, const std::string& model_name, size_t requests,
                   const std::string& cost_line, const std::string& search_line, const SimulatedSet& planned,
                   const Baseline& baseline, const std::optional<SimulatedSet>& base) {
  const std::string label = p.baseline.empty() ? "default" : "baseline";
  std::string r = absl::StrFormat(
      "trace: %s, %d requests (%d prompt + %d output tokens; the longest needs %d positions); %s\n", p.trace,
      requests, t.prompt_tokens, t.output_tokens, t.longest, p.mode);
  absl::StrAppend(&r, absl::StrFormat("model: %s; ctx_len %d; budget %d; KV pool: %s (blocks of %d positions); step "
                                      "overhead %g us\n",
                                      model_name, t.ctx, p.budget,
                                      p.kv_cache_mb > 0 ? absl::StrCat(p.kv_cache_mb, " MiB")
                                                        : std::string("each set's largest full batch"),
                                      p.measure.kv_block, p.overhead_us));
  absl::StrAppend(&r, "costs: ", cost_line, "\n", "search: ", search_line, "\n\n");
  absl::StrAppend(&r, absl::StrFormat("%-9s %5s %10s %10s %9s %10s %10s %9s %9s %7s\n", "set", "specs", "out_tok/s",
                                      "tot_tok/s", "padding", "ttft_p50ms", "ttft_p99ms", "tpot_p50ms", "tpot_p99ms",
                                      "steps"));
  absl::StrAppend(&r, ResultRow("planned", planned.specs.size(), planned.result));
  if (base) {
    const SimulationResult &a = planned.result, &b = base->result;
    absl::StrAppend(&r, ResultRow(label, base->specs.size(), b));
    absl::StrAppend(&r, absl::StrFormat("planned / %s: %.2fx total tokens/s, %.2fx TPOT p99, %.2fx TTFT p99\n", label,
                                        a.total_tokens_per_s / std::max(1e-12, b.total_tokens_per_s),
                                        a.tpot_p99_ms / std::max(1e-12, b.tpot_p99_ms),
                                        a.ttft_p99_ms / std::max(1e-12, b.ttft_p99_ms)));
  } else {
    absl::StrAppend(&r, absl::StrFormat("%-9s not simulated: %s\n", label, baseline.missing));
  }
  absl::StrAppend(&r, "\nplanned set (written to ", p.out.string(), "):\n",
                  SetLines(planned.specs, planned.costs, planned.result));
  absl::StrAppend(&r, label, " set (", baseline.source, baseline.notes.empty() ? "" : "; ",
                  absl::StrJoin(baseline.notes, "; "), "):\n");
  if (base) absl::StrAppend(&r, SetLines(base->specs, base->costs, base->result));
  return r;
}

absl::Status Plan(const std::vector<std::string>& args, const Environment& env) {
  TAILOR_ASSIGN_OR_RETURN(ParsedFlags f, ParseFlags(PlanFlags(), args));
  if (f.Has("help")) {
    std::cout << kUsage << FlagsHelp(PlanFlags());
    return absl::OkStatus();
  }
  TAILOR_ASSIGN_OR_RETURN(const PlanSettings p, ParsePlanFlags(f, env));

  // 1-2. Everything checked before anything is measured: trace, model, candidates, KV pool.
  TAILOR_ASSIGN_OR_RETURN(const std::vector<TraceRequest> trace, ReadTraceJsonl(p.trace));
  LoadOptions lo;
  lo.tokenizer = p.tokenizer;
  TAILOR_ASSIGN_OR_RETURN(auto model, LoadModel(p.model, lo));
  TAILOR_ASSIGN_OR_RETURN(const TraceFacts t, CheckTrace(trace, p, model->config));
  TAILOR_ASSIGN_OR_RETURN(CandidateSet c, ChooseCandidates(p, t, model->config.max_positions));
  TAILOR_ASSIGN_OR_RETURN(const int32_t kv_blocks, KvPoolBlocks(p, t, model->config));

  // 3. Costs.
  std::string cost_line;
  TAILOR_ASSIGN_OR_RETURN(const std::vector<StepCostModel> models, CandidateCosts(p, c, *model, &cost_line));
  std::vector<SpecCandidate> grid;
  for (size_t i = 0; i < c.specs.size(); ++i) grid.push_back(SpecCandidate{c.specs[i], models[i]});

  // 4. Search on the first requests, then the chosen set and the baseline on the whole trace.
  SearchOptions so;
  so.budget = p.budget;
  so.threads = p.threads;
  so.simulation.realtime = p.mode == "realtime";
  so.simulation.step_overhead_seconds = p.overhead_us * 1e-6;
  so.simulation.kv_block_size = p.measure.kv_block;
  so.simulation.vocab_size = model->config.vocab_size;
  so.simulation.num_kv_blocks = kv_blocks;
  const size_t n_search =
      p.search_requests > 0 ? std::min<size_t>(trace.size(), static_cast<size_t>(p.search_requests)) : trace.size();
  const auto t0 = std::chrono::steady_clock::now();
  SearchStats stats;
  TAILOR_ASSIGN_OR_RETURN(const SetResult found,
                          SearchSpecSet(grid, std::span<const TraceRequest>(trace.data(), n_search), so, &stats));
  const std::string search_line = absl::StrFormat(
      "%d candidates, greedy forward selection and %d local-search moves, %d simulations of the first %d requests "
      "(%.2f s, %d threads)",
      grid.size(), stats.passes, stats.simulations, n_search,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), p.threads);
  SimulatedSet planned{SpecsOf(grid, found.members), CostsOf(grid, found.members), {}};
  TAILOR_ASSIGN_OR_RETURN(planned.result, SimulateTrace(planned.specs, planned.costs, trace, so.simulation));
  std::optional<SimulatedSet> base;
  if (c.baseline.missing.empty()) {
    SimulatedSet b{c.baseline.specs, {}, {}};
    for (const Specialization& s : b.specs) {
      for (const SpecCandidate& g : grid) {
        if (g.spec.shape == s.shape && g.spec.ols == s.ols) b.costs.models.push_back(g.cost);
      }
    }
    auto r = SimulateTrace(b.specs, b.costs, trace, so.simulation);
    if (r.ok()) {
      b.result = *std::move(r);
      base = std::move(b);
    } else {
      c.baseline.missing = std::string(r.status().message());
    }
  }

  // 5. The config, then the report.
  std::ofstream out(p.out, std::ios::trunc);
  out << SpecsJson(planned.specs);
  out.close();
  if (!out) return absl::InvalidArgumentError(absl::StrCat("--out: cannot write ", p.out.string()));
  std::cout << Report(p, t, model->config.name, trace.size(), cost_line, search_line, planned, c.baseline, base);
  return absl::OkStatus();
}

}  // namespace

int RunPlan(const std::vector<std::string>& args, const Environment& env) {
  absl::Status s = Plan(args, env);
  return s.ok() ? 0 : ReportError(s);
}

}  // namespace tailor
