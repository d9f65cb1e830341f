// jinja2's string and number filters (and transformers' tojson): trim, upper, lower, title,
// capitalize, replace, indent, center, truncate, wordcount, escape, format, string, safe, int,
// float, abs, round, tojson.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "service/jinja_filters_internal.h"
#include "service/jinja_json.h"
#include "service/jinja_text.h"

namespace tailor::service::jinja::filters {

absl::StatusOr<Value> ToJsonFilter(Interpreter& interp, const Value& v, CallArgs& args) {
  Bound b;
  TAILOR_RETURN_IF_ERROR(
      BindArgs("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"}, &b));
  JsonOptions options;
  options.ensure_ascii = Truthy(Arg(b, 0, Value::Bool(false)));
  const Value indent = Arg(b, 1, Value::None());
  if (indent.is_string()) {
    options.has_indent = true;
    options.indent = indent.str();
  } else if (indent.is_integral()) {
    options.has_indent = true;
    const int64_t n = std::max<int64_t>(0, indent.as_int());
    TAILOR_RETURN_IF_ERROR(interp.Produced(static_cast<size_t>(n)));
    options.indent = std::string(static_cast<size_t>(n), ' ');
  } else if (!indent.is_none()) {
    return RuntimeError(
        absl::StrCat("tojson indent must be an int or a str, not ", TypeName(indent)));
  }
  if (options.has_indent) options.item_separator = ",";
  const Value separators = Arg(b, 2, Value::None());
  if (!separators.is_none()) {
    TAILOR_ASSIGN_OR_RETURN(auto pair, Iterate(separators));
    if (pair->items.size() != 2 || !pair->items[0].is_string() || !pair->items[1].is_string()) {
      return RuntimeError("tojson separators must be an (item_separator, key_separator) pair");
    }
    options.item_separator = pair->items[0].str();
    options.key_separator = pair->items[1].str();
  }
  options.sort_keys = Truthy(Arg(b, 3, Value::Bool(false)));
  options.max_bytes = interp.limits().max_output_bytes;
  std::string out;
  TAILOR_RETURN_IF_ERROR(ToJson(v, options, &out));
  return MakeString(interp, std::move(out));
}

absl::StatusOr<Value> Indent(Interpreter& interp, const Value& v, CallArgs& args) {
  Bound b;
  TAILOR_RETURN_IF_ERROR(BindArgs("indent", args, {"width", "first", "blank"}, &b));
  if (v.is_undefined()) return RuntimeError(v.str());
  if (!v.is_string()) {
    return RuntimeError(
        absl::StrCat("unsupported operand type(s) for +=: '", TypeName(v), "' and 'str'"));
  }
  const Value width = Arg(b, 0, Value::Int(4));
  std::string indention;
  if (width.is_string()) {
    indention = width.str();
  } else if (width.is_integral()) {
    const int64_t n = std::max<int64_t>(0, width.as_int());
    TAILOR_RETURN_IF_ERROR(interp.Produced(static_cast<size_t>(n)));
    indention.assign(static_cast<size_t>(n), ' ');
  } else {
    return RuntimeError("indent width must be an int or a str");
  }
  const bool first = Truthy(Arg(b, 1, Value::Bool(false)));
  const bool blank = Truthy(Arg(b, 2, Value::Bool(false)));
  // s + "\n", split on Python's line boundaries (as str.splitlines does).
  const std::u32string text = DecodeUtf8(v.str() + "\n");
  std::vector<std::string> lines;
  std::u32string line;
  for (size_t i = 0; i < text.size(); ++i) {
    const char32_t c = text[i];
    const bool boundary = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C ||
                          c == 0x1D || c == 0x1E || c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!boundary) {
      line.push_back(c);
      continue;
    }
    if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
    lines.push_back(EncodeUtf8(line));
    line.clear();
  }
  if (!line.empty()) lines.push_back(EncodeUtf8(line));
  size_t total = 0;
  for (const std::string& l : lines) total += l.size() + indention.size() + 1;
  TAILOR_RETURN_IF_ERROR(interp.Produced(total));
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out.push_back('\n');
    if (i > 0 && (blank || !lines[i].empty())) out += indention;
    out += lines[i];
  }
  if (first) out = indention + out;
  return Value::String(std::move(out));
}

