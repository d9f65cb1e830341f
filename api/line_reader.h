// Where interactive commands read their input lines: a terminal with line editing (GNU readline,
// built only into the `tailor` executable: api/readline_line_reader.cc) or a plain stream (pipes,
// files, terminals without readline).
#ifndef TAILOR_API_LINE_READER_H_
#define TAILOR_API_LINE_READER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "api/interrupt.h"

namespace tailor {

// Not thread-safe: one thread reads.
class LineReader {
 public:
  virtual ~LineReader() = default;
  // The next line without its newline; nullopt at end of input. `prompt` is shown only by readers
  // on a terminal. A SIGINT while reading (taken from the watcher) discards the partial line and
  // reads a fresh one.
  virtual std::optional<std::string> ReadLine(const std::string& prompt) = 0;
};

// Reads lines from file descriptor `fd` (not owned). When `prompt_out` is set (a terminal without
// readline), the prompt is written to it before each line.
std::unique_ptr<LineReader> MakeFdLineReader(int fd, SigintWatcher& watcher, FILE* prompt_out);

// Makes a line-editing reader for a terminal on stdin/stdout (set by main() when the executable
// has readline; empty otherwise).
using TerminalLineReaderFactory = std::function<std::unique_ptr<LineReader>(SigintWatcher&)>;

}  // namespace tailor

#endif  // TAILOR_API_LINE_READER_H_
