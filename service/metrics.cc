#include "service/metrics.h"

#include <charconv>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"

namespace tailor::service {
namespace {

bool ValidMetricName(absl::string_view n) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool ValidLabelName(absl::string_view n) {
  if (n.empty() || n.substr(0, 2) == "__") return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::string EscapeHelp(absl::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// `{a="x",b="y"}` for names/values plus an optional extra pair (the histogram's le); "" if none.
std::string LabelText(const std::vector<std::string>& names, const std::vector<std::string>& values,
                      absl::string_view extra_name = "", absl::string_view extra_value = "") {
  if (names.empty() && extra_name.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ",";
    absl::StrAppend(&out, names[i], "=\"", EscapeLabelValue(values[i]), "\"");
  }
  if (!extra_name.empty()) {
    if (!names.empty()) out += ",";
    absl::StrAppend(&out, extra_name, "=\"", EscapeLabelValue(extra_value), "\"");
  }
  out += "}";
  return out;
}

void AtomicAdd(std::atomic<double>& a, double delta) { a.fetch_add(delta, std::memory_order_relaxed); }

std::vector<double> Sorted(std::initializer_list<double> v) { return std::vector<double>(v); }

}  // namespace

std::string FormatMetricValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string EscapeLabelValue(absl::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void Counter::Increment(double delta) {
  if (!(delta > 0)) return;
  AtomicAdd(value_, delta);
}

void Gauge::Add(double delta) { AtomicAdd(value_, delta); }

void Histogram::Observe(double v) {
  if (std::isnan(v)) return;
  size_t i = 0;
  while (i < bounds_->size() && v > (*bounds_)[i]) ++i;
  std::lock_guard<std::mutex> lock(mu_);
  if (i < counts_.size()) ++counts_[i];
  sum_ += v;
  ++count_;
}

Histogram::Snapshot Histogram::Take() const {
  Snapshot s;
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t running = 0;
  for (uint64_t c : counts_) {
    running += c;
    s.cumulative.push_back(running);
  }
  s.cumulative.push_back(count_);
  s.sum = sum_;
  s.count = count_;
  return s;
}

template <typename Child>
std::unique_ptr<Child> Family<Child>::MakeChild() {
  return std::make_unique<Child>();
}

template <>
std::unique_ptr<Histogram> Family<Histogram>::MakeChild() {
  return std::make_unique<Histogram>(&bounds_);
}

template <typename Child>
Child* Family<Child>::Labels(const std::vector<std::string>& values) {
  std::lock_guard<std::mutex> lock(mu_);
  if (values.size() != label_names_.size()) {
    if (detached_ == nullptr) detached_ = MakeChild();
    return detached_.get();
  }
  auto it = children_.find(values);
  if (it == children_.end()) it = children_.emplace(values, MakeChild()).first;
  return it->second.get();
}

template <typename Child>
void Family<Child>::Render(const char* type, std::string* out) const {
  absl::StrAppend(out, "# HELP ", name_, " ", EscapeHelp(help_), "\n");
  absl::StrAppend(out, "# TYPE ", name_, " ", type, "\n");
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [values, child] : children_) {
    if constexpr (std::is_same_v<Child, Histogram>) {
      const Histogram::Snapshot s = child->Take();
      for (size_t i = 0; i <= bounds_.size(); ++i) {
        const std::string le = i < bounds_.size() ? FormatMetricValue(bounds_[i]) : "+Inf";
        absl::StrAppend(out, name_, "_bucket", LabelText(label_names_, values, "le", le), " ",
                        s.cumulative[i], "\n");
      }
      absl::StrAppend(out, name_, "_sum", LabelText(label_names_, values), " ",
                      FormatMetricValue(s.sum), "\n");
      absl::StrAppend(out, name_, "_count", LabelText(label_names_, values), " ", s.count, "\n");
    } else {
      absl::StrAppend(out, name_, LabelText(label_names_, values), " ",
                      FormatMetricValue(child->value()), "\n");
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

absl::Status MetricsRegistry::CheckNew(absl::string_view name,
                                       const std::vector<std::string>& label_names) {
  if (!ValidMetricName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid metric name '", name, "'"));
  }
  for (const std::string& l : label_names) {
    if (!ValidLabelName(l)) {
      return absl::InvalidArgumentError(
          absl::StrCat("metric ", name, ": invalid label name '", l, "'"));
    }
  }
  for (size_t i = 0; i < label_names.size(); ++i) {
    for (size_t j = i + 1; j < label_names.size(); ++j) {
      if (label_names[i] == label_names[j]) {
        return absl::InvalidArgumentError(
            absl::StrCat("metric ", name, ": duplicate label name '", label_names[i], "'"));
      }
    }
  }
  auto taken = [&](const auto& families) {
    for (const auto& f : families) {
      if (f->name() == name) return true;
    }
    return false;
  };
  if (taken(counters_) || taken(gauges_) || taken(histograms_)) {
    return absl::InvalidArgumentError(absl::StrCat("metric ", name, " is already registered"));
  }
  return absl::OkStatus();
}

absl::StatusOr<CounterFamily*> MetricsRegistry::AddCounter(absl::string_view name,
                                                           absl::string_view help,
                                                           std::vector<std::string> label_names) {
  std::lock_guard<std::mutex> lock(mu_);
  if (absl::Status s = CheckNew(name, label_names); !s.ok()) return s;
  const bool unlabelled = label_names.empty();
  counters_.emplace_back(
      new CounterFamily(std::string(name), std::string(help), std::move(label_names), {}));
  order_.push_back({0, counters_.size() - 1});
  if (unlabelled) counters_.back()->Get();
  return counters_.back().get();
}

absl::StatusOr<GaugeFamily*> MetricsRegistry::AddGauge(absl::string_view name,
                                                       absl::string_view help,
                                                       std::vector<std::string> label_names) {
  std::lock_guard<std::mutex> lock(mu_);
  if (absl::Status s = CheckNew(name, label_names); !s.ok()) return s;
  const bool unlabelled = label_names.empty();
  gauges_.emplace_back(
      new GaugeFamily(std::string(name), std::string(help), std::move(label_names), {}));
  order_.push_back({1, gauges_.size() - 1});
  if (unlabelled) gauges_.back()->Get();
  return gauges_.back().get();
}

absl::StatusOr<HistogramFamily*> MetricsRegistry::AddHistogram(
    absl::string_view name, absl::string_view help, std::vector<double> bounds,
    std::vector<std::string> label_names) {
  std::lock_guard<std::mutex> lock(mu_);
  if (absl::Status s = CheckNew(name, label_names); !s.ok()) return s;
  for (const std::string& l : label_names) {
    if (l == "le") {
      return absl::InvalidArgumentError(
          absl::StrCat("histogram ", name, ": the label name 'le' is reserved"));
    }
  }
  if (bounds.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("histogram ", name, ": no bucket bounds"));
  }
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "histogram ", name, ": bucket bounds must be finite and strictly increasing"));
    }
  }
  const bool unlabelled = label_names.empty();
  histograms_.emplace_back(new HistogramFamily(std::string(name), std::string(help),
                                               std::move(label_names), std::move(bounds)));
  order_.push_back({2, histograms_.size() - 1});
  if (unlabelled) histograms_.back()->Get();
  return histograms_.back().get();
}

std::string MetricsRegistry::Render() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const Entry& e : order_) {
    switch (e.kind) {
      case 0:
        counters_[e.index]->Render("counter", &out);
        break;
      case 1:
        gauges_[e.index]->Render("gauge", &out);
        break;
      default:
        histograms_[e.index]->Render("histogram", &out);
        break;
    }
  }
  return out;
}

