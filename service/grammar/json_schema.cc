// JSON schema (and any-JSON) lowering to grammar expressions. See grammar.h for the subset.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "service/grammar/grammar.h"

namespace tailor::grammar::internal {
namespace {

using Json = nlohmann::ordered_json;

constexpr int32_t kMaxItemsLimit = 1024;

// Bounded whitespace: nothing, one space, or a newline and up to 16 spaces.
int32_t Ws(ExprPool& p) {
  return p.Alt({p.Empty(), p.Literal(" "), p.Seq({p.Literal("\n"), p.Repeat(p.Literal(" "), 0, 16)})});
}

int32_t Optional(ExprPool& p, int32_t e) { return p.Alt({e, p.Empty()}); }

int32_t Digits(ExprPool& p, int32_t min, int32_t max) { return p.Repeat(p.Bytes('0', '9'), min, max); }

int32_t HexDigit(ExprPool& p) { return p.Alt({p.Bytes('0', '9'), p.Bytes('a', 'f'), p.Bytes('A', 'F')}); }

// A JSON string: any UTF-8 character but '"', '\' and controls, or an escape. \u escapes of
// surrogates (D800-DFFF) are excluded, since a lone one is not valid JSON text for most parsers.
int32_t JsonString(ExprPool& p) {
  const int32_t plain = p.Codepoints({{0x20, 0x21}, {0x23, 0x5B}, {0x5D, 0x10FFFF}});
  const int32_t hex = HexDigit(p);
  const int32_t unicode = p.Seq(
      {p.Literal("u"),
       p.Alt({p.Seq({p.Alt({p.Bytes('0', '9'), p.Bytes('a', 'c'), p.Bytes('A', 'C'), p.Bytes('e', 'f'),
                             p.Bytes('E', 'F')}),
                     hex, hex, hex}),
              p.Seq({p.Alt({p.Literal("d"), p.Literal("D")}), p.Bytes('0', '7'), hex, hex})})});
  std::vector<int32_t> escapes;
  for (char c : std::string("\"\\/bfnrt")) escapes.push_back(p.Literal(std::string(1, c)));
  escapes.push_back(unicode);
  const int32_t escape = p.Seq({p.Literal("\\"), p.Alt(std::move(escapes))});
  return p.Seq({p.Literal("\""), p.Repeat(p.Alt({plain, escape}), 0, -1), p.Literal("\"")});
}

int32_t JsonInteger(ExprPool& p) {
  return p.Seq({Optional(p, p.Literal("-")),
                p.Alt({p.Literal("0"), p.Seq({p.Bytes('1', '9'), Digits(p, 0, 14)})})});
}

// The decimal integers of [a, b] (0 <= a <= b), written without leading zeros.
int32_t SameLengthRange(ExprPool& p, const std::string& x, const std::string& y);
int32_t NonNegativeRange(ExprPool& p, int64_t a, int64_t b) {
  std::vector<int32_t> kids;
  if (a == 0) {
    kids.push_back(p.Literal("0"));
    a = 1;
  }
  int64_t low = 1;  // 10^(d-1)
  for (int d = 1; d <= 18 && a <= b; ++d, low *= 10) {
    const int64_t high = low * 10 - 1;
    if (b < low || a > high) continue;
    kids.push_back(SameLengthRange(p, absl::StrCat(std::max(a, low)), absl::StrCat(std::min(b, high))));
  }
  return p.Alt(std::move(kids));
}

// The digit strings of length n from x to y (x <= y, both n digits): a common prefix, then the
// first differing digit splits the range into x's tail up to 9..9, whole middle digits, and
// 0..0 up to y's tail.
int32_t SameLengthRange(ExprPool& p, const std::string& x, const std::string& y) {
  const size_t n = x.size();
  if (n == 0) return p.Empty();
  if (x.find_first_not_of('0') == std::string::npos && y.find_first_not_of('9') == std::string::npos) {
    return Digits(p, static_cast<int32_t>(n), static_cast<int32_t>(n));
  }
  if (x[0] == y[0]) return p.Seq({p.Literal(x.substr(0, 1)), SameLengthRange(p, x.substr(1), y.substr(1))});
  const std::string nines(n - 1, '9'), zeros(n - 1, '0');
  std::vector<int32_t> kids;
  kids.push_back(p.Seq({p.Literal(x.substr(0, 1)), SameLengthRange(p, x.substr(1), nines)}));
  if (x[0] + 1 <= y[0] - 1) {
    kids.push_back(p.Seq({p.Bytes(static_cast<uint8_t>(x[0] + 1), static_cast<uint8_t>(y[0] - 1)),
                          Digits(p, static_cast<int32_t>(n - 1), static_cast<int32_t>(n - 1))}));
  }
  kids.push_back(p.Seq({p.Literal(y.substr(0, 1)), SameLengthRange(p, zeros, y.substr(1))}));
  return p.Alt(std::move(kids));
}

// The JSON integers of [lo, hi] (within the 15 digits JsonInteger allows).
int32_t JsonIntegerRange(ExprPool& p, int64_t lo, int64_t hi) {
  std::vector<int32_t> kids;
  if (lo < 0) kids.push_back(p.Seq({p.Literal("-"), NonNegativeRange(p, std::max<int64_t>(1, -hi), -lo)}));
  if (hi >= 0) kids.push_back(NonNegativeRange(p, std::max<int64_t>(0, lo), hi));
  return p.Alt(std::move(kids));
}

int32_t JsonNumber(ExprPool& p) {
  const int32_t fraction = p.Seq({p.Literal("."), Digits(p, 1, 15)});
  const int32_t exponent = p.Seq({p.Alt({p.Literal("e"), p.Literal("E")}),
                                  Optional(p, p.Alt({p.Literal("+"), p.Literal("-")})), Digits(p, 1, 2)});
  return p.Seq({JsonInteger(p), Optional(p, fraction), Optional(p, exponent)});
}

// "[" ws (item (ws "," ws item){min-1..max-1})? ws "]"; `item` is used several times, so it
// should be a call.
int32_t JsonArray(ExprPool& p, int32_t item, int32_t min_items, int32_t max_items) {
  const int32_t open = p.Seq({p.Literal("["), Ws(p)});
  const int32_t close = p.Seq({Ws(p), p.Literal("]")});
  if (max_items == 0) return p.Seq({p.Literal("["), Ws(p), p.Literal("]")});
  const int32_t sep = p.Seq({Ws(p), p.Literal(","), Ws(p)});
  const int32_t list = p.Seq({item, p.Repeat(p.Seq({sep, item}), std::max(min_items - 1, 0),
                                              max_items < 0 ? -1 : max_items - 1)});
  return p.Seq({open, min_items == 0 ? Optional(p, list) : list, close});
}

void MakeAnyJsonRules(ExprPool& p) {
  if (p.json_value_rule >= 0) return;
  p.json_value_rule = p.NewRule("json_value");
  p.json_object_rule = p.NewRule("json_object");
  const int32_t array_rule = p.NewRule("json_array");
  const int32_t value = p.Call(p.json_value_rule);
  p.SetRuleBody(p.json_value_rule,
                p.Alt({p.Call(p.json_object_rule), p.Call(array_rule), JsonString(p), JsonNumber(p),
                       p.Literal("true"), p.Literal("false"), p.Literal("null")}));
  const int32_t member = p.Seq({JsonString(p), Ws(p), p.Literal(":"), Ws(p), value});
  const int32_t sep = p.Seq({Ws(p), p.Literal(","), Ws(p)});
  p.SetRuleBody(p.json_object_rule,
                p.Seq({p.Literal("{"), Ws(p),
                       Optional(p, p.Seq({member, p.Repeat(p.Seq({sep, member}), 0, -1)})), Ws(p),
                       p.Literal("}")}));
  p.SetRuleBody(array_rule, JsonArray(p, value, 0, -1));
}

// JSON-pointer escaping of one reference token.
std::string PointerToken(absl::string_view s) {
  return absl::StrReplaceAll(s, {{"~", "~0"}, {"/", "~1"}});
}

class SchemaLowering {
 public:
  SchemaLowering(ExprPool& pool, const Json& root) : p_(pool), root_(root) {}

