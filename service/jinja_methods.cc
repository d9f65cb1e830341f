// Python methods of str, dict, list and tuple that templates call (message.content.strip(),
// tool.get('x'), ...), with code-point indices. Methods that modify a list or dict are refused
// with the message transformers' ImmutableSandboxedEnvironment gives.
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "service/jinja_builtins.h"
#include "service/jinja_eval.h"
#include "service/jinja_text.h"

namespace tailor::service::jinja {
namespace {

using Bound = std::vector<std::optional<Value>>;

constexpr absl::string_view kStrMethods[] = {
    "strip",    "lstrip",  "rstrip",    "split",        "rsplit",       "splitlines", "startswith",
    "endswith", "upper",   "lower",     "title",        "capitalize",   "swapcase",   "casefold",
    "replace",  "find",    "rfind",     "index",        "rindex",       "count",      "join",
    "format",   "isdigit", "isdecimal", "isnumeric",    "isalpha",      "isalnum",    "isspace",
    "isupper",  "islower", "istitle",   "removeprefix", "removesuffix", "partition",  "rpartition",
    "zfill",    "ljust",   "rjust",     "center"};
constexpr absl::string_view kDictMethods[] = {"items", "keys", "values", "get", "copy"};
constexpr absl::string_view kDictUnsafe[] = {"clear", "pop", "popitem", "setdefault", "update"};
constexpr absl::string_view kListMethods[] = {"index", "count", "copy"};
constexpr absl::string_view kListUnsafe[] = {"append", "clear", "pop",    "reverse",
                                             "insert", "sort",  "extend", "remove"};

template <size_t N>
bool In(const absl::string_view (&names)[N], absl::string_view name) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

// Byte offset of code point `index` (clamped to the string).
size_t ByteOffset(absl::string_view s, int64_t index) {
  size_t pos = 0;
  for (int64_t i = 0; i < index && pos < s.size(); ++i) NextCodePoint(s, &pos);
  return pos;
}

// Python's [start:end] bounds of str methods (negative from the end, clamped), as bytes.
void Bounds(absl::string_view s, const std::optional<Value>& start, const std::optional<Value>& end,
            size_t* begin_byte, size_t* end_byte) {
  const int64_t len = static_cast<int64_t>(CodePointCount(s));
  const auto norm = [&](const std::optional<Value>& v, int64_t fallback) {
    if (!v.has_value() || !v->is_integral()) return fallback;
    int64_t i = v->as_int();
    if (i < 0) i = std::max<int64_t>(0, i + len);
    return std::min(i, len);
  };
  const int64_t b = norm(start, 0);
  const int64_t e = std::max(b, norm(end, len));
  *begin_byte = ByteOffset(s, b);
  *end_byte = *begin_byte + ByteOffset(s.substr(*begin_byte), e - b);
}

std::vector<Value> SplitWhitespace(const std::string& s, int64_t maxsplit, bool from_right) {
  const std::u32string cps = DecodeUtf8(s);
  std::vector<std::u32string> parts;
  if (!from_right) {
    size_t i = 0;
    while (true) {
      while (i < cps.size() && IsPySpace(cps[i])) ++i;
      if (i >= cps.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
        parts.push_back(cps.substr(i));  // the rest keeps its trailing whitespace
        break;
      }
      size_t j = i;
      while (j < cps.size() && !IsPySpace(cps[j])) ++j;
      parts.push_back(cps.substr(i, j - i));
      i = j;
    }
  } else {
    size_t i = cps.size();
    while (true) {
      while (i > 0 && IsPySpace(cps[i - 1])) --i;
      if (i == 0) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
        parts.push_back(cps.substr(0, i));
        break;
      }
      size_t j = i;
      while (j > 0 && !IsPySpace(cps[j - 1])) --j;
      parts.push_back(cps.substr(j, i - j));
      i = j;
    }
    std::reverse(parts.begin(), parts.end());
  }
  std::vector<Value> out;
  for (const auto& p : parts) out.push_back(Value::String(EncodeUtf8(p)));
  return out;
}

std::vector<Value> SplitOn(const std::string& s, const std::string& sep, int64_t maxsplit,
                           bool from_right) {
  std::vector<std::string> parts;
  if (!from_right) {
    size_t start = 0;
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
      const size_t at = s.find(sep, start);
      if (at == std::string::npos) break;
      parts.push_back(s.substr(start, at - start));
      start = at + sep.size();
    }
    parts.push_back(s.substr(start));
  } else {
    size_t end = s.size();
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
      if (end < sep.size()) break;
      const size_t at = s.rfind(sep, end - sep.size());
      if (at == std::string::npos) break;
      parts.push_back(s.substr(at + sep.size(), end - at - sep.size()));
      end = at;
    }
    parts.push_back(s.substr(0, end));
    std::reverse(parts.begin(), parts.end());
  }
  std::vector<Value> out;
  for (auto& p : parts) out.push_back(Value::String(std::move(p)));
  return out;
}

