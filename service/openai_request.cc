#include "service/openai_request.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <map>

#include "absl/strings/str_cat.h"
#include "service/json_scan.h"
#include "service/openai_request_tools.h"

namespace tailor::service {
namespace {

using Json = nlohmann::json;

// The value of `key` in `obj`, or nullptr when absent or null.
const Json* Find(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string Num(double v) { return absl::StrCat(v); }

ApiError TypeError(absl::string_view param, absl::string_view expected, const Json& got) {
  return ApiError::InvalidRequest(
      param, absl::StrCat("'", param, "' must be ", expected, ", got ", got.type_name()));
}

std::optional<ApiError> ReadBool(const Json& v, absl::string_view param, bool* out) {
  if (!v.is_boolean()) return TypeError(param, "a boolean", v);
  *out = v.get<bool>();
  return std::nullopt;
}

std::optional<ApiError> ReadString(const Json& v, absl::string_view param, std::string* out) {
  if (!v.is_string()) return TypeError(param, "a string", v);
  *out = v.get<std::string>();
  return std::nullopt;
}

std::optional<ApiError> ReadDouble(const Json& v, absl::string_view param, double* out) {
  if (!v.is_number()) return TypeError(param, "a number", v);
  const double d = v.get<double>();
  if (!std::isfinite(d)) {
    return ApiError::InvalidRequest(param, absl::StrCat("'", param, "' must be a finite number"));
  }
  *out = d;
  return std::nullopt;
}

// An integer (a float with an integral value is accepted) within int64.
std::optional<ApiError> ReadInt64(const Json& v, absl::string_view param, int64_t* out) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return ApiError::InvalidRequest(param, absl::StrCat("'", param, "' is out of range: ", u));
    }
    *out = static_cast<int64_t>(u);
    return std::nullopt;
  }
  if (v.is_number_integer()) {
    *out = v.get<int64_t>();
    return std::nullopt;
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    // 2^63 is exactly representable; anything >= it does not fit.
    if (std::isfinite(d) && d == std::floor(d) && d >= -9223372036854775808.0 &&
        d < 9223372036854775808.0) {
      *out = static_cast<int64_t>(d);
      return std::nullopt;
    }
    return ApiError::InvalidRequest(param,
                                    absl::StrCat("'", param, "' must be an integer, got ", Num(d)));
  }
  return TypeError(param, "an integer", v);
}

// An integer in [lo, hi].
std::optional<ApiError> ReadIntIn(const Json& v, absl::string_view param, int64_t lo, int64_t hi,
                                  int64_t* out) {
  if (auto e = ReadInt64(v, param, out)) return e;
  if (*out < lo || *out > hi) {
    const std::string range =
        hi == std::numeric_limits<int32_t>::max()
            ? absl::StrCat("at least ", lo)
            : absl::StrCat("between ", lo, " and ", hi);
    return ApiError::InvalidRequest(
        param, absl::StrCat("'", param, "' must be ", range, ", got ", *out));
  }
  return std::nullopt;
}

// A number in [lo, hi], or (lo, hi] when lo_open.
std::optional<ApiError> ReadDoubleIn(const Json& v, absl::string_view param, double lo, double hi,
                                     bool lo_open, double* out) {
  if (auto e = ReadDouble(v, param, out)) return e;
  const bool low_ok = lo_open ? *out > lo : *out >= lo;
  if (!low_ok || *out > hi) {
    return ApiError::InvalidRequest(
        param, absl::StrCat("'", param, "' must be ", lo_open ? "greater than " : "between ",
                            Num(lo), lo_open ? " and at most " : " and ", Num(hi), ", got ",
                            Num(*out)));
  }
  return std::nullopt;
}

std::optional<ApiError> ReadTokenIds(const Json& arr, absl::string_view param,
                                     std::vector<int32_t>* out) {
  out->clear();
  out->reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    int64_t id = 0;
    if (auto e = ReadInt64(arr[i], param, &id)) {
      return ApiError::InvalidRequest(
          param, absl::StrCat("'", param, "' token ids must be integers; element ", i, " is not"));
    }
    if (id < 0 || id > std::numeric_limits<int32_t>::max()) {
      return ApiError::InvalidRequest(
          param, absl::StrCat("'", param, "' has an invalid token id ", id, " at element ", i));
    }
    out->push_back(static_cast<int32_t>(id));
  }
  return std::nullopt;
}

