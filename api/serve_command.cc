// `tailor serve`: an OpenAI-compatible HTTP endpoint over one package.
//
// Signals: SIGINT and SIGTERM are blocked in every thread (the mask is set before any thread
// starts, and threads inherit it) and received by one thread with sigwait(), which stops the
// server, cancels the requests in flight and lets Run() return; the process exits 0. No signal
// handler and no global state are involved. SIGPIPE is ignored (writes to a closed connection
// fail with EPIPE instead).
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "api/agent_check.h"
#include "api/commands.h"
#include "api/flags.h"
#include "api/http_server.h"
#include "api/serving_session.h"
#include "common/status_macros.h"

namespace tailor {
namespace {

const std::vector<FlagSpec>& ServeFlags() {
  static const auto* specs = new std::vector<FlagSpec>{
      {"package", true, {}, "compiled package (default: the package setup.sh built)"},
      {"host", true, {}, "address to listen on (default 127.0.0.1)"},
      {"port", true, {}, "TCP port (default 8000; 0: any free port, printed on stderr)"},
      {"api-key", true, {}, "require 'Authorization: Bearer KEY' on every route but /health (default: $TAILOR_API_KEY, which ps does not show; none if unset)"},
      {"allowed-origins", true, {}, "CORS: comma-separated origins (https://app.example.com) or * whose browser pages may call the API (default none)"},
      {"max-queue", true, {}, "sequences that may wait beyond the running batch (default: no limit; 0: none)"},
      {"served-model-name", true, {}, "the model name clients use (default: the package's)"},
      {"kv-cache-mb", true, {}, "KV cache size in MiB (default: the package's largest batch)"},
      {"http-threads", true, {}, "HTTP worker threads = concurrent requests served (default 64)"},
      {"agent-port", true, {}, "also answer HAProxy's agent-check on this TCP port (ready/drain and a weight from the queue)"},
      {"chat-template", true, {}, "a preset (llama-2, mistral, zephyr, chatml, plain) or a Jinja file (default: the model's own)"},
      {"max-body-mb", true, {}, "largest request body in MiB (default 8; larger: 413)"},
      {"seed", true, {}, "seed for requests without one (default: random)"},
      {"shutdown-timeout", true, {}, "seconds requests in flight may take to finish after SIGTERM/SIGINT before the rest are cancelled (default 30)"},
      {"max-prompt-tokens", true, {}, "most tokens a prompt may have (default: the package's largest ctx_len); longer: 400"},
      {"max-tokens-limit", true, {}, "largest max_tokens a request may ask for, and the cap on defaults (default: none but the context); larger: 400"},
      {"max-n", true, {}, "largest n (choices per prompt) a request may ask for (default 16); larger: 400"},
      {"request-timeout", true, {}, "seconds a request may run, waiting included, before it is cancelled with a 408 error (default 600; 0: no limit)"},
      {"max-connections", true, {}, "connections open at once, served or waiting for an HTTP thread; more are answered 503 with Retry-After (default 512)"},
      {"drain-delay", true, {}, "seconds after SIGTERM/SIGINT during which /health and the agent already say draining but new requests are still served, so a load balancer stops sending before they are refused (default 0)"},
  };
  return *specs;
}

struct ServeArgs {
  ServingOptions session;
  HttpServerOptions http;
  // After SIGTERM/SIGINT: how long requests in flight may take to finish before the rest are
  // cancelled.
  std::chrono::milliseconds shutdown_timeout{30000};
  // After SIGTERM/SIGINT, before new requests are refused: /health and the agent say draining.
  std::chrono::milliseconds drain_delay{0};
  int agent_port = -1;  // -1: no agent-check server
};

absl::StatusOr<ServeArgs> ParseArgs(const std::vector<std::string>& args, const Environment& env) {
  TAILOR_ASSIGN_OR_RETURN(ParsedFlags flags, ParseFlags(ServeFlags(), args));
  if (!flags.positional().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", flags.positional()[0], "'"));
  }
  ServeArgs a;
  TAILOR_ASSIGN_OR_RETURN(a.http.host, flags.GetString("host", "127.0.0.1"));
  TAILOR_ASSIGN_OR_RETURN(int64_t port, flags.GetInt("port", 8000, 0, 65535));
  a.http.port = static_cast<int>(port);
  // From the environment rather than the command line keeps the key out of `ps` and /proc/PID/cmdline.
  const char* env_key = std::getenv("TAILOR_API_KEY");
  TAILOR_ASSIGN_OR_RETURN(a.http.api_key, flags.GetString("api-key", env_key != nullptr ? env_key : ""));
  if (flags.Has("api-key") && a.http.api_key.empty()) return absl::InvalidArgumentError("--api-key: must not be empty");
  TAILOR_ASSIGN_OR_RETURN(std::string origins, flags.GetString("allowed-origins", ""));
  for (absl::string_view o : absl::StrSplit(origins, ',', absl::SkipWhitespace())) {
    const std::string origin(absl::StripAsciiWhitespace(o));
    if (origin != "*" && origin.find("://") == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("--allowed-origins: '", origin,
                                                     "' is not an origin: expected scheme://host[:port] or *"));
    }
    a.http.allowed_origins.push_back(origin);
  }
  TAILOR_ASSIGN_OR_RETURN(a.session.max_queue, flags.GetInt("max-queue", -1, 0, int64_t{1} << 40));
  TAILOR_ASSIGN_OR_RETURN(a.session.served_model_name, flags.GetString("served-model-name", ""));
  TAILOR_ASSIGN_OR_RETURN(a.session.kv_cache_mb, flags.GetInt("kv-cache-mb", 0, 1, int64_t{1} << 30));
  TAILOR_ASSIGN_OR_RETURN(int64_t threads, flags.GetInt("http-threads", 64, 1, 4096));
  if (flags.Has("agent-port")) {
    TAILOR_ASSIGN_OR_RETURN(int64_t agent_port, flags.GetInt("agent-port", 0, 0, 65535));
    a.agent_port = static_cast<int>(agent_port);
  }
  a.http.threads = static_cast<int>(threads);
  TAILOR_ASSIGN_OR_RETURN(a.session.chat_template, flags.GetString("chat-template", ""));
  TAILOR_ASSIGN_OR_RETURN(int64_t body_mb, flags.GetInt("max-body-mb", 8, 1, 4096));
  a.http.max_body_bytes = static_cast<size_t>(body_mb) << 20;
  TAILOR_ASSIGN_OR_RETURN(int64_t seed, flags.GetInt("seed", static_cast<int64_t>(env.random_seed >> 1), 0, INT64_MAX));
  a.session.seed = static_cast<uint64_t>(seed);
  TAILOR_ASSIGN_OR_RETURN(double shutdown_s, flags.GetDouble("shutdown-timeout", 30.0, 0.0, 86400.0));
  a.shutdown_timeout = std::chrono::milliseconds(static_cast<int64_t>(shutdown_s * 1000.0));
  // Limits a public endpoint needs (each refusal names its flag).
  TAILOR_ASSIGN_OR_RETURN(a.session.max_prompt_tokens, flags.GetInt("max-prompt-tokens", 0, 1, INT32_MAX));
  if (flags.Has("max-tokens-limit")) {
    TAILOR_ASSIGN_OR_RETURN(int64_t limit, flags.GetInt("max-tokens-limit", 0, 1, INT32_MAX));
    a.session.parse_limits.max_tokens_limit = static_cast<int32_t>(limit);
  }
  TAILOR_ASSIGN_OR_RETURN(int64_t max_n, flags.GetInt("max-n", 16, 1, 1024));
  a.session.parse_limits.max_n = static_cast<int32_t>(max_n);
  TAILOR_ASSIGN_OR_RETURN(double timeout_s, flags.GetDouble("request-timeout", 600.0, 0.0, 30.0 * 86400.0));
  a.session.request_timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000.0));
  TAILOR_ASSIGN_OR_RETURN(int64_t max_connections, flags.GetInt("max-connections", 512, 1, 1 << 20));
  a.http.max_connections = static_cast<int>(max_connections);
  TAILOR_ASSIGN_OR_RETURN(double drain_delay_s, flags.GetDouble("drain-delay", 0.0, 0.0, 3600.0));
  a.drain_delay = std::chrono::milliseconds(static_cast<int64_t>(drain_delay_s * 1000.0));
  a.session.log = [](const std::string& m) { std::cerr << "tailor serve: " << m << "\n"; };
  if (flags.Has("served-model-name") && a.session.served_model_name.empty()) {
    return absl::InvalidArgumentError("--served-model-name: must not be empty");
  }
  // Last, so that a bad flag is reported as such even where no default package exists.
  TAILOR_ASSIGN_OR_RETURN(a.session.package_dir, PackageOrDefault(flags.Get("package"), "--package DIR"));
  return a;
}

