#include "bench/soak/soak_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "bench/soak/http_client.h"
#include "nlohmann/json.hpp"

namespace tailor::soak {
namespace {

constexpr size_t kMaxSamples = 20;
constexpr int kKinds = static_cast<int>(Kind::kNumKinds);

std::string Fmt(const char* format, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, x);
  return buf;
}

// The completed kinds whose latency the p99 bound covers.
bool Timed(int k) { return k <= static_cast<int>(Kind::kChatStream); }

}  // namespace

void Stats::Add(const Outcome& o) {
  KindStats& k = kinds_[static_cast<int>(o.kind)];
  ++k.count;
  ++k.statuses[o.status];
  if (o.admitted) ++k.admitted;
  if (o.disconnected) ++k.disconnected;
  if (o.overload) ++k.overload;
  if (!o.failure.empty()) {
    ++k.failures;
    if (samples_.size() < kMaxSamples) samples_.push_back(std::string(KindName(o.kind)) + ": " + o.failure);
  } else if (o.status == 200 && !o.disconnected) {
    k.seconds.push_back(o.seconds);
  }
}

void Stats::Merge(const Stats& other) {
  std::lock_guard<std::mutex> lock(mu_);
  for (int i = 0; i < kKinds; ++i) {
    KindStats& a = kinds_[i];
    const KindStats& b = other.kinds_[i];
    a.count += b.count;
    a.admitted += b.admitted;
    a.disconnected += b.disconnected;
    a.overload += b.overload;
    a.failures += b.failures;
    for (const auto& [status, n] : b.statuses) a.statuses[status] += n;
    a.seconds.insert(a.seconds.end(), b.seconds.begin(), b.seconds.end());
  }
  for (const std::string& s : other.samples_) {
    if (samples_.size() < kMaxSamples) samples_.push_back(s);
  }
}

Metrics ReadMetrics(int port) {
  Metrics m;
  const HttpReply reply = Get(port, "/metrics", std::chrono::seconds(10));
  if (reply.status != 200 || !reply.complete) return m;
  std::istringstream in(reply.body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    m.values[line.substr(0, space)] = std::atof(line.c_str() + space + 1);
  }
  m.ok = true;
  return m;
}

double Quantile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

bool Report::Check() {
  checks.clear();
  auto add = [&](std::string name, bool passed, std::string detail) {
    checks.push_back({std::move(name), passed, std::move(detail)});
  };
  add("server alive through the load", server_alive, server_alive ? "" : "the server process died");
  if (terminated) {
    add("exit status 0 after SIGTERM", exit_code == 0,
        exit_code < 0 ? "did not exit within 60 s" : "exit status " + std::to_string(exit_code));
  }
  int64_t failures = 0, completed = 0, stream_drops = 0, whole_drops = 0;
  std::map<int, int64_t> statuses;
  std::vector<double> all;
  for (int i = 0; i < kKinds; ++i) {
    KindStats k = stats->kinds()[i];
    failures += k.failures;
    for (const auto& [s, n] : k.statuses) statuses[s] += n;
    completed += static_cast<int64_t>(k.seconds.size());  // whole 200s, dropped streams that finished first too
    if (Timed(i)) all.insert(all.end(), k.seconds.begin(), k.seconds.end());
  }
  stream_drops = stats->kinds()[static_cast<int>(Kind::kDisconnectStream)].disconnected;
  whole_drops = stats->kinds()[static_cast<int>(Kind::kDisconnectWhole)].disconnected;
  std::string status_text;
  bool statuses_ok = true;
  for (const auto& [s, n] : statuses) {
    status_text += (status_text.empty() ? "" : ", ") + std::to_string(s) + ": " + std::to_string(n);
    const bool allowed = s == 200 || s == 400 || s == 429 || s == 503 ||
                         (s == 0 && n <= whole_drops);  // a dropped non-streamed request reads nothing
    statuses_ok = statuses_ok && allowed;
  }
  add("only 200, 400, 429, 503 (overload) statuses", statuses_ok, status_text);
  add("every reply whole and as its request allows", failures == 0, std::to_string(failures) + " failures");
  const double p99_ms = Quantile(all, 0.99) * 1000;
  add("p99 latency of completed requests <= " + Fmt("%.0f", p99_bound_ms) + " ms", p99_ms <= p99_bound_ms,
      Fmt("%.1f ms", p99_ms));
  if (after.ok) {
    // Every admitted request was counted by the server as finished ("ok") or cancelled ("abort"):
    // completed 200s and dropped streams surely were, dropped whole requests at most all of them.
    const double ok = after.Get(R"(tailor_requests_total{status="ok"})") - before.Get(R"(tailor_requests_total{status="ok"})");
    const double abort =
        after.Get(R"(tailor_requests_total{status="abort"})") - before.Get(R"(tailor_requests_total{status="abort"})");
    const double errors = after.Get(R"(tailor_requests_total{status="error"})") -
                          before.Get(R"(tailor_requests_total{status="error"})") +
                          after.Get(R"(tailor_requests_total{status="5xx"})") -
                          before.Get(R"(tailor_requests_total{status="5xx"})");
    const double low = static_cast<double>(completed + stream_drops), high = low + static_cast<double>(whole_drops);
    add("server: every admitted request finished or was cancelled", ok >= static_cast<double>(completed) &&
        ok + abort >= low && ok + abort <= high && errors == 0,
        "ok " + Fmt("%.0f", ok) + " + cancelled " + Fmt("%.0f", abort) + " in [" + Fmt("%.0f", low) + ", " +
            Fmt("%.0f", high) + "], errors " + Fmt("%.0f", errors));
    const double kv = after.Get("tailor_kv_blocks_used"), running = after.Get("tailor_requests_running"),
                 waiting = after.Get("tailor_requests_waiting");
    add("tailor_kv_blocks_used back to 0, nothing running or waiting", kv == 0 && running == 0 && waiting == 0,
        "kv blocks " + Fmt("%.0f", kv) + ", running " + Fmt("%.0f", running) + ", waiting " + Fmt("%.0f", waiting));
  } else if (server_alive) {
    add("/metrics readable after the load", false, "no /metrics");
  }
  if (fd_start >= 0 && server_alive) {
    add("descriptors back to the starting count", fd_end >= 0 && fd_end <= fd_start,
        "start " + std::to_string(fd_start) + ", after warm-up " + std::to_string(fd_after_warmup) + ", end " +
            std::to_string(fd_end));
  }
  if (rss_after_warmup_kb > 0 && server_alive) {
    const double ratio = static_cast<double>(rss_end_kb) / static_cast<double>(rss_after_warmup_kb);
    const bool checked = rss_ratio_bound > 0;  // 0: reported, not checked (--no-rss-check)
    add(checked ? "RSS after the soak <= " + Fmt("%.2f", rss_ratio_bound) + " x RSS after warm-up"
                : "RSS (not checked)",
        !checked || ratio <= rss_ratio_bound,
        std::to_string(rss_after_warmup_kb) + " -> " + std::to_string(rss_end_kb) + " KiB (" + Fmt("%.3f", ratio) +
            "x)");
  }
  bool passed = true;
  for (const CheckResult& c : checks) passed = passed && c.passed;
  return passed;
}

