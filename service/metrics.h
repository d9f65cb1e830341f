// A small Prometheus registry (text exposition format 0.0.4) and the server's metric set.
//
// Thread-safety: every method of every class here may be called from any thread concurrently.
// Families and children are created once and never destroyed before their registry, so pointers
// returned by Labels()/Add*() stay valid for the registry's lifetime: cache them on hot paths.
// Counters and gauges are lock-free atomics; a histogram observation takes a per-child mutex, so
// a scrape never sees a count that disagrees with its buckets.
#ifndef TAILOR_SERVICE_METRICS_H_
#define TAILOR_SERVICE_METRICS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include <mutex>

namespace tailor::service {

// Formats a sample value as Prometheus does: shortest round-trip decimal, "+Inf", "-Inf", "NaN".
std::string FormatMetricValue(double v);
// Escapes a label value: backslash, double quote and newline become \\, \" and \n.
std::string EscapeLabelValue(absl::string_view v);

class Counter {
 public:
  void Increment(double delta = 1.0);  // negative deltas are ignored (counters only go up)
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double delta);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  explicit Histogram(const std::vector<double>* bounds) : bounds_(bounds), counts_(bounds->size(), 0) {}
  void Observe(double v);  // NaN is ignored

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // one per bound, then the +Inf bucket (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Take() const;

 private:
  const std::vector<double>* bounds_;  // owned by the family; strictly increasing, finite
  // std::mutex, not absl::Mutex (here and below): ThreadSanitizer sees only instrumented locks, and
  // Debian's abseil is not instrumented.
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_ ABSL_GUARDED_BY(mu_);  // non-cumulative, per bound
  double sum_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t count_ ABSL_GUARDED_BY(mu_) = 0;
};

// A metric family: one name, help, type and label names; one child per distinct label values.
template <typename Child>
class Family {
 public:
  // The child for these label values (created on first use), in label-name order. With the wrong
  // number of values, returns a detached child that is never exported (a programming error that
  // must not crash a server).
  Child* Labels(const std::vector<std::string>& values);
  // The only child of a family without labels.
  Child* Get() { return Labels({}); }

  const std::string& name() const { return name_; }

 private:
  friend class MetricsRegistry;
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bounds)
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)),
        bounds_(std::move(bounds)) {}
  std::unique_ptr<Child> MakeChild();
  void Render(const char* type, std::string* out) const;

  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;  // histograms only
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Child>> children_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Child> detached_ ABSL_GUARDED_BY(mu_);
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // InvalidArgument for a malformed metric or label name, a duplicate metric name, a histogram
  // label named "le", or histogram bounds that are empty, not finite or not strictly increasing.
  // A family without labels is exported (as 0) from the start; a labelled one from its first child.
  absl::StatusOr<CounterFamily*> AddCounter(absl::string_view name, absl::string_view help,
                                            std::vector<std::string> label_names = {});
  absl::StatusOr<GaugeFamily*> AddGauge(absl::string_view name, absl::string_view help,
                                        std::vector<std::string> label_names = {});
  absl::StatusOr<HistogramFamily*> AddHistogram(absl::string_view name, absl::string_view help,
                                                std::vector<double> bounds,
                                                std::vector<std::string> label_names = {});

  // The exposition text: families in registration order, each with "# HELP" and "# TYPE" lines,
  // children sorted by label values; histograms as _bucket{...,le="..."}, _sum, _count.
  // Serve with Content-Type "text/plain; version=0.0.4; charset=utf-8".
  std::string Render() const;

 private:
  absl::Status CheckNew(absl::string_view name, const std::vector<std::string>& label_names)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable std::mutex mu_;
  // Registration order; the families own their children.
  std::vector<std::unique_ptr<CounterFamily>> counters_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<GaugeFamily>> gauges_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<HistogramFamily>> histograms_ ABSL_GUARDED_BY(mu_);
  struct Entry {
    int kind;  // 0 counter, 1 gauge, 2 histogram
    size_t index;
  };
  std::vector<Entry> order_ ABSL_GUARDED_BY(mu_);
};