std::optional<ApiError> ParsePrompt(const Json& body, const ParseLimits& limits,
                                    std::vector<PromptInput>* prompts) {
  const Json* p = Find(body, "prompt");
  if (p == nullptr) return ApiError::InvalidRequest("prompt", "'prompt' is required");
  constexpr absl::string_view kExpected =
      "a string, an array of strings, an array of token ids or an array of token-id arrays";
  if (p->is_string()) {
    prompts->push_back(p->get<std::string>());
    return std::nullopt;
  }
  if (!p->is_array()) return TypeError("prompt", kExpected, *p);
  if (p->empty()) return ApiError::InvalidRequest("prompt", "'prompt' must not be an empty array");
  const Json& first = (*p)[0];
  if (first.is_number()) {  // one prompt of token ids
    std::vector<int32_t> ids;
    if (auto e = ReadTokenIds(*p, "prompt", &ids)) return e;
    prompts->push_back(std::move(ids));
    return std::nullopt;
  }
  if (static_cast<int64_t>(p->size()) > limits.max_prompts) {
    return ApiError::InvalidRequest(
        "prompt", absl::StrCat("'prompt' has ", p->size(), " prompts; at most ", limits.max_prompts,
                               " are allowed in one request"));
  }
  for (size_t i = 0; i < p->size(); ++i) {
    const Json& item = (*p)[i];
    if (first.is_string() && item.is_string()) {
      prompts->push_back(item.get<std::string>());
    } else if (first.is_array() && item.is_array()) {
      if (item.empty()) {
        return ApiError::InvalidRequest(
            "prompt", absl::StrCat("'prompt' element ", i, " is an empty token-id array"));
      }
      std::vector<int32_t> ids;
      if (auto e = ReadTokenIds(item, "prompt", &ids)) return e;
      prompts->push_back(std::move(ids));
    } else {
      return ApiError::InvalidRequest(
          "prompt", absl::StrCat("'prompt' must be ", kExpected, "; element ", i, " is a ",
                                 item.type_name(), i > 0 ? absl::StrCat(" after a ", first.type_name()) : ""));
    }
  }
  return std::nullopt;
}

std::optional<ApiError> ParseContent(const Json& content, const std::string& param,
                                     std::string* out) {
  if (content.is_string()) {
    *out = content.get<std::string>();
    return std::nullopt;
  }
  if (!content.is_array()) return TypeError(param, "a string or an array of content parts", content);
  out->clear();
  for (size_t j = 0; j < content.size(); ++j) {
    const Json& part = content[j];
    const std::string part_param = absl::StrCat(param, "[", j, "]");
    if (!part.is_object()) return TypeError(part_param, "an object", part);
    const Json* type = Find(part, "type");
    if (type == nullptr || !type->is_string()) {
      return ApiError::InvalidRequest(absl::StrCat(part_param, ".type"),
                                      absl::StrCat("'", part_param, ".type' must be a string"));
    }
    if (type->get<std::string>() != "text") {
      return ApiError::InvalidRequest(
          absl::StrCat(part_param, ".type"),
          absl::StrCat("content part type '", type->get<std::string>(),
                       "' is not supported; only 'text' is"));
    }
    const Json* text = Find(part, "text");
    const std::string text_param = absl::StrCat(part_param, ".text");
    if (text == nullptr) {
      return ApiError::InvalidRequest(text_param, absl::StrCat("'", text_param, "' is required"));
    }
    if (!text->is_string()) return TypeError(text_param, "a string", *text);
    if (j > 0) *out += "\n";
    *out += text->get<std::string>();
  }
  return std::nullopt;
}