absl::StatusOr<std::string> Pad(Interpreter& interp, const std::string& s, const Bound& b,
                                absl::string_view how) {
  const int64_t width = b[0]->is_integral() ? b[0]->as_int() : 0;
  const std::string fill = b.size() > 1 && b[1].has_value() ? Str(*b[1]) : " ";
  if (CodePointCount(fill) != 1) {
    return RuntimeError("The fill character must be exactly one character long");
  }
  const int64_t len = static_cast<int64_t>(CodePointCount(s));
  if (width <= len) return s;
  const int64_t marg = width - len;
  const int64_t left = how == "ljust" ? 0 : how == "rjust" ? marg : marg / 2 + (marg & width & 1);
  TAILOR_RETURN_IF_ERROR(interp.Produced(static_cast<size_t>(marg)));
  TAILOR_RETURN_IF_ERROR(interp.Produced(static_cast<size_t>(marg) * fill.size() + s.size()));
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = left; i < marg; ++i) out += fill;
  return out;
}

absl::StatusOr<Value> StrFormat(Interpreter& interp, const std::string& format,
                                const CallArgs& args);

bool AllOf(const std::string& s, bool (*pred)(char32_t)) {
  if (s.empty()) return false;
  size_t pos = 0;
  while (pos < s.size()) {
    if (!pred(NextCodePoint(s, &pos))) return false;
  }
  return true;
}

