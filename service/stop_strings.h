// Incremental stop-string matching over streamed text (OpenAI's `stop` parameter).
//
// Feed the detokenized text of each new token (or any chunking of it) to Push(); it returns the
// text that is safe to emit now, holding back a suffix that could still become a stop string. When
// a stop string completes, Push() returns the text before it and reports the match; the stop string
// and everything after it are never emitted, and later calls return nothing. When generation ends
// for another reason (EOS, length), Finish() releases the held-back text.
//
// Semantics (independent of how the text is cut into chunks): the stop string whose occurrence
// ends first in the text wins; among occurrences ending at the same byte, the one starting first
// (the longest). Matching is byte-wise; with valid UTF-8 stop strings and valid UTF-8 text, emitted
// pieces are cut only at character boundaries, and each Push() emits whole characters if its
// input ends on one.
//
// Not thread-safe: one matcher per generated sequence (per choice), used by one thread at a time.
#ifndef TAILOR_SERVICE_STOP_STRINGS_H_
#define TAILOR_SERVICE_STOP_STRINGS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace tailor::service {

class StopStringMatcher {
 public:
  struct PushResult {
    std::string text;          // safe to emit now (may be empty)
    bool stopped = false;      // a stop string completed in this push
    std::string stop_string;   // which one, when stopped
  };

  // Empty strings are ignored; duplicates are harmless. With no stop strings, Push() returns its
  // input unchanged.
  explicit StopStringMatcher(std::vector<std::string> stop_strings);

  PushResult Push(absl::string_view chunk);
  // The held-back text (empty after a stop). Later Push() and Finish() calls return nothing.
  std::string Finish();

  // A stop string has matched (Push() returned stopped = true).
  bool stopped() const { return stopped_; }
  // Bytes currently held back (< the longest stop string).
  size_t held_bytes() const { return held_.size(); }
  const std::vector<std::string>& stop_strings() const { return stops_; }

 private:
  std::vector<std::string> stops_;
  size_t max_len_ = 0;
  std::string held_;  // text not yet emitted: a suffix that is a proper prefix of some stop string
  bool stopped_ = false;
  bool finished_ = false;
};

}  // namespace tailor::service

#endif  // TAILOR_SERVICE_STOP_STRINGS_H_