std::vector<double> TimeToFirstTokenBuckets() {
  return Sorted({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                 7.5, 10.0, 20.0, 40.0, 60.0});
}

std::vector<double> TimePerOutputTokenBuckets() {
  return Sorted({0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
                 1.0, 2.5, 5.0, 10.0});
}

std::vector<double> StepLatencyBuckets() {
  return Sorted({0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                 0.5, 1.0, 2.5, 5.0, 10.0});
}

std::unique_ptr<ServerMetrics> ServerMetrics::Create() {
  std::unique_ptr<ServerMetrics> m(new ServerMetrics());
  MetricsRegistry& r = m->registry_;
  // The names are constants: registration cannot fail, so the values are taken directly.
  m->requests_ = *r.AddCounter("tailor_requests_total", "Requests finished, by status.", {"status"});
  m->prompt_tokens_ =
      (*r.AddCounter("tailor_prompt_tokens_total", "Prompt tokens processed."))->Get();
  m->generation_tokens_ =
      (*r.AddCounter("tailor_generation_tokens_total", "Tokens generated."))->Get();
  m->ttft_ = (*r.AddHistogram("tailor_time_to_first_token_seconds",
                              "Time from a request's arrival to its first generated token.",
                              TimeToFirstTokenBuckets()))
                 ->Get();
  m->tpot_ = (*r.AddHistogram("tailor_time_per_output_token_seconds",
                              "Time between consecutive generated tokens of a request.",
                              TimePerOutputTokenBuckets()))
                 ->Get();
  m->running_ = (*r.AddGauge("tailor_requests_running", "Requests being generated."))->Get();
  m->waiting_ = (*r.AddGauge("tailor_requests_waiting", "Requests waiting to be scheduled."))->Get();
  m->kv_used_ =
      (*r.AddGauge("tailor_kv_blocks_used", "KV-cache blocks held by live requests."))->Get();
  m->kv_cached_ =
      (*r.AddGauge("tailor_kv_blocks_cached", "Free KV-cache blocks kept for prefix reuse."))
          ->Get();
  m->kv_usage_ = (*r.AddGauge("tailor_kv_cache_usage_ratio",
                              "Fraction of the KV-cache pool held by live requests (0 to 1)."))
                     ->Get();
  m->cache_config_ = *r.AddGauge("tailor_cache_config_info", "The KV-cache pool: positions per block and blocks.",
                                 {"block_size", "num_blocks"});
  m->prefix_hits_ = (*r.AddCounter("tailor_prefix_cache_hit_tokens_total",
                                   "Prompt tokens served from the prefix cache."))
                        ->Get();
  m->spec_exec_ = *r.AddCounter("tailor_spec_executions_total",
                                "Steps executed, by specialization.", {"spec"});
  m->spec_padding_ = *r.AddGauge("tailor_spec_padding_ratio",
                                 "Fraction of token slots that were padding, by specialization.",
                                 {"spec"});
  m->spec_latency_ = *r.AddHistogram("tailor_spec_latency_seconds",
                                     "Step latency, by specialization.", StepLatencyBuckets(),
                                     {"spec"});
  m->spec_cost_ = *r.AddGauge("tailor_spec_cost_seconds",
                              "Seconds of a full step of each specialization: as the cost table models it, and as "
                              "measured while serving.",
                              {"spec", "source"});
  return m;
}

