// SIGINT as an event that interactive commands can wait for (poll) instead of a process kill.
//
// The one piece of process-wide mutable state in tailor's front ends lives here: while a
// SigintWatcher exists, the SIGINT handler writes one byte to the watcher's self-pipe (the write
// end is kept in a file-static std::atomic<int>, which is all the handler touches; write() is
// async-signal-safe). At most one SigintWatcher may exist at a time.
#ifndef TAILOR_API_INTERRUPT_H_
#define TAILOR_API_INTERRUPT_H_

#include <signal.h>

#include <memory>

#include "absl/status/statusor.h"

namespace tailor {

class SigintWatcher {
 public:
  // Installs the handler (SA_RESTART off, so blocking reads return EINTR). FailedPrecondition if
  // another watcher exists; Internal if the pipe or sigaction fails.
  static absl::StatusOr<std::unique_ptr<SigintWatcher>> Install();
  ~SigintWatcher();  // restores the previous SIGINT disposition and closes the pipe

  SigintWatcher(const SigintWatcher&) = delete;
  SigintWatcher& operator=(const SigintWatcher&) = delete;

  // Readable (POLLIN) while an interrupt is pending. Owned by the watcher.
  int fd() const { return read_fd_; }
  // True if SIGINT arrived since the last call; clears the pending state. Thread-safe.
  bool Take();

 private:
  SigintWatcher(int read_fd, int write_fd) : read_fd_(read_fd), write_fd_(write_fd) {}
  int read_fd_;
  int write_fd_;
  struct ::sigaction previous_ {};  // the disposition to restore
  bool installed_ = false;
};

}  // namespace tailor

#endif  // TAILOR_API_INTERRUPT_H_
