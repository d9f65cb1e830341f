// Writes a request trace (scheduler/trace.h) as JSONL, for bench/trace_bench.
//   build/make_trace --out FILE [--requests N] [--rate R] [--prompt-len DIST] [--output-len DIST]
//                    [--shared-prefix-fraction F] [--num-prefixes K] [--prefix-len L]
//                    [--vocab-size V] [--max-total-len T] [--seed S]
// DIST: fixed:N, uniform:LO:HI, exp:MEAN or lognormal:MEDIAN:SIGMA (tokens).
// Exit codes: 0 written, 2 bad arguments.
#include <cstdio>
#include <string>

#include "absl/strings/numbers.h"
#include "scheduler/trace.h"

namespace tailor::bench {
namespace {

constexpr char kUsage[] =
    "usage: make_trace --out FILE [--requests N (100)] [--rate REQ_PER_S (4; 0: all at once)]\n"
    "                  [--prompt-len DIST (lognormal:64:0.8)] [--output-len DIST (lognormal:64:0.8)]\n"
    "                  [--shared-prefix-fraction F (0)] [--num-prefixes K (4)] [--prefix-len L (64)]\n"
    "                  [--vocab-size V (512)] [--max-total-len T (512)] [--seed S (1)]\n"
    "DIST: fixed:N, uniform:LO:HI, exp:MEAN or lognormal:MEDIAN:SIGMA (tokens)\n";

int Fail(const std::string& message) {
  std::fprintf(stderr, "make_trace: %s\n%s", message.c_str(), kUsage);
  return 2;
}

int Main(int argc, char** argv) {
  TraceOptions o;
  std::string out;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (i + 1 >= argc) return Fail(flag + " needs a value");
    const std::string v = argv[i + 1];
    bool ok = true;
    if (flag == "--out") {
      out = v;
    } else if (flag == "--requests") {
      ok = absl::SimpleAtoi(v, &o.num_requests) && o.num_requests >= 0;
    } else if (flag == "--rate") {
      ok = absl::SimpleAtod(v, &o.rate) && o.rate >= 0;
    } else if (flag == "--prompt-len" || flag == "--output-len") {
      auto d = ParseLengthDist(v);
      if (!d.ok()) return Fail(std::string(d.status().message()));
      (flag == "--prompt-len" ? o.prompt_len : o.output_len) = *d;
    } else if (flag == "--shared-prefix-fraction") {
      ok = absl::SimpleAtod(v, &o.shared_prefix_fraction);
    } else if (flag == "--num-prefixes") {
      ok = absl::SimpleAtoi(v, &o.num_prefixes);
    } else if (flag == "--prefix-len") {
      ok = absl::SimpleAtoi(v, &o.prefix_len);
    } else if (flag == "--vocab-size") {
      ok = absl::SimpleAtoi(v, &o.vocab_size);
    } else if (flag == "--max-total-len") {
      ok = absl::SimpleAtoi(v, &o.max_total_len);
    } else if (flag == "--seed") {
      ok = absl::SimpleAtoi(v, &o.seed);
    } else {
      return Fail("unknown flag " + flag);
    }
    if (!ok) return Fail(flag + " " + v + ": not a valid value");
  }
  if (out.empty()) return Fail("--out is required");
  auto trace = GenerateTrace(o);
  if (!trace.ok()) return Fail(std::string(trace.status().message()));
  if (absl::Status s = WriteTraceJsonl(out, *trace); !s.ok()) return Fail(std::string(s.message()));
  int64_t prompt = 0, output = 0, shared = 0;
  for (const TraceRequest& r : *trace) {
    prompt += static_cast<int64_t>(r.prompt_ids.size());
    output += r.max_tokens;
    shared += r.prefix_group >= 0;
  }
  std::fprintf(stderr, "make_trace: %zu requests over %.2f s, %lld prompt tokens, %lld output tokens, %lld sharing "
               "a prefix (prompt %s, output %s) -> %s\n",
               trace->size(), trace->empty() ? 0.0 : trace->back().arrival_s, static_cast<long long>(prompt),
               static_cast<long long>(output), static_cast<long long>(shared), o.prompt_len.ToString().c_str(),
               o.output_len.ToString().c_str(), out.c_str());
  return 0;
}

}  // namespace
}  // namespace tailor::bench

int main(int argc, char** argv) { return tailor::bench::Main(argc, argv); }
