// A lexical walk over JSON text that tracks strings (with escapes) and bracket depth, for the
// checks that must run before (or without) a full parse: the nesting limit of request bodies, and
// where a JSON object written by a model ends. Pure; safe from any thread.
#ifndef TAILOR_SERVICE_JSON_SCAN_H_
#define TAILOR_SERVICE_JSON_SCAN_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace tailor::service {

// Calls visit(offset, depth) for every '{' '[' '}' ']' of `text` outside strings, with the depth
// after it (an opening bracket at top level gives 1, its closing bracket 0). Stops at the first
// call that returns true and gives its offset; string_view::npos when none did.
template <typename Visit>
size_t ScanJsonBrackets(absl::string_view text, Visit visit) {
  int64_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (visit(i, ++depth)) return i;
    } else if (c == '}' || c == ']') {
      if (visit(i, --depth)) return i;
    }
  }
  return absl::string_view::npos;
}

}  // namespace tailor::service

#endif  // TAILOR_SERVICE_JSON_SCAN_H_
