// What a soak saw (per request kind: statuses, latencies, failures), the server's /metrics
// before and after, and the checks that decide whether the soak passed.
//
// Thread-safety: Stats::Merge may be called from many threads; everything else from one.
#ifndef TAILOR_BENCH_SOAK_SOAK_REPORT_H_
#define TAILOR_BENCH_SOAK_SOAK_REPORT_H_

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "bench/soak/workload.h"

namespace tailor::soak {

struct KindStats {
  int64_t count = 0;
  int64_t admitted = 0;      // a 200 status arrived
  int64_t disconnected = 0;  // dropped by the client on purpose
  int64_t overload = 0;      // 429 or 503
  int64_t failures = 0;
  std::map<int, int64_t> statuses;  // HTTP status (0: none) -> count
  std::vector<double> seconds;      // latency of each completed 200 (not disconnected)
};

class Stats {
 public:
  void Add(const Outcome& o);  // not thread-safe: one Stats per thread, then Merge
  void Merge(const Stats& other);  // thread-safe
  const std::array<KindStats, static_cast<int>(Kind::kNumKinds)>& kinds() const { return kinds_; }
  const std::vector<std::string>& failure_samples() const { return samples_; }

 private:
  std::mutex mu_;
  std::array<KindStats, static_cast<int>(Kind::kNumKinds)> kinds_;
  std::vector<std::string> samples_;  // the first few failures, "kind: what"
};

// A /metrics scrape: sample name with its labels as written ("tailor_requests_total{status=\"ok\"}")
// -> value.
struct Metrics {
  bool ok = false;
  std::map<std::string, double> values;
  double Get(const std::string& key) const {
    auto it = values.find(key);
    return it == values.end() ? 0 : it->second;
  }
};
Metrics ReadMetrics(int port);

// The q-quantile (0..1) of `v` (sorted in place), nearest rank; 0 for an empty vector.
double Quantile(std::vector<double>& v, double q);

struct Report {
  std::string args_text;
  double p99_bound_ms = 0;
  double rss_ratio_bound = 0;  // 0: RSS reported, not checked
  double load_seconds = 0;
  const Stats* stats = nullptr;
  Metrics before, after_warmup, after;
  int fd_start = -1, fd_after_warmup = -1, fd_end = -1;  // -1: not known (no pid)
  long rss_after_warmup_kb = -1, rss_end_kb = -1;
  bool server_alive = false;
  bool terminated = false;  // SIGTERM sent at the end (the soak started the server)
  int exit_code = -1;

  // Runs the checks (filling `checks`); true when all pass.
  bool Check();
  std::string Text() const;
  std::string Json() const;

  struct CheckResult {
    std::string name;
    bool passed;
    std::string detail;
  };
  std::vector<CheckResult> checks;
};

}  // namespace tailor::soak

#endif  // TAILOR_BENCH_SOAK_SOAK_REPORT_H_
