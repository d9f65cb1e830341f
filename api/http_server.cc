// The only translation unit that includes httplib.h (it breaks Eigen's headers: DESIGN.md).
#include "api/http_server.h"

#include <httplib.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstdlib>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <exception>
#include <functional>
#include <mutex>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/listen_address.h"
#include "api/openai_stream.h"
#include "common/status_macros.h"

namespace tailor {

using service::ApiError;

namespace {

constexpr char kJson[] = "application/json";

void SendError(httplib::Response& res, const ApiError& error) {
  res.status = error.http_status;
  res.set_content(error.ToJson(), kJson);
}

void SendJson(httplib::Response& res, const service::ResponseJson& body) {
  res.status = 200;
  res.set_content(service::DumpJson(body), kJson);
}

// Whether `given` equals the key. Constant time in what the client sends: one pass over every
// byte of the key whatever `given` holds (no exit at the first mismatch, none on a length
// mismatch), so the time taken depends on the key's length only, never on how much of it a
// guess got right. A length mismatch fails the comparison on its own.
bool SameKey(const std::string& given, const std::string& expected) {
  volatile unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    // Past given's end, its terminating NUL (given[size()] is valid): no branch on the key.
    const unsigned char a = static_cast<unsigned char>(given[i < given.size() ? i : given.size()]);
    diff = diff | static_cast<unsigned char>(a ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0;
}

// Set on the threads that answer connections over HttpServerOptions::max_connections: the
// pre-routing handler answers 503 there.
thread_local bool t_over_capacity = false;

// httplib's task queue (each accepted connection is one task: read requests and answer them
// until the connection closes) with a cap: at most `max_connections` tasks queued or running in
// the worker pool. A task over the cap runs on two overflow threads, marked with
// t_over_capacity, which read its request and answer 503 at once: a client sees the refusal
// instead of waiting unseen for a worker. httplib gives a task no access to its socket, hence
// answering through the handler rather than on the socket here.
class CappedConnectionQueue : public httplib::TaskQueue {
 public:
  CappedConnectionQueue(int threads, int max_connections)
      : pool_(static_cast<size_t>(threads)), overflow_(2), max_connections_(max_connections) {}

  void enqueue(std::function<void()> fn) override {
    if (open_.fetch_add(1) >= max_connections_) {
      open_.fetch_sub(1);
      overflow_.enqueue([fn = std::move(fn)] {
        t_over_capacity = true;
        fn();
        t_over_capacity = false;
      });
      return;
    }
    pool_.enqueue([this, fn = std::move(fn)] {
      fn();
      open_.fetch_sub(1);
    });
  }
  void shutdown() override {
    pool_.shutdown();
    overflow_.shutdown();
  }

 private:
  httplib::ThreadPool pool_;
  httplib::ThreadPool overflow_;
  std::atomic<int> open_{0};  // connections queued or served by pool_
  const int max_connections_;
};

// One streamed request: the engine's loop thread appends SSE text, an HTTP worker writes it.
struct StreamState {
  std::mutex mu;
  std::condition_variable cv;
  std::string pending;  // guarded by mu
  bool done = false;    // guarded by mu: the last event was formatted
  // Weak: the request's callback owns this state, so a strong pointer would be a cycle.
  std::weak_ptr<ActiveRequest> request;
};

// httplib 0.11.4 listens with a backlog of 5: a burst of clients connecting at once overflows it
// and some of them fail. listen() on a listening socket only changes its backlog (Linux), so
// this raises it after bind.
class BacklogServer : public httplib::Server {
 public:
  void RaiseBacklog(int backlog) {
    const socket_t sock = svr_sock_;
    if (sock != INVALID_SOCKET) ::listen(sock, backlog);
  }
};

// The value for Access-Control-Allow-Origin when `origin` may call the API, else "".
std::string AllowedOrigin(const std::vector<std::string>& allowed, const std::string& origin) {
  if (origin.empty()) return "";
  for (const std::string& a : allowed) {
    if (a == "*") return "*";
    if (a == origin) return origin;
  }
  return "";
}

// The connected socket of this process whose peer is `addr`:`port` and whose local port is
// `local_port`, or -1. httplib 0.11 gives a handler no way to see its connection, but the
// handler's thread owns that socket until it returns, so the descriptor found stays valid (and
// is not reused) while the handler waits. Scans /proc/self/fd: a few microseconds per descriptor.
int FindPeerSocket(const std::string& addr, int port, int local_port) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0') continue;
    sockaddr_storage peer{}, local{};
    socklen_t peer_len = sizeof peer, local_len = sizeof local;
    if (getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) continue;
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &local_len) != 0) continue;
    char host[INET6_ADDRSTRLEN] = {};
    int peer_port = -1, own_port = -1;
    if (peer.ss_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(&peer);
      inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
      peer_port = ntohs(in->sin_port);
      own_port = ntohs(reinterpret_cast<const sockaddr_in*>(&local)->sin_port);
    } else if (peer.ss_family == AF_INET6) {
      const auto* in = reinterpret_cast<const sockaddr_in6*>(&peer);
      inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof host);
      peer_port = ntohs(in->sin6_port);
      own_port = ntohs(reinterpret_cast<const sockaddr_in6*>(&local)->sin6_port);
    } else {
      continue;
    }
    if (peer_port == port && own_port == local_port && addr == host) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  return found;
}