absl::StatusOr<Value> Round(Interpreter& /*interp*/, const Value& v, CallArgs& args) {
  Bound b;
  TAILOR_RETURN_IF_ERROR(BindArgs("round", args, {"precision", "method"}, &b));
  const Value precision_v = Arg(b, 0, Value::Int(0));
  const std::string method = Str(Arg(b, 1, Value::String("common")));
  if (method != "common" && method != "ceil" && method != "floor") {
    return RuntimeError("method must be common, ceil or floor");
  }
  if (!v.is_number()) {
    return RuntimeError(absl::StrCat("type ", TypeName(v), " doesn't define __round__ method"));
  }
  if (!precision_v.is_integral()) {
    return RuntimeError(
        absl::StrCat("'", TypeName(precision_v), "' object cannot be interpreted as an integer"));
  }
  const int64_t precision = std::clamp<int64_t>(precision_v.as_int(), -400, 400);
  if (method != "common") {
    const double scale = std::pow(10.0, static_cast<double>(precision));
    const double x = v.as_float() * scale;
    return Value::Float((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
  }
  if (v.is_integral()) {  // round(int, n) stays an int
    if (precision >= 0) return Value::Int(v.as_int());
    const double scale = std::pow(10.0, static_cast<double>(-precision));
    return Value::Int(static_cast<int64_t>(std::nearbyint(v.as_float() / scale) * scale));
  }
  const double x = v.as_float();
  if (!std::isfinite(x)) return Value::Float(x);
  if (precision >= 0 && precision <= 300) {
    // Correctly rounded (half to even on the exact binary value), as Python's round() is.
    char buf[512];
    std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(precision), x);
    return Value::Float(std::strtod(buf, nullptr));
  }
  if (precision > 300) return Value::Float(x);
  const double scale = std::pow(10.0, static_cast<double>(-precision));
  return Value::Float(std::nearbyint(x / scale) * scale);
}

absl::StatusOr<Value> ToInt(Interpreter& /*interp*/, const Value& v, CallArgs& args) {
  Bound b;
  TAILOR_RETURN_IF_ERROR(BindArgs("int", args, {"default", "base"}, &b));
  const Value fallback = Arg(b, 0, Value::Int(0));
  const Value base_v = Arg(b, 1, Value::Int(10));
  if (v.is_undefined()) return RuntimeError(v.str());
  if (v.is_integral()) return Value::Int(v.as_int());
  if (v.kind() == Value::Kind::kFloat) {
    const double f = std::trunc(v.as_float());
    if (!std::isfinite(f) || std::fabs(f) >= 9.2e18) return fallback;
    return Value::Int(static_cast<int64_t>(f));
  }
  if (!v.is_string()) return fallback;
  std::string s = PyStrip(v.str(), nullptr, true, true);
  std::string digits;
  for (size_t i = 0; i < s.size(); ++i) {  // Python allows single underscores between digits
    if (s[i] == '_' && i > 0 && i + 1 < s.size() && s[i + 1] != '_') continue;
    digits.push_back(s[i]);
  }
  const int base = base_v.is_integral() ? static_cast<int>(base_v.as_int()) : 10;
  if (!digits.empty() && base >= 2 && base <= 36) {
    errno = 0;
    char* end = nullptr;
    const long long n = std::strtoll(digits.c_str(), &end, base);
    if (errno == 0 && end != nullptr && *end == '\0' && end != digits.c_str()) return Value::Int(n);
  }
  // "42.23"|int is 42: through float.
  char* end = nullptr;
  const double f = std::strtod(s.c_str(), &end);
  if (!s.empty() && end != nullptr && *end == '\0' && std::isfinite(f) && std::fabs(f) < 9.2e18) {
    return Value::Int(static_cast<int64_t>(std::trunc(f)));
  }
  return fallback;
}

absl::StatusOr<Value> ToFloat(Interpreter& /*interp*/, const Value& v, CallArgs& args) {
  Bound b;
  TAILOR_RETURN_IF_ERROR(BindArgs("float", args, {"default"}, &b));
  const Value fallback = Arg(b, 0, Value::Float(0.0));
  if (v.is_undefined()) return RuntimeError(v.str());
  if (v.is_number()) return Value::Float(v.as_float());
  if (!v.is_string()) return fallback;
  const std::string s = PyStrip(v.str(), nullptr, true, true);
  const std::string lower = PyLower(s);
  if (lower == "nan" || lower == "+nan" || lower == "-nan") return Value::Float(NAN);
  if (lower == "inf" || lower == "+inf" || lower == "infinity" || lower == "+infinity") {
    return Value::Float(INFINITY);
  }
  if (lower == "-inf" || lower == "-infinity") return Value::Float(-INFINITY);
  if (s.empty() || s.find_first_of("xXpP") != std::string::npos) return fallback;
  char* end = nullptr;
  const double f = std::strtod(s.c_str(), &end);
  if (end == nullptr || *end != '\0') return fallback;
  return Value::Float(f);
}

absl::StatusOr<Value> Truncate(Interpreter& /*interp*/, const Value& v, CallArgs& args) {
  Bound b;
  TAILOR_RETURN_IF_ERROR(BindArgs("truncate", args, {"length", "killwords", "end", "leeway"}, &b));
  const int64_t length = Arg(b, 0, Value::Int(255)).as_int();
  const bool killwords = Truthy(Arg(b, 1, Value::Bool(false)));
  const std::u32string end = DecodeUtf8(Str(Arg(b, 2, Value::String("..."))));
  const int64_t leeway = Arg(b, 3, Value::Int(5)).as_int();
  const std::u32string s = DecodeUtf8(Str(v));
  if (length < static_cast<int64_t>(end.size())) {
    return RuntimeError("expected length >= len(end)");
  }
  if (static_cast<int64_t>(s.size()) <= length + leeway) return Value::String(Str(v));
  std::u32string head = s.substr(0, static_cast<size_t>(length) - end.size());
  if (!killwords) {
    const size_t space = head.rfind(U' ');
    if (space != std::u32string::npos) head.resize(space);
  }
  return Value::String(EncodeUtf8(head + end));
}

absl::StatusOr<Value> Center(Interpreter& interp, const Value& v, CallArgs& args) {
  Bound b;
  TAILOR_RETURN_IF_ERROR(BindArgs("center", args, {"width"}, &b));
  const std::string s = Str(v);
  const int64_t len = static_cast<int64_t>(CodePointCount(s));
  const int64_t width = Arg(b, 0, Value::Int(80)).as_int();
  if (width <= len) return Value::String(s);
  TAILOR_RETURN_IF_ERROR(interp.Produced(static_cast<size_t>(width - len) + s.size()));
  const int64_t marg = width - len;
  const int64_t left = marg / 2 + (marg & width & 1);
  return Value::String(std::string(static_cast<size_t>(left), ' ') + s +
                       std::string(static_cast<size_t>(marg - left), ' '));
}

absl::StatusOr<Value> Replace(Interpreter& interp, const Value& v, CallArgs& args) {
  Bound b;
  TAILOR_RETURN_IF_ERROR(BindArgs("replace", args, {"old", "new", "count"}, &b, 2));
  CallArgs method_args;
  method_args.positional = {Value::String(Str(*b[0])), Value::String(Str(*b[1]))};
  if (b[2].has_value() && !b[2]->is_none()) method_args.positional.push_back(*b[2]);
  Value method;
  LookupMethod(Value::String(Str(v)), "replace", &method);
  return interp.CallValue(method, std::move(method_args));
}

absl::StatusOr<Value> Escape(Interpreter& interp, const Value& v, CallArgs& args) {
  TAILOR_RETURN_IF_ERROR(NoArgs("escape", args));
  std::string out;
  for (char c : Str(v)) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return MakeString(interp, std::move(out));
}

absl::StatusOr<Value> DoCapitalize(Interpreter& interp, const Value& v, CallArgs& args) {
  TAILOR_RETURN_IF_ERROR(NoArgs("capitalize", args));
  return MakeString(interp, PyCapitalize(Str(v)));
}

absl::StatusOr<Value> DoFormat(Interpreter& interp, const Value& v, CallArgs& args) {
  if (!args.positional.empty() && !args.keyword.empty()) {
    return RuntimeError("can't handle positional and keyword arguments at the same time");
  }
  Value format_args = Value::Tuple(args.positional);
  if (!args.keyword.empty()) {
    std::vector<std::pair<Value, Value>> kw;
    for (const auto& [key, value] : args.keyword) kw.emplace_back(Value::String(key), value);
    format_args = Value::Dict(std::move(kw));
  }
  TAILOR_ASSIGN_OR_RETURN(std::string s, PercentFormat(Str(v), format_args));
  return MakeString(interp, std::move(s));
}

absl::StatusOr<Value> DoLower(Interpreter& interp, const Value& v, CallArgs& args) {
  TAILOR_RETURN_IF_ERROR(NoArgs("lower", args));
  return MakeString(interp, PyLower(Str(v)));
}

absl::StatusOr<Value> DoTitle(Interpreter& interp, const Value& v, CallArgs& args) {
  TAILOR_RETURN_IF_ERROR(NoArgs("title", args));
  // jinja2's title: pieces split off by runs of -, whitespace or ([{< become
  // piece[0].upper() + piece[1:].lower().
  const std::u32string text = DecodeUtf8(Str(v));
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    const auto separator = [](char32_t c) {
      return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || IsPySpace(c);
    };
    size_t j = i + 1;
    while (j < text.size() && separator(text[j]) == separator(text[i])) ++j;
    out += PyUpper(EncodeUtf8(text.substr(i, 1)));
    out += PyLower(EncodeUtf8(text.substr(i + 1, j - i - 1)));
    i = j;
  }
  return MakeString(interp, std::move(out));
}

