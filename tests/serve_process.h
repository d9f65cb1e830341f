// Runs `tailor serve ... --port 0` as a child process for end-to-end tests: waits for its
// "listening on http://HOST:PORT" line on stderr, keeps draining stderr, and stops it with a
// signal. A thin layer over the soak's ServerProcess (bench/soak/server_process.h, linked into
// every test), which does the fork, the pipe and the reaping.
#ifndef TAILOR_TESTS_SERVE_PROCESS_H_
#define TAILOR_TESTS_SERVE_PROCESS_H_

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdint>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "bench/soak/server_process.h"

namespace tailor::testing_util {

class ServeProcess {
 public:
  // Starts `tailor serve <args> --port PORT` (0: any free port). port() is 0 if it did not start
  // listening within `timeout` (stderr_text() says why).
  explicit ServeProcess(std::vector<std::string> args,
                        std::chrono::seconds timeout = std::chrono::seconds(60), int port = 0)
      : process_(Argv(std::move(args), port), timeout) {}

  int port() const { return process_.port(); }
  pid_t pid() const { return process_.pid(); }
  std::string stderr_text() { return process_.stderr_text(); }
  // Sends `sig` and waits; returns the exit code (128 + signal if killed by one).
  int Stop(int sig = SIGTERM) { return process_.Stop(sig); }
  // Waits for the process to exit (after a signal sent with kill(pid(), ...)); its exit code.
  int Wait() { return process_.Wait(); }

 private:
  static std::vector<std::string> Argv(std::vector<std::string> args, int port) {
    args.insert(args.begin(), {TAILOR_BINARY, "serve"});
    args.insert(args.end(), {"--port", std::to_string(port)});
    return args;
  }

  soak::ServerProcess process_;
};

// A TCP connection to 127.0.0.1:port, for tests that speak raw bytes (or nothing) to a server;
// the caller owns the descriptor. -1 if the connection failed.
inline int ConnectLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace tailor::testing_util

#endif  // TAILOR_TESTS_SERVE_PROCESS_H_