// Whether the peer of connected socket `fd` has closed (or reset) the connection.
bool PeerClosed(int fd) {
  pollfd p{fd, POLLRDHUP, 0};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

}  // namespace

class HttpServer::Impl {
 public:
  explicit Impl(HttpServerOptions options) : options_(std::move(options)) {}

  void Install();

  // The session, once SetSession() made the server ready: handlers of routes other than
  // /health run only then (the pre-routing handler answers 503 before), so it is never null there.
  ServingSession& session() const { return *ready_.load(); }

  std::atomic<ServingSession*> ready_{nullptr};
  std::atomic<bool> draining_{false};    // new requests refused
  std::atomic<bool> announced_{false};   // /health says draining (set with draining_ too)
  const HttpServerOptions options_;
  BacklogServer server_;
  int port_ = 0;
  std::atomic<bool> stopped_{false};

 private:
  void HandleCompletion(service::Endpoint endpoint, const httplib::Request& req, httplib::Response& res);
  void Stream(service::Endpoint endpoint, const service::OpenAiRequest& request, httplib::Response& res);
  // Runs `body`, turning any exception into a 500 (exceptions stop at this edge).
  template <typename F>
  void Guard(httplib::Response& res, F&& body) {
    try {
      body();
    } catch (const std::exception& e) {
      SendError(res, ApiError::Internal(absl::StrCat("internal error: ", e.what())));
    } catch (...) {
      SendError(res, ApiError::Internal("internal error"));
    }
    if (res.status >= 400) session().metrics().RecordRequest(res.status >= 500 ? "5xx" : "4xx");
  }
};

