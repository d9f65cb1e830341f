// jinja2's built-in filters (the ones chat templates use): the table, and the filters on
// sequences and mappings (the string and number filters are in jinja_filters_text.cc).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "service/jinja_builtins.h"
#include "service/jinja_eval.h"
#include "service/jinja_filters_internal.h"
#include "service/jinja_json.h"
#include "service/jinja_text.h"

namespace tailor::service::jinja {
namespace {

using filters::Arg;
using filters::Bound;
using filters::Center;
using filters::DoAbs;
using filters::DoCapitalize;
using filters::DoFormat;
using filters::DoLower;
using filters::DoSafe;
using filters::DoString;
using filters::DoTitle;
using filters::DoTrim;
using filters::DoUpper;
using filters::DoWordcount;
using filters::Escape;
using filters::FilterFn;
using filters::IgnoreCase;
using filters::Indent;
using filters::MakeString;
using filters::NoArgs;
using filters::Replace;
using filters::Round;
using filters::ToFloat;
using filters::ToInt;
using filters::ToJsonFilter;
using filters::Truncate;

// Python's sorted()/min()/max() comparisons on precomputed keys; the first error wins.
struct KeyLess {
  absl::Status* error;
  bool operator()(const Value& a, const Value& b) const {
    absl::StatusOr<bool> less = CompareOp(a, b, "<");
    if (!less.ok()) {
      if (error->ok()) *error = less.status();
      return false;
    }
    return *less;
  }
};

absl::StatusOr<std::vector<Value>> Keys(Interpreter& interp, const std::vector<Value>& items,
                                        const Value& attribute, bool case_sensitive) {
  std::vector<Value> keys;
  keys.reserve(items.size());
  for (const Value& item : items) {
    Value key = item;
    if (!attribute.is_none() && !attribute.is_undefined()) {
      TAILOR_ASSIGN_OR_RETURN(key, GetAttributePath(interp, item, attribute));
    }
    keys.push_back(case_sensitive ? std::move(key) : IgnoreCase(key));
  }
  return keys;
}

absl::StatusOr<Value> Sort(Interpreter& interp, const Value& v, CallArgs& args) {
  Bound b;
  TAILOR_RETURN_IF_ERROR(BindArgs("sort", args, {"reverse", "case_sensitive", "attribute"}, &b));
  TAILOR_ASSIGN_OR_RETURN(auto items, Iterate(v));
  const bool reverse = Truthy(Arg(b, 0, Value::Bool(false)));
  const bool case_sensitive = Truthy(Arg(b, 1, Value::Bool(false)));
  const Value attribute = Arg(b, 2, Value::None());
  // sort(attribute="a,b") compares lists of several attributes.
  std::vector<Value> keys;
  if (attribute.is_string() && attribute.str().find(',') != std::string::npos) {
    std::vector<std::vector<Value>> columns;
    std::string rest = attribute.str();
    size_t start = 0;
    while (true) {
      const size_t comma = rest.find(',', start);
      TAILOR_ASSIGN_OR_RETURN(
          auto column, Keys(interp, items->items, Value::String(rest.substr(start, comma - start)),
                            case_sensitive));
      columns.push_back(std::move(column));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    for (size_t i = 0; i < items->items.size(); ++i) {
      std::vector<Value> row;
      for (const auto& column : columns) row.push_back(column[i]);
      keys.push_back(Value::List(std::move(row)));
    }
  } else {
    TAILOR_ASSIGN_OR_RETURN(keys, Keys(interp, items->items, attribute, case_sensitive));
  }
  std::vector<size_t> order(keys.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  absl::Status error;
  KeyLess less{&error};
  // reverse=True keeps equal keys in their original order, as Python's stable sort does.
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    return reverse ? less(keys[y], keys[x]) : less(keys[x], keys[y]);
  });
  TAILOR_RETURN_IF_ERROR(error);
  std::vector<Value> sorted;
  for (size_t i : order) sorted.push_back(items->items[i]);
  return Value::List(std::move(sorted));
}

absl::StatusOr<Value> MinMax(Interpreter& interp, const Value& v, CallArgs& args, bool max) {
  Bound b;
  TAILOR_RETURN_IF_ERROR(BindArgs(max ? "max" : "min", args, {"case_sensitive", "attribute"}, &b));
  TAILOR_ASSIGN_OR_RETURN(auto items, Iterate(v));
  if (items->items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
  TAILOR_ASSIGN_OR_RETURN(auto keys, Keys(interp, items->items, Arg(b, 1, Value::None()),
                                          Truthy(Arg(b, 0, Value::Bool(false)))));
  absl::Status error;
  KeyLess less{&error};
  size_t best = 0;
  for (size_t i = 1; i < keys.size(); ++i) {
    if (max ? less(keys[best], keys[i]) : less(keys[i], keys[best])) best = i;
  }
  TAILOR_RETURN_IF_ERROR(error);
  return items->items[best];
}

// select/reject/selectattr/rejectattr.
absl::StatusOr<Value> Select(Interpreter& interp, const Value& v, CallArgs& args, bool keep,
                             bool by_attribute) {
  std::vector<Value> out;
  if (!Truthy(v)) return Value::Iterator(std::move(out));
  TAILOR_ASSIGN_OR_RETURN(auto items, Iterate(v));
  size_t next = 0;
  Value attribute;
  if (by_attribute) {
    if (args.positional.empty()) return RuntimeError("Missing parameter for attribute name");
    attribute = args.positional[next++];
  }
  const bool has_test = next < args.positional.size();
  const Value test = has_test ? args.positional[next++] : Value();
  CallArgs test_args;
  test_args.positional.assign(args.positional.begin() + static_cast<ptrdiff_t>(next),
                              args.positional.end());
  test_args.keyword = args.keyword;
  for (const Value& item : items->items) {
    Value subject = item;
    if (by_attribute) {
      TAILOR_ASSIGN_OR_RETURN(subject, GetAttributePath(interp, item, attribute));
    }
    bool pass = false;
    if (has_test) {
      TAILOR_ASSIGN_OR_RETURN(pass, ApplyTest(interp, Str(test), subject, test_args));
    } else {
      pass = Truthy(subject);
    }
    if (pass == keep) out.push_back(item);
  }
  return Value::Iterator(std::move(out));
}

absl::StatusOr<Value> Map(Interpreter& interp, const Value& v, CallArgs& args) {
  std::vector<Value> out;
  if (!Truthy(v)) return Value::Iterator(std::move(out));
  TAILOR_ASSIGN_OR_RETURN(auto items, Iterate(v));
  if (args.positional.empty()) {
    Value attribute;
    Value fallback = Value::None();
    bool has_attribute = false;
    for (const auto& [key, value] : args.keyword) {
      if (key == "attribute") {
        attribute = value;
        has_attribute = true;
      } else if (key == "default") {
        fallback = value;
      } else {
        return RuntimeError(absl::StrCat("Unexpected keyword argument ", PyStrRepr(key)));
      }
    }
    if (!has_attribute) return RuntimeError("map requires a filter argument");
    for (const Value& item : items->items) {
      TAILOR_ASSIGN_OR_RETURN(Value x, GetAttributePath(interp, item, attribute));
      out.push_back(x.is_undefined() && !fallback.is_none() ? fallback : x);
    }
    return Value::Iterator(std::move(out));
  }
  const std::string filter = Str(args.positional[0]);
  CallArgs rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  for (const Value& item : items->items) {
    TAILOR_ASSIGN_OR_RETURN(Value x, ApplyFilter(interp, filter, item, rest));
    out.push_back(std::move(x));
  }
  return Value::Iterator(std::move(out));
}

absl::StatusOr<Value> Join(Interpreter& interp, const Value& v, CallArgs& args) {
  Bound b;
  TAILOR_RETURN_IF_ERROR(BindArgs("join", args, {"d", "attribute"}, &b));
  const std::string sep = Str(Arg(b, 0, Value::String("")));
  const Value attribute = Arg(b, 1, Value::None());
  TAILOR_ASSIGN_OR_RETURN(auto items, Iterate(v));
  std::string out;
  for (size_t i = 0; i < items->items.size(); ++i) {
    Value item = items->items[i];
    if (!attribute.is_none()) {
      TAILOR_ASSIGN_OR_RETURN(item, GetAttributePath(interp, item, attribute));
    }
    if (i > 0) out += sep;
    AppendStr(item, &out, interp.limits().max_output_bytes);
    if (out.size() > interp.limits().max_output_bytes) return MakeString(interp, std::move(out));
  }
  return MakeString(interp, std::move(out));
}

absl::StatusOr<Value> Default(Interpreter& /*interp*/, const Value& v, CallArgs& args) {
  Bound b;
  TAILOR_RETURN_IF_ERROR(BindArgs("default", args, {"default_value", "boolean"}, &b));
  if (v.is_undefined() || (Truthy(Arg(b, 1, Value::Bool(false))) && !Truthy(v))) {
    return Arg(b, 0, Value::String(""));
  }
  return v;
}

absl::StatusOr<Value> Batch(Interpreter& /*interp*/, const Value& v, CallArgs& args) {
  Bound b;
  TAILOR_RETURN_IF_ERROR(BindArgs("batch", args, {"linecount", "fill_with"}, &b, 1));
  if (!b[0]->is_integral() || b[0]->as_int() <= 0)
    return RuntimeError("batch linecount must be > 0");
  const size_t n = static_cast<size_t>(b[0]->as_int());
  TAILOR_ASSIGN_OR_RETURN(auto items, Iterate(v));
  std::vector<Value> out;
  std::vector<Value> row;
  for (const Value& item : items->items) {
    row.push_back(item);
    if (row.size() == n) out.push_back(Value::List(std::exchange(row, {})));
  }
  if (!row.empty()) {
    if (b[1].has_value() && !b[1]->is_none()) row.resize(n, *b[1]);
    out.push_back(Value::List(std::move(row)));
  }
  return Value::Iterator(std::move(out));
}

absl::StatusOr<Value> DoAttr(Interpreter& interp, const Value& v, CallArgs& args) {
  Bound b;
  TAILOR_RETURN_IF_ERROR(BindArgs("attr", args, {"name"}, &b, 1));
  if (v.is_undefined()) return RuntimeError(v.str());
  if (v.is_dict() && b[0]->is_string()) {  // attributes of a dict are its methods only
    Value method;
    if (LookupMethod(v, b[0]->str(), &method)) return method;
    return Value::Undefined(
        absl::StrCat("'dict object' has no attribute ", PyStrRepr(b[0]->str())));
  }
  return interp.GetAttr(v, Str(*b[0]));
}

absl::StatusOr<Value> DoCount(Interpreter& /*interp*/, const Value& v, CallArgs& args) {
  TAILOR_RETURN_IF_ERROR(NoArgs("count", args));
  TAILOR_ASSIGN_OR_RETURN(int64_t n, Length(v));
  return Value::Int(n);
}

absl::StatusOr<Value> DoDictsort(Interpreter& /*interp*/, const Value& v, CallArgs& args) {
  Bound b;
  TAILOR_RETURN_IF_ERROR(BindArgs("dictsort", args, {"case_sensitive", "by", "reverse"}, &b));
  if (!v.is_dict())
    return RuntimeError(absl::StrCat("'", TypeName(v), "' object has no attribute 'items'"));
  const std::string by = Str(Arg(b, 1, Value::String("key")));
  if (by != "key" && by != "value") {
    return RuntimeError("You can only sort by either \"key\" or \"value\"");
  }
  std::vector<Value> pairs;
  std::vector<Value> keys;
  for (const auto& [key, value] : v.dict().items()) {
    pairs.push_back(Value::Tuple({key, value}));
    const Value& k = by == "key" ? key : value;
    keys.push_back(Truthy(Arg(b, 0, Value::Bool(false))) ? k : IgnoreCase(k));
  }
  std::vector<size_t> order(pairs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  absl::Status error;
  KeyLess less{&error};
  const bool reverse = Truthy(Arg(b, 2, Value::Bool(false)));
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    return reverse ? less(keys[y], keys[x]) : less(keys[x], keys[y]);
  });
  TAILOR_RETURN_IF_ERROR(error);
  std::vector<Value> sorted;
  for (size_t i : order) sorted.push_back(pairs[i]);
  return Value::List(std::move(sorted));
}

absl::StatusOr<Value> DoFirst(Interpreter& /*interp*/, const Value& v, CallArgs& args) {
  TAILOR_RETURN_IF_ERROR(NoArgs("first", args));
  TAILOR_ASSIGN_OR_RETURN(auto items, Iterate(v));
  if (items->items.empty()) return Value::Undefined("No first item, sequence was empty.");
  return items->items.front();
}

absl::StatusOr<Value> DoItems(Interpreter& /*interp*/, const Value& v, CallArgs& args) {
  TAILOR_RETURN_IF_ERROR(NoArgs("items", args));
  if (v.is_undefined()) return Value::Iterator({});
  if (!v.is_dict()) return RuntimeError("Can only get item pairs from a mapping.");
  std::vector<Value> pairs;
  for (const auto& [key, value] : v.dict().items()) pairs.push_back(Value::Tuple({key, value}));
  return Value::Iterator(std::move(pairs));
}

absl::StatusOr<Value> DoLast(Interpreter& /*interp*/, const Value& v, CallArgs& args) {
  TAILOR_RETURN_IF_ERROR(NoArgs("last", args));
  if (v.kind() == Value::Kind::kIterator) {
    return RuntimeError("'generator' object is not reversible");
  }
  TAILOR_ASSIGN_OR_RETURN(auto items, Iterate(v));
  if (items->items.empty()) return Value::Undefined("No last item, sequence was empty.");
  return items->items.back();
}

absl::StatusOr<Value> DoLength(Interpreter& /*interp*/, const Value& v, CallArgs& args) {
  TAILOR_RETURN_IF_ERROR(NoArgs("length", args));
  TAILOR_ASSIGN_OR_RETURN(int64_t n, Length(v));
  return Value::Int(n);
}

absl::StatusOr<Value> DoList(Interpreter& /*interp*/, const Value& v, CallArgs& args) {
  TAILOR_RETURN_IF_ERROR(NoArgs("list", args));
  TAILOR_ASSIGN_OR_RETURN(auto items, Iterate(v));
  return Value::Sequence(Value::Kind::kList, items);
}

absl::StatusOr<Value> DoMax(Interpreter& interp, const Value& v, CallArgs& args) {
  return MinMax(interp, v, args, true);
}

absl::StatusOr<Value> DoMin(Interpreter& interp, const Value& v, CallArgs& args) {
  return MinMax(interp, v, args, false);
}

absl::StatusOr<Value> DoReject(Interpreter& interp, const Value& v, CallArgs& args) {
  return Select(interp, v, args, false, false);
}

absl::StatusOr<Value> DoRejectattr(Interpreter& interp, const Value& v, CallArgs& args) {
  return Select(interp, v, args, false, true);
}

absl::StatusOr<Value> DoReverse(Interpreter& /*interp*/, const Value& v, CallArgs& args) {
  TAILOR_RETURN_IF_ERROR(NoArgs("reverse", args));
  if (v.is_string()) {
    std::u32string s = DecodeUtf8(v.str());
    std::reverse(s.begin(), s.end());
    return Value::String(EncodeUtf8(s));
  }
  TAILOR_ASSIGN_OR_RETURN(auto items, Iterate(v));
  std::vector<Value> reversed(items->items.rbegin(), items->items.rend());
  // reversed() of a generator fails, and jinja2 falls back to a reversed list.
  return Value::Sequence(
      v.kind() == Value::Kind::kIterator ? Value::Kind::kList : Value::Kind::kIterator,
      std::move(reversed));
}

absl::StatusOr<Value> DoSelect(Interpreter& interp, const Value& v, CallArgs& args) {
  return Select(interp, v, args, true, false);
}

absl::StatusOr<Value> DoSelectattr(Interpreter& interp, const Value& v, CallArgs& args) {
  return Select(interp, v, args, true, true);
}

absl::StatusOr<Value> DoSum(Interpreter& interp, const Value& v, CallArgs& args) {
  Bound b;
  TAILOR_RETURN_IF_ERROR(BindArgs("sum", args, {"attribute", "start"}, &b));
  TAILOR_ASSIGN_OR_RETURN(auto items, Iterate(v));
  Value total = Arg(b, 1, Value::Int(0));
  const Value attribute = Arg(b, 0, Value::None());
  for (const Value& item : items->items) {
    Value x = item;
    if (!attribute.is_none()) {
      TAILOR_ASSIGN_OR_RETURN(x, GetAttributePath(interp, item, attribute));
    }
    TAILOR_ASSIGN_OR_RETURN(total, interp.Arith(BinaryOp::kAdd, total, x));
  }
  return total;
}

absl::StatusOr<Value> DoUnique(Interpreter& interp, const Value& v, CallArgs& args) {
  Bound b;
  TAILOR_RETURN_IF_ERROR(BindArgs("unique", args, {"case_sensitive", "attribute"}, &b));
  TAILOR_ASSIGN_OR_RETURN(auto items, Iterate(v));
  TAILOR_ASSIGN_OR_RETURN(auto keys, Keys(interp, items->items, Arg(b, 1, Value::None()),
                                          Truthy(Arg(b, 0, Value::Bool(false)))));
  std::vector<Value> out;
  std::vector<Value> seen;
  for (size_t i = 0; i < keys.size(); ++i) {
    const Value::Kind k = keys[i].kind();
    if (k == Value::Kind::kList || k == Value::Kind::kDict) {
      return RuntimeError(absl::StrCat("unhashable type: '", TypeName(keys[i]), "'"));
    }
    if (std::none_of(seen.begin(), seen.end(),
                     [&](const Value& s) { return Equals(s, keys[i]); })) {
      seen.push_back(keys[i]);
      out.push_back(items->items[i]);
    }
  }
  return Value::Iterator(std::move(out));
}

struct FilterEntry {
  absl::string_view name;
  FilterFn fn;
};

const FilterEntry kFilters[] = {
    {"abs", DoAbs},           {"attr", DoAttr},
    {"batch", Batch},         {"capitalize", DoCapitalize},
    {"center", Center},       {"count", DoCount},
    {"d", Default},           {"default", Default},
    {"dictsort", DoDictsort}, {"e", Escape},
    {"escape", Escape},       {"first", DoFirst},
    {"float", ToFloat},       {"forceescape", Escape},
    {"format", DoFormat},     {"indent", Indent},
    {"int", ToInt},           {"items", DoItems},
    {"join", Join},           {"last", DoLast},
    {"length", DoLength},     {"list", DoList},
    {"lower", DoLower},       {"map", Map},
    {"max", DoMax},           {"min", DoMin},
    {"reject", DoReject},     {"rejectattr", DoRejectattr},
    {"replace", Replace},     {"reverse", DoReverse},
    {"round", Round},         {"safe", DoSafe},
    {"select", DoSelect},     {"selectattr", DoSelectattr},
    {"sort", Sort},           {"string", DoString},
    {"sum", DoSum},           {"title", DoTitle},
    {"tojson", ToJsonFilter}, {"trim", DoTrim},
    {"truncate", Truncate},   {"unique", DoUnique},
    {"upper", DoUpper},       {"wordcount", DoWordcount},
};

const FilterEntry* FindFilter(absl::string_view name) {
  for (const FilterEntry& entry : kFilters) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

}  // namespace

bool IsKnownFilter(absl::string_view name) { return FindFilter(name) != nullptr; }

bool IsUnsupportedJinjaFilter(absl::string_view name) {
  static constexpr absl::string_view kUnsupported[] = {
      "filesizeformat", "groupby",   "pprint", "random",   "slice",
      "striptags",      "urlencode", "urlize", "wordwrap", "xmlattr"};
  return std::find(std::begin(kUnsupported), std::end(kUnsupported), name) !=
         std::end(kUnsupported);
}

absl::StatusOr<Value> ApplyFilter(Interpreter& interp, absl::string_view name, const Value& input,
                                  CallArgs args) {
  const FilterEntry* entry = FindFilter(name);
  if (entry == nullptr && IsUnsupportedJinjaFilter(name)) {
    return RuntimeError(absl::StrCat("the jinja2 filter ", PyStrRepr(name), " is not supported"));
  }
  if (entry == nullptr) return RuntimeError(absl::StrCat("No filter named ", PyStrRepr(name), "."));
  return entry->fn(interp, input, args);
}

}  // namespace tailor::service::jinja
