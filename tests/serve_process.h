// Runs `tailor serve ... --port 0` as a child process for end-to-end tests: waits for its
// "listening on http://HOST:PORT" line on stderr, keeps draining stderr, and stops it with a signal.
#ifndef TAILOR_TESTS_SERVE_PROCESS_H_
#define TAILOR_TESTS_SERVE_PROCESS_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace tailor::testing_util {

class ServeProcess {
 public:
  // Starts `tailor serve <args> --port PORT` (0: any free port). port() is 0 if it did not start
  // listening within `timeout` (stderr() says why).
  explicit ServeProcess(std::vector<std::string> args,
                        std::chrono::seconds timeout = std::chrono::seconds(60), int port = 0) {
    args.insert(args.begin(), {TAILOR_BINARY, "serve"});
    args.insert(args.end(), {"--port", std::to_string(port)});
    int err_pipe[2];
    if (pipe(err_pipe) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      int devnull = open("/dev/null", O_RDWR);
      dup2(devnull, 0);
      dup2(devnull, 1);
      dup2(err_pipe[1], 2);
      close(err_pipe[0]);
      close(err_pipe[1]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(err_pipe[1]);
    fd_ = err_pipe[0];
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const std::regex listening("listening on http://[^:]+:([0-9]+)");
    std::string text;
    char buf[4096];
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      ssize_t n = read(fd_, buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, static_cast<size_t>(n));
      std::smatch m;
      if (std::regex_search(text, m, listening)) {
        port_ = std::stoi(m[1]);
        break;
      }
    }
    err_ = text;
    drain_ = std::thread([this] {
      char b[4096];
      for (;;) {
        ssize_t n = read(fd_, b, sizeof b);
        if (n <= 0) break;
        std::lock_guard<std::mutex> lock(mu_);
        err_.append(b, static_cast<size_t>(n));
      }
    });
  }
  ~ServeProcess() {
    if (pid_ > 0 && exit_code_ < 0) Stop(SIGKILL);
    if (drain_.joinable()) drain_.join();
    if (fd_ >= 0) close(fd_);
  }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string stderr_text() {
    std::lock_guard<std::mutex> lock(mu_);
    return err_;
  }
  // Sends `sig` and waits; returns the exit code (128 + signal if killed by one).
  int Stop(int sig = SIGTERM) {
    if (pid_ <= 0) return -1;
    if (exit_code_ >= 0) return exit_code_;
    kill(pid_, sig);
    return Wait();
  }
  // Waits for the process to exit (after a signal sent with kill(pid(), ...)); its exit code.
  int Wait() {
    if (pid_ <= 0) return -1;
    if (exit_code_ >= 0) return exit_code_;
    int status = 0;
    waitpid(pid_, &status, 0);
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (drain_.joinable()) drain_.join();
    return exit_code_;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  int port_ = 0;
  int exit_code_ = -1;
  std::mutex mu_;
  std::string err_;
  std::thread drain_;
};

}  // namespace tailor::testing_util

#endif  // TAILOR_TESTS_SERVE_PROCESS_H_
