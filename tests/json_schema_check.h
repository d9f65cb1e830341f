// A small JSON Schema validator for tests of structured outputs: the keywords the tests' schemas
// use (type, properties, required, additionalProperties: false, items, minItems, maxItems,
// enum, const, anyOf, $ref into "#/$defs/..." or "#"). Returns "" when `value` is valid, else
// where and why not. Independent of the grammar library it checks.
#ifndef TAILOR_TESTS_JSON_SCHEMA_CHECK_H_
#define TAILOR_TESTS_JSON_SCHEMA_CHECK_H_

#include <string>

#include "nlohmann/json.hpp"

namespace tailor::testing_util {

inline bool JsonHasType(const nlohmann::json& v, const std::string& type) {
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "string") return v.is_string();
  if (type == "integer") return v.is_number_integer() || (v.is_number_float() && v.get<double>() == static_cast<int64_t>(v.get<double>()));
  if (type == "number") return v.is_number();
  if (type == "boolean") return v.is_boolean();
  if (type == "null") return v.is_null();
  return false;
}

inline std::string CheckJsonSchema(const nlohmann::json& value, const nlohmann::json& schema,
                                   const nlohmann::json& root, const std::string& where = "$") {
  using Json = nlohmann::json;
  if (schema.is_boolean()) return schema.get<bool>() ? "" : where + ": schema false";
  if (schema.contains("$ref")) {
    const std::string ref = schema["$ref"];
    if (ref == "#") return CheckJsonSchema(value, root, root, where);
    return CheckJsonSchema(value, root.at(Json::json_pointer(ref.substr(1))), root, where);
  }
  if (schema.contains("type")) {
    bool ok = false;
    if (schema["type"].is_string()) {
      ok = JsonHasType(value, schema["type"]);
    } else {
      for (const auto& t : schema["type"]) ok = ok || JsonHasType(value, t);
    }
    if (!ok) return where + ": not of type " + schema["type"].dump() + ": " + value.dump();
  }
  if (schema.contains("const") && value != schema["const"]) return where + ": not the const";
  if (schema.contains("enum")) {
    bool found = false;
    for (const auto& e : schema["enum"]) found = found || e == value;
    if (!found) return where + ": not in the enum: " + value.dump();
  }
  if (schema.contains("anyOf")) {
    bool any = false;
    for (const auto& s : schema["anyOf"]) any = any || CheckJsonSchema(value, s, root, where).empty();
    if (!any) return where + ": matches no anyOf branch: " + value.dump();
  }
  if (value.is_object()) {
    const Json props = schema.value("properties", Json::object());
    for (const auto& r : schema.value("required", Json::array())) {
      if (!value.contains(r.get<std::string>())) return where + ": missing " + r.get<std::string>();
    }
    for (auto it = value.begin(); it != value.end(); ++it) {
      if (props.contains(it.key())) {
        std::string e = CheckJsonSchema(it.value(), props[it.key()], root, where + "." + it.key());
        if (!e.empty()) return e;
      } else if (schema.contains("additionalProperties") && schema["additionalProperties"] == false) {
        return where + ": unexpected property " + it.key();
      }
    }
  }
  if (value.is_array()) {
    if (schema.contains("minItems") && value.size() < schema["minItems"].get<size_t>()) return where + ": too few items";
    if (schema.contains("maxItems") && value.size() > schema["maxItems"].get<size_t>()) return where + ": too many items";
    if (schema.contains("items")) {
      for (size_t i = 0; i < value.size(); ++i) {
        std::string e = CheckJsonSchema(value[i], schema["items"], root, where + "[" + std::to_string(i) + "]");
        if (!e.empty()) return e;
      }
    }
  }
  return "";
}

}  // namespace tailor::testing_util

#endif  // TAILOR_TESTS_JSON_SCHEMA_CHECK_H_