void ServerMetrics::SetSpecCost(absl::string_view spec, double modeled_seconds, double measured_seconds) {
  spec_cost_->Labels({std::string(spec), "modeled"})->Set(modeled_seconds);
  spec_cost_->Labels({std::string(spec), "measured"})->Set(measured_seconds);
}

void ServerMetrics::RecordRequest(absl::string_view status) {
  requests_->Labels({std::string(status)})->Increment();
}
void ServerMetrics::AddPromptTokens(int64_t n) { prompt_tokens_->Increment(static_cast<double>(n)); }
void ServerMetrics::AddGenerationTokens(int64_t n) {
  generation_tokens_->Increment(static_cast<double>(n));
}
void ServerMetrics::ObserveTimeToFirstToken(double seconds) { ttft_->Observe(seconds); }
void ServerMetrics::ObserveTimePerOutputToken(double seconds) { tpot_->Observe(seconds); }
void ServerMetrics::SetRequestsRunning(int64_t n) { running_->Set(static_cast<double>(n)); }
void ServerMetrics::SetRequestsWaiting(int64_t n) { waiting_->Set(static_cast<double>(n)); }
void ServerMetrics::SetKvBlocksUsed(int64_t n) { kv_used_->Set(static_cast<double>(n)); }
void ServerMetrics::SetKvBlocksCached(int64_t n) { kv_cached_->Set(static_cast<double>(n)); }
void ServerMetrics::SetKvCacheUsage(int64_t used_blocks, int64_t num_blocks) {
  kv_usage_->Set(num_blocks > 0 ? static_cast<double>(used_blocks) / static_cast<double>(num_blocks) : 0.0);
}
void ServerMetrics::SetCacheConfig(int64_t block_size, int64_t num_blocks) {
  cache_config_->Labels({absl::StrCat(block_size), absl::StrCat(num_blocks)})->Set(1.0);
}
void ServerMetrics::AddPrefixCacheHitTokens(int64_t n) {
  prefix_hits_->Increment(static_cast<double>(n));
}

void ServerMetrics::RecordSpecExecution(absl::string_view spec, int64_t used_slots,
                                        int64_t total_slots, double latency_seconds) {
  const std::vector<std::string> labels = {std::string(spec)};
  spec_exec_->Labels(labels)->Increment();
  spec_latency_->Labels(labels)->Observe(latency_seconds);
  double ratio = 0;
  {
    std::lock_guard<std::mutex> lock(spec_mu_);
    auto& [padded, total] = spec_slots_[labels[0]];
    if (total_slots > 0) {
      padded += std::max<int64_t>(0, total_slots - std::max<int64_t>(0, used_slots));
      total += total_slots;
    }
    ratio = total > 0 ? static_cast<double>(padded) / static_cast<double>(total) : 0.0;
    // Set under the lock so concurrent steps cannot publish ratios out of order.
    spec_padding_->Labels(labels)->Set(ratio);
  }
}

}  // namespace tailor::service
