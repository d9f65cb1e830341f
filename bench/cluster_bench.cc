// Replays a request trace (build/make_trace) over HTTP against a balancer (scripts/cluster.sh)
// or a single replica, streaming, and reports what a routing policy changes: the aggregate
// prefix-cache hit rate (the sum over replicas of tailor_prefix_cache_hit_tokens_total divided by
// the prompt tokens the requests used), output throughput, and TTFT p50/p99.
//
//   build/cluster_bench --url http://127.0.0.1:8080 --trace trace.jsonl --package DIR
//       --replicas PORT,PORT,... [--speed X] [--label NAME] [--json out.json]
//
// Prompts are sent as text: each trace prompt (its token ids, BOS dropped) decoded with the
// package's tokenizer, as a user's text would arrive; the replica encodes it again (BOS first).
// Requests are greedy with ignore_eos and the trace's max_tokens, each sent at its arrival time
// (divided by --speed) from its own thread. Replica counters are read before and after.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "api/model_tokenizer.h"
#include "engine/package.h"
#include "nlohmann/json.hpp"
#include "scheduler/trace.h"

namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

int Fail(const std::string& message) {
  std::cerr << "cluster_bench: " << message << "\n"
            << "usage: cluster_bench --url http://HOST:PORT --trace FILE --package DIR --replicas PORT,PORT,...\n"
               "                     [--speed X (1)] [--label NAME] [--json FILE]\n";
  return 2;
}

struct Counters {
  double hit_tokens = 0;
  double prompt_tokens = 0;
};

// A replica's prefix-cache counters from /metrics; false when it does not answer.
bool ReadCounters(int port, Counters* c) {
  httplib::Client client("127.0.0.1", port);
  auto r = client.Get("/metrics");
  if (!r || r->status != 200) return false;
  std::smatch m;
  if (std::regex_search(r->body, m, std::regex("\ntailor_prefix_cache_hit_tokens_total ([0-9.e+-]+)"))) {
    c->hit_tokens = std::stod(m[1]);
  }
  if (std::regex_search(r->body, m, std::regex("\ntailor_prompt_tokens_total ([0-9.e+-]+)"))) {
    c->prompt_tokens = std::stod(m[1]);
  }
  return true;
}

struct Outcome {
  bool ok = false;
  double ttft_s = -1;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  std::string error;
};