std::optional<ApiError> ParseMessages(const Json& body, std::vector<ChatMessage>* messages) {
  const Json* m = Find(body, "messages");
  if (m == nullptr) return ApiError::InvalidRequest("messages", "'messages' is required");
  if (!m->is_array()) return TypeError("messages", "an array", *m);
  if (m->empty()) {
    return ApiError::InvalidRequest("messages", "'messages' must contain at least one message");
  }
  for (size_t i = 0; i < m->size(); ++i) {
    const Json& msg = (*m)[i];
    const std::string param = absl::StrCat("messages[", i, "]");
    if (!msg.is_object()) return TypeError(param, "an object", msg);
    const std::string role_param = param + ".role";
    const Json* role = Find(msg, "role");
    if (role == nullptr) {
      return ApiError::InvalidRequest(role_param, absl::StrCat("'", role_param, "' is required"));
    }
    if (!role->is_string()) return TypeError(role_param, "a string", *role);
    const std::string r = role->get<std::string>();
    ChatMessage out;
    if (r == "system" || r == "developer") {
      out.role = ChatRole::kSystem;
    } else if (r == "user") {
      out.role = ChatRole::kUser;
    } else if (r == "assistant") {
      out.role = ChatRole::kAssistant;
    } else if (r == "tool") {
      out.role = ChatRole::kTool;
    } else if (r == "function") {
      return ApiError::InvalidRequest(
          role_param, "role 'function' is not supported; use 'tool' (with 'tools' and 'tool_calls')");
    } else {
      return ApiError::InvalidRequest(
          role_param, absl::StrCat("invalid role '", r,
                                   "'; expected 'system', 'developer', 'user', 'assistant' or 'tool'"));
    }
    const std::string content_param = param + ".content";
    const Json* content = Find(msg, "content");
    if (content == nullptr) {
      if (out.role != ChatRole::kAssistant) {
        return ApiError::InvalidRequest(content_param,
                                        absl::StrCat("'", content_param, "' is required"));
      }
    } else if (auto e = ParseContent(*content, content_param, &out.content)) {
      return e;
    }
    if (auto e = request_internal::ParseMessageToolParts(msg, param, &out)) return e;
    messages->push_back(std::move(out));
  }
  return std::nullopt;
}

std::optional<ApiError> ParseStop(const Json& v, const ParseLimits& limits,
                                  std::vector<std::string>* stop) {
  if (v.is_string()) {
    if (!v.get<std::string>().empty()) stop->push_back(v.get<std::string>());
    return std::nullopt;
  }
  if (!v.is_array()) return TypeError("stop", "a string or an array of strings", v);
  if (static_cast<int64_t>(v.size()) > limits.max_stop) {
    return ApiError::InvalidRequest(
        "stop", absl::StrCat("'stop' has ", v.size(), " strings; at most ", limits.max_stop,
                             " are allowed"));
  }
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string()) {
      return ApiError::InvalidRequest(
          "stop", absl::StrCat("'stop' must be an array of strings; element ", i, " is a ",
                               v[i].type_name()));
    }
    if (!v[i].get<std::string>().empty()) stop->push_back(v[i].get<std::string>());
  }
  return std::nullopt;
}

std::optional<ApiError> ParseLogitBias(const Json& v,
                                       std::vector<std::pair<int32_t, double>>* out) {
  if (!v.is_object()) return TypeError("logit_bias", "an object mapping token ids to numbers", v);
  std::map<int32_t, double> sorted;
  for (auto it = v.begin(); it != v.end(); ++it) {
    const std::string& key = it.key();
    bool digits = !key.empty() && key.size() <= 10 &&
                  std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; });
    const int64_t id = digits ? std::stoll(key) : -1;
    if (!digits || id > std::numeric_limits<int32_t>::max()) {
      return ApiError::InvalidRequest(
          "logit_bias", absl::StrCat("'logit_bias' keys must be token ids; got '", key, "'"));
    }
    double bias = 0;
    if (!it.value().is_number()) {
      return ApiError::InvalidRequest(
          "logit_bias", absl::StrCat("'logit_bias' value for token ", key, " must be a number, got ",
                                     it.value().type_name()));
    }
    bias = it.value().get<double>();
    if (!(bias >= -100.0 && bias <= 100.0)) {
      return ApiError::InvalidRequest(
          "logit_bias", absl::StrCat("'logit_bias' value for token ", key,
                                     " must be between -100 and 100, got ", Num(bias)));
    }
    sorted[static_cast<int32_t>(id)] = bias;
  }
  out->assign(sorted.begin(), sorted.end());
  return std::nullopt;
}

// chat_template_kwargs: an object whose keys the chat template receives as variables.
std::optional<ApiError> ParseTemplateKwargs(const Json& body, nlohmann::ordered_json* out) {
  const Json* v = Find(body, "chat_template_kwargs");
  if (v == nullptr) return std::nullopt;
  if (!v->is_object()) return TypeError("chat_template_kwargs", "an object", *v);
  *out = nlohmann::ordered_json::parse(v->dump());
  return std::nullopt;
}

