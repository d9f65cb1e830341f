#include "service/api_error.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace tailor::service {
namespace {

ApiError Make(int status, absl::string_view message, absl::string_view type, absl::string_view param,
              absl::string_view code) {
  ApiError e;
  e.http_status = status;
  e.message = std::string(message);
  e.type = std::string(type);
  e.param = std::string(param);
  e.code = std::string(code);
  return e;
}

}  // namespace

ApiError ApiError::InvalidRequest(absl::string_view param, absl::string_view message) {
  return Make(400, message, "invalid_request_error", param, "");
}

ApiError ApiError::InvalidJson(absl::string_view message) {
  return Make(400, message, "invalid_request_error", "", "invalid_json");
}

ApiError ApiError::Unauthorized(absl::string_view message) {
  return Make(401, message, "invalid_request_error", "", "invalid_api_key");
}

ApiError ApiError::ModelNotFound(absl::string_view model) {
  return Make(404, absl::StrCat("The model '", model, "' does not exist."), "invalid_request_error",
              "model", "model_not_found");
}

ApiError ApiError::NotFound(absl::string_view message) {
  return Make(404, message, "invalid_request_error", "", "not_found");
}

ApiError ApiError::MethodNotAllowed(absl::string_view message) {
  return Make(405, message, "invalid_request_error", "", "method_not_allowed");
}

ApiError ApiError::PayloadTooLarge(size_t limit_bytes) {
  return Make(413, absl::StrCat("Request body too large: the limit is ", limit_bytes, " bytes."),
              "invalid_request_error", "", "request_too_large");
}

ApiError ApiError::QueueFull(absl::string_view message) {
  return Make(429, message, "rate_limit_error", "", "queue_full");
}

ApiError ApiError::RequestTimeout(absl::string_view message) {
  return Make(408, message, "timeout_error", "", "request_timeout");
}

ApiError ApiError::Internal(absl::string_view message) {
  return Make(500, message, "server_error", "", "");
}

ApiError ApiError::Unavailable(absl::string_view message) {
  return Make(503, message, "server_error", "", "unavailable");
}

ApiError ApiError::FromStatus(const absl::Status& status, absl::string_view param) {
  const absl::string_view msg = status.message();
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
      return InvalidRequest(param, msg);
    case absl::StatusCode::kNotFound:
      return NotFound(msg);
    case absl::StatusCode::kUnauthenticated:
      return Unauthorized(msg);
    case absl::StatusCode::kPermissionDenied:
      return Make(403, msg, "permission_error", "", "");
    case absl::StatusCode::kResourceExhausted:
      return QueueFull(msg);
    case absl::StatusCode::kUnavailable:
      return Unavailable(msg);
    case absl::StatusCode::kDeadlineExceeded:
      return Make(504, msg, "server_error", "", "timeout");
    default:
      return Internal(msg);
  }
}

std::string ApiError::ToJson() const {
  using Json = nlohmann::ordered_json;  // keeps OpenAI's field order
  Json inner = Json::object();
  inner["message"] = message;
  inner["type"] = type;
  inner["param"] = param.empty() ? Json(nullptr) : Json(param);
  inner["code"] = code.empty() ? Json(nullptr) : Json(code);
  Json body = Json::object();
  body["error"] = std::move(inner);
  return body.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace tailor::service