void HttpServer::Impl::Install() {
  const int threads = options_.threads;
  const int max_connections = options_.max_connections;
  server_.new_task_queue = [threads, max_connections] { return new CappedConnectionQueue(threads, max_connections); };
  server_.set_payload_max_length(options_.max_body_bytes);
  server_.set_keep_alive_timeout(2);  // bounds how long an idle connection delays shutdown

  server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (t_over_capacity) {
      ApiError e = ApiError::Unavailable(absl::StrCat("The server already has its limit of ", options_.max_connections,
                                                      " connections open (tailor serve --max-connections); retry "
                                                      "shortly."));
      e.code = "too_many_connections";
      SendError(res, e);
      res.set_header("Retry-After", "1");
      res.set_header("Connection", "close");
      if (ServingSession* s = ready_.load()) s->metrics().RecordRequest("5xx");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.method == "OPTIONS") {
      // A CORS preflight (or a plain OPTIONS): answered here, before authentication, since
      // browsers never send credentials with it. The CORS headers come from the post-routing
      // handler when the origin is allowed.
      res.status = 204;
      res.set_header("Allow", "GET, POST, OPTIONS");
      const std::string origin = AllowedOrigin(options_.allowed_origins, req.get_header_value("Origin"));
      if (!origin.empty()) {
        res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        const std::string asked = req.get_header_value("Access-Control-Request-Headers");
        res.set_header("Access-Control-Allow-Headers", asked.empty() ? "Authorization, Content-Type" : asked);
        res.set_header("Access-Control-Max-Age", "600");
      }
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    if (ready_.load() == nullptr || draining_) {
      // Loading, or draining before exit: nothing but /health is served (a load balancer's
      // readiness check sees 503 there too and sends the request elsewhere).
      SendError(res, ApiError::Unavailable(draining_ ? "The server is shutting down; retry on another replica."
                                                     : "The model is still loading; retry shortly."));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (options_.api_key.empty()) return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    // The scheme is case-insensitive (RFC 7235): "bearer KEY" works too.
    if (auth.size() > 7 && absl::EqualsIgnoreCase(auth.substr(0, 7), "Bearer ") &&
        SameKey(auth.substr(7), options_.api_key)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    SendError(res, ApiError::Unauthorized(auth.empty() ? "Missing API key: send 'Authorization: Bearer KEY'."
                                                       : "Invalid API key."));
    session().metrics().RecordRequest("4xx");
    return httplib::Server::HandlerResponse::Handled;
  });
  // Statuses httplib sets itself (unknown route, body too large, bad request line) get OpenAI
  // bodies; responses that already have a body are left alone.
  server_.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                           httplib::Response& res) {
    if (!res.body.empty() || res.is_chunked_content_provider_) return httplib::Server::HandlerResponse::Unhandled;
    ApiError e;
    if (res.status == 404) {
      e = ApiError::NotFound(absl::StrCat("No route ", req.method, " ", req.path));
    } else if (res.status == 413) {
      e = ApiError::PayloadTooLarge(options_.max_body_bytes);
    } else {
      e.http_status = res.status;
      e.message = absl::StrCat("HTTP error ", res.status);
      if (res.status >= 500) e.type = "server_error";
    }
    SendError(res, e);
    return httplib::Server::HandlerResponse::Handled;
  }));
  server_.set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (options_.allowed_origins.empty()) return;
    const std::string origin = AllowedOrigin(options_.allowed_origins, req.get_header_value("Origin"));
    if (!origin.empty()) res.set_header("Access-Control-Allow-Origin", origin);
    if (origin != "*") res.set_header("Vary", "Origin");  // the answer depends on the Origin header
  });
  server_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    SendError(res, ApiError::Internal("internal error"));
  });

  server_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (draining_ || announced_) {
      res.status = 503;
      res.set_content("{\"status\":\"draining\"}", kJson);
    } else if (ready_.load() == nullptr) {
      res.status = 503;
      res.set_content("{\"status\":\"loading\"}", kJson);
    } else {
      res.set_content("{\"status\":\"ok\"}", kJson);
    }
  });
  server_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    Guard(res, [&] { res.set_content(session().RenderMetrics(), "text/plain; version=0.0.4; charset=utf-8"); });
  });
  server_.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    Guard(res, [&] { SendJson(res, service::ModelList(session().model_name(), session().created())); });
  });
  server_.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    Guard(res, [&] {
      if (req.matches[1] != session().model_name()) return SendError(res, ApiError::ModelNotFound(req.matches[1].str()));
      SendJson(res, service::ModelList(session().model_name(), session().created())["data"][0]);
    });
  });
  server_.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    HandleCompletion(service::Endpoint::kCompletions, req, res);
  });
  server_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    HandleCompletion(service::Endpoint::kChatCompletions, req, res);
  });
  server_.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    Guard(res, [&] {
      auto parsed = service::ParseTokenizeRequest(req.body, session().parse_limits());
      if (!parsed.ok()) return SendError(res, parsed.error());
      auto ids = session().Tokenize(*parsed);
      if (!ids.ok()) return SendError(res, ids.error());
      service::ResponseJson body;
      body["tokens"] = *ids;
      body["count"] = ids->size();
      body["max_model_len"] = session().limits().max_ctx_len;
      SendJson(res, body);
    });
  });
  server_.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    Guard(res, [&] {
      auto ids = service::ParseDetokenizeRequest(req.body, session().parse_limits());
      if (!ids.ok()) return SendError(res, ids.error());
      auto text = session().Detokenize(*ids);
      if (!text.ok()) return SendError(res, text.error());
      service::ResponseJson body;
      body["prompt"] = *text;
      SendJson(res, body);
    });
  });
  const auto not_allowed = [this](const httplib::Request& req, httplib::Response& res) {
    SendError(res, ApiError::MethodNotAllowed(absl::StrCat("Method ", req.method, " is not allowed on ", req.path)));
    session().metrics().RecordRequest("4xx");
  };
  server_.Get("/v1/completions", not_allowed);
  server_.Get("/v1/chat/completions", not_allowed);
  server_.Post("/v1/models", not_allowed);
}

void HttpServer::Impl::HandleCompletion(service::Endpoint endpoint, const httplib::Request& req,
                                        httplib::Response& res) {
  Guard(res, [&] {
    auto parsed = service::ParseOpenAiRequest(endpoint, req.body, session().parse_limits());
    if (!parsed.ok()) return SendError(res, parsed.error());
    if (parsed->stream) return Stream(endpoint, *parsed, res);
    // A client that goes away stops its request: its KV blocks are freed for others.
    const int fd = FindPeerSocket(req.remote_addr, req.remote_port, port_);
    auto response = session().Complete(*parsed, [fd] { return fd >= 0 && PeerClosed(fd); });
    if (!response.ok()) return SendError(res, response.error());
    SendJson(res, *response);
  });
}

