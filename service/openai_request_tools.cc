#include "service/openai_request_tools.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"

namespace tailor::service::request_internal {
namespace {

using Json = nlohmann::json;
using OJson = nlohmann::ordered_json;

const Json* Find(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

ApiError TypeError(absl::string_view param, absl::string_view expected, const Json& got) {
  return ApiError::InvalidRequest(param, absl::StrCat("'", param, "' must be ", expected, ", got ", got.type_name()));
}

ApiError Required(absl::string_view param) {
  return ApiError::InvalidRequest(param, absl::StrCat("'", param, "' is required"));
}

OJson Ordered(const Json& v) { return OJson::parse(v.dump()); }

// OpenAI's rule for function names: 1-64 of a-z, A-Z, 0-9, '_' and '-' (and '.', which some
// clients use).
bool ValidFunctionName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::optional<ApiError> ParseResponseFormat(const Json& v, StructuredOutput* out) {
  if (!v.is_object()) return TypeError("response_format", "an object", v);
  const Json* type = Find(v, "type");
  if (type == nullptr) return Required("response_format.type");
  if (!type->is_string()) return TypeError("response_format.type", "a string", *type);
  const std::string t = type->get<std::string>();
  if (t == "text") return std::nullopt;
  if (t == "json_object") {
    out->kind = StructuredOutput::Kind::kJsonObject;
    out->param = "response_format";
    return std::nullopt;
  }
  if (t != "json_schema") {
    return ApiError::InvalidRequest("response_format.type",
                                    absl::StrCat("'response_format.type' must be 'text', 'json_object' or "
                                                 "'json_schema', got '", t, "'"));
  }
  const Json* js = Find(v, "json_schema");
  if (js == nullptr) return Required("response_format.json_schema");
  if (!js->is_object()) return TypeError("response_format.json_schema", "an object", *js);
  if (const Json* name = Find(*js, "name"); name != nullptr && !name->is_string()) {
    return TypeError("response_format.json_schema.name", "a string", *name);
  }
  if (const Json* strict = Find(*js, "strict"); strict != nullptr && !strict->is_boolean()) {
    return TypeError("response_format.json_schema.strict", "a boolean", *strict);
  }
  const Json* schema = Find(*js, "schema");
  if (schema == nullptr) return Required("response_format.json_schema.schema");
  if (!schema->is_object()) return TypeError("response_format.json_schema.schema", "an object", *schema);
  out->kind = StructuredOutput::Kind::kJsonSchema;
  out->schema = Ordered(*schema);
  out->param = "response_format.json_schema.schema";
  return std::nullopt;
}

std::optional<ApiError> ParseToolCall(const Json& v, const std::string& param, ToolCall* out) {
  if (!v.is_object()) return TypeError(param, "an object", v);
  if (const Json* id = Find(v, "id")) {
    if (!id->is_string()) return TypeError(param + ".id", "a string", *id);
    out->id = id->get<std::string>();
  }
  if (const Json* type = Find(v, "type"); type != nullptr && (!type->is_string() || *type != "function")) {
    return ApiError::InvalidRequest(param + ".type", absl::StrCat("'", param, ".type' must be 'function'"));
  }
  const Json* fn = Find(v, "function");
  if (fn == nullptr) return Required(param + ".function");
  if (!fn->is_object()) return TypeError(param + ".function", "an object", *fn);
  const Json* name = Find(*fn, "name");
  if (name == nullptr) return Required(param + ".function.name");
  if (!name->is_string()) return TypeError(param + ".function.name", "a string", *name);
  out->name = name->get<std::string>();
  const Json* args = Find(*fn, "arguments");
  if (args == nullptr) {
    out->arguments = "{}";
  } else if (args->is_string()) {
    out->arguments = args->get<std::string>();
  } else if (args->is_object()) {  // lenient: some clients send the object itself
    out->arguments = args->dump();
  } else {
    return TypeError(param + ".function.arguments", "a string", *args);
  }
  return std::nullopt;
}

}  // namespace

std::optional<ApiError> ParseStructuredOutput(const Json& body, StructuredOutput* out) {
  const char* given = nullptr;  // the first constraint seen
  auto one_only = [&](const char* param) -> std::optional<ApiError> {
    if (given != nullptr) {
      return ApiError::InvalidRequest(param, absl::StrCat("'", param, "' cannot be combined with '", given,
                                                          "': give one output constraint"));
    }
    given = param;
    return std::nullopt;
  };
  if (const Json* v = Find(body, "response_format")) {
    if (auto e = ParseResponseFormat(*v, out)) return e;
    if (out->kind != StructuredOutput::Kind::kNone) given = "response_format";
  }
  if (const Json* v = Find(body, "guided_json")) {
    if (auto e = one_only("guided_json")) return e;
    Json schema = *v;
    if (v->is_string()) schema = Json::parse(v->get<std::string>(), nullptr, /*allow_exceptions=*/false);
    if (!schema.is_object()) {
      return ApiError::InvalidRequest("guided_json", "'guided_json' must be a JSON Schema (an object or its JSON text)");
    }
    out->kind = StructuredOutput::Kind::kJsonSchema;
    out->schema = Ordered(schema);
    out->param = "guided_json";
  }
  if (const Json* v = Find(body, "guided_regex")) {
    if (auto e = one_only("guided_regex")) return e;
    if (!v->is_string()) return TypeError("guided_regex", "a string", *v);
    out->kind = StructuredOutput::Kind::kRegex;
    out->regex = v->get<std::string>();
    out->param = "guided_regex";
  }
  if (const Json* v = Find(body, "guided_choice")) {
    if (auto e = one_only("guided_choice")) return e;
    if (!v->is_array() || v->empty()) {
      return ApiError::InvalidRequest("guided_choice", "'guided_choice' must be a non-empty array of strings");
    }
    out->choices.clear();
    for (size_t i = 0; i < v->size(); ++i) {
      if (!(*v)[i].is_string() || (*v)[i].get<std::string>().empty()) {
        return ApiError::InvalidRequest(
            "guided_choice", absl::StrCat("'guided_choice' element ", i, " must be a non-empty string"));
      }
      out->choices.push_back((*v)[i].get<std::string>());
    }
    out->kind = StructuredOutput::Kind::kChoice;
    out->param = "guided_choice";
  }
  return std::nullopt;
}

std::optional<ApiError> ParseTools(const Json& body, OpenAiRequest* req) {
  std::set<std::string> names;
  if (const Json* tools = Find(body, "tools")) {
    if (!tools->is_array()) return TypeError("tools", "an array", *tools);
    for (size_t i = 0; i < tools->size(); ++i) {
      const Json& tool = (*tools)[i];
      const std::string param = absl::StrCat("tools[", i, "]");
      if (!tool.is_object()) return TypeError(param, "an object", tool);
      const Json* type = Find(tool, "type");
      if (type == nullptr) return Required(param + ".type");
      if (!type->is_string() || *type != "function") {
        return ApiError::InvalidRequest(param + ".type", absl::StrCat("'", param, ".type' must be 'function'"));
      }
      const Json* fn = Find(tool, "function");
      if (fn == nullptr) return Required(param + ".function");
      if (!fn->is_object()) return TypeError(param + ".function", "an object", *fn);
      const Json* name = Find(*fn, "name");
      if (name == nullptr) return Required(param + ".function.name");
      if (!name->is_string()) return TypeError(param + ".function.name", "a string", *name);
      const std::string n = name->get<std::string>();
      if (!ValidFunctionName(n)) {
        return ApiError::InvalidRequest(param + ".function.name",
                                        absl::StrCat("'", param, ".function.name' must be 1 to 64 letters, digits, "
                                                     "'_', '-' or '.', got '", n, "'"));
      }
      if (!names.insert(n).second) {
        return ApiError::InvalidRequest(param + ".function.name",
                                        absl::StrCat("two tools are named '", n, "'"));
      }
      if (const Json* d = Find(*fn, "description"); d != nullptr && !d->is_string()) {
        return TypeError(param + ".function.description", "a string", *d);
      }
      if (const Json* p = Find(*fn, "parameters"); p != nullptr && !p->is_object()) {
        return TypeError(param + ".function.parameters", "an object (a JSON Schema)", *p);
      }
    }
    if (!tools->empty()) req->tools = Ordered(*tools);
  }
  if (const Json* choice = Find(body, "tool_choice")) {
    ToolChoice& tc = req->tool_choice;
    if (choice->is_string()) {
      const std::string c = choice->get<std::string>();
      if (c == "auto") {
        tc.mode = ToolChoice::Mode::kAuto;
      } else if (c == "none") {
        tc.mode = ToolChoice::Mode::kNone;
      } else if (c == "required") {
        tc.mode = ToolChoice::Mode::kRequired;
      } else {
        return ApiError::InvalidRequest("tool_choice", absl::StrCat("'tool_choice' must be 'auto', 'none', "
                                                                    "'required' or a function object, got '", c, "'"));
      }
    } else if (choice->is_object()) {
      const Json* fn = Find(*choice, "function");
      const Json* name = fn != nullptr && fn->is_object() ? Find(*fn, "name") : nullptr;
      if (name == nullptr || !name->is_string()) {
        return ApiError::InvalidRequest("tool_choice", "'tool_choice' must be {\"type\": \"function\", "
                                                       "\"function\": {\"name\": NAME}}");
      }
      tc.mode = ToolChoice::Mode::kFunction;
      tc.function = name->get<std::string>();
      if (names.count(tc.function) == 0) {
        return ApiError::InvalidRequest("tool_choice", absl::StrCat("'tool_choice' names the function '",
                                                                    tc.function, "', which is not in 'tools'"));
      }
    } else {
      return TypeError("tool_choice", "a string or an object", *choice);
    }
    if ((tc.mode == ToolChoice::Mode::kRequired) && names.empty()) {
      return ApiError::InvalidRequest("tool_choice", "'tool_choice' is 'required' but no 'tools' are given");
    }
  }
  if (const Json* v = Find(body, "parallel_tool_calls")) {
    if (!v->is_boolean()) return TypeError("parallel_tool_calls", "a boolean", *v);
    req->parallel_tool_calls = v->get<bool>();
  }
  const bool forced = req->tool_choice.mode == ToolChoice::Mode::kRequired ||
                      req->tool_choice.mode == ToolChoice::Mode::kFunction;
  if (forced && req->structured.kind != StructuredOutput::Kind::kNone) {
    return ApiError::InvalidRequest(req->structured.param.empty() ? "response_format" : req->structured.param,
                                    "an output constraint cannot be combined with a 'tool_choice' that forces a "
                                    "tool call");
  }
  return std::nullopt;
}

std::optional<ApiError> ParseMessageToolParts(const Json& msg, const std::string& param, ChatMessage* out) {
  if (const Json* calls = Find(msg, "tool_calls")) {
    if (out->role != ChatRole::kAssistant) {
      return ApiError::InvalidRequest(param + ".tool_calls", "only assistant messages have 'tool_calls'");
    }
    if (!calls->is_array()) return TypeError(param + ".tool_calls", "an array", *calls);
    for (size_t j = 0; j < calls->size(); ++j) {
      ToolCall call;
      if (auto e = ParseToolCall((*calls)[j], absl::StrCat(param, ".tool_calls[", j, "]"), &call)) return e;
      out->tool_calls.push_back(std::move(call));
    }
  }
  if (out->role == ChatRole::kTool) {
    if (const Json* id = Find(msg, "tool_call_id")) {
      if (!id->is_string()) return TypeError(param + ".tool_call_id", "a string", *id);
      out->tool_call_id = id->get<std::string>();
    }
  }
  return std::nullopt;
}

void KeepKeyOrder(absl::string_view body, OpenAiRequest* req) {
  if (req->structured.kind != StructuredOutput::Kind::kJsonSchema && !req->tools.is_array()) return;
  const OJson o = OJson::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (!o.is_object()) return;
  if (req->structured.kind == StructuredOutput::Kind::kJsonSchema) {
    if (req->structured.param == "guided_json" && o.contains("guided_json")) {
      const OJson& g = o["guided_json"];
      OJson schema = g.is_string() ? OJson::parse(g.get<std::string>(), nullptr, false) : g;
      if (schema.is_object()) req->structured.schema = std::move(schema);
    } else if (o.contains("response_format") && o["response_format"].is_object() &&
               o["response_format"].contains("json_schema") && o["response_format"]["json_schema"].is_object() &&
               o["response_format"]["json_schema"].contains("schema")) {
      const OJson& schema = o["response_format"]["json_schema"]["schema"];
      if (schema.is_object()) req->structured.schema = schema;
    }
  }
  if (req->tools.is_array() && o.contains("tools") && o["tools"].is_array() &&
      o["tools"].size() == req->tools.size()) {
    req->tools = o["tools"];
  }
}

}  // namespace tailor::service::request_internal