absl::StatusOr<Value> CallStrMethod(Interpreter& interp, const std::string& s,
                                    absl::string_view name, const CallArgs& args) {
  Bound b;
  const std::string fn(name);
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    TAILOR_RETURN_IF_ERROR(BindArgs(fn, args, {"chars"}, &b));
    const bool has_chars = b[0].has_value() && !b[0]->is_none();
    if (has_chars && !b[0]->is_string()) {
      return RuntimeError(absl::StrCat(name, " arg must be None or str"));
    }
    return Value::String(
        PyStrip(s, has_chars ? &b[0]->str() : nullptr, name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    TAILOR_RETURN_IF_ERROR(BindArgs(fn, args, {"sep", "maxsplit"}, &b));
    const int64_t maxsplit = b[1].has_value() ? b[1]->as_int() : -1;
    std::vector<Value> parts;
    if (!b[0].has_value() || b[0]->is_none()) {
      parts = SplitWhitespace(s, maxsplit, name == "rsplit");
    } else {
      if (!b[0]->is_string()) {
        return RuntimeError(absl::StrCat("must be str or None, not ", TypeName(*b[0])));
      }
      if (b[0]->str().empty()) return RuntimeError("empty separator");
      parts = SplitOn(s, b[0]->str(), maxsplit, name == "rsplit");
    }
    TAILOR_RETURN_IF_ERROR(interp.Produced(s.size() + parts.size() * sizeof(Value)));
    return Value::List(std::move(parts));
  }
  if (name == "splitlines") {
    TAILOR_RETURN_IF_ERROR(BindArgs(fn, args, {"keepends"}, &b));
    const bool keepends = b[0].has_value() && Truthy(*b[0]);
    const std::u32string cps = DecodeUtf8(s);
    std::vector<Value> lines;
    size_t start = 0;
    for (size_t i = 0; i < cps.size(); ++i) {
      const char32_t c = cps[i];
      if (!(c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) ||
            c == 0x85 || c == 0x2028 || c == 0x2029)) {
        continue;
      }
      size_t end = i + 1;
      if (c == '\r' && end < cps.size() && cps[end] == '\n') ++end;
      lines.push_back(Value::String(EncodeUtf8(cps.substr(start, (keepends ? end : i) - start))));
      start = end;
      i = end - 1;
    }
    if (start < cps.size()) lines.push_back(Value::String(EncodeUtf8(cps.substr(start))));
    return Value::List(std::move(lines));
  }
  if (name == "startswith" || name == "endswith") {
    TAILOR_RETURN_IF_ERROR(BindArgs(fn, args, {"prefix", "start", "end"}, &b, 1));
    std::vector<Value> candidates;
    if (b[0]->is_string()) {
      candidates.push_back(*b[0]);
    } else if (b[0]->kind() == Value::Kind::kTuple) {
      candidates = b[0]->items();
    }
    if (candidates.empty() && !b[0]->is_string() && b[0]->kind() != Value::Kind::kTuple) {
      return RuntimeError(
          absl::StrCat(name, " first arg must be str or a tuple of str, not ", TypeName(*b[0])));
    }
    size_t begin = 0;
    size_t end = s.size();
    Bounds(s, b[1], b[2], &begin, &end);
    const absl::string_view window = absl::string_view(s).substr(begin, end - begin);
    for (const Value& c : candidates) {
      if (!c.is_string()) {
        return RuntimeError(
            absl::StrCat("tuple for ", name, " must only contain str, not ", TypeName(c)));
      }
      const std::string& x = c.str();
      if (x.size() > window.size()) continue;
      if (name == "startswith" ? window.substr(0, x.size()) == x
                               : window.substr(window.size() - x.size()) == x) {
        return Value::Bool(true);
      }
    }
    return Value::Bool(false);
  }
  if (name == "upper" || name == "lower" || name == "casefold" || name == "title" ||
      name == "capitalize" || name == "swapcase") {
    TAILOR_RETURN_IF_ERROR(BindArgs(fn, args, {}, &b));
    if (name == "upper") return Value::String(PyUpper(s));
    if (name == "lower" || name == "casefold") return Value::String(PyLower(s));
    if (name == "title") return Value::String(PyTitle(s));
    if (name == "capitalize") return Value::String(PyCapitalize(s));
    std::string out;
    size_t pos = 0;
    while (pos < s.size()) {
      const char32_t c = NextCodePoint(s, &pos);
      AppendUtf8(IsUpperCase(c) ? ToLower(c) : ToUpper(c), &out);
    }
    return Value::String(std::move(out));
  }
  if (name == "replace") {
    TAILOR_RETURN_IF_ERROR(BindArgs(fn, args, {"old", "new", "count"}, &b, 2));
    if (!b[0]->is_string() || !b[1]->is_string()) {
      return RuntimeError("replace() arguments must be str");
    }
    const std::string& old_s = b[0]->str();
    const std::string& new_s = b[1]->str();
    int64_t count = b[2].has_value() && b[2]->is_integral() ? b[2]->as_int() : -1;
    std::string out;
    if (old_s.empty()) {  // inserts `new` at every code point boundary
      size_t pos = 0;
      while (count != 0) {
        out += new_s;
        --count;
        if (pos >= s.size()) break;
        const size_t start = pos;
        NextCodePoint(s, &pos);
        out.append(s, start, pos - start);
        TAILOR_RETURN_IF_ERROR(interp.Produced(new_s.size()));
      }
      out.append(s, std::min(pos, s.size()), std::string::npos);
    } else {
      size_t start = 0;
      while (count != 0) {
        const size_t at = s.find(old_s, start);
        if (at == std::string::npos) break;
        out.append(s, start, at - start);
        out += new_s;
        start = at + old_s.size();
        --count;
        if (out.size() > interp.limits().max_output_bytes) break;
      }
      out.append(s, start, std::string::npos);
    }
    TAILOR_RETURN_IF_ERROR(interp.Produced(out.size()));
    return Value::String(std::move(out));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    TAILOR_RETURN_IF_ERROR(BindArgs(fn, args, {"sub", "start", "end"}, &b, 1));
    if (!b[0]->is_string()) {
      return RuntimeError(absl::StrCat("must be str, not ", TypeName(*b[0])));
    }
    const std::string& sub = b[0]->str();
    size_t begin = 0;
    size_t end = s.size();
    Bounds(s, b[1], b[2], &begin, &end);
    const absl::string_view window = absl::string_view(s).substr(begin, end - begin);
    if (name == "count") {
      if (sub.empty()) return Value::Int(static_cast<int64_t>(CodePointCount(window)) + 1);
      int64_t n = 0;
      for (size_t at = window.find(sub); at != std::string::npos;
           at = window.find(sub, at + sub.size())) {
        ++n;
      }
      return Value::Int(n);
    }
    const bool right = name[0] == 'r';
    const size_t at = right ? window.rfind(sub) : window.find(sub);
    if (at == std::string::npos) {
      if (name == "index" || name == "rindex") return RuntimeError("substring not found");
      return Value::Int(-1);
    }
    return Value::Int(
        static_cast<int64_t>(CodePointCount(absl::string_view(s).substr(0, begin + at))));
  }
  if (name == "join") {
    TAILOR_RETURN_IF_ERROR(BindArgs(fn, args, {"iterable"}, &b, 1));
    TAILOR_ASSIGN_OR_RETURN(auto items, Iterate(*b[0]));
    std::string out;
    for (size_t i = 0; i < items->items.size(); ++i) {
      const Value& item = items->items[i];
      if (!item.is_string()) {
        return RuntimeError(absl::StrCat("sequence item ", i, ": expected str instance, ",
                                         TypeName(item), " found"));
      }
      if (i > 0) out += s;
      out += item.str();
      if (out.size() > interp.limits().max_output_bytes) break;
    }
    TAILOR_RETURN_IF_ERROR(interp.Produced(out.size()));
    return Value::String(std::move(out));
  }
  if (name == "format") return StrFormat(interp, s, args);
  if (name.substr(0, 2) == "is") {
    TAILOR_RETURN_IF_ERROR(BindArgs(fn, args, {}, &b));
    if (name == "isdigit" || name == "isdecimal" || name == "isnumeric") {
      return Value::Bool(AllOf(s, IsDigit));
    }
    if (name == "isalpha") return Value::Bool(AllOf(s, IsAlpha));
    if (name == "isalnum") {
      return Value::Bool(AllOf(s, [](char32_t c) { return IsAlpha(c) || IsDigit(c); }));
    }
    if (name == "isspace") return Value::Bool(AllOf(s, IsPySpace));
    if (name == "istitle") return Value::Bool(!s.empty() && PyTitle(s) == s && PyLower(s) != s);
    // isupper / islower: some cased character, none of the other case.
    const bool upper = name == "isupper";
    bool cased = false;
    size_t pos = 0;
    while (pos < s.size()) {
      const char32_t c = NextCodePoint(s, &pos);
      if (upper ? IsLowerCase(c) : IsUpperCase(c)) return Value::Bool(false);
      cased = cased || IsUpperCase(c) || IsLowerCase(c);
    }
    return Value::Bool(cased);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    TAILOR_RETURN_IF_ERROR(BindArgs(fn, args, {"affix"}, &b, 1));
    const std::string affix = Str(*b[0]);
    if (name == "removeprefix" && s.compare(0, affix.size(), affix) == 0) {
      return Value::String(s.substr(affix.size()));
    }
    if (name == "removesuffix" && !affix.empty() && s.size() >= affix.size() &&
        s.compare(s.size() - affix.size(), affix.size(), affix) == 0) {
      return Value::String(s.substr(0, s.size() - affix.size()));
    }
    return Value::String(s);
  }
  if (name == "partition" || name == "rpartition") {
    TAILOR_RETURN_IF_ERROR(BindArgs(fn, args, {"sep"}, &b, 1));
    const std::string sep = Str(*b[0]);
    if (sep.empty()) return RuntimeError("empty separator");
    const size_t at = name == "partition" ? s.find(sep) : s.rfind(sep);
    if (at == std::string::npos) {
      return name == "partition"
                 ? Value::Tuple({Value::String(s), Value::String(""), Value::String("")})
                 : Value::Tuple({Value::String(""), Value::String(""), Value::String(s)});
    }
    return Value::Tuple({Value::String(s.substr(0, at)), Value::String(sep),
                         Value::String(s.substr(at + sep.size()))});
  }
  if (name == "zfill") {
    TAILOR_RETURN_IF_ERROR(BindArgs(fn, args, {"width"}, &b, 1));
    const int64_t len = static_cast<int64_t>(CodePointCount(s));
    const int64_t width = b[0]->as_int();
    if (width <= len) return Value::String(s);
    TAILOR_RETURN_IF_ERROR(interp.Produced(static_cast<size_t>(width - len) + s.size()));
    const bool sign = !s.empty() && (s[0] == '+' || s[0] == '-');
    std::string out = sign ? s.substr(0, 1) : "";
    out.append(static_cast<size_t>(width - len), '0');
    out += sign ? s.substr(1) : s;
    return Value::String(std::move(out));
  }
  // ljust / rjust / center
  TAILOR_RETURN_IF_ERROR(BindArgs(fn, args, {"width", "fillchar"}, &b, 1));
  TAILOR_ASSIGN_OR_RETURN(std::string out, Pad(interp, s, b, name));
  return Value::String(std::move(out));
}

