#include "service/jinja_json.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "service/jinja_eval.h"
#include "service/jinja_text.h"

namespace tailor::service::jinja {
namespace {

absl::StatusOr<Value> FromJson(const nlohmann::ordered_json& j, int depth) {
  using Type = nlohmann::ordered_json::value_t;
  if (depth > kMaxValueDepth) {
    return RuntimeError(
        absl::StrCat("the context nests arrays/objects deeper than ", kMaxValueDepth, " levels"));
  }
  switch (j.type()) {
    case Type::null:
      return Value::None();
    case Type::boolean:
      return Value::Bool(j.get<bool>());
    case Type::number_integer:
      return Value::Int(j.get<int64_t>());
    case Type::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return Value::Int(static_cast<int64_t>(u));
      return Value::Float(static_cast<double>(u));
    }
    case Type::number_float:
      return Value::Float(j.get<double>());
    case Type::string:
      return Value::String(j.get_ref<const std::string&>());
    case Type::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& item : j) {
        TAILOR_ASSIGN_OR_RETURN(Value v, FromJson(item, depth + 1));
        items.push_back(std::move(v));
      }
      return Value::List(std::move(items));
    }
    case Type::object: {
      std::vector<std::pair<Value, Value>> items;
      items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) {
        TAILOR_ASSIGN_OR_RETURN(Value v, FromJson(it.value(), depth + 1));
        items.emplace_back(Value::String(it.key()), std::move(v));
      }
      return Value::Dict(std::move(items));
    }
    default:
      return RuntimeError("the context holds binary data, which templates cannot use");
  }
}

void AppendJsonString(absl::string_view s, bool ensure_ascii, std::string* out) {
  out->push_back('"');
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t start = pos;
    const char32_t c = NextCodePoint(s, &pos);
    char buf[16];
    switch (c) {
      case '"':
        out->append("\\\"");
        continue;
      case '\\':
        out->append("\\\\");
        continue;
      case '\n':
        out->append("\\n");
        continue;
      case '\r':
        out->append("\\r");
        continue;
      case '\t':
        out->append("\\t");
        continue;
      case '\b':
        out->append("\\b");
        continue;
      case '\f':
        out->append("\\f");
        continue;
      default:
        break;
    }
    if (c < 0x20) {
      std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
      out->append(buf);
    } else if (c < 0x80 || !ensure_ascii) {
      out->append(s.data() + start, pos - start);
    } else if (c < 0x10000) {
      std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
      out->append(buf);
    } else {
      const char32_t v = c - 0x10000;
      std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", static_cast<unsigned>(0xD800 + (v >> 10)),
                    static_cast<unsigned>(0xDC00 + (v & 0x3FF)));
      out->append(buf);
    }
  }
  out->push_back('"');
}

std::string FloatJson(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return PyFloatRepr(d);
}

absl::Status NotSerializable(const Value& v) {
  return RuntimeError(absl::StrCat("Object of type ", TypeName(v), " is not JSON serializable"));
}

void NewLine(const JsonOptions& options, int level, std::string* out) {
  out->push_back('\n');
  for (int i = 0; i < level; ++i) out->append(options.indent);
}

absl::Status Dump(const Value& v, const JsonOptions& options, int level, std::string* out) {
  if (out->size() > options.max_bytes) {
    return RuntimeError(absl::StrCat("tojson output larger than ", options.max_bytes, " bytes"));
  }
  switch (v.kind()) {
    case Value::Kind::kNone:
      out->append("null");
      return absl::OkStatus();
    case Value::Kind::kBool:
      out->append(v.as_bool() ? "true" : "false");
      return absl::OkStatus();
    case Value::Kind::kInt:
      absl::StrAppend(out, v.as_int());
      return absl::OkStatus();
    case Value::Kind::kFloat:
      out->append(FloatJson(v.as_float()));
      return absl::OkStatus();
    case Value::Kind::kString:
      AppendJsonString(v.str(), options.ensure_ascii, out);
      return absl::OkStatus();
    case Value::Kind::kList:
    case Value::Kind::kTuple: {
      const auto& items = v.items();
      if (items.empty()) {
        out->append("[]");
        return absl::OkStatus();
      }
      out->push_back('[');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out->append(options.item_separator);
        if (options.has_indent) NewLine(options, level + 1, out);
        TAILOR_RETURN_IF_ERROR(Dump(items[i], options, level + 1, out));
      }
      if (options.has_indent) NewLine(options, level, out);
      out->push_back(']');
      return absl::OkStatus();
    }
    case Value::Kind::kDict: {
      std::vector<const std::pair<Value, Value>*> entries;
      for (const auto& entry : v.dict().items()) entries.push_back(&entry);
      if (entries.empty()) {
        out->append("{}");
        return absl::OkStatus();
      }
      if (options.sort_keys) {
        absl::Status error;
        std::stable_sort(entries.begin(), entries.end(), [&](const auto* a, const auto* b) {
          absl::StatusOr<bool> less = CompareOp(a->first, b->first, "<");
          if (!less.ok()) {
            if (error.ok()) error = less.status();
            return false;
          }
          return *less;
        });
        TAILOR_RETURN_IF_ERROR(error);
      }
      out->push_back('{');
      for (size_t i = 0; i < entries.size(); ++i) {
        const Value& key = entries[i]->first;
        if (i > 0) out->append(options.item_separator);
        if (options.has_indent) NewLine(options, level + 1, out);
        switch (key.kind()) {
          case Value::Kind::kString:
            AppendJsonString(key.str(), options.ensure_ascii, out);
            break;
          case Value::Kind::kInt:
            absl::StrAppend(out, "\"", key.as_int(), "\"");
            break;
          case Value::Kind::kFloat:
            absl::StrAppend(out, "\"", FloatJson(key.as_float()), "\"");
            break;
          case Value::Kind::kBool:
            out->append(key.as_bool() ? "\"true\"" : "\"false\"");
            break;
          case Value::Kind::kNone:
            out->append("\"null\"");
            break;
          default:
            return RuntimeError(
                absl::StrCat("keys must be str, int, float, bool or None, not ", TypeName(key)));
        }
        out->append(options.key_separator);
        TAILOR_RETURN_IF_ERROR(Dump(entries[i]->second, options, level + 1, out));
      }
      if (options.has_indent) NewLine(options, level, out);
      out->push_back('}');
      return absl::OkStatus();
    }
    default:
      return NotSerializable(v);
  }
}

}  // namespace

absl::StatusOr<Value> ValueFromJson(const nlohmann::ordered_json& json) {
  return FromJson(json, 0);
}

absl::Status ToJson(const Value& value, const JsonOptions& options, std::string* out) {
  return Dump(value, options, 0, out);
}

}  // namespace tailor::service::jinja
