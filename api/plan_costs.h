// Step costs of candidate specializations for `tailor plan`: measured on this machine (each
// candidate compiled for the native target into a temporary package and timed at the points
// `tailor compile` times, engine/runtime.h MeasureStepCost, each point's fastest run) and cached
// on disk, or injected from a JSON file (tests, other machines).
//
// The cache is one JSON file per measuring context (the model's fingerprint, weight and KV
// formats, KV block, CPU model, kernel ISA, hardware threads), named by a checksum of that
// context, under the cache directory (`--cache-dir`, else $XDG_CACHE_HOME/tailor or
// ~/.cache/tailor):
//   {"version": 1, "context": {...}, "costs": {"b4_s1_c512_ols2": {"fixed_seconds": ...,
//    "per_row_seconds": ..., "per_position_seconds": ..., "full_seconds": ...,
//    "at_start_seconds": ...}, ...}}
// It is rewritten (to a temporary file, then renamed) after every measured candidate, so an
// interrupted run keeps what it measured. A cache file that cannot be read is ignored (a
// warning) and replaced.
#ifndef TAILOR_API_PLAN_COSTS_H_
#define TAILOR_API_PLAN_COSTS_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/dtype.h"
#include "engine/executor.h"
#include "models/model.h"

namespace tailor {

struct CostMeasureOptions {
  std::filesystem::path cache_dir;  // empty: no cache (everything is measured)
  bool remeasure = false;           // ignore cached entries (and replace them)
  // Timed runs per point, after one warm-up run; a point's figure is its fastest run (other load
  // on the machine only ever adds time).
  int repeats = 3;
  // A point stops repeating once its timed runs took this long (after two): bounds the time slow
  // candidates take (0: always `repeats`).
  double max_point_seconds = 1.0;
  // A candidate takes the cost model of the same (batch_size, seq_len, -ols) at a larger ctx_len
  // when that one is measured or cached, instead of being timed: halves the measuring of a grid
  // with two ctx_lens, but misses what ctx_len costs beyond the positions attention reads (on
  // stories260K, b4 decode steps measured 1.4-1.7x slower at the same positions compiled for 512
  // than for 256).
  bool share_across_ctx = false;
  DType weight_dtype = DType::kF32;
  bool keep_source_formats = true;  // as `tailor compile` without --dtype
  std::string weights_label = "source";  // the weight format as the cache key names it
  DType kv_dtype = DType::kF32;
  int32_t kv_block = 16;
  std::function<void(const std::string&)> progress;  // one line per event, for stderr
  std::function<void(const std::string&)> warn;
};

struct CostMeasureReport {
  int32_t cached = 0;    // candidates found in the cache
  int32_t measured = 0;  // candidates timed by this run
  int32_t derived = 0;   // candidates given the cost model of a larger ctx_len (share_across_ctx)
  double measure_seconds = 0;  // wall time of compiling and timing them
  std::filesystem::path cache_file;  // empty without a cache
  std::string cpu;  // the CPU model string of the context
};

// The cost model of each of `specs` (in order): from the cache, else measured (or, sharing
// across ctx_len, from the same shape's measurement at a larger ctx_len).
absl::StatusOr<std::vector<StepCostModel>> MeasuredCosts(const Model& model, const std::vector<Specialization>& specs,
                                                         const CostMeasureOptions& options, CostMeasureReport* report);

// --costs FILE: a JSON object mapping candidate names (CandidateName, "_olsN" optional) to
// {"fixed_seconds", "per_row_seconds", "per_position_seconds"} (absent terms 0) or to a number
// (fixed seconds). InvalidArgument naming the file and the entry.
absl::StatusOr<std::map<std::string, StepCostModel>> ReadInjectedCosts(const std::filesystem::path& path);

// "model name" of /proc/cpuinfo ("unknown CPU" when unreadable).
std::string CpuModelName();

}  // namespace tailor

#endif  // TAILOR_API_PLAN_COSTS_H_