absl::StatusOr<Value> CallDictMethod(const Value& d, absl::string_view name, const CallArgs& args) {
  Bound b;
  if (name == "get") {
    TAILOR_RETURN_IF_ERROR(BindArgs("get", args, {"key", "default"}, &b, 1));
    const Value* found = d.dict().Find(*b[0]);
    if (found != nullptr) return *found;
    return b[1].has_value() ? *b[1] : Value::None();
  }
  TAILOR_RETURN_IF_ERROR(BindArgs(std::string(name), args, {}, &b));
  if (name == "copy") return d;
  std::vector<Value> out;
  for (const auto& [key, value] : d.dict().items()) {
    if (name == "items") {
      out.push_back(Value::Tuple({key, value}));
    } else {
      out.push_back(name == "keys" ? key : value);
    }
  }
  return Value::List(std::move(out));
}

absl::StatusOr<Value> CallListMethod(const Value& list, absl::string_view name,
                                     const CallArgs& args) {
  Bound b;
  if (name == "copy") {
    TAILOR_RETURN_IF_ERROR(BindArgs("copy", args, {}, &b));
    return list;
  }
  TAILOR_RETURN_IF_ERROR(BindArgs(std::string(name), args, {"value", "start", "stop"}, &b, 1));
  const auto& items = list.items();
  if (name == "count") {
    return Value::Int(std::count_if(items.begin(), items.end(),
                                    [&](const Value& v) { return Equals(v, *b[0]); }));
  }
  const int64_t n = static_cast<int64_t>(items.size());
  const auto norm = [&](const std::optional<Value>& v, int64_t fallback) {
    if (!v.has_value() || !v->is_integral()) return fallback;
    const int64_t i = v->as_int();
    return i < 0 ? std::max<int64_t>(0, i + n) : std::min(i, n);
  };
  for (int64_t i = norm(b[1], 0); i < norm(b[2], n); ++i) {
    if (Equals(items[static_cast<size_t>(i)], *b[0])) return Value::Int(i);
  }
  std::string shown;
  AppendRepr(*b[0], &shown);
  return RuntimeError(absl::StrCat(shown, " is not in ", TypeName(list)));
}

