// The OpenAI-compatible HTTP front end of a ServingSession (cpp-httplib behind this header: no
// other translation unit includes httplib.h). Routes:
//   GET  /health                  200 {"status": "ok"}; 503 while loading or draining (never needs
//                                 the API key)
//   GET  /metrics                 Prometheus text
//   GET  /v1/models               the served model
//   POST /v1/completions          text completions (stream: server-sent events)
//   POST /v1/chat/completions     chat completions
// Errors use OpenAI's body {"error": {...}}: 400 naming the param, 401 (when an API key is set),
// 404 (route or model), 405, 408 (past the session's request_timeout), 413 (body over
// max_body_bytes), 429 (queue full), 500, 503 (loading, draining, or over max_connections).
// The API key is compared in constant time (no early exit, whatever the lengths) and never
// written anywhere.
// A client that disconnects has its request cancelled (its KV blocks are freed): streams when a
// write fails, non-streamed requests when their socket reports the peer closed (polled).
// CORS (allowed_origins): a preflight OPTIONS from an allowed origin gets 204 with the
// Access-Control-Allow-* headers, and every response to an allowed origin (errors included)
// carries Access-Control-Allow-Origin. OPTIONS never needs the API key.
//
// Thread-safety: Run() blocks the calling thread; Stop() may be called from any other thread.
#ifndef TAILOR_API_HTTP_SERVER_H_
#define TAILOR_API_HTTP_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/serving_session.h"

namespace tailor {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: any free port (see HttpServer::port())
  std::string api_key;  // "": no authentication
  // CORS: origins (scheme://host[:port], exact) whose browser pages may call the API; "*" allows
  // any. Empty: no Access-Control-* headers, so browsers keep cross-origin pages out.
  std::vector<std::string> allowed_origins;
  size_t max_body_bytes = size_t{8} << 20;
  int threads = 64;  // worker threads = the most requests (streams included) served at once
  // The most connections open at once, served or waiting for a worker thread. Connections over
  // it are answered 503 (OpenAI error body, code "too_many_connections", Retry-After: 1,
  // Connection: close) by a separate pair of threads, instead of waiting unseen.
  int max_connections = 512;
};

class HttpServer {
 public:
  // Binds the socket (Unavailable naming host and port if that fails). `session` must outlive
  // the server.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Bind(ServingSession& session,
                                                          const HttpServerOptions& options);
  // Binds before there is a session: until SetSession(), Run() answers /health with 503
  // {"status": "loading"} and every other route with 503.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Bind(const HttpServerOptions& options);
  // Makes the server ready: /health 200, every route served. `session` must outlive the server.
  void SetSession(ServingSession* session);
  // Before exit: /health answers 503 {"status": "draining"} and new requests get 503, while the
  // requests in flight (streams included) go on. Any thread.
  void SetDraining();
  // The first step of a drain behind a load balancer: /health answers 503 {"status": "draining"}
  // (the balancer stops sending) while new requests are still served, for those it sends before
  // its next health check. SetDraining() then refuses them. Any thread.
  void AnnounceDraining();
  ~HttpServer();

  int port() const;  // the bound port
  // Serves until Stop(). Returns an error if the server failed (not after Stop()).
  absl::Status Run();
  // Stops accepting connections and makes Run() return once the requests in flight end (cancel
  // them through the session to make that quick). A Run() that has not started listening yet may
  // miss it: wait for running() (or Run()'s return) and call Stop() again.
  void Stop();
  bool running() const;  // Run() is in its accept loop

  class Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tailor

#endif  // TAILOR_API_HTTP_SERVER_H_