absl::StatusOr<Value> DoTrim(Interpreter& /*interp*/, const Value& v, CallArgs& args) {
  Bound b;
  TAILOR_RETURN_IF_ERROR(BindArgs("trim", args, {"chars"}, &b));
  const Value chars = Arg(b, 0, Value::None());
  if (!chars.is_none() && !chars.is_string()) {
    return RuntimeError("strip arg must be None or str");
  }
  return Value::String(PyStrip(Str(v), chars.is_string() ? &chars.str() : nullptr, true, true));
}

absl::StatusOr<Value> DoUpper(Interpreter& interp, const Value& v, CallArgs& args) {
  TAILOR_RETURN_IF_ERROR(NoArgs("upper", args));
  return MakeString(interp, PyUpper(Str(v)));
}

absl::StatusOr<Value> DoWordcount(Interpreter& /*interp*/, const Value& v, CallArgs& args) {
  TAILOR_RETURN_IF_ERROR(NoArgs("wordcount", args));
  // len(re.findall(r"\w+", s)): runs of letters, digits and underscores.
  const std::string s = Str(v);
  int64_t words = 0;
  bool in_word = false;
  size_t pos = 0;
  while (pos < s.size()) {
    const char32_t c = NextCodePoint(s, &pos);
    const bool word_char = IsAlpha(c) || IsDigit(c) || c == '_' ||
                           (c >= 0x80 && !IsPySpace(c) && !(c >= 0x2000 && c <= 0x206F) &&
                            !(c >= 0x3000 && c <= 0x303F) && !(c >= 0xFF00 && c <= 0xFF0F));
    if (word_char && !in_word) ++words;
    in_word = word_char;
  }
  return Value::Int(words);
}

absl::StatusOr<Value> DoString(Interpreter& /*interp*/, const Value& v, CallArgs& args) {
  TAILOR_RETURN_IF_ERROR(NoArgs("string", args));
  return v.is_string() ? v : Value::String(Str(v));
}

absl::StatusOr<Value> DoSafe(Interpreter& /*interp*/, const Value& v, CallArgs& args) {
  TAILOR_RETURN_IF_ERROR(NoArgs("safe", args));
  return Value::String(Str(v));
}

absl::StatusOr<Value> DoAbs(Interpreter& /*interp*/, const Value& v, CallArgs& args) {
  TAILOR_RETURN_IF_ERROR(NoArgs("abs", args));
  if (v.kind() == Value::Kind::kFloat) return Value::Float(std::fabs(v.as_float()));
  if (v.is_integral()) {
    if (v.as_int() == INT64_MIN) return RuntimeError("integer overflow");
    return Value::Int(std::llabs(v.as_int()));
  }
  if (v.is_undefined()) return RuntimeError(v.str());
  return RuntimeError(absl::StrCat("bad operand type for abs(): '", TypeName(v), "'"));
}

}  // namespace tailor::service::jinja::filters