class BoundMethod : public Callable {
 public:
  BoundMethod(Value receiver, std::string name)
      : receiver_(std::move(receiver)), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  absl::StatusOr<Value> Call(Interpreter& interp, CallArgs args) const override {
    if (receiver_.is_string()) return CallStrMethod(interp, receiver_.str(), name_, args);
    if (receiver_.is_dict()) return CallDictMethod(receiver_, name_, args);
    return CallListMethod(receiver_, name_, args);
  }

 private:
  Value receiver_;
  std::string name_;
};

// str.format: {} {0} {name} with !r/!s conversions and format specs for str, int and float.
absl::StatusOr<std::string> FormatField(const Value& v, const std::string& spec) {
  if (spec.empty()) return Str(v);
  size_t i = 0;
  char fill = ' ';
  char align = 0;
  if (spec.size() >= 2 && absl::string_view("<>^=").find(spec[1]) != absl::string_view::npos) {
    fill = spec[0];
    align = spec[1];
    i = 2;
  } else if (absl::string_view("<>^=").find(spec[0]) != absl::string_view::npos) {
    align = spec[0];
    i = 1;
  }
  std::string flags;
  while (i < spec.size() && absl::string_view("+- #0,").find(spec[i]) != absl::string_view::npos) {
    if (spec[i] != ',') flags.push_back(spec[i]);
    ++i;
  }
  std::string width;
  while (i < spec.size() && spec[i] >= '0' && spec[i] <= '9') width.push_back(spec[i++]);
  std::string precision;
  if (i < spec.size() && spec[i] == '.') {
    precision.push_back(spec[i++]);
    while (i < spec.size() && spec[i] >= '0' && spec[i] <= '9') precision.push_back(spec[i++]);
  }
  const char type = i < spec.size() ? spec[i++] : 0;
  if (i != spec.size() || width.size() > 6 || precision.size() > 7) {
    return RuntimeError(absl::StrCat("Invalid format specifier '", spec, "'"));
  }
  std::string body;
  if (v.is_string() || type == 's') {
    body = Str(v);
    if (precision.size() > 1) {
      const std::u32string cps = DecodeUtf8(body);
      body = EncodeUtf8(cps.substr(0, static_cast<size_t>(std::stoi(precision.substr(1)))));
    }
    if (align == 0) align = '<';
  } else if (v.is_number()) {
    const char t = type != 0 ? type : (v.kind() == Value::Kind::kFloat ? 'g' : 'd');
    const bool float_type = absl::string_view("eEfFgG%").find(t) != absl::string_view::npos;
    char buf[512];
    std::string f = "%" + flags;
    f.erase(std::remove(f.begin(), f.end(), '0'), f.end());
    if (float_type) {
      double x = v.as_float();
      if (type == 0 && precision.empty()) {
        body = Str(v);
      } else {
        if (t == '%') x *= 100;
        std::snprintf(
            buf, sizeof(buf),
            (f + (precision.empty() ? ".6" : precision) + std::string(1, t == '%' ? 'f' : t))
                .c_str(),
            x);
        body = buf;
        if (t == '%') body += "%";
      }
    } else {
      if (v.kind() == Value::Kind::kFloat) {
        return RuntimeError(absl::StrCat("Unknown format code '", std::string(1, t),
                                         "' for object of type 'float'"));
      }
      std::snprintf(buf, sizeof(buf), (f + "ll" + std::string(1, t == 'n' ? 'd' : t)).c_str(),
                    static_cast<long long>(v.as_int()));
      body = buf;
    }
    if (align == 0 && flags.find('0') != std::string::npos) fill = '0', align = '=';
    if (align == 0) align = '>';
  } else {
    body = Str(v);
    if (align == 0) align = '<';
  }
  const size_t w = width.empty() ? 0 : static_cast<size_t>(std::stoi(width));
  const size_t len = CodePointCount(body);
  if (w <= len) return body;
  const size_t pad = w - len;
  if (align == '<') return body + std::string(pad, fill);
  if (align == '>') return std::string(pad, fill) + body;
  if (align == '^') return std::string(pad / 2, fill) + body + std::string(pad - pad / 2, fill);
  const bool sign = !body.empty() && (body[0] == '-' || body[0] == '+' || body[0] == ' ');
  return sign ? body.substr(0, 1) + std::string(pad, fill) + body.substr(1)
              : std::string(pad, fill) + body;
}

