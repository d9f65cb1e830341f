// The `tailor serve` process a soak drives: started as a child (stderr captured, the port read
// from its "listening on http://HOST:PORT" line) or attached to by pid; its resident memory and
// open descriptors read from /proc; stopped with SIGTERM and its exit status collected. The soak
// and the end-to-end tests (tests/serve_process.h) both start servers with it.
//
// Thread-safety: stderr_text() may be called from any thread; the rest from one thread.
#ifndef TAILOR_BENCH_SOAK_SERVER_PROCESS_H_
#define TAILOR_BENCH_SOAK_SERVER_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tailor::soak {

class ServerProcess {
 public:
  // Runs `argv` (argv[0] a path to tailor, the rest its arguments, which should include
  // "--port 0"); waits up to `timeout` for the listening line. ok() says whether it came.
  ServerProcess(const std::vector<std::string>& argv, std::chrono::seconds timeout);
  // A server this process did not start: only its pid (for /proc) and port are known.
  ServerProcess(pid_t pid, int port) : pid_(pid), port_(port), owned_(false) {}
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool ok() const { return port_ > 0; }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  bool owned() const { return owned_; }
  // False once the process has exited (for a started child: reaped, exit_code() then set).
  bool Alive();
  // VmRSS in KiB (-1 if unreadable) and the number of entries in /proc/PID/fd (-1 likewise).
  long RssKb() const;
  int FdCount() const;
  // SIGTERM, then waits up to `timeout`; the exit code (128 + signal if killed by one), or -1 if
  // it did not exit in time (it is then killed with SIGKILL).
  int Terminate(std::chrono::seconds timeout);
  // For a started child: sends `sig` and waits (Stop), or only waits for it to exit (Wait, after
  // a signal sent with kill(pid(), ...)); the exit code as above, -1 for an attached server.
  int Stop(int sig);
  int Wait();
  int exit_code() const { return exit_code_; }
  // The server's stderr so far (its last 64 KiB).
  std::string stderr_text();

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  bool owned_ = true;
  int err_fd_ = -1;
  int exit_code_ = -1;
  std::mutex mu_;
  std::string err_;  // guarded by mu_
  std::thread drain_;
};

}  // namespace tailor::soak

#endif  // TAILOR_BENCH_SOAK_SERVER_PROCESS_H_