// Everything shared by both endpoints, after prompt/messages.
std::optional<ApiError> ParseCommon(Endpoint endpoint, const Json& body, const ParseLimits& limits,
                                    OpenAiRequest* req) {
  SamplingParams& s = req->sampling;
  const bool chat = endpoint == Endpoint::kChatCompletions;
  int64_t i64 = 0;
  s.temperature = limits.default_temperature;
  s.top_p = limits.default_top_p;
  s.top_k = limits.default_top_k;
  s.min_p = limits.default_min_p;
  s.repetition_penalty = limits.default_repetition_penalty;

  if (const Json* v = Find(body, "model")) {
    std::string model;
    if (auto e = ReadString(*v, "model", &model)) return e;
    if (!model.empty()) req->model = std::move(model);
  }

  // max_tokens / max_completion_tokens (chat prefers the latter).
  const char* max_key = "max_tokens";
  const Json* max_v = nullptr;
  if (chat) max_v = Find(body, "max_completion_tokens");
  if (max_v != nullptr) {
    max_key = "max_completion_tokens";
  } else {
    max_v = Find(body, "max_tokens");
  }
  if (max_v != nullptr) {
    // Completions accept 0 (score the prompt with echo + logprobs, as evaluation harnesses do).
    if (auto e = ReadIntIn(*max_v, max_key, chat ? 1 : 0, std::numeric_limits<int32_t>::max(), &i64)) return e;
    if (limits.max_tokens_limit && i64 > *limits.max_tokens_limit) {
      return ApiError::InvalidRequest(
          max_key, absl::StrCat("'", max_key, "' is ", i64, " but this server generates at most ",
                                *limits.max_tokens_limit, " tokens per choice (tailor serve --max-tokens-limit)"));
    }
    s.max_tokens = static_cast<int32_t>(i64);
  } else if (limits.default_max_tokens || !chat) {
    s.max_tokens = limits.default_max_tokens.value_or(limits.default_completion_max_tokens);
    s.max_tokens_is_default = true;
  }
  if (limits.max_tokens_limit && (!s.max_tokens || *s.max_tokens > *limits.max_tokens_limit)) {
    // A default (or chat's "the rest of the context") within the server's limit.
    s.max_tokens = *limits.max_tokens_limit;
    s.max_tokens_is_default = true;
  }

  if (const Json* v = Find(body, "temperature")) {
    if (auto e = ReadDoubleIn(*v, "temperature", 0.0, 2.0, false, &s.temperature)) return e;
  }
  if (const Json* v = Find(body, "top_p")) {
    if (auto e = ReadDoubleIn(*v, "top_p", 0.0, 1.0, true, &s.top_p)) return e;
  }
  if (const Json* v = Find(body, "top_k")) {
    if (auto e = ReadInt64(*v, "top_k", &i64)) return e;
    if (i64 < -1 || i64 > std::numeric_limits<int32_t>::max()) {
      return ApiError::InvalidRequest(
          "top_k", absl::StrCat("'top_k' must be -1 or 0 (disabled) or a positive integer, got ",
                                i64));
    }
    s.top_k = i64 < 0 ? 0 : static_cast<int32_t>(i64);
  }
  if (const Json* v = Find(body, "min_p")) {
    if (auto e = ReadDoubleIn(*v, "min_p", 0.0, 1.0, false, &s.min_p)) return e;
  }
  if (const Json* v = Find(body, "presence_penalty")) {
    if (auto e = ReadDoubleIn(*v, "presence_penalty", -2.0, 2.0, false, &s.presence_penalty)) {
      return e;
    }
  }
  if (const Json* v = Find(body, "frequency_penalty")) {
    if (auto e = ReadDoubleIn(*v, "frequency_penalty", -2.0, 2.0, false, &s.frequency_penalty)) {
      return e;
    }
  }
  if (const Json* v = Find(body, "repetition_penalty")) {
    if (auto e = ReadDoubleIn(*v, "repetition_penalty", 0.0, 2.0, true, &s.repetition_penalty)) {
      return e;
    }
  }
  if (const Json* v = Find(body, "seed")) {
    if (auto e = ReadInt64(*v, "seed", &i64)) return e;
    s.seed = i64;
  }
  if (const Json* v = Find(body, "stop")) {
    if (auto e = ParseStop(*v, limits, &s.stop)) return e;
  }
  if (const Json* v = Find(body, "logit_bias")) {
    if (auto e = ParseLogitBias(*v, &s.logit_bias)) return e;
  }
  if (const Json* v = Find(body, "ignore_eos")) {
    if (auto e = ReadBool(*v, "ignore_eos", &s.ignore_eos)) return e;
  }
  if (const Json* v = Find(body, "stop_token_ids")) {  // vLLM's extension
    if (!v->is_array()) return TypeError("stop_token_ids", "an array of token ids", *v);
    if (auto e = ReadTokenIds(*v, "stop_token_ids", &s.stop_token_ids)) return e;
  }
  if (const Json* v = Find(body, "min_tokens")) {  // vLLM's extension
    if (auto e = ReadIntIn(*v, "min_tokens", 0, std::numeric_limits<int32_t>::max(), &i64)) return e;
    s.min_tokens = static_cast<int32_t>(i64);
    if (s.max_tokens && !s.max_tokens_is_default && s.min_tokens > *s.max_tokens) {
      return ApiError::InvalidRequest("min_tokens", absl::StrCat("'min_tokens' (", s.min_tokens,
                                                                 ") must not exceed the token limit (",
                                                                 *s.max_tokens, ")"));
    }
  }
  if (const Json* v = Find(body, "n")) {
    if (auto e = ReadInt64(*v, "n", &i64)) return e;
    if (i64 < 1) {
      return ApiError::InvalidRequest("n", absl::StrCat("'n' must be between 1 and ", limits.max_n, ", got ", i64));
    }
    if (i64 > limits.max_n) {
      return ApiError::InvalidRequest("n", absl::StrCat("'n' is ", i64, " but this server allows at most ", limits.max_n,
                                                        " choices per prompt (tailor serve --max-n)"));
    }
    req->n = static_cast<int32_t>(i64);
  }
  if (const Json* v = Find(body, "best_of")) {
    if (auto e = ReadInt64(*v, "best_of", &i64)) return e;
    if (i64 != req->n) {
      return ApiError::InvalidRequest(
          "best_of", "'best_of' is not supported (only best_of equal to n, which is a no-op)");
    }
  }

  // Log probabilities.
  if (chat) {
    bool want = false;
    if (const Json* v = Find(body, "logprobs")) {
      if (auto e = ReadBool(*v, "logprobs", &want)) return e;
    }
    int32_t top = 0;
    if (const Json* v = Find(body, "top_logprobs")) {
      if (auto e = ReadIntIn(*v, "top_logprobs", 0, limits.max_top_logprobs, &i64)) return e;
      if (!want) {
        return ApiError::InvalidRequest("top_logprobs",
                                        "'top_logprobs' requires 'logprobs' to be true");
      }
      top = static_cast<int32_t>(i64);
    }
    if (want) s.logprobs = top;
  } else if (const Json* v = Find(body, "logprobs")) {
    if (auto e = ReadIntIn(*v, "logprobs", 0, limits.max_completion_logprobs, &i64)) return e;
    s.logprobs = static_cast<int32_t>(i64);
  }

  if (!chat) {
    if (const Json* v = Find(body, "echo")) {
      if (auto e = ReadBool(*v, "echo", &req->echo)) return e;
    }
    if (const Json* v = Find(body, "suffix")) {
      std::string suffix;
      if (auto e = ReadString(*v, "suffix", &suffix)) return e;
      if (!suffix.empty()) return ApiError::InvalidRequest("suffix", "'suffix' is not supported");
    }
  }

  if (chat) {
    if (auto e = ParseTemplateKwargs(body, &req->chat_template_kwargs)) return e;
  }
  if (auto e = request_internal::ParseStructuredOutput(body, &req->structured)) return e;
  if (chat) {
    if (auto e = request_internal::ParseTools(body, req)) return e;
  }
  if (const Json* v = Find(body, "user")) {
    if (auto e = ReadString(*v, "user", &req->user)) return e;
  }
  if (const Json* v = Find(body, "stream")) {
    if (auto e = ReadBool(*v, "stream", &req->stream)) return e;
  }
  if (const Json* v = Find(body, "stream_options")) {
    if (!v->is_object()) return TypeError("stream_options", "an object", *v);
    if (!req->stream) {
      return ApiError::InvalidRequest("stream_options",
                                      "'stream_options' is only allowed when 'stream' is true");
    }
    if (const Json* u = Find(*v, "include_usage")) {
      if (auto e = ReadBool(*u, "stream_options.include_usage", &req->include_usage)) return e;
    }
  }
  return std::nullopt;
}

