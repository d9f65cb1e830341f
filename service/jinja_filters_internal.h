// Shared by the filter files: argument helpers, and the string/number filters that
// jinja_filters_text.cc implements for the table in jinja_filters.cc. Internal; stateless.
#ifndef TAILOR_SERVICE_JINJA_FILTERS_INTERNAL_H_
#define TAILOR_SERVICE_JINJA_FILTERS_INTERNAL_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "service/jinja_builtins.h"
#include "service/jinja_eval.h"
#include "service/jinja_text.h"
#include "service/jinja_value.h"

namespace tailor::service::jinja::filters {

using Bound = std::vector<std::optional<Value>>;
using FilterFn = absl::StatusOr<Value> (*)(Interpreter&, const Value&, CallArgs&);

inline Value Arg(const Bound& b, size_t i, Value fallback) {
  return b[i].has_value() ? *b[i] : fallback;
}

inline absl::StatusOr<Value> MakeString(Interpreter& interp, std::string s) {
  TAILOR_RETURN_IF_ERROR(interp.Produced(s.size()));
  return Value::String(std::move(s));
}

inline absl::Status NoArgs(absl::string_view name, const CallArgs& args) {
  Bound b;
  return BindArgs(name, args, {}, &b);
}

inline Value IgnoreCase(const Value& v) {
  return v.is_string() ? Value::String(PyLower(v.str())) : v;
}

// filter(interp, input, args) for: tojson, indent, round, int, float, truncate, center, replace,
// escape, capitalize, format, lower, title, trim, upper, wordcount, string, safe, abs.
absl::StatusOr<Value> ToJsonFilter(Interpreter& interp, const Value& v, CallArgs& args);
absl::StatusOr<Value> Indent(Interpreter& interp, const Value& v, CallArgs& args);
absl::StatusOr<Value> Round(Interpreter& interp, const Value& v, CallArgs& args);
absl::StatusOr<Value> ToInt(Interpreter& interp, const Value& v, CallArgs& args);
absl::StatusOr<Value> ToFloat(Interpreter& interp, const Value& v, CallArgs& args);
absl::StatusOr<Value> Truncate(Interpreter& interp, const Value& v, CallArgs& args);
absl::StatusOr<Value> Center(Interpreter& interp, const Value& v, CallArgs& args);
absl::StatusOr<Value> Replace(Interpreter& interp, const Value& v, CallArgs& args);
absl::StatusOr<Value> Escape(Interpreter& interp, const Value& v, CallArgs& args);
absl::StatusOr<Value> DoCapitalize(Interpreter& interp, const Value& v, CallArgs& args);
absl::StatusOr<Value> DoFormat(Interpreter& interp, const Value& v, CallArgs& args);
absl::StatusOr<Value> DoLower(Interpreter& interp, const Value& v, CallArgs& args);
absl::StatusOr<Value> DoTitle(Interpreter& interp, const Value& v, CallArgs& args);
absl::StatusOr<Value> DoTrim(Interpreter& interp, const Value& v, CallArgs& args);
absl::StatusOr<Value> DoUpper(Interpreter& interp, const Value& v, CallArgs& args);
absl::StatusOr<Value> DoWordcount(Interpreter& interp, const Value& v, CallArgs& args);
absl::StatusOr<Value> DoString(Interpreter& interp, const Value& v, CallArgs& args);
absl::StatusOr<Value> DoSafe(Interpreter& interp, const Value& v, CallArgs& args);
absl::StatusOr<Value> DoAbs(Interpreter& interp, const Value& v, CallArgs& args);

}  // namespace tailor::service::jinja::filters

#endif  // TAILOR_SERVICE_JINJA_FILTERS_INTERNAL_H_
