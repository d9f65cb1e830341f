#include "api/line_reader.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace tailor {
namespace {

class FdLineReader : public LineReader {
 public:
  FdLineReader(int fd, SigintWatcher& watcher, FILE* prompt_out)
      : fd_(fd), watcher_(watcher), prompt_out_(prompt_out) {}

  std::optional<std::string> ReadLine(const std::string& prompt) override {
    if (prompt_out_ != nullptr) {
      std::fputs(prompt.c_str(), prompt_out_);
      std::fflush(prompt_out_);
    }
    while (true) {
      const size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return line;
      }
      if (eof_) {
        if (buffer_.empty()) return std::nullopt;
        std::string line = std::move(buffer_);  // a last line without a newline
        buffer_.clear();
        return line;
      }
      pollfd fds[2] = {{fd_, POLLIN, 0}, {watcher_.fd(), POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        eof_ = true;
        continue;
      }
      if ((fds[1].revents & POLLIN) && watcher_.Take()) {
        // Ctrl-C at the prompt: drop what was typed so far (a terminal without readline).
        if (prompt_out_ != nullptr) {
          buffer_.clear();
          std::fputs("\n", prompt_out_);
          std::fputs(prompt.c_str(), prompt_out_);
          std::fflush(prompt_out_);
        }
        continue;
      }
      if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        char chunk[4096];
        const ssize_t n = read(fd_, chunk, sizeof chunk);
        if (n > 0) {
          buffer_.append(chunk, static_cast<size_t>(n));
        } else if (n == 0 || errno != EINTR) {
          eof_ = true;
        }
      }
    }
  }

 private:
  int fd_;
  SigintWatcher& watcher_;
  FILE* prompt_out_;
  std::string buffer_;  // bytes read but not yet returned
  bool eof_ = false;
};

}  // namespace

std::unique_ptr<LineReader> MakeFdLineReader(int fd, SigintWatcher& watcher, FILE* prompt_out) {
  return std::make_unique<FdLineReader>(fd, watcher, prompt_out);
}

}  // namespace tailor