// Each connection holds a descriptor: raises the soft RLIMIT_NOFILE (up to the hard one) to what
// --max-connections needs, and warns when even the hard limit is short (connections past it
// wait in the kernel's backlog instead of getting their 503).
void RaiseDescriptorLimit(const HttpServerOptions& http) {
  const rlim_t need = static_cast<rlim_t>(http.max_connections) + static_cast<rlim_t>(http.threads) + 256;
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= need) return;
  lim.rlim_cur = lim.rlim_max == RLIM_INFINITY ? need : std::min(need, lim.rlim_max);
  setrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < need) {
    std::cerr << "tailor serve: warning: --max-connections " << http.max_connections << " needs about " << need
              << " file descriptors but this process may open " << lim.rlim_cur
              << " (ulimit -n); lower --max-connections or raise the limit" << std::endl;
  }
}

// Binds first, so that /health answers (503) while the package loads; then serves. The first
// SIGTERM/SIGINT drains: /health and new requests get 503 (new requests only after --drain-delay,
// while a load balancer notices), requests in flight finish within --shutdown-timeout, the rest
// are cancelled (each with its proper end); a second signal cancels at once. Exit status 0 either
// way.
absl::Status Serve(const ServeArgs& a, const sigset_t& stop_signals) {
  RaiseDescriptorLimit(a.http);
  TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<HttpServer> server, HttpServer::Bind(a.http));
  std::cerr << "tailor serve: loading " << a.session.package_dir << " (http://" << a.http.host << ":"
            << server->port() << "/health answers 503 until it is ready)" << std::endl;
  // HAProxy's agent-check: reads the state below from its own thread.
  std::atomic<ServingSession*> ready{nullptr};
  std::atomic<bool> draining{false};
  std::unique_ptr<AgentCheckServer> agent;
  if (a.agent_port >= 0) {
    TAILOR_ASSIGN_OR_RETURN(agent, AgentCheckServer::Start(a.http.host, a.agent_port, [&ready, &draining] {
      ServingSession* s = ready.load();
      if (s == nullptr || draining) return AgentStatusLine(s != nullptr, draining, 0, 1);
      return AgentStatusLine(true, false, s->stats().num_waiting, s->max_running());
    }));
    std::cerr << "tailor serve: agent-check on " << a.http.host << ":" << agent->port() << std::endl;
  }
  absl::Status run_status;
  std::atomic<bool> run_returned{false};
  std::thread runner([&] {
    run_status = server->Run();
    run_returned = true;
  });
  // Signals, one at a time: 1 = the first (drain), 2 = a second one (cancel now).
  std::mutex mu;
  std::condition_variable cv;
  int signals = 0;
  int first_signal = 0;
  std::atomic<bool> serving{true};
  std::thread waiter([&] {
    for (;;) {
      int sig = 0;
      sigwait(&stop_signals, &sig);
      std::lock_guard<std::mutex> lock(mu);
      if (!serving.load()) return;  // woken by Serve() itself to end
      if (signals++ == 0) first_signal = sig;
      cv.notify_all();
      if (signals >= 2) return;
    }
  });
  const pthread_t waiter_id = waiter.native_handle();
  auto finish = [&](absl::Status status) {
    agent.reset();  // before the session goes
    // Run() may not have reached its accept loop yet (an error right after binding): stop it
    // once it has, or once it returned by itself.
    server->Stop();
    while (!run_returned && !server->running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    server->Stop();
    runner.join();
    {
      std::lock_guard<std::mutex> lock(mu);
      serving = false;
      if (signals < 2) pthread_kill(waiter_id, SIGTERM);  // blocked there, so it goes to sigwait()
    }
    waiter.join();
    if (!status.ok()) return status;
    return run_status;
  };
  absl::StatusOr<std::unique_ptr<ServingSession>> session = ServingSession::Open(a.session);
  if (!session.ok()) return finish(session.status());
  {
    std::lock_guard<std::mutex> lock(mu);
    if (signals > 0) {  // stopped while loading
      (*session)->Shutdown(ShutdownMode::kCancel);
      return finish(absl::OkStatus());
    }
  }
  server->SetSession(session->get());
  // Whether the kernel gave the weights and the KV pool huge pages (common/huge_pages.h): with
  // transparent_hugepage "never" or fragmented memory, batch decode runs up to ~1.2x slower.
  // Read before "listening" (it scans /proc/self/smaps), so the start-up lines come together.
  const Runtime::Memory mem = (*session)->runtime().memory();
  ready = session->get();
  std::cerr << "tailor serve: listening on http://" << a.http.host << ":" << server->port() << " (model "
            << (*session)->model_name() << ", chat template " << (*session)->chat_template().name() << ", "
            << a.http.threads << " HTTP threads)" << std::endl;
  // The limits in force (never the API key itself: only whether one is required).
  const service::ParseLimits& pl = (*session)->parse_limits();
  std::cerr << "tailor serve: limits: --max-prompt-tokens "
            << (a.session.max_prompt_tokens > 0 ? a.session.max_prompt_tokens : (*session)->limits().max_ctx_len)
            << ", --max-tokens-limit "
            << (pl.max_tokens_limit ? absl::StrCat(*pl.max_tokens_limit) : std::string("none (the context)"))
            << ", --max-n " << pl.max_n << ", --request-timeout "
            << (a.session.request_timeout.count() > 0
                    ? absl::StrCat(std::chrono::duration<double>(a.session.request_timeout).count(), " s")
                    : std::string("none"))
            << ", --max-connections " << a.http.max_connections << ", --max-body-mb " << (a.http.max_body_bytes >> 20)
            << "; API key " << (a.http.api_key.empty() ? "not required" : "required") << std::endl;
  auto mib = [](int64_t bytes) { return absl::StrFormat("%.1f MiB", bytes / 1048576.0); };
  std::cerr << "tailor serve: memory: weights " << mib(mem.weights_bytes) << ", KV cache " << mib(mem.kv_bytes)
            << ", on huge pages " << (mem.huge_page_bytes >= 0 ? mib(mem.huge_page_bytes) : std::string("unknown"))
            << " (2 MiB pages)" << std::endl;
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return signals > 0; });
  }
  std::cerr << "tailor serve: " << (first_signal == SIGINT ? "SIGINT" : "SIGTERM") << ": draining "
            << (*session)->sequences_in_flight() << " sequences in flight (up to "
            << a.shutdown_timeout.count() / 1000.0 << " s; a second signal cancels them now)" << std::endl;
  if (a.drain_delay.count() > 0) {
    // Behind a load balancer: it polls /health (or the agent), so requests it sends before its
    // next check are still served rather than refused and retried elsewhere.
    server->AnnounceDraining();
    draining = true;
    std::cerr << "tailor serve: /health says draining; new requests still served for "
              << a.drain_delay.count() / 1000.0 << " s (--drain-delay)" << std::endl;
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, a.drain_delay, [&] { return signals >= 2; });
  }
  server->SetDraining();
  draining = true;
  const auto deadline = std::chrono::steady_clock::now() + a.shutdown_timeout;
  bool idle = false;
  while (!idle) {
    idle = (*session)->WaitIdle(std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(50)));
    std::lock_guard<std::mutex> lock(mu);
    if (signals >= 2 || std::chrono::steady_clock::now() >= deadline) break;
  }
  if (!idle) {
    std::cerr << "tailor serve: cancelling " << (*session)->sequences_in_flight() << " sequences still in flight"
              << std::endl;
  }
  (*session)->Shutdown(ShutdownMode::kCancel);  // ends whatever is left, each with its last event
  return finish(absl::OkStatus());
}

}  // namespace

int RunServe(const std::vector<std::string>& args, const Environment& env) {
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      std::cout << "usage: tailor serve [options]\n"
                   "an OpenAI-compatible HTTP server over a compiled package\n"
                << FlagsHelp(ServeFlags());
      return 0;
    }
  }
  // Before any thread exists, so that every thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  auto parsed = ParseArgs(args, env);
  if (!parsed.ok()) return ReportError(parsed.status());
  absl::Status s = Serve(*parsed, stop_signals);
  if (!s.ok()) return ReportError(s);
  return 0;
}

}  // namespace tailor
