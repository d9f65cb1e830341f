// Decode rate of constrained requests (response_format json_schema / json_object, guided_regex,
// guided_choice) against unconstrained ones of the same length, through the serving session
// (the path `tailor serve` runs, without HTTP).
//   build/structured_bench [--package DIR] [--repeats N] [--max-tokens N] [--json FILE]
// DIR defaults to build/default-package. Each case runs one request at a time, `repeats` times,
// alternating with an unconstrained request (ignore_eos, max_tokens = the constrained output's
// token count) at the same temperature. Reported per case: the median seconds per output token
// after the first (TPOT) of each, and their ratio unconstrained/constrained as the constrained
// request's relative decode rate (the issue's target: >= 0.8).
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "api/serving_session.h"
#include "nlohmann/json.hpp"

namespace tailor::bench {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Timed {
  double tpot = 0;      // seconds per output token after the first
  int64_t tokens = 0;   // completion tokens
  std::string text;
  std::string error;
};

// Runs one streamed request and times its deltas.
Timed Run(ServingSession& session, const Json& body) {
  Timed out;
  auto request = service::ParseOpenAiRequest(service::Endpoint::kChatCompletions, body.dump());
  if (!request.ok()) {
    out.error = request.error().message;
    return out;
  }
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::optional<Clock::time_point> first;
  Clock::time_point last;
  auto started = session.Start(*request, [&](const SessionEvent& e) {
    std::lock_guard<std::mutex> lock(mu);
    if (e.kind == SessionEvent::Kind::kDelta) {
      const auto now = Clock::now();
      if (!first) first = now;
      last = now;
      out.text += e.delta.text;
    } else {
      out.tokens = e.usage.completion_tokens;
      if (e.error) out.error = e.error->message;
      done = true;
      cv.notify_all();
    }
  });
  if (!started.ok()) {
    out.error = started.error().message;
    return out;
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  if (first && out.tokens > 1) out.tpot = std::chrono::duration<double>(last - *first).count() / static_cast<double>(out.tokens - 1);
  return out;
}

struct Case {
  std::string name;
  Json fields;  // merged into the request body
};

std::vector<Case> Cases() {
  const Json person = Json::parse(R"({
    "type": "object",
    "properties": {
      "name": {"type": "string"},
      "age": {"type": "integer"},
      "pets": {"type": "array", "items": {"type": "object", "properties": {
          "kind": {"enum": ["cat", "dog", "bird"]}, "name": {"type": "string"}},
        "required": ["kind", "name"], "additionalProperties": false}},
      "city": {"anyOf": [{"type": "string"}, {"type": "null"}]}
    },
    "required": ["name", "age", "pets", "city"],
    "additionalProperties": false})");
  return {
      {"json_schema", {{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "person"}, {"schema", person}}}}}}},
      {"json_object", {{"response_format", {{"type", "json_object"}}}}},
      {"guided_regex", {{"guided_regex", "([A-Z][a-z]+ ){3,12}[A-Z][a-z]+\\."}}},
      {"guided_choice", {{"guided_choice", {"once upon a time there was a little girl", "the dog ran to the park and played"}}}},
  };
}

int Main(int argc, char** argv) {
  std::string package = "build/default-package";
  std::string json_path;
  int repeats = 5;
  int max_tokens = 200;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--package") {
      package = value();
    } else if (a == "--repeats") {
      if (!absl::SimpleAtoi(value(), &repeats) || repeats < 1) return std::fprintf(stderr, "--repeats: expected >= 1\n"), 2;
    } else if (a == "--max-tokens") {
      if (!absl::SimpleAtoi(value(), &max_tokens) || max_tokens < 2) return std::fprintf(stderr, "--max-tokens: expected >= 2\n"), 2;
    } else if (a == "--json") {
      json_path = value();
    } else {
      std::fprintf(stderr, "usage: structured_bench [--package DIR] [--repeats N] [--max-tokens N] [--json FILE]\n");
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  ServingOptions options;
  options.package_dir = package;
  options.learn_costs = false;
  auto session = ServingSession::Open(options);
  if (!session.ok()) {
    std::fprintf(stderr, "structured_bench: %s\n", std::string(session.status().message()).c_str());
    return 1;
  }
  Json report = Json::array();
  std::printf("%-14s %5s %12s %12s %9s %7s\n", "case", "temp", "tpot_free_us", "tpot_cons_us", "rate", "tokens");
  for (const Case& c : Cases()) {
    for (double temperature : {0.0, 1.0}) {
      std::vector<double> free_tpot, cons_tpot;
      int64_t tokens = 0;
      std::string error;
      for (int r = 0; r < repeats && error.empty(); ++r) {
        Json body = {{"messages", {{{"role", "user"}, {"content", "Tell me about a person and their pets."}}}},
                     {"max_tokens", max_tokens}, {"temperature", temperature}, {"seed", 17 + r}, {"stream", true}};
        body.update(c.fields);
        const Timed cons = Run(**session, body);
        if (!cons.error.empty()) {
          error = cons.error;
          break;
        }
        if (cons.tokens < 2) continue;
        Json free = {{"messages", {{{"role", "user"}, {"content", "Tell me about a person and their pets."}}}},
                     {"max_tokens", cons.tokens}, {"temperature", temperature}, {"seed", 17 + r},
                     {"ignore_eos", true}, {"stream", true}};
        const Timed unc = Run(**session, free);
        if (!unc.error.empty()) {
          error = unc.error;
          break;
        }
        cons_tpot.push_back(cons.tpot);
        free_tpot.push_back(unc.tpot);
        tokens += cons.tokens;
      }
      if (!error.empty()) {
        std::printf("%-14s %5.1f error: %s\n", c.name.c_str(), temperature, error.c_str());
        report.push_back({{"case", c.name}, {"temperature", temperature}, {"error", error}});
        continue;
      }
      const double f = Median(free_tpot), k = Median(cons_tpot);
      const double rate = k > 0 ? f / k : 0;
      std::printf("%-14s %5.1f %12.1f %12.1f %9.3f %7.1f\n", c.name.c_str(), temperature, f * 1e6, k * 1e6, rate,
                  cons_tpot.empty() ? 0.0 : static_cast<double>(tokens) / static_cast<double>(cons_tpot.size()));
      report.push_back({{"case", c.name}, {"temperature", temperature}, {"tpot_unconstrained_s", f},
                        {"tpot_constrained_s", k}, {"relative_decode_rate", rate}});
    }
  }
  (*session)->Shutdown(ShutdownMode::kCancel);
  if (!json_path.empty()) std::ofstream(json_path) << report.dump(2) << "\n";
  return 0;
}

}  // namespace
}  // namespace tailor::bench

int main(int argc, char** argv) { return tailor::bench::Main(argc, argv); }