std::string Report::Text() const {
  std::ostringstream out;
  out << "soak: " << args_text << "\n";
  int64_t total = 0;
  for (const KindStats& k : stats->kinds()) total += k.count;
  out << "requests " << total << " in " << Fmt("%.1f", load_seconds) << " s of load (plus warm-up)\n";
  out << "kind                 count  admitted  dropped  overload  failures  p50_ms    p99_ms    max_ms\n";
  for (int i = 0; i < kKinds; ++i) {
    KindStats k = stats->kinds()[i];
    std::vector<double> s = k.seconds;
    const double p50 = Quantile(s, 0.5) * 1000, p99 = Quantile(s, 0.99) * 1000, mx = s.empty() ? 0 : s.back() * 1000;
    char line[256];
    std::snprintf(line, sizeof line, "%-19s %7lld %9lld %8lld %9lld %9lld %8.1f %9.1f %9.1f\n", KindName(Kind(i)),
                  static_cast<long long>(k.count), static_cast<long long>(k.admitted),
                  static_cast<long long>(k.disconnected), static_cast<long long>(k.overload),
                  static_cast<long long>(k.failures), p50, p99, mx);
    out << line;
  }
  for (const std::string& s : stats->failure_samples()) out << "  failure: " << s << "\n";
  for (const CheckResult& c : checks) {
    out << (c.passed ? "PASS  " : "FAIL  ") << c.name << (c.detail.empty() ? "" : ": " + c.detail) << "\n";
  }
  return out.str();
}

std::string Report::Json() const {
  nlohmann::json j;
  j["settings"] = args_text;
  j["load_seconds"] = load_seconds;
  for (int i = 0; i < kKinds; ++i) {
    KindStats k = stats->kinds()[i];
    nlohmann::json e = {{"count", k.count}, {"admitted", k.admitted}, {"disconnected", k.disconnected},
                        {"overload", k.overload}, {"failures", k.failures}};
    for (const auto& [s, n] : k.statuses) e["statuses"][std::to_string(s)] = n;
    e["p50_ms"] = Quantile(k.seconds, 0.5) * 1000;
    e["p99_ms"] = Quantile(k.seconds, 0.99) * 1000;
    j["kinds"][KindName(Kind(i))] = e;
  }
  j["fd"] = {{"start", fd_start}, {"after_warmup", fd_after_warmup}, {"end", fd_end}};
  j["rss_kb"] = {{"after_warmup", rss_after_warmup_kb}, {"end", rss_end_kb}};
  j["exit_code"] = exit_code;
  for (const CheckResult& c : checks) j["checks"].push_back({{"name", c.name}, {"passed", c.passed}, {"detail", c.detail}});
  j["failure_samples"] = stats->failure_samples();
  return j.dump(2);
}

}  // namespace tailor::soak
