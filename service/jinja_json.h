// JSON in and out of the Jinja interpreter: the render context from nlohmann::ordered_json
// (key order kept), and Python's json.dumps for the tojson filter (transformers' version: no HTML
// escaping, ensure_ascii false by default). Pure functions; thread-safe.
#ifndef TAILOR_SERVICE_JINJA_JSON_H_
#define TAILOR_SERVICE_JINJA_JSON_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "service/jinja_value.h"

namespace tailor::service::jinja {

// null -> None, numbers -> int (float past 2**63) / float, arrays -> list, objects -> dict.
// InvalidArgument for nesting deeper than kMaxValueDepth.
absl::StatusOr<Value> ValueFromJson(const nlohmann::ordered_json& json);

// json.dumps(value, ensure_ascii=..., indent=..., separators=..., sort_keys=...).
struct JsonOptions {
  bool ensure_ascii = false;
  bool has_indent = false;  // indent=None prints on one line
  std::string indent;       // one level of indentation (an int indent n is n spaces)
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
  size_t max_bytes = SIZE_MAX;  // stop (and fail) once the text is longer
};
// TypeError's message ("Object of type Undefined is not JSON serializable") for values JSON has
// no form for.
absl::Status ToJson(const Value& value, const JsonOptions& options, std::string* out);

}  // namespace tailor::service::jinja

#endif  // TAILOR_SERVICE_JINJA_JSON_H_
