// Tests, global functions, argument binding and %-formatting (filters are in jinja_filters.cc,
// str/dict/list methods in jinja_methods.cc).
#include "service/jinja_builtins.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "service/jinja_eval.h"
#include "service/jinja_text.h"

namespace tailor::service::jinja {

absl::Status BindArgs(absl::string_view function, const CallArgs& args,
                      std::initializer_list<absl::string_view> names,
                      std::vector<std::optional<Value>>* out, size_t required) {
  out->assign(names.size(), std::nullopt);
  if (args.positional.size() > names.size()) {
    return RuntimeError(absl::StrCat(function, "() takes at most ", names.size(), " argument(s) (",
                                     args.positional.size(), " given)"));
  }
  for (size_t i = 0; i < args.positional.size(); ++i) (*out)[i] = args.positional[i];
  for (const auto& [key, value] : args.keyword) {
    const auto it = std::find(names.begin(), names.end(), key);
    if (it == names.end()) {
      return RuntimeError(
          absl::StrCat(function, "() got an unexpected keyword argument ", PyStrRepr(key)));
    }
    auto& slot = (*out)[static_cast<size_t>(it - names.begin())];
    if (slot.has_value()) {
      return RuntimeError(
          absl::StrCat(function, "() got multiple values for argument ", PyStrRepr(key)));
    }
    slot = value;
  }
  for (size_t i = 0; i < required; ++i) {
    if (!(*out)[i].has_value()) {
      return RuntimeError(
          absl::StrCat(function, "() missing required argument ", PyStrRepr(*(names.begin() + i))));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Value> GetAttributePath(Interpreter& interp, const Value& item,
                                       const Value& attribute) {
  if (!attribute.is_string()) return interp.GetItem(item, attribute);
  Value current = item;
  const std::string& path = attribute.str();
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? dot : dot - start);
    const bool digits = !part.empty() && std::all_of(part.begin(), part.end(),
                                                     [](char c) { return c >= '0' && c <= '9'; });
    Value key = Value::String(part);
    if (digits && part.size() < 18) key = Value::Int(std::stoll(part));
    TAILOR_ASSIGN_OR_RETURN(current, interp.GetItem(current, key));
    if (dot == std::string::npos) return current;
    start = dot + 1;
  }
}

// ---- tests ----

namespace {

using TestFn = absl::StatusOr<bool> (*)(Interpreter&, const Value&, const CallArgs&);

absl::StatusOr<Value> OneArg(absl::string_view test, const CallArgs& args) {
  std::vector<std::optional<Value>> bound;
  TAILOR_RETURN_IF_ERROR(BindArgs(test, args, {"other"}, &bound, 1));
  return *bound[0];
}

absl::StatusOr<bool> CompareTest(const Value& v, const CallArgs& args, absl::string_view op,
                                 absl::string_view test) {
  TAILOR_ASSIGN_OR_RETURN(Value other, OneArg(test, args));
  if (op == "==") return Equals(v, other);
  if (op == "!=") return !Equals(v, other);
  return CompareOp(v, other, op);
}

absl::StatusOr<bool> ModuloIs(Interpreter& interp, const Value& v, const Value& divisor,
                              int64_t remainder) {
  TAILOR_ASSIGN_OR_RETURN(Value m, interp.Arith(BinaryOp::kMod, v, divisor));
  return Equals(m, Value::Int(remainder));
}

bool AllCased(const Value& v, bool upper) {
  const std::string s = Str(v);
  bool any_cased = false;
  size_t pos = 0;
  while (pos < s.size()) {
    const char32_t c = NextCodePoint(s, &pos);
    if (upper ? IsLowerCase(c) : IsUpperCase(c)) return false;
    any_cased = any_cased || IsLowerCase(c) || IsUpperCase(c);
  }
  return any_cased;
}

struct TestEntry {
  absl::string_view name;
  TestFn fn;
};

absl::StatusOr<bool> IsDefined(Interpreter& /*interp*/, const Value& v, const CallArgs& /*args*/) {
  return !v.is_undefined();
}

absl::StatusOr<bool> IsUndefined(Interpreter& /*interp*/, const Value& v,
                                 const CallArgs& /*args*/) {
  return v.is_undefined();
}

absl::StatusOr<bool> IsNone(Interpreter& /*interp*/, const Value& v, const CallArgs& /*args*/) {
  return v.is_none();
}

absl::StatusOr<bool> IsBoolean(Interpreter& /*interp*/, const Value& v, const CallArgs& /*args*/) {
  return v.kind() == Value::Kind::kBool;
}

absl::StatusOr<bool> IsTrue(Interpreter& /*interp*/, const Value& v, const CallArgs& /*args*/) {
  return v.kind() == Value::Kind::kBool && v.as_bool();
}

absl::StatusOr<bool> IsFalse(Interpreter& /*interp*/, const Value& v, const CallArgs& /*args*/) {
  return v.kind() == Value::Kind::kBool && !v.as_bool();
}

absl::StatusOr<bool> IsInteger(Interpreter& /*interp*/, const Value& v, const CallArgs& /*args*/) {
  return v.kind() == Value::Kind::kInt;
}

absl::StatusOr<bool> IsFloat(Interpreter& /*interp*/, const Value& v, const CallArgs& /*args*/) {
  return v.kind() == Value::Kind::kFloat;
}

absl::StatusOr<bool> IsNumber(Interpreter& /*interp*/, const Value& v, const CallArgs& /*args*/) {
  return v.is_number();
}

absl::StatusOr<bool> IsString(Interpreter& /*interp*/, const Value& v, const CallArgs& /*args*/) {
  return v.is_string();
}

absl::StatusOr<bool> IsMapping(Interpreter& /*interp*/, const Value& v, const CallArgs& /*args*/) {
  return v.is_dict();
}

absl::StatusOr<bool> IsSequence(Interpreter& /*interp*/, const Value& v, const CallArgs& /*args*/) {
  return v.is_undefined() || v.is_string() || v.is_dict() || v.kind() == Value::Kind::kList ||
         v.kind() == Value::Kind::kTuple;
}

absl::StatusOr<bool> IsIterable(Interpreter& /*interp*/, const Value& v, const CallArgs& /*args*/) {
  return v.is_undefined() || v.is_string() || v.is_dict() || v.is_sequence() ||
         v.kind() == Value::Kind::kLoop;
}

absl::StatusOr<bool> IsCallable(Interpreter& /*interp*/, const Value& v, const CallArgs& /*args*/) {
  return v.kind() == Value::Kind::kCallable || v.is_undefined() || v.kind() == Value::Kind::kLoop;
}

absl::StatusOr<bool> IsLower(Interpreter& /*interp*/, const Value& v, const CallArgs& /*args*/) {
  return AllCased(v, false);
}

absl::StatusOr<bool> IsUpper(Interpreter& /*interp*/, const Value& v, const CallArgs& /*args*/) {
  return AllCased(v, true);
}

absl::StatusOr<bool> IsEscaped(Interpreter& /*interp*/, const Value& /*v*/,
                               const CallArgs& /*args*/) {
  return false;
}

absl::StatusOr<bool> IsOdd(Interpreter& interp, const Value& v, const CallArgs& /*args*/) {
  return ModuloIs(interp, v, Value::Int(2), 1);
}

absl::StatusOr<bool> IsEven(Interpreter& interp, const Value& v, const CallArgs& /*args*/) {
  return ModuloIs(interp, v, Value::Int(2), 0);
}

absl::StatusOr<bool> IsDivisibleby(Interpreter& interp, const Value& v, const CallArgs& args) {
  TAILOR_ASSIGN_OR_RETURN(Value num, OneArg("divisibleby", args));
  return ModuloIs(interp, v, num, 0);
}

absl::StatusOr<bool> IsIn(Interpreter& interp, const Value& v, const CallArgs& args) {
  TAILOR_ASSIGN_OR_RETURN(Value seq, OneArg("in", args));
  return interp.Contains(seq, v);
}

absl::StatusOr<bool> IsSameas(Interpreter& /*interp*/, const Value& v, const CallArgs& args) {
  TAILOR_ASSIGN_OR_RETURN(Value other, OneArg("sameas", args));
  if (v.kind() != other.kind()) return false;
  switch (v.kind()) {  // identity; CPython caches None, bools and small ints
    case Value::Kind::kNone:
    case Value::Kind::kUndefined:
      return v.is_none();
    case Value::Kind::kBool:
      return v.as_bool() == other.as_bool();
    case Value::Kind::kInt:
      return v.as_int() == other.as_int() && v.as_int() >= -5 && v.as_int() <= 256;
    case Value::Kind::kString:
      return &v.str() == &other.str();
    default:
      return Equals(v, other) && !(v.is_number());
  }
}

absl::StatusOr<bool> IsFilter(Interpreter& /*interp*/, const Value& v, const CallArgs& /*args*/) {
  return v.is_string() && IsKnownFilter(v.str());
}

absl::StatusOr<bool> IsTest(Interpreter& /*interp*/, const Value& v, const CallArgs& /*args*/) {
  return v.is_string() && IsKnownTest(v.str());
}

absl::StatusOr<bool> IsEq2(Interpreter& /*interp*/, const Value& v, const CallArgs& args) {
  return CompareTest(v, args, "==", "==");
}

absl::StatusOr<bool> IsEq(Interpreter& /*interp*/, const Value& v, const CallArgs& args) {
  return CompareTest(v, args, "==", "eq");
}

absl::StatusOr<bool> IsEqualto(Interpreter& /*interp*/, const Value& v, const CallArgs& args) {
  return CompareTest(v, args, "==", "equalto");
}

absl::StatusOr<bool> IsNe2(Interpreter& /*interp*/, const Value& v, const CallArgs& args) {
  return CompareTest(v, args, "!=", "!=");
}

absl::StatusOr<bool> IsNe(Interpreter& /*interp*/, const Value& v, const CallArgs& args) {
  return CompareTest(v, args, "!=", "ne");
}

absl::StatusOr<bool> IsLt2(Interpreter& /*interp*/, const Value& v, const CallArgs& args) {
  return CompareTest(v, args, "<", "<");
}

absl::StatusOr<bool> IsLt(Interpreter& /*interp*/, const Value& v, const CallArgs& args) {
  return CompareTest(v, args, "<", "lt");
}

absl::StatusOr<bool> IsLessthan(Interpreter& /*interp*/, const Value& v, const CallArgs& args) {
  return CompareTest(v, args, "<", "lessthan");
}

absl::StatusOr<bool> IsLe2(Interpreter& /*interp*/, const Value& v, const CallArgs& args) {
  return CompareTest(v, args, "<=", "<=");
}

absl::StatusOr<bool> IsLe(Interpreter& /*interp*/, const Value& v, const CallArgs& args) {
  return CompareTest(v, args, "<=", "le");
}

absl::StatusOr<bool> IsGt2(Interpreter& /*interp*/, const Value& v, const CallArgs& args) {
  return CompareTest(v, args, ">", ">");
}

absl::StatusOr<bool> IsGt(Interpreter& /*interp*/, const Value& v, const CallArgs& args) {
  return CompareTest(v, args, ">", "gt");
}

absl::StatusOr<bool> IsGreaterthan(Interpreter& /*interp*/, const Value& v, const CallArgs& args) {
  return CompareTest(v, args, ">", "greaterthan");
}

absl::StatusOr<bool> IsGe2(Interpreter& /*interp*/, const Value& v, const CallArgs& args) {
  return CompareTest(v, args, ">=", ">=");
}

absl::StatusOr<bool> IsGe(Interpreter& /*interp*/, const Value& v, const CallArgs& args) {
  return CompareTest(v, args, ">=", "ge");
}

const TestEntry kTests[] = {
    {"defined", IsDefined},
    {"undefined", IsUndefined},
    {"none", IsNone},
    {"boolean", IsBoolean},
    {"true", IsTrue},
    {"false", IsFalse},
    {"integer", IsInteger},
    {"float", IsFloat},
    {"number", IsNumber},
    {"string", IsString},
    {"mapping", IsMapping},
    {"sequence", IsSequence},
    {"iterable", IsIterable},
    {"callable", IsCallable},
    {"lower", IsLower},
    {"upper", IsUpper},
    {"escaped", IsEscaped},
    {"odd", IsOdd},
    {"even", IsEven},
    {"divisibleby", IsDivisibleby},
    {"in", IsIn},
    {"sameas", IsSameas},
    {"filter", IsFilter},
    {"test", IsTest},
    {"==", IsEq2},
    {"eq", IsEq},
    {"equalto", IsEqualto},
    {"!=", IsNe2},
    {"ne", IsNe},
    {"<", IsLt2},
    {"lt", IsLt},
    {"lessthan", IsLessthan},
    {"<=", IsLe2},
    {"le", IsLe},
    {">", IsGt2},
    {"gt", IsGt},
    {"greaterthan", IsGreaterthan},
    {">=", IsGe2},
    {"ge", IsGe},
};

const TestEntry* FindTest(absl::string_view name) {
  for (const TestEntry& entry : kTests) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

}  // namespace

bool IsKnownTest(absl::string_view name) { return FindTest(name) != nullptr; }

absl::StatusOr<bool> ApplyTest(Interpreter& interp, absl::string_view name, const Value& input,
                               CallArgs args) {
  const TestEntry* entry = FindTest(name);
  if (entry == nullptr) return RuntimeError(absl::StrCat("No test named ", PyStrRepr(name), "."));
  return entry->fn(interp, input, args);
}

// ---- global functions ----

namespace {

using GlobalFn = absl::StatusOr<Value> (*)(Interpreter&, CallArgs);

class Builtin : public Callable {
 public:
  Builtin(std::string name, GlobalFn fn) : name_(std::move(name)), fn_(fn) {}
  std::string name() const override { return name_; }
  absl::StatusOr<Value> Call(Interpreter& interp, CallArgs args) const override {
    return fn_(interp, std::move(args));
  }

 private:
  std::string name_;
  GlobalFn fn_;
};

// dict(mapping_or_pairs, **kwargs) as Python builds it.
absl::StatusOr<std::vector<std::pair<Value, Value>>> DictItems(absl::string_view fn,
                                                               const CallArgs& args) {
  if (args.positional.size() > 1) {
    return RuntimeError(
        absl::StrCat(fn, " expected at most 1 argument, got ", args.positional.size()));
  }
  std::vector<std::pair<Value, Value>> items;
  if (!args.positional.empty()) {
    const Value& source = args.positional[0];
    if (source.is_dict()) {
      items = source.dict().items();
    } else {
      TAILOR_ASSIGN_OR_RETURN(auto pairs, Iterate(source));
      for (const Value& pair : pairs->items) {
        TAILOR_ASSIGN_OR_RETURN(auto kv, Iterate(pair));
        if (kv->items.size() != 2) {
          return RuntimeError("dictionary update sequence element has the wrong length");
        }
        items.emplace_back(kv->items[0], kv->items[1]);
      }
    }
  }
  for (const auto& [key, value] : args.keyword) items.emplace_back(Value::String(key), value);
  return items;
}

absl::StatusOr<Value> Range(Interpreter& interp, CallArgs args) {
  if (!args.keyword.empty()) return RuntimeError("range() takes no keyword arguments");
  if (args.positional.empty() || args.positional.size() > 3) {
    return RuntimeError(
        absl::StrCat("range expected 1 to 3 arguments, got ", args.positional.size()));
  }
  for (const Value& a : args.positional) {
    if (!a.is_integral()) {
      return RuntimeError(
          absl::StrCat("'", TypeName(a), "' object cannot be interpreted as an integer"));
    }
  }
  int64_t start = 0;
  int64_t stop = 0;
  int64_t step = 1;
  if (args.positional.size() == 1) {
    stop = args.positional[0].as_int();
  } else {
    start = args.positional[0].as_int();
    stop = args.positional[1].as_int();
    if (args.positional.size() == 3) step = args.positional[2].as_int();
  }
  if (step == 0) return RuntimeError("range() arg 3 must not be zero");
  // Python's len(range) without overflow: ceil((stop - start) / step), clamped at 0.
  const long double span = static_cast<long double>(stop) - static_cast<long double>(start);
  const long double count = std::max<long double>(0, std::ceil(span / step));
  if (count > 100000) {
    return RuntimeError("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  }
  std::vector<Value> items;
  for (int64_t i = 0, v = start; i < static_cast<int64_t>(count); ++i, v += step) {
    items.push_back(Value::Int(v));
  }
  TAILOR_RETURN_IF_ERROR(interp.Produced(items.size() * sizeof(Value)));
  return Value::List(std::move(items));
}

absl::StatusOr<Value> DictGlobal(Interpreter& /*interp*/, CallArgs args) {
  TAILOR_ASSIGN_OR_RETURN(auto items, DictItems("dict", args));
  return Value::Dict(std::move(items));
}

absl::StatusOr<Value> NamespaceGlobal(Interpreter& interp, CallArgs args) {
  TAILOR_ASSIGN_OR_RETURN(auto items, DictItems("namespace", args));
  auto ns = std::make_shared<Namespace>();
  interp.Track(ns);
  for (auto& [key, value] : items) ns->Set(Str(key), std::move(value));
  return Value::MakeNamespace(std::move(ns));
}

absl::StatusOr<Value> RaiseException(Interpreter& interp, CallArgs args) {
  std::vector<std::optional<Value>> bound;
  TAILOR_RETURN_IF_ERROR(BindArgs("raise_exception", args, {"message"}, &bound, 1));
  return interp.Raise(Str(*bound[0]));
}

absl::StatusOr<Value> StrftimeNow(Interpreter& /*interp*/, CallArgs args) {
  std::vector<std::optional<Value>> bound;
  TAILOR_RETURN_IF_ERROR(BindArgs("strftime_now", args, {"format"}, &bound, 1));
  if (!bound[0]->is_string()) {
    return RuntimeError(
        absl::StrCat("strftime() argument 1 must be str, not ", TypeName(*bound[0])));
  }
  const std::time_t now = std::time(nullptr);
  std::tm local = {};
  localtime_r(&now, &local);
  const std::string& format = bound[0]->str();
  if (format.empty()) return Value::String("");
  std::string buf(256 + format.size() * 8, '\0');
  const size_t n = std::strftime(buf.data(), buf.size(), format.c_str(), &local);
  buf.resize(n);
  return Value::String(std::move(buf));
}

struct GlobalEntry {
  absl::string_view name;
  GlobalFn fn;
};
constexpr GlobalEntry kGlobals[] = {
    {"range", Range},
    {"dict", DictGlobal},
    {"namespace", NamespaceGlobal},
    {"raise_exception", RaiseException},
    {"strftime_now", StrftimeNow},
};

}  // namespace

Value LookupGlobal(absl::string_view name) {
  // Built once, immutable afterwards (function-local static: thread-safe initialisation).
  static const auto* const kValues = [] {
    auto* values = new std::vector<std::pair<absl::string_view, Value>>();
    for (const GlobalEntry& g : kGlobals) {
      values->emplace_back(g.name,
                           Value::Function(std::make_shared<Builtin>(std::string(g.name), g.fn)));
    }
    return values;
  }();
  for (const auto& [global_name, value] : *kValues) {
    if (global_name == name) return value;
  }
  return Value();
}

// ---- %-formatting ----

absl::StatusOr<std::string> PercentFormat(const std::string& format, const Value& args) {
  std::vector<Value> positional;
  const bool mapping = args.is_dict();
  if (args.kind() == Value::Kind::kTuple) {
    positional = args.items();
  } else if (!mapping) {
    positional.push_back(args);
  }
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out.push_back(format[i]);
      continue;
    }
    if (++i >= format.size()) return RuntimeError("incomplete format");
    Value arg;
    bool have_arg = false;
    if (format[i] == '(') {
      const size_t close = format.find(')', i);
      if (close == std::string::npos) return RuntimeError("incomplete format key");
      if (!mapping) return RuntimeError("format requires a mapping");
      const Value* found = args.dict().FindString(format.substr(i + 1, close - i - 1));
      if (found == nullptr) return RuntimeError(PyStrRepr(format.substr(i + 1, close - i - 1)));
      arg = *found;
      have_arg = true;
      i = close + 1;
    }
    std::string flags;
    while (i < format.size() && absl::string_view("-+ #0").find(format[i]) != std::string::npos) {
      flags.push_back(format[i++]);
    }
    std::string width;
    while (i < format.size() && absl::ascii_isdigit(format[i])) width.push_back(format[i++]);
    std::string precision;
    if (i < format.size() && format[i] == '.') {
      precision = ".";
      ++i;
      while (i < format.size() && absl::ascii_isdigit(format[i])) precision.push_back(format[i++]);
    }
    if (i >= format.size()) return RuntimeError("incomplete format");
    const char type = format[i];
    if (type == '%') {
      out.push_back('%');
      continue;
    }
    if (!have_arg) {
      if (mapping) return RuntimeError("format requires a mapping");
      if (next >= positional.size()) return RuntimeError("not enough arguments for format string");
      arg = positional[next++];
    }
    if (width.size() > 6 || precision.size() > 6) return RuntimeError("format width too large");
    const std::string spec = absl::StrCat("%", flags, width, precision);
    char buf[512];
    std::string piece;
    switch (type) {
      case 's':
      case 'r':
      case 'a': {
        std::string text;
        if (type == 's') {
          text = Str(arg);
        } else {
          AppendRepr(arg, &text);
        }
        if (precision.size() > 1) {
          const size_t keep = static_cast<size_t>(std::stoi(precision.substr(1)));
          std::u32string cps = DecodeUtf8(text);
          if (cps.size() > keep) text = EncodeUtf8(cps.substr(0, keep));
        }
        const size_t w = width.empty() ? 0 : static_cast<size_t>(std::stoi(width));
        const size_t len = CodePointCount(text);
        const std::string pad(w > len ? w - len : 0, ' ');
        piece = flags.find('-') != std::string::npos ? text + pad : pad + text;
        break;
      }
      case 'd':
      case 'i':
      case 'u':
      case 'x':
      case 'X':
      case 'o':
      case 'c': {
        if (!arg.is_number()) {
          return RuntimeError(absl::StrCat("%", std::string(1, type),
                                           " format: a real number is required, not ",
                                           TypeName(arg)));
        }
        const long long n = arg.kind() == Value::Kind::kFloat
                                ? static_cast<long long>(std::trunc(arg.as_float()))
                                : static_cast<long long>(arg.as_int());
        if (type == 'c') {
          std::string ch;
          AppendUtf8(static_cast<char32_t>(n), &ch);
          piece = ch;
          break;
        }
        const char conv = type == 'i' || type == 'u' ? 'd' : type;
        std::snprintf(buf, sizeof(buf), (spec + "ll" + std::string(1, conv)).c_str(), n);
        piece = buf;
        break;
      }
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G': {
        if (!arg.is_number()) {
          return RuntimeError(absl::StrCat("must be real number, not ", TypeName(arg)));
        }
        std::snprintf(buf, sizeof(buf), (spec + std::string(1, type)).c_str(), arg.as_float());
        piece = buf;
        break;
      }
      default:
        return RuntimeError(
            absl::StrCat("unsupported format character '", std::string(1, type), "'"));
    }
    out += piece;
  }
  // Python only complains about unused arguments of a tuple or of a single value that is not a
  // list or mapping (those could be indexed by %(key)s).
  const bool indexable = args.kind() == Value::Kind::kList;
  if (!mapping && !indexable && next < positional.size()) {
    return RuntimeError("not all arguments converted during string formatting");
  }
  return out;
}

}  // namespace tailor::service::jinja