// Default buckets (seconds) for the latency histograms.
std::vector<double> TimeToFirstTokenBuckets();   // 1 ms .. 60 s
std::vector<double> TimePerOutputTokenBuckets(); // 1 ms .. 10 s
std::vector<double> StepLatencyBuckets();        // 100 us .. 10 s

// The metric set of issue 5, names prefixed tailor_. Safe to use from any thread.
class ServerMetrics {
 public:
  static std::unique_ptr<ServerMetrics> Create();

  const MetricsRegistry& registry() const { return registry_; }
  std::string Render() const { return registry_.Render(); }

  // tailor_requests_total{status}: status is e.g. "stop", "length", "abort", "error", or an HTTP
  // status class; the caller picks a small fixed set.
  void RecordRequest(absl::string_view status);
  void AddPromptTokens(int64_t n);              // tailor_prompt_tokens_total
  void AddGenerationTokens(int64_t n);          // tailor_generation_tokens_total
  void ObserveTimeToFirstToken(double seconds); // tailor_time_to_first_token_seconds
  void ObserveTimePerOutputToken(double seconds);
  void SetRequestsRunning(int64_t n);           // tailor_requests_running
  void SetRequestsWaiting(int64_t n);           // tailor_requests_waiting
  void SetKvBlocksUsed(int64_t n);              // tailor_kv_blocks_used (held by live requests)
  void SetKvBlocksCached(int64_t n);            // tailor_kv_blocks_cached
  // tailor_kv_cache_usage_ratio: blocks held by live requests / blocks in the pool, 0..1 (the
  // name and meaning load-aware gateways, e.g. the Gateway API Inference Extension, read).
  void SetKvCacheUsage(int64_t used_blocks, int64_t num_blocks);
  // tailor_cache_config_info{block_size, num_blocks} 1: the KV pool's shape (set once).
  void SetCacheConfig(int64_t block_size, int64_t num_blocks);
  void AddPrefixCacheHitTokens(int64_t n);      // tailor_prefix_cache_hit_tokens_total
  // One step on specialization `spec` (e.g. "b4_s1_c512"): `used_slots` of `total_slots` token
  // slots carried real tokens. Increments tailor_spec_executions_total{spec}, sets
  // tailor_spec_padding_ratio{spec} to the cumulative padded/total slots of that spec, and observes
  // tailor_spec_latency_seconds{spec}.
  void RecordSpecExecution(absl::string_view spec, int64_t used_slots, int64_t total_slots,
                           double latency_seconds);
  // tailor_spec_cost_seconds{spec,source}: the seconds of a full step of `spec` (every row at
  // the end of its context) as the package's cost table models it (source="modeled") and as the
  // planner charges it now, corrected by the step times observed (source="measured").
  void SetSpecCost(absl::string_view spec, double modeled_seconds, double measured_seconds);

 private:
  ServerMetrics() = default;

  MetricsRegistry registry_;
  CounterFamily* requests_ = nullptr;
  Counter* prompt_tokens_ = nullptr;
  Counter* generation_tokens_ = nullptr;
  Gauge* kv_usage_ = nullptr;
  GaugeFamily* cache_config_ = nullptr;
  Histogram* ttft_ = nullptr;
  Histogram* tpot_ = nullptr;
  Gauge* running_ = nullptr;
  Gauge* waiting_ = nullptr;
  Gauge* kv_used_ = nullptr;
  Gauge* kv_cached_ = nullptr;
  Counter* prefix_hits_ = nullptr;
  CounterFamily* spec_exec_ = nullptr;
  GaugeFamily* spec_padding_ = nullptr;
  HistogramFamily* spec_latency_ = nullptr;
  GaugeFamily* spec_cost_ = nullptr;

  // Per-spec slot totals for the padding ratio.
  std::mutex spec_mu_;
  std::map<std::string, std::pair<int64_t, int64_t>, std::less<>> spec_slots_
      ABSL_GUARDED_BY(spec_mu_);  // spec -> (padded, total)
};

}  // namespace tailor::service

#endif  // TAILOR_SERVICE_METRICS_H_