absl::StatusOr<Value> StrFormat(Interpreter& interp, const std::string& format,
                                const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < format.size(); ++i) {
    const char c = format[i];
    if (c == '}') {
      if (i + 1 < format.size() && format[i + 1] == '}')
        ++i;
      else
        return RuntimeError("Single '}' encountered in format string");
      out.push_back('}');
      continue;
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    if (i + 1 < format.size() && format[i + 1] == '{') {
      out.push_back('{');
      ++i;
      continue;
    }
    const size_t close = format.find('}', i);
    if (close == std::string::npos) return RuntimeError("expected '}' before end of string");
    std::string field = format.substr(i + 1, close - i - 1);
    i = close;
    std::string spec;
    const size_t colon = field.find(':');
    if (colon != std::string::npos) {
      spec = field.substr(colon + 1);
      field.resize(colon);
    }
    char conversion = 0;
    const size_t bang = field.find('!');
    if (bang != std::string::npos) {
      conversion = bang + 1 < field.size() ? field[bang + 1] : 0;
      field.resize(bang);
    }
    Value arg;
    if (field.empty() || std::all_of(field.begin(), field.end(), ::isdigit)) {
      const size_t index =
          field.empty() ? auto_index++ : static_cast<size_t>(std::stoi(field.substr(0, 6)));
      if (index >= args.positional.size()) {
        return RuntimeError(
            absl::StrCat("Replacement index ", index, " out of range for positional args tuple"));
      }
      arg = args.positional[index];
    } else {
      const auto it = std::find_if(args.keyword.begin(), args.keyword.end(),
                                   [&](const auto& kw) { return kw.first == field; });
      if (it == args.keyword.end()) return RuntimeError(PyStrRepr(field));
      arg = it->second;
    }
    if (conversion == 'r' || conversion == 'a') {
      std::string repr;
      AppendRepr(arg, &repr);
      arg = Value::String(std::move(repr));
    } else if (conversion == 's') {
      arg = Value::String(Str(arg));
    }
    TAILOR_ASSIGN_OR_RETURN(std::string piece, FormatField(arg, spec));
    out += piece;
  }
  TAILOR_RETURN_IF_ERROR(interp.Produced(out.size()));
  return Value::String(std::move(out));
}

}  // namespace

bool LookupMethod(const Value& receiver, absl::string_view name, Value* method) {
  const auto bind = [&]() {
    *method = Value::Function(std::make_shared<BoundMethod>(receiver, std::string(name)));
    return true;
  };
  const auto unsafe = [&](absl::string_view type) {
    *method = Value::Undefined(absl::StrCat("access to attribute ", PyStrRepr(name), " of ",
                                            PyStrRepr(type), " object is unsafe."));
    return true;
  };
  switch (receiver.kind()) {
    case Value::Kind::kString:
      if (In(kStrMethods, name)) return bind();
      return false;
    case Value::Kind::kDict:
      if (In(kDictMethods, name)) return bind();
      if (In(kDictUnsafe, name)) return unsafe("dict");
      return false;
    case Value::Kind::kList:
      if (In(kListMethods, name)) return bind();
      if (In(kListUnsafe, name)) return unsafe("list");
      return false;
    case Value::Kind::kTuple:
      if (name == "index" || name == "count") return bind();
      return false;
    default:
      return false;
  }
}

}  // namespace tailor::service::jinja