// Rejects nesting deeper than `max_depth` before parsing (so hostile input cannot exhaust the
// stack in recursive code). Returns the byte offset of the first bracket too deep, if any.
std::optional<size_t> TooDeep(absl::string_view text, int32_t max_depth) {
  const size_t deep = ScanJsonBrackets(text, [max_depth](size_t, int64_t depth) { return depth > max_depth; });
  if (deep == absl::string_view::npos) return std::nullopt;
  return deep;
}

}  // namespace

std::pair<int64_t, int64_t> LineAndColumn(absl::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  int64_t line = 1;
  int64_t column = 1;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

ApiResult<Json> ParseJsonBody(absl::string_view body, const ParseLimits& limits) {
  if (auto deep = TooDeep(body, limits.max_json_depth)) {
    auto [line, col] = LineAndColumn(body, *deep);
    return ApiError::InvalidJson(absl::StrCat("Invalid JSON body at line ", line, ", column ", col,
                                              ": nesting deeper than ", limits.max_json_depth));
  }
  try {
    return Json::parse(body.begin(), body.end());
  } catch (const Json::parse_error& e) {
    // e.byte is the 1-based position of the offending byte (0 for an empty body).
    const size_t offset = e.byte > 0 ? e.byte - 1 : 0;
    auto [line, col] = LineAndColumn(body, offset);
    std::string detail = e.what();
    // Drop nlohmann's "[json.exception.parse_error.101] parse error at line 1, column 2: ".
    const size_t colon = detail.find(": ");
    if (colon != std::string::npos) detail = detail.substr(colon + 2);
    return ApiError::InvalidJson(
        absl::StrCat("Invalid JSON body at line ", line, ", column ", col, ": ", detail));
  } catch (const std::exception& e) {
    return ApiError::InvalidJson(absl::StrCat("Invalid JSON body: ", e.what()));
  }
}

ApiResult<OpenAiRequest> ParseOpenAiRequest(Endpoint endpoint, absl::string_view body,
                                            const ParseLimits& limits) {
  ApiResult<Json> parsed = ParseJsonBody(body, limits);
  if (!parsed.ok()) return parsed.error();
  ApiResult<OpenAiRequest> req = ParseOpenAiRequestJson(endpoint, *parsed, limits);
  if (req.ok()) request_internal::KeepKeyOrder(body, &*req);
  return req;
}

ApiResult<TokenizeRequest> ParseTokenizeRequest(absl::string_view text, const ParseLimits& limits) {
  ApiResult<Json> parsed = ParseJsonBody(text, limits);
  if (!parsed.ok()) return parsed.error();
  const Json& body = *parsed;
  if (!body.is_object()) {
    return ApiError::InvalidRequest("", absl::StrCat("The request body must be a JSON object, got ", body.type_name()));
  }
  TokenizeRequest req;
  const Json* prompt = Find(body, "prompt");
  const Json* messages = Find(body, "messages");
  if ((prompt == nullptr) == (messages == nullptr)) {
    return ApiError::InvalidRequest(prompt ? "messages" : "prompt", "give exactly one of 'prompt' (text) and 'messages'");
  }
  if (prompt != nullptr) {
    std::string text;
    if (auto e = ReadString(*prompt, "prompt", &text)) return *e;
    req.prompt = std::move(text);
  } else {
    if (auto e = ParseMessages(body, &req.messages)) return *e;
    if (auto e = ParseTemplateKwargs(body, &req.chat_template_kwargs)) return *e;
    req.add_special_tokens = false;  // the template writes them (vLLM's default for messages)
    if (const Json* v = Find(body, "add_generation_prompt")) {
      if (auto e = ReadBool(*v, "add_generation_prompt", &req.add_generation_prompt)) return *e;
    }
  }
  if (const Json* v = Find(body, "add_special_tokens")) {
    if (auto e = ReadBool(*v, "add_special_tokens", &req.add_special_tokens)) return *e;
  }
  return req;
}

ApiResult<std::vector<int32_t>> ParseDetokenizeRequest(absl::string_view text, const ParseLimits& limits) {
  ApiResult<Json> parsed = ParseJsonBody(text, limits);
  if (!parsed.ok()) return parsed.error();
  const Json* tokens = parsed->is_object() ? Find(*parsed, "tokens") : nullptr;
  if (tokens == nullptr || !tokens->is_array()) {
    return ApiError::InvalidRequest("tokens", "'tokens' must be an array of token ids");
  }
  std::vector<int32_t> ids;
  if (auto e = ReadTokenIds(*tokens, "tokens", &ids)) return *e;
  return ids;
}

ApiResult<OpenAiRequest> ParseOpenAiRequestJson(Endpoint endpoint, const Json& body,
                                                const ParseLimits& limits) {
  if (!body.is_object()) {
    return ApiError::InvalidRequest(
        "", absl::StrCat("The request body must be a JSON object, got ", body.type_name()));
  }
  OpenAiRequest req;
  req.endpoint = endpoint;
  try {  // nothing below should throw; this keeps a stray exception from escaping
    if (endpoint == Endpoint::kCompletions) {
      if (auto e = ParsePrompt(body, limits, &req.prompts)) return *e;
    } else {
      if (auto e = ParseMessages(body, &req.messages)) return *e;
    }
    if (auto e = ParseCommon(endpoint, body, limits, &req)) return *e;
  } catch (const std::exception& e) {
    return ApiError::InvalidRequest("", absl::StrCat("Invalid request: ", e.what()));
  }
  return req;
}

std::optional<ApiError> ValidateForVocabulary(const OpenAiRequest& request, int32_t vocab_size) {
  for (size_t p = 0; p < request.prompts.size(); ++p) {
    const auto* ids = std::get_if<std::vector<int32_t>>(&request.prompts[p]);
    if (ids == nullptr) continue;
    for (int32_t id : *ids) {
      if (id >= vocab_size) {
        return ApiError::InvalidRequest(
            "prompt", absl::StrCat("'prompt' token id ", id, " is out of range: the vocabulary has ",
                                   vocab_size, " tokens"));
      }
    }
  }
  for (int32_t id : request.sampling.stop_token_ids) {
    if (id >= vocab_size) {
      return ApiError::InvalidRequest(
          "stop_token_ids", absl::StrCat("'stop_token_ids' token id ", id,
                                         " is out of range: the vocabulary has ", vocab_size, " tokens"));
    }
  }
  for (const auto& [id, bias] : request.sampling.logit_bias) {
    if (id >= vocab_size) {
      return ApiError::InvalidRequest(
          "logit_bias", absl::StrCat("'logit_bias' token id ", id,
                                     " is out of range: the vocabulary has ", vocab_size, " tokens"));
    }
  }
  return std::nullopt;
}

ApiResult<int32_t> ResolveMaxTokens(const SamplingParams& sampling, int64_t prompt_tokens,
                                    int64_t context_length, absl::string_view prompt_param) {
  const int64_t room = context_length - prompt_tokens;
  if (room < 1 && !(sampling.max_tokens == 0 && room == 0)) {
    return ApiError::InvalidRequest(
        prompt_param, absl::StrCat("This model's maximum context length is ", context_length,
                                   " tokens, but the prompt has ", prompt_tokens,
                                   " tokens, leaving no room to generate"));
  }
  if (!sampling.max_tokens.has_value() || sampling.max_tokens_is_default) {
    return static_cast<int32_t>(
        std::min<int64_t>({room, sampling.max_tokens.value_or(std::numeric_limits<int32_t>::max()),
                           std::numeric_limits<int32_t>::max()}));
  }
  if (*sampling.max_tokens > room) {
    return ApiError::InvalidRequest(
        "max_tokens",
        absl::StrCat("This model's maximum context length is ", context_length,
                     " tokens; the prompt has ", prompt_tokens, " tokens and max_tokens is ",
                     *sampling.max_tokens, ", together more than the context (at most ", room,
                     " new tokens fit)"));
  }
  return *sampling.max_tokens;
}

}  // namespace tailor::service