void HttpServer::Impl::Stream(service::Endpoint endpoint, const service::OpenAiRequest& request,
                              httplib::Response& res) {
  service::ResponseMeta meta;
  meta.id = session().NewResponseId(endpoint == service::Endpoint::kChatCompletions ? "chatcmpl" : "cmpl");
  meta.created = static_cast<int64_t>(std::time(nullptr));
  meta.model = session().model_name();
  const int32_t num_choices =
      request.n * (endpoint == service::Endpoint::kChatCompletions ? 1 : static_cast<int32_t>(request.prompts.size()));
  auto state = std::make_shared<StreamState>();
  auto formatter = std::make_shared<SseStreamFormatter>(meta, endpoint, request.include_usage, num_choices);
  auto started = session().Start(request, [state, formatter](const SessionEvent& e) {
    std::string text = formatter->Format(e);  // loop thread only: no lock needed for the formatter
    std::lock_guard<std::mutex> lock(state->mu);
    state->pending += text;
    if (e.kind == SessionEvent::Kind::kDone) state->done = true;
    state->cv.notify_all();
  });
  if (!started.ok()) return SendError(res, started.error());
  state->request = *started;
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  ServingSession* session = &this->session();
  res.set_chunked_content_provider(
      "text/event-stream",
      [state, session](size_t, httplib::DataSink& sink) -> bool {
        std::string chunk;
        bool done = false;
        // Past --request-timeout: cancelled, and its last event (an error, 408) follows.
        if (auto r = state->request.lock()) session->CancelIfOverdue(*r);
        {
          std::unique_lock<std::mutex> lock(state->mu);
          state->cv.wait_for(lock, std::chrono::milliseconds(200),
                             [&] { return !state->pending.empty() || state->done; });
          chunk.swap(state->pending);
          done = state->done;
        }
        // Never write 0 bytes: httplib reads that as the end of the content.
        if (!chunk.empty() && !sink.write(chunk.data(), chunk.size())) {
          if (auto r = state->request.lock()) session->Cancel(*r);
          return false;
        }
        if (done) sink.done();
        return true;
      },
      [state, session](bool success) {
        // The connection failed or closed before the stream ended: free the request's blocks.
        bool done;
        {
          std::lock_guard<std::mutex> lock(state->mu);
          done = state->done;
        }
        if (!success || !done) {
          if (auto r = state->request.lock()) session->Cancel(*r);
        }
      });
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Bind(ServingSession& session,
                                                             const HttpServerOptions& options) {
  TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<HttpServer> server, Bind(options));
  server->SetSession(&session);
  return server;
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Bind(const HttpServerOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  impl->Install();
  // Without SO_REUSEPORT (httplib's default), so that a port in use is refused.
  impl->server_.set_socket_options([](socket_t fd) { SetListenSocketOptions(fd); });
  if (absl::Status s = CheckListenAddress(options.host, options.port); !s.ok()) return s;
  if (options.port == 0) {
    impl->port_ = impl->server_.bind_to_any_port(options.host);
    if (impl->port_ <= 0) {
      return absl::UnavailableError(absl::StrCat("cannot bind to ", options.host, " on any port"));
    }
  } else {
    if (!impl->server_.bind_to_port(options.host, options.port)) {
      return absl::UnavailableError(absl::StrCat("cannot bind to ", options.host, ":", options.port,
                                                 " (in use, or not an address of this machine)"));
    }
    impl->port_ = options.port;
  }
  impl->server_.RaiseBacklog(std::max(1024, options.threads));
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

int HttpServer::port() const { return impl_->port_; }

absl::Status HttpServer::Run() {
  if (impl_->stopped_) return absl::OkStatus();
  const bool ok = impl_->server_.listen_after_bind();
  if (!ok && !impl_->stopped_) return absl::InternalError("the HTTP server stopped with an error");
  return absl::OkStatus();
}

void HttpServer::SetSession(ServingSession* session) { impl_->ready_ = session; }

void HttpServer::SetDraining() {
  impl_->announced_ = true;
  impl_->draining_ = true;
}

void HttpServer::AnnounceDraining() { impl_->announced_ = true; }

void HttpServer::Stop() {
  impl_->stopped_ = true;
  impl_->server_.stop();
}

bool HttpServer::running() const { return impl_->server_.is_running(); }

}  // namespace tailor