  absl::StatusOr<int32_t> Lower(const Json& s, const std::string& loc) {
    if (++depth_ > 200) return Error(loc, "schema nested too deeply");
    auto r = LowerInner(s, loc);
    --depth_;
    return r;
  }

 private:
  static absl::Status Error(const std::string& loc, absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("JSON schema at ", loc, ": ", what));
  }

  absl::StatusOr<int32_t> LowerInner(const Json& s, const std::string& loc) {
    if (s.is_boolean()) {
      if (s.get<bool>()) return LowerAnyJsonValue(p_);
      return Error(loc, "the schema 'false' matches nothing");
    }
    if (!s.is_object()) return Error(loc, "a schema must be an object or a boolean");
    static const std::set<std::string> kIgnored = {"description", "title",    "default", "examples",
                                                   "$schema",     "$id",      "$comment", "deprecated",
                                                   "readOnly",    "writeOnly"};
    static const std::set<std::string> kSupported = {
        "type",  "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
        "enum",  "const",      "anyOf",    "$defs",                "definitions", "$ref",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
    std::vector<std::string> constraints;  // supported keywords other than $defs/definitions
    for (const auto& [key, value] : s.items()) {
      if (kIgnored.count(key)) continue;
      if (!kSupported.count(key)) {
        return absl::InvalidArgumentError(
            absl::StrCat("unsupported JSON schema keyword '", key, "' at ", loc));
      }
      if (key != "$defs" && key != "definitions") constraints.push_back(key);
    }
    auto only = [&](const char* keyword) -> absl::Status {
      for (const std::string& k : constraints) {
        if (k != keyword) {
          return absl::InvalidArgumentError(absl::StrCat("unsupported JSON schema keyword '", k,
                                                         "' beside '", keyword, "' at ", loc));
        }
      }
      return absl::OkStatus();
    };
    if (s.contains("$ref")) {
      if (auto st = only("$ref"); !st.ok()) return st;
      return Ref(s["$ref"], loc + "/$ref");
    }
    if (s.contains("anyOf")) {
      if (auto st = only("anyOf"); !st.ok()) return st;
      const Json& alts = s["anyOf"];
      if (!alts.is_array() || alts.empty()) return Error(loc + "/anyOf", "expected a non-empty array");
      std::vector<int32_t> kids;
      for (size_t i = 0; i < alts.size(); ++i) {
        auto e = Lower(alts[i], absl::StrCat(loc, "/anyOf/", i));
        if (!e.ok()) return e.status();
        kids.push_back(*e);
      }
      return p_.Alt(std::move(kids));
    }
    if (s.contains("const")) return p_.Literal(s["const"].dump());
    if (s.contains("enum")) {
      const Json& values = s["enum"];
      if (!values.is_array() || values.empty()) return Error(loc + "/enum", "expected a non-empty array");
      std::vector<int32_t> kids;
      for (const Json& v : values) kids.push_back(p_.Literal(v.dump()));
      return p_.Alt(std::move(kids));
    }
    std::vector<std::string> types;
    if (s.contains("type")) {
      const Json& t = s["type"];
      if (t.is_string()) {
        types.push_back(t.get<std::string>());
      } else if (t.is_array() && !t.empty()) {
        for (const Json& name : t) {
          if (!name.is_string()) return Error(loc + "/type", "expected type names");
          types.push_back(name.get<std::string>());
        }
      } else {
        return Error(loc + "/type", "expected a type name or a non-empty list of them");
      }
    } else if (s.contains("properties") || s.contains("additionalProperties") || s.contains("required")) {
      types.push_back("object");
    } else if (s.contains("items") || s.contains("minItems") || s.contains("maxItems")) {
      types.push_back("array");
    } else if (s.contains("minimum") || s.contains("maximum") || s.contains("exclusiveMinimum") ||
               s.contains("exclusiveMaximum")) {
      return Error(loc, "bounds (minimum, maximum) need \"type\": \"integer\"");
    } else {
      return LowerAnyJsonValue(p_);
    }
    std::vector<int32_t> kids;
    for (const std::string& type : types) {
      absl::StatusOr<int32_t> e;
      if (type == "object") {
        e = Object(s, loc);
      } else if (type == "array") {
        e = Array(s, loc);
      } else if (type == "string") {
        e = JsonString(p_);
      } else if (type == "number") {
        for (const char* key : {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}) {
          if (s.contains(key)) {
            return absl::InvalidArgumentError(absl::StrCat("unsupported JSON schema keyword '", key,
                                                           "' for type 'number' (supported for 'integer') at ", loc));
          }
        }
        e = JsonNumber(p_);
      } else if (type == "integer") {
        e = Integer(s, loc);
      } else if (type == "boolean") {
        e = p_.Alt({p_.Literal("true"), p_.Literal("false")});
      } else if (type == "null") {
        e = p_.Literal("null");
      } else {
        return Error(loc + "/type", absl::StrCat("unknown type '", type, "'"));
      }
      if (!e.ok()) return e.status();
      kids.push_back(*e);
    }
    return p_.Alt(std::move(kids));
  }

  absl::StatusOr<int32_t> Ref(const Json& ref, const std::string& loc) {
    if (!ref.is_string()) return Error(loc, "expected a string");
    const std::string target = ref.get<std::string>();
    if (target.empty() || target[0] != '#') {
      return Error(loc, absl::StrCat("only local references (\"#...\") are supported, not '", target, "'"));
    }
    if (auto it = refs_.find(target); it != refs_.end()) return p_.Call(it->second);
    const Json* node = nullptr;
    try {
      const nlohmann::json_pointer<std::string> ptr(target.substr(1));
      if (root_.contains(ptr)) node = &root_.at(ptr);
    } catch (const std::exception& e) {
      return Error(loc, absl::StrCat("bad reference '", target, "': ", e.what()));
    }
    if (node == nullptr) return Error(loc, absl::StrCat("reference '", target, "' not found"));
    const int32_t rule = p_.NewRule(absl::StrCat("$ref ", target));
    refs_[target] = rule;
    auto body = Lower(*node, target);
    if (!body.ok()) return body.status();
    p_.SetRuleBody(rule, *body);
    return p_.Call(rule);
  }

  // An integer, within minimum/maximum/exclusiveMinimum/exclusiveMaximum when given (the 15
  // digits of JsonInteger bound it anyway: zod's safe-integer bounds change nothing).
  absl::StatusOr<int32_t> Integer(const Json& s, const std::string& loc) {
    constexpr int64_t kLimit = 999'999'999'999'999;  // 15 digits
    int64_t lo = -kLimit, hi = kLimit;
    bool bounded = false;
    for (const char* key : {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}) {
      if (!s.contains(key)) continue;
      const Json& v = s[key];
      if (!v.is_number()) return Error(absl::StrCat(loc, "/", key), "expected a number");
      const double d = v.get<double>();
      const std::string k = key;
      // The integers the bound allows: minimum 2.5 -> from 3; exclusiveMinimum 2 -> from 3.
      double bound = k == "minimum" ? std::ceil(d) : k == "maximum" ? std::floor(d)
                     : k == "exclusiveMinimum" ? std::floor(d) + 1 : std::ceil(d) - 1;
      bound = std::clamp(bound, -1e18, 1e18);
      const auto b = static_cast<int64_t>(bound);
      if (k == "minimum" || k == "exclusiveMinimum") {
        lo = std::max(lo, b);
      } else {
        hi = std::min(hi, b);
      }
      bounded = true;
    }
    if (!bounded) return JsonInteger(p_);
    if (lo > hi) return Error(loc, absl::StrCat("no integer of at most 15 digits lies in [", lo, ", ", hi, "]"));
    return JsonIntegerRange(p_, lo, hi);
  }

  // `e` as a call of a new rule (so several uses share one compiled copy).
  int32_t AsRule(int32_t e, const std::string& name) {
    const int32_t rule = p_.NewRule(name);
    p_.SetRuleBody(rule, e);
    return p_.Call(rule);
  }

  absl::StatusOr<int32_t> Object(const Json& s, const std::string& loc) {
    bool additional_false = false;
    if (s.contains("additionalProperties")) {
      const Json& ap = s["additionalProperties"];
      if (!ap.is_boolean()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "unsupported JSON schema keyword 'additionalProperties' (a schema) at ", loc));
      }
      additional_false = !ap.get<bool>();
    }
    const Json empty = Json::object();
    const Json& props = s.contains("properties") ? s["properties"] : empty;
    if (!props.is_object()) return Error(loc + "/properties", "expected an object");
    std::set<std::string> required;
    if (s.contains("required")) {
      const Json& req = s["required"];
      if (!req.is_array()) return Error(loc + "/required", "expected an array of names");
      for (const Json& name : req) {
        if (!name.is_string()) return Error(loc + "/required", "expected an array of names");
        if (!props.contains(name.get<std::string>())) {
          return Error(loc + "/required",
                       absl::StrCat("required property '", name.get<std::string>(), "' is not in properties"));
        }
        required.insert(name.get<std::string>());
      }
    }
    if (props.empty()) {
      if (additional_false) return p_.Seq({p_.Literal("{"), Ws(p_), p_.Literal("}")});
      return LowerAnyJsonObject(p_);
    }
    struct Prop {
      int32_t expr;  // "key" ws ":" ws value
      bool required;
    };
    std::vector<Prop> list;
    const bool all_required = required.size() == props.size();
    for (const auto& [key, sub] : props.items()) {
      const std::string sub_loc = absl::StrCat(loc, "/properties/", PointerToken(key));
      auto value = Lower(sub, sub_loc);
      if (!value.ok()) return value.status();
      const int32_t member = p_.Seq({p_.Literal(Json(key).dump()), Ws(p_), p_.Literal(":"), Ws(p_), *value});
      // With optional properties a member is used by several alternatives: a rule, compiled once.
      list.push_back({all_required ? member : AsRule(member, sub_loc), required.count(key) > 0});
    }
    const int32_t open = p_.Seq({p_.Literal("{"), Ws(p_)});
    const int32_t close = p_.Seq({Ws(p_), p_.Literal("}")});
    auto sep = [&] { return p_.Seq({Ws(p_), p_.Literal(","), Ws(p_)}); };
    const int32_t n = static_cast<int32_t>(list.size());
    if (all_required) {
      std::vector<int32_t> seq = {open};
      for (int32_t i = 0; i < n; ++i) {
        if (i > 0) seq.push_back(sep());
        seq.push_back(list[i].expr);
      }
      seq.push_back(close);
      return p_.Seq(std::move(seq));
    }
    // after[j]: what may follow once property j was written: "," and a later property k (all
    // properties strictly between j and k optional), or nothing (all after j optional).
    std::vector<int32_t> after(n);
    for (int32_t j = 0; j < n; ++j) after[j] = p_.NewRule(absl::StrCat(loc, " after property ", j));
    // Shapes: after[j] = "" | sep (member_k after[k] | ...), so each rule has one separator and
    // two states per alternative (O(n^2) states in all for n properties).
    for (int32_t j = n - 1; j >= 0; --j) {
      std::vector<int32_t> next;
      bool blocked = false;
      for (int32_t k = j + 1; k < n && !blocked; ++k) {
        next.push_back(p_.Seq({list[k].expr, p_.Call(after[k])}));
        blocked = list[k].required;
      }
      std::vector<int32_t> alts;
      if (!next.empty()) alts.push_back(p_.Seq({sep(), p_.Alt(std::move(next))}));
      if (!blocked) alts.push_back(p_.Empty());
      p_.SetRuleBody(after[j], p_.Alt(std::move(alts)));
    }
    std::vector<int32_t> first;
    bool blocked = false;
    for (int32_t k = 0; k < n && !blocked; ++k) {
      first.push_back(p_.Seq({list[k].expr, p_.Call(after[k])}));
      blocked = list[k].required;
    }
    if (!blocked) first.push_back(p_.Seq({p_.Literal("{"), Ws(p_), p_.Literal("}")}));
    std::vector<int32_t> alts;
    if (!blocked) {
      alts.push_back(first.back());  // the empty object
      first.pop_back();
    }
    alts.push_back(p_.Seq({open, p_.Alt(std::move(first)), close}));
    return p_.Alt(std::move(alts));
  }

