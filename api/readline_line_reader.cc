// GNU readline behind LineReader: line editing and history on a terminal. Built only into the
// `tailor` executable (CMake links readline there alone); main() hands the factory down through
// Environment::terminal_line_reader.
//
// readline's callback interface (rl_callback_handler_install) is used so that one poll() waits on
// both the terminal and the SIGINT self-pipe: Ctrl-C clears the line being edited. readline keeps
// process-wide state of its own; its line callback takes no user data, so the line it delivers
// lands in `g_pending` (below), set only while ReadLine() runs, on the one reading thread.
#include "api/readline_line_reader.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include <readline/history.h>
#include <readline/readline.h>

namespace tailor {
namespace {

struct PendingLine {
  bool done = false;
  bool eof = false;
  std::string line;
};
PendingLine* g_pending = nullptr;  // see the file comment

void OnLine(char* line) {
  if (g_pending == nullptr) return;
  if (line == nullptr) {
    g_pending->eof = true;
  } else {
    g_pending->line = line;
    std::free(line);
  }
  g_pending->done = true;
  rl_callback_handler_remove();
}

class ReadlineLineReader : public LineReader {
 public:
  explicit ReadlineLineReader(SigintWatcher& watcher) : watcher_(watcher) {
    rl_catch_signals = 0;  // SIGINT is the watcher's
    rl_catch_sigwinch = 1;
    rl_readline_name = "tailor";
    rl_instream = stdin;
    rl_outstream = stdout;
    using_history();
  }

  std::optional<std::string> ReadLine(const std::string& prompt) override {
    PendingLine pending;
    g_pending = &pending;
    rl_callback_handler_install(prompt.c_str(), OnLine);
    while (!pending.done) {
      pollfd fds[2] = {{fileno(rl_instream), POLLIN, 0}, {watcher_.fd(), POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        pending.eof = true;
        break;
      }
      if ((fds[1].revents & POLLIN) && watcher_.Take()) {
        // Ctrl-C: abandon the line being edited and prompt again.
        rl_free_line_state();
        rl_replace_line("", 0);
        std::fputs("^C\n", rl_outstream);
        rl_on_new_line();
        rl_redisplay();
        continue;
      }
      if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) rl_callback_read_char();
    }
    if (!pending.done) rl_callback_handler_remove();
    g_pending = nullptr;
    if (pending.eof) {
      std::fputs("\n", rl_outstream);
      std::fflush(rl_outstream);
      return std::nullopt;
    }
    if (!pending.line.empty()) add_history(pending.line.c_str());
    return pending.line;
  }

 private:
  SigintWatcher& watcher_;
};

}  // namespace

std::unique_ptr<LineReader> MakeReadlineLineReader(SigintWatcher& watcher) {
  return std::make_unique<ReadlineLineReader>(watcher);
}

}  // namespace tailor
