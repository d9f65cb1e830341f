// `tailor serve`: an OpenAI-compatible HTTP endpoint over one package.
//
// Signals: SIGINT and SIGTERM are blocked in every thread (the mask is set before any thread
// starts, and threads inherit it) and received by one thread with sigwait(), which stops the
// server, cancels the requests in flight and lets Run() return; the process exits 0. No signal
// handler and no global state are involved. SIGPIPE is ignored (writes to a closed connection
// fail with EPIPE instead).
#include <pthread.h>
#include <signal.h>

#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "api/commands.h"
#include "api/flags.h"
#include "api/http_server.h"
#include "api/listen_address.h"
#include "api/serving_session.h"
#include "common/status_macros.h"

namespace tailor {
namespace {

const std::vector<FlagSpec>& ServeFlags() {
  static const auto* specs = new std::vector<FlagSpec>{
      {"package", true, {}, "compiled package (default: the package setup.sh built)"},
      {"host", true, {}, "address to listen on (default 127.0.0.1)"},
      {"port", true, {}, "TCP port (default 8000; 0: any free port, printed on stderr)"},
      {"api-key", true, {}, "require 'Authorization: Bearer KEY' on every route but /health"},
      {"max-queue", true, {}, "sequences that may wait beyond the running batch (default: no limit; 0: none)"},
      {"served-model-name", true, {}, "the model name clients use (default: the package's)"},
      {"kv-cache-mb", true, {}, "KV cache size in MiB (default: the package's largest batch)"},
      {"http-threads", true, {}, "HTTP worker threads = concurrent requests served (default 64)"},
      {"chat-template", true, {}, "a preset (llama-2, mistral, zephyr, chatml, plain) or a Jinja file (default: the model's own)"},
      {"max-body-mb", true, {}, "largest request body in MiB (default 8; larger: 413)"},
      {"seed", true, {}, "seed for requests without one (default: random)"},
  };
  return *specs;
}

struct ServeArgs {
  ServingOptions session;
  HttpServerOptions http;
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
  TAILOR_ASSIGN_OR_RETURN(a.http.api_key, flags.GetString("api-key", ""));
  TAILOR_ASSIGN_OR_RETURN(a.session.max_queue, flags.GetInt("max-queue", -1, 0, int64_t{1} << 40));
  TAILOR_ASSIGN_OR_RETURN(a.session.served_model_name, flags.GetString("served-model-name", ""));
  TAILOR_ASSIGN_OR_RETURN(a.session.kv_cache_mb, flags.GetInt("kv-cache-mb", 0, 1, int64_t{1} << 30));
  TAILOR_ASSIGN_OR_RETURN(int64_t threads, flags.GetInt("http-threads", 64, 1, 4096));
  a.http.threads = static_cast<int>(threads);
  TAILOR_ASSIGN_OR_RETURN(a.session.chat_template, flags.GetString("chat-template", ""));
  TAILOR_ASSIGN_OR_RETURN(int64_t body_mb, flags.GetInt("max-body-mb", 8, 1, 4096));
  a.http.max_body_bytes = static_cast<size_t>(body_mb) << 20;
  TAILOR_ASSIGN_OR_RETURN(int64_t seed, flags.GetInt("seed", static_cast<int64_t>(env.random_seed >> 1), 0, INT64_MAX));
  a.session.seed = static_cast<uint64_t>(seed);
  a.session.log = [](const std::string& m) { std::cerr << "tailor serve: " << m << "\n"; };
  if (flags.Has("served-model-name") && a.session.served_model_name.empty()) {
    return absl::InvalidArgumentError("--served-model-name: must not be empty");
  }
  // Last, so that a bad flag is reported as such even where no default package exists.
  TAILOR_ASSIGN_OR_RETURN(a.session.package_dir, PackageOrDefault(flags.Get("package"), "--package DIR"));
  return a;
}

absl::Status Serve(const ServeArgs& a, const sigset_t& stop_signals) {
  // Before loading the package: a busy port or a foreign --host is told at once.
  TAILOR_RETURN_IF_ERROR(CheckListenAddress(a.http.host, a.http.port));
  TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<ServingSession> session, ServingSession::Open(a.session));
  TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<HttpServer> server, HttpServer::Bind(*session, a.http));
  // Waits for SIGINT/SIGTERM; Serve() itself sends SIGTERM to this thread to end it.
  std::atomic<bool> serving{true};
  pthread_t waiter_id{};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (serving.load()) {
      std::cerr << "tailor serve: " << (sig == SIGINT ? "SIGINT" : "SIGTERM")
                << ": stopping (requests in flight are cancelled)\n";
    }
    server->Stop();
    session->Shutdown(ShutdownMode::kCancel);
  });
  waiter_id = waiter.native_handle();
  std::cerr << "tailor serve: listening on http://" << a.http.host << ":" << server->port() << " (model "
            << session->model_name() << ", chat template " << session->chat_template().name() << ", "
            << a.http.threads << " HTTP threads)" << std::endl;
  absl::Status status = server->Run();
  serving = false;
  pthread_kill(waiter_id, SIGTERM);  // blocked there, so it goes to sigwait()
  waiter.join();
  session->Shutdown(ShutdownMode::kCancel);
  return status;
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
