// Request traces for serving benchmarks (bench/trace_bench) and for `tailor plan`'s simulation
// (scheduler/trace_simulator.h): a generator (Poisson arrivals, prompt and output length
// distributions, a fraction of requests sharing prefixes) and a JSONL reader and writer.
//
// One request per line, in arrival order:
//   {"id": 0, "arrival_s": 0.137, "prompt_ids": [1, 407, ...], "max_tokens": 64, "prefix_group": -1}
// arrival_s: seconds from the start of the trace; prefix_group: the shared prefix the prompt
// starts with (-1: none). Pure functions, no global state.
#ifndef TAILOR_SCHEDULER_TRACE_H_
#define TAILOR_SCHEDULER_TRACE_H_

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tailor {

// A distribution of lengths (tokens), always sampled as an integer >= 1:
//   "fixed:N", "uniform:LO:HI" (inclusive), "exp:MEAN" (exponential), "lognormal:MEDIAN:SIGMA".
struct LengthDist {
  enum class Kind { kFixed, kUniform, kExponential, kLogNormal };
  Kind kind = Kind::kFixed;
  double a = 1.0, b = 0.0;
  int32_t Sample(std::mt19937_64& rng) const;
  std::string ToString() const;
};
absl::StatusOr<LengthDist> ParseLengthDist(absl::string_view spec);

struct TraceOptions {
  int32_t num_requests = 100;
  double rate = 4.0;  // mean arrivals per second (Poisson); <= 0: every request arrives at 0
  LengthDist prompt_len{LengthDist::Kind::kLogNormal, 64, 0.8};
  LengthDist output_len{LengthDist::Kind::kLogNormal, 64, 0.8};
  // Requests that start with one of `num_prefixes` shared prefixes of `prefix_len` tokens (a
  // system prompt, a few-shot preamble); their own part (drawn from prompt_len) follows it.
  double shared_prefix_fraction = 0.0;
  int32_t num_prefixes = 4;
  int32_t prefix_len = 64;
  int32_t vocab_size = 512;      // prompt ids are drawn from [first_free_id, vocab_size)
  int32_t first_free_id = 3;     // ids below are special (unk, BOS, EOS in llama vocabularies)
  int32_t bos_id = 1;            // every prompt starts with it; -1: none
  int32_t max_total_len = 512;   // prompt + max_tokens never exceeds it (the largest ctx_len)
  uint64_t seed = 1;
};

struct TraceRequest {
  int64_t id = 0;
  double arrival_s = 0.0;
  std::vector<int32_t> prompt_ids;
  int32_t max_tokens = 1;
  int32_t prefix_group = -1;
};

// InvalidArgument naming the option when the options cannot make a trace.
absl::StatusOr<std::vector<TraceRequest>> GenerateTrace(const TraceOptions& options);

std::string TraceRequestToJson(const TraceRequest& request);  // one line, no newline
absl::Status WriteTraceJsonl(const std::filesystem::path& path, const std::vector<TraceRequest>& trace);
// Errors name the file, the line and the field. Requests are sorted by arrival.
absl::StatusOr<std::vector<TraceRequest>> ReadTraceJsonl(const std::filesystem::path& path);

// Nearest-rank percentile (p in [0, 100]) of `values` (0 for none).
double Percentile(std::vector<double> values, double p);

}  // namespace tailor

#endif  // TAILOR_SCHEDULER_TRACE_H_
