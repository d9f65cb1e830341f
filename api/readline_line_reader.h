// The readline-backed LineReader; only in the `tailor` executable (see readline_line_reader.cc).
#ifndef TAILOR_API_READLINE_LINE_READER_H_
#define TAILOR_API_READLINE_LINE_READER_H_

#include <memory>

#include "api/line_reader.h"

namespace tailor {

// For a terminal on stdin/stdout. Not thread-safe; one reader at a time (readline is global).
std::unique_ptr<LineReader> MakeReadlineLineReader(SigintWatcher& watcher);

}  // namespace tailor

#endif  // TAILOR_API_READLINE_LINE_READER_H_