// One streamed completion; TTFT is the time to the first event carrying text.
Outcome Send(const std::string& host, int port, const std::string& prompt, int max_tokens) {
  Outcome out;
  httplib::Client client(host, port);
  client.set_read_timeout(600, 0);
  const Json body = {{"prompt", prompt},      {"max_tokens", max_tokens}, {"temperature", 0},
                     {"ignore_eos", true},    {"stream", true},
                     {"stream_options", {{"include_usage", true}}}};
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  const auto start = Clock::now();
  std::string pending;
  bool done = false;
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    pending.append(data, len);
    for (size_t end = pending.find("\n\n"); end != std::string::npos; end = pending.find("\n\n")) {
      const std::string event = pending.substr(0, end);
      pending.erase(0, end + 2);
      if (event.rfind("data: ", 0) != 0) continue;
      const std::string payload = event.substr(6);
      if (payload == "[DONE]") {
        done = true;
        continue;
      }
      const Json j = Json::parse(payload, nullptr, false);
      if (j.is_discarded()) continue;
      if (out.ttft_s < 0 && j.contains("choices") && !j["choices"].empty() &&
          !j["choices"][0].value("text", "").empty()) {
        out.ttft_s = std::chrono::duration<double>(Clock::now() - start).count();
      }
      if (j.contains("usage") && j["usage"].is_object()) {
        out.prompt_tokens = j["usage"].value("prompt_tokens", 0);
        out.completion_tokens = j["usage"].value("completion_tokens", 0);
      }
    }
    return true;
  };
  auto r = client.send(req);
  if (!r) {
    out.error = "no response: " + httplib::to_string(r.error());
  } else if (r->status != 200) {
    out.error = "HTTP " + std::to_string(r->status);
  } else if (!done) {
    out.error = "stream ended without [DONE]";
  } else {
    out.ok = true;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string url, trace_path, package_dir, replicas_arg, label = "run", json_path;
  double speed = 1.0;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      Fail("replays a trace through a balancer");
      return 0;
    }
    if (i + 1 >= argc) return Fail(flag + " needs a value");
    const std::string v = argv[++i];
    if (flag == "--url") {
      url = v;
    } else if (flag == "--trace") {
      trace_path = v;
    } else if (flag == "--package") {
      package_dir = v;
    } else if (flag == "--replicas") {
      replicas_arg = v;
    } else if (flag == "--label") {
      label = v;
    } else if (flag == "--json") {
      json_path = v;
    } else if (flag == "--speed") {
      if (!absl::SimpleAtod(v, &speed) || speed <= 0) return Fail("--speed " + v + ": expected a positive number");
    } else {
      return Fail("unknown flag " + flag);
    }
  }
  if (url.empty() || trace_path.empty() || package_dir.empty() || replicas_arg.empty()) {
    return Fail("--url, --trace, --package and --replicas are required");
  }
  std::smatch m;
  if (!std::regex_match(url, m, std::regex("http://([^:/]+):([0-9]+)/?"))) {
    return Fail("--url " + url + ": expected http://HOST:PORT");
  }
  const std::string host = m[1];
  const int port = std::stoi(m[2]);
  std::vector<int> replica_ports;
  for (absl::string_view p : absl::StrSplit(replicas_arg, ',', absl::SkipEmpty())) {
    int value = 0;
    if (!absl::SimpleAtoi(p, &value) || value <= 0 || value > 65535) {
      return Fail("--replicas: '" + std::string(p) + "' is not a port");
    }
    replica_ports.push_back(value);
  }
  auto trace = tailor::ReadTraceJsonl(trace_path);
  if (!trace.ok()) return Fail(std::string(trace.status().message()));
  auto package = tailor::OpenPackage(package_dir);
  if (!package.ok()) return Fail(std::string(package.status().message()));
  auto tokenizer = tailor::LoadPackageTokenizer(**package);
  if (!tokenizer.ok()) return Fail(std::string(tokenizer.status().message()));
  std::vector<std::string> prompts;
  for (const auto& r : *trace) {
    std::span<const int32_t> ids(r.prompt_ids);
    if (!ids.empty() && ids[0] == (*tokenizer)->bos_id()) ids = ids.subspan(1);
    prompts.push_back((*tokenizer)->Decode(ids));
  }

  std::vector<Counters> before(replica_ports.size()), after(replica_ports.size());
  for (size_t i = 0; i < replica_ports.size(); ++i) {
    if (!ReadCounters(replica_ports[i], &before[i])) {
      return Fail("replica port " + std::to_string(replica_ports[i]) + ": /metrics does not answer");
    }
  }
  std::vector<Outcome> outcomes(trace->size());
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (size_t i = 0; i < trace->size(); ++i) {
    const auto at = start + std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>((*trace)[i].arrival_s / speed));
    std::this_thread::sleep_until(at);
    threads.emplace_back([&, i] { outcomes[i] = Send(host, port, prompts[i], (*trace)[i].max_tokens); });
  }
  for (auto& t : threads) t.join();
  const double wall_s = std::chrono::duration<double>(Clock::now() - start).count();
  for (size_t i = 0; i < replica_ports.size(); ++i) ReadCounters(replica_ports[i], &after[i]);

  int ok = 0;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  std::vector<double> ttft;
  std::string first_error;
  for (const Outcome& o : outcomes) {
    if (!o.ok) {
      if (first_error.empty()) first_error = o.error;
      continue;
    }
    ++ok;
    prompt_tokens += o.prompt_tokens;
    completion_tokens += o.completion_tokens;
    if (o.ttft_s >= 0) ttft.push_back(o.ttft_s);
  }
  double hits = 0;
  Json per_replica = Json::array();
  for (size_t i = 0; i < replica_ports.size(); ++i) {
    const double h = after[i].hit_tokens - before[i].hit_tokens;
    const double p = after[i].prompt_tokens - before[i].prompt_tokens;
    hits += h;
    per_replica.push_back({{"port", replica_ports[i]}, {"prompt_tokens", p}, {"hit_tokens", h}});
  }
  const double hit_rate = prompt_tokens > 0 ? hits / static_cast<double>(prompt_tokens) : 0.0;
  const double p50 = tailor::Percentile(ttft, 50) * 1000.0, p99 = tailor::Percentile(ttft, 99) * 1000.0;
  std::printf("%-10s requests %d/%zu  wall %.2f s  output %.1f tok/s  TTFT p50 %.0f ms p99 %.0f ms  "
              "prefix-cache hits %.1f%% (%.0f of %lld prompt tokens)\n",
              label.c_str(), ok, outcomes.size(), wall_s, completion_tokens / wall_s, p50, p99, 100.0 * hit_rate,
              hits, static_cast<long long>(prompt_tokens));
  for (const auto& r : per_replica) {
    std::printf("           replica :%d  prompt tokens %.0f  hit tokens %.0f\n", r["port"].get<int>(),
                r["prompt_tokens"].get<double>(), r["hit_tokens"].get<double>());
  }
  if (!first_error.empty()) std::fprintf(stderr, "cluster_bench: %zu failed, e.g. %s\n", outcomes.size() - ok,
                                         first_error.c_str());
  if (!json_path.empty()) {
    const Json j = {{"label", label},
                    {"requests", outcomes.size()},
                    {"ok", ok},
                    {"wall_s", wall_s},
                    {"output_tokens_per_s", completion_tokens / wall_s},
                    {"ttft_p50_ms", p50},
                    {"ttft_p99_ms", p99},
                    {"prompt_tokens", prompt_tokens},
                    {"hit_tokens", hits},
                    {"hit_rate", hit_rate},
                    {"replicas", per_replica}};
    std::ofstream(json_path) << j.dump(2) << "\n";
  }
  return ok == static_cast<int>(outcomes.size()) ? 0 : 1;
}
