// soak: holds `tailor serve` under load on loopback for a bounded time and number of requests,
// then checks that it is whole. Usage: soak --help.
//
// Phases: start the server (or attach to one with --port/--pid); count its descriptors; warm up
// with the full load; wait until it is idle and read its resident memory (the baseline); run the
// load for --seconds; wait until idle again and read memory, descriptors and /metrics; stop it
// with SIGTERM. Exit 0 when every check passed, 1 when one failed, 2 on bad usage.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "bench/soak/http_client.h"
#include "bench/soak/server_process.h"
#include "bench/soak/soak_report.h"
#include "bench/soak/workload.h"

namespace tailor::soak {
namespace {

constexpr char kUsage[] = R"(soak: drives `tailor serve` on 127.0.0.1 with many concurrent clients and checks it stays whole.

  soak [--tailor PATH] [--package DIR] [--http-threads N] [--serve-arg ARG]...   start a server
  soak --port P [--pid PID]                                                      or use a running one

  --seconds S          length of the measured load (default 600)
  --warmup-seconds W   load before the memory baseline (default min(60, S/5))
  --connections C      concurrent client connections (default 256)
  --max-requests N     stop the load after N requests in all (default 10000000)
  --max-tokens M       ordinary requests draw max_tokens from 1..M (default 48)
  --p99-bound-ms B     fail if the p99 latency of completed requests exceeds B (default 20000)
  --rss-ratio R        fail if RSS after the soak exceeds R x RSS after warm-up (default 1.1)
  --no-rss-check       report RSS but do not check it (sanitizer builds: ASan's quarantine)
  --malloc-caches      keep glibc's per-thread caches in the started server (see below)
  --seed S             the clients' random seed (default 1)
  --json FILE          also write the report as JSON
Without --tailor the server is the tailor built beside this program; it serves --package or
its default package, with --http-threads 256 unless given, and with
GLIBC_TUNABLES=glibc.malloc.tcache_count=0: each of glibc's per-thread caches keeps up to 7 freed
chunks per size class, so 256 HTTP threads hold tens of MB that grow for minutes as threads meet
new sizes (bounded, not a leak); without them RSS shows what the server really keeps.
)";

struct Args {
  std::string tailor = TAILOR_BINARY;
  std::string package;
  int http_threads = 256;
  std::vector<std::string> serve_args;
  int port = 0;
  int pid = 0;
  double seconds = 600;
  double warmup_seconds = -1;
  int connections = 256;
  int64_t max_requests = 10'000'000;
  int max_tokens = 48;
  double p99_bound_ms = 20000;
  double rss_ratio = 1.1;
  bool rss_check = true;
  bool malloc_caches = false;
  uint64_t seed = 1;
  std::string json;
};

// Parses argv; exits 2 with a message naming the flag on bad usage, 0 after --help.
Args ParseArgs(int argc, char** argv) {
  Args a;
  auto fail = [](const std::string& msg) {
    std::cerr << "soak: " << msg << " (see soak --help)\n";
    std::exit(2);
  };
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (flag == "--no-rss-check" || flag == "--malloc-caches") {
      (flag == "--no-rss-check" ? a.rss_check : a.malloc_caches) = flag == "--malloc-caches";
      continue;
    }
    if (i + 1 >= argc) fail(flag + " needs a value");
    const std::string v = argv[++i];
    auto num = [&](double lo, double hi) {
      char* end = nullptr;
      const double x = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !(x >= lo && x <= hi)) {
        fail(flag + " must be a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + v + "'");
      }
      return x;
    };
    if (flag == "--tailor") a.tailor = v;
    else if (flag == "--package") a.package = v;
    else if (flag == "--http-threads") a.http_threads = static_cast<int>(num(1, 4096));
    else if (flag == "--serve-arg") a.serve_args.push_back(v);
    else if (flag == "--port") a.port = static_cast<int>(num(1, 65535));
    else if (flag == "--pid") a.pid = static_cast<int>(num(1, 1 << 30));
    else if (flag == "--seconds") a.seconds = num(1, 7 * 86400);
    else if (flag == "--warmup-seconds") a.warmup_seconds = num(0, 86400);
    else if (flag == "--connections") a.connections = static_cast<int>(num(1, 4096));
    else if (flag == "--max-requests") a.max_requests = static_cast<int64_t>(num(1, 1e12));
    else if (flag == "--max-tokens") a.max_tokens = static_cast<int>(num(1, 100000));
    else if (flag == "--p99-bound-ms") a.p99_bound_ms = num(1, 1e9);
    else if (flag == "--rss-ratio") a.rss_ratio = num(1, 100);
    else if (flag == "--seed") a.seed = static_cast<uint64_t>(num(0, 1e18));
    else if (flag == "--json") a.json = v;
    else fail("unknown flag '" + flag + "'");
  }
  if (a.pid != 0 && a.port == 0) fail("--pid needs --port");
  if (a.warmup_seconds < 0) a.warmup_seconds = std::min(60.0, a.seconds / 5);
  return a;
}

// Runs `connections` client threads for `seconds` (or until `budget` requests in all), adding
// what they saw to `stats`. Stops early (and returns false) when the server dies.
bool RunLoad(const Args& args, ServerProcess& server, double seconds, std::atomic<int64_t>& budget,
             uint64_t seed, Stats& stats) {
  WorkloadOptions options;
  options.port = server.port();
  options.max_tokens = args.max_tokens;
  std::atomic<bool> stop{false};
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> clients;
  for (int c = 0; c < args.connections; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937_64 rng(seed * 1000003 + static_cast<uint64_t>(c));
      Stats mine;
      while (!stop.load() && Clock::now() < end && budget.fetch_sub(1) > 0) {
        mine.Add(RunOne(DrawKind(options, rng), options, rng));
      }
      stats.Merge(mine);
    });
  }
  bool alive = true;
  while (Clock::now() < end && budget.load() > 0) {
    if (!server.Alive()) {
      alive = false;
      stop = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (std::thread& t : clients) t.join();
  return alive && server.Alive();
}

// Waits up to `timeout` until the server runs and holds nothing; the last metrics read.
Metrics WaitIdle(int port, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  Metrics m;
  for (;;) {
    m = ReadMetrics(port);
    if (m.ok && m.Get("tailor_requests_running") == 0 && m.Get("tailor_requests_waiting") == 0 &&
        m.Get("tailor_kv_blocks_used") == 0) {
      return m;
    }
    if (Clock::now() >= deadline) return m;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// Waits up to `timeout` until the server has at most `count` descriptors open; the last count.
int WaitFds(const ServerProcess& server, int count, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  int n = server.FdCount();
  while (n > count && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    n = server.FdCount();
  }
  return n;
}

int Main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  std::unique_ptr<ServerProcess> server;
  if (args.port != 0) {
    server = std::make_unique<ServerProcess>(args.pid, args.port);
  } else {
    std::vector<std::string> argv_serve = {args.tailor, "serve", "--port", "0", "--host", "127.0.0.1",
                                           "--http-threads", std::to_string(args.http_threads)};
    if (!args.package.empty()) argv_serve.insert(argv_serve.end(), {"--package", args.package});
    argv_serve.insert(argv_serve.end(), args.serve_args.begin(), args.serve_args.end());
    if (!args.malloc_caches) setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0", 1);  // the child inherits it
    server = std::make_unique<ServerProcess>(argv_serve, std::chrono::seconds(300));
    if (!server->ok()) {
      std::cerr << "soak: the server did not start listening:\n" << server->stderr_text() << "\n";
      return 1;
    }
  }
  Report report;
  report.args_text = "connections " + std::to_string(args.connections) + ", http threads " +
                     (args.port ? std::string("(given server)") : std::to_string(args.http_threads)) +
                     ", seconds " + std::to_string(args.seconds) + ", warm-up " +
                     std::to_string(args.warmup_seconds);
  report.p99_bound_ms = args.p99_bound_ms;
  report.rss_ratio_bound = args.rss_check ? args.rss_ratio : 0;
  const bool have_pid = args.port == 0 || args.pid != 0;
  report.before = WaitIdle(server->port(), std::chrono::seconds(30));
  if (!report.before.ok) {
    std::cerr << "soak: cannot read /metrics from port " << server->port() << "\n";
    return 1;
  }
  report.fd_start = have_pid ? server->FdCount() : -1;
  std::atomic<int64_t> budget{args.max_requests};
  Stats stats;
  std::cerr << "soak: warm-up " << args.warmup_seconds << " s, " << args.connections << " connections\n";
  bool alive = args.warmup_seconds <= 0 || RunLoad(args, *server, args.warmup_seconds, budget, args.seed, stats);
  if (alive) {
    report.after_warmup = WaitIdle(server->port(), std::chrono::seconds(60));
    report.fd_after_warmup = have_pid ? WaitFds(*server, report.fd_start, std::chrono::seconds(10)) : -1;
    report.rss_after_warmup_kb = have_pid ? server->RssKb() : -1;
    std::cerr << "soak: load " << args.seconds << " s\n";
    const auto t0 = Clock::now();
    alive = RunLoad(args, *server, args.seconds, budget, args.seed + 1, stats);
    report.load_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  report.stats = &stats;
  report.server_alive = alive;
  if (alive) {
    report.after = WaitIdle(server->port(), std::chrono::seconds(60));
    report.fd_end = have_pid ? WaitFds(*server, report.fd_start, std::chrono::seconds(10)) : -1;
    report.rss_end_kb = have_pid ? server->RssKb() : -1;
  }
  if (server->owned()) {
    // Nothing is in flight: a clean drain takes well under the server's shutdown timeout.
    report.exit_code = server->Terminate(std::chrono::seconds(60));
    report.terminated = true;
  }
  const bool passed = report.Check();
  std::cout << report.Text();
  if (!passed && server->owned()) {
    const std::string err = server->stderr_text();
    std::cout << "server stderr (tail):\n" << err.substr(err.size() > 4000 ? err.size() - 4000 : 0) << "\n";
  }
  if (!args.json.empty()) {
    std::ofstream out(args.json);
    out << report.Json() << "\n";
    if (!out) {
      std::cerr << "soak: cannot write " << args.json << "\n";
      return 1;
    }
  }
  return passed ? 0 : 1;
}

}  // namespace
}  // namespace tailor::soak

int main(int argc, char** argv) { return tailor::soak::Main(argc, argv); }
