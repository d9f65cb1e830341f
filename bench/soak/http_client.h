// A minimal HTTP/1.1 client over loopback TCP for the soak driver: one request per connection
// ("Connection: close"), a deadline on the whole exchange, chunked and Content-Length bodies,
// and the means to walk away mid-response (the client disconnects the soak needs). No TLS, no
// redirects, no keep-alive: only what `tailor serve` answers.
//
// Thread-safety: every function is reentrant; a Connection belongs to one thread.
#ifndef TAILOR_BENCH_SOAK_HTTP_CLIENT_H_
#define TAILOR_BENCH_SOAK_HTTP_CLIENT_H_

#include <chrono>
#include <functional>
#include <string>

namespace tailor::soak {

using Clock = std::chrono::steady_clock;

// What came back for one request.
struct HttpReply {
  int status = 0;          // 0: no complete status line (see error)
  std::string error;       // why the exchange failed ("" when a full response arrived)
  std::string body;        // the body, de-chunked (as far as it arrived)
  bool complete = false;   // the whole body arrived (Content-Length reached, or the 0 chunk)
  bool abandoned = false;  // the caller's on_body returned false and the connection was dropped
};

// A TCP connection to 127.0.0.1:port. Closing is the destructor's job (or Close()).
class Connection {
 public:
  Connection() = default;
  ~Connection() { Close(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects to 127.0.0.1:`port`; "" on success, else what failed.
  std::string Open(int port, Clock::time_point deadline);
  // Sends every byte of `data` before `deadline`; "" on success, else what failed.
  std::string Send(const std::string& data, Clock::time_point deadline);
  // Reads one response. `on_body` (optional) sees the body so far after each read; returning
  // false makes ReadReply return at once with abandoned set (the caller then closes).
  HttpReply ReadReply(Clock::time_point deadline,
                      const std::function<bool(const std::string& body)>& on_body = nullptr);
  // Closes the socket; with `reset` the peer sees a reset (SO_LINGER 0) instead of a FIN.
  void Close(bool reset = false);
  bool open() const { return fd_ >= 0; }

 private:
  // Appends what the socket has to `buf`, waiting until `deadline`; false on EOF, error or timeout
  // (error says which).
  bool ReadMore(std::string& buf, Clock::time_point deadline, std::string& error);

  int fd_ = -1;
};

// The text of a POST request with a JSON (or any) body.
std::string PostRequest(const std::string& path, const std::string& body);
// The text of a GET request.
std::string GetRequest(const std::string& path);

// GET 127.0.0.1:port/path with a deadline of `timeout`.
HttpReply Get(int port, const std::string& path, std::chrono::milliseconds timeout);

}  // namespace tailor::soak

#endif  // TAILOR_BENCH_SOAK_HTTP_CLIENT_H_