  absl::StatusOr<int32_t> Array(const Json& s, const std::string& loc) {
    int32_t item;
    if (s.contains("items")) {
      const Json& items = s["items"];
      if (items.is_array()) {
        return absl::InvalidArgumentError(
            absl::StrCat("unsupported JSON schema keyword 'items' (an array of schemas) at ", loc));
      }
      auto e = Lower(items, loc + "/items");
      if (!e.ok()) return e.status();
      item = AsRule(*e, loc + "/items");
    } else {
      item = LowerAnyJsonValue(p_);
    }
    int32_t min_items = 0, max_items = -1;
    for (const char* key : {"minItems", "maxItems"}) {
      if (!s.contains(key)) continue;
      const Json& v = s[key];
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > kMaxItemsLimit) {
        return Error(absl::StrCat(loc, "/", key),
                     absl::StrCat("expected an integer from 0 to ", kMaxItemsLimit));
      }
      (std::string(key) == "minItems" ? min_items : max_items) = v.get<int32_t>();
    }
    if (max_items >= 0 && max_items < min_items) return Error(loc, "maxItems is below minItems");
    return JsonArray(p_, item, min_items, max_items);
  }

  ExprPool& p_;
  const Json& root_;
  std::map<std::string, int32_t> refs_;  // "$ref" target -> rule
  int depth_ = 0;
};

}  // namespace

int32_t LowerAnyJsonValue(ExprPool& pool) {
  MakeAnyJsonRules(pool);
  return pool.Call(pool.json_value_rule);
}

int32_t LowerAnyJsonObject(ExprPool& pool) {
  MakeAnyJsonRules(pool);
  return pool.Call(pool.json_object_rule);
}

absl::StatusOr<int32_t> LowerJsonSchema(ExprPool& pool, const nlohmann::ordered_json& schema) {
  SchemaLowering lowering(pool, schema);
  try {
    return lowering.Lower(schema, "#");
  } catch (const std::exception& e) {  // nlohmann type errors on malformed schemas
    return absl::InvalidArgumentError(absl::StrCat("JSON schema: ", e.what()));
  }
}

}  // namespace tailor::grammar::internal
