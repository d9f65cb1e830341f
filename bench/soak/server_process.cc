#include "bench/soak/server_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <regex>

namespace tailor::soak {
namespace {

constexpr size_t kKeepStderr = 64 << 10;

int ExitCodeOf(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

}  // namespace

ServerProcess::ServerProcess(const std::vector<std::string>& argv, std::chrono::seconds timeout) {
  int err_pipe[2];
  if (pipe2(err_pipe, O_CLOEXEC) != 0) return;
  pid_ = fork();
  if (pid_ < 0) return;
  if (pid_ == 0) {
    const int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(err_pipe[1], 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(err_pipe[1]);
  err_fd_ = err_pipe[0];
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::regex listening("listening on http://[^ ]+:([0-9]+)");
  std::string text;
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{err_fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = read(err_fd_, buf, sizeof buf);
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
      const ssize_t n = read(err_fd_, b, sizeof b);
      if (n <= 0) break;
      std::lock_guard<std::mutex> lock(mu_);
      err_.append(b, static_cast<size_t>(n));
      if (err_.size() > 2 * kKeepStderr) err_.erase(0, err_.size() - kKeepStderr);
    }
  });
}

ServerProcess::~ServerProcess() {
  if (owned_ && pid_ > 0 && exit_code_ < 0) {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  if (drain_.joinable()) drain_.join();
  if (err_fd_ >= 0) close(err_fd_);
}

bool ServerProcess::Alive() {
  if (pid_ <= 0 || exit_code_ >= 0) return false;
  if (!owned_) return kill(pid_, 0) == 0;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    exit_code_ = ExitCodeOf(status);
    return false;
  }
  return true;
}

long ServerProcess::RssKb() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

int ServerProcess::FdCount() const {
  DIR* dir = opendir(("/proc/" + std::to_string(pid_) + "/fd").c_str());
  if (dir == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n;
}

int ServerProcess::Terminate(std::chrono::seconds timeout) {
  if (!owned_ || pid_ <= 0) return -1;
  if (exit_code_ >= 0) return exit_code_;
  kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_code_ = ExitCodeOf(status);
      if (drain_.joinable()) drain_.join();
      return exit_code_;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  exit_code_ = ExitCodeOf(status);
  if (drain_.joinable()) drain_.join();
  return -1;
}

int ServerProcess::Wait() {
  if (!owned_ || pid_ <= 0) return -1;
  if (exit_code_ >= 0) return exit_code_;
  int status = 0;
  waitpid(pid_, &status, 0);
  exit_code_ = ExitCodeOf(status);
  if (drain_.joinable()) drain_.join();
  return exit_code_;
}

int ServerProcess::Stop(int sig) {
  if (!owned_ || pid_ <= 0) return -1;
  if (exit_code_ >= 0) return exit_code_;
  kill(pid_, sig);
  return Wait();
}

std::string ServerProcess::stderr_text() {
  std::lock_guard<std::mutex> lock(mu_);
  return err_;
}

}  // namespace tailor::soak
