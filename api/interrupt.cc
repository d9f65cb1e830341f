#include "api/interrupt.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace tailor {
namespace {

// The self-pipe's write end while a watcher exists, else -1. The only state the handler reads.
std::atomic<int> g_sigint_write_fd{-1};

void OnSigint(int) {
  const int saved_errno = errno;
  const int fd = g_sigint_write_fd.load(std::memory_order_relaxed);
  if (fd >= 0) {
    const char byte = 1;
    [[maybe_unused]] ssize_t n = write(fd, &byte, 1);  // a full pipe already signals "pending"
  }
  errno = saved_errno;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SigintWatcher>> SigintWatcher::Install() {
  int fds[2];
  if (pipe(fds) != 0) return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  for (int fd : fds) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  int expected = -1;
  if (!g_sigint_write_fd.compare_exchange_strong(expected, fds[1])) {
    close(fds[0]);
    close(fds[1]);
    return absl::FailedPreconditionError("a SIGINT watcher is already installed");
  }
  std::unique_ptr<SigintWatcher> watcher(new SigintWatcher(fds[0], fds[1]));
  struct ::sigaction action;
  std::memset(&action, 0, sizeof action);
  action.sa_handler = OnSigint;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;
  if (::sigaction(SIGINT, &action, &watcher->previous_) != 0) {
    return absl::InternalError(absl::StrCat("sigaction(SIGINT): ", std::strerror(errno)));
  }
  watcher->installed_ = true;
  return watcher;
}

SigintWatcher::~SigintWatcher() {
  if (installed_) ::sigaction(SIGINT, &previous_, nullptr);
  g_sigint_write_fd.store(-1);
  close(read_fd_);
  close(write_fd_);
}

bool SigintWatcher::Take() {
  bool any = false;
  char buf[64];
  while (true) {
    ssize_t n = read(read_fd_, buf, sizeof buf);
    if (n > 0) {
      any = true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  return any;
}

}  // namespace tailor
