// OpenAI-style API errors: a value (never an exception) that the HTTP, batch and chat front ends
// turn into a status code and OpenAI's error body {"error": {"message", "type", "param", "code"}}.
// Plain data; safe to copy between threads.
#ifndef TAILOR_SERVICE_API_ERROR_H_
#define TAILOR_SERVICE_API_ERROR_H_

#include <string>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tailor::service {

struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";  // OpenAI's error "type"
  std::string param;                           // "" renders as null; else e.g. "temperature"
  std::string code;                            // "" renders as null; else e.g. "model_not_found"

  // 400 invalid_request_error naming `param` (e.g. "messages[1].content").
  static ApiError InvalidRequest(absl::string_view param, absl::string_view message);
  // 400 for a body that is not JSON; param null, code "invalid_json".
  static ApiError InvalidJson(absl::string_view message);
  // 401, code "invalid_api_key".
  static ApiError Unauthorized(absl::string_view message = "Invalid or missing API key.");
  // 404 for a model this server does not serve; param "model", code "model_not_found".
  static ApiError ModelNotFound(absl::string_view model);
  // 404 for an unknown route; code "not_found".
  static ApiError NotFound(absl::string_view message);
  // 405; code "method_not_allowed".
  static ApiError MethodNotAllowed(absl::string_view message);
  // 413 for a body over `limit_bytes`; code "request_too_large".
  static ApiError PayloadTooLarge(size_t limit_bytes);
  // 408 for a request that ran past the server's time limit (tailor serve --request-timeout) and
  // was cancelled; type "timeout_error", code "request_timeout".
  static ApiError RequestTimeout(absl::string_view message);
  // 429 when the waiting queue is full; type "rate_limit_error", code "queue_full".
  static ApiError QueueFull(absl::string_view message = "The server's request queue is full; retry later.");
  // 500 server_error.
  static ApiError Internal(absl::string_view message);
  // 503 server_error, code "unavailable".
  static ApiError Unavailable(absl::string_view message);

  // Maps an absl::Status (not OK) from lower layers: InvalidArgument/OutOfRange/FailedPrecondition
  // -> 400 (with `param`), NotFound -> 404, Unauthenticated -> 401, PermissionDenied -> 403,
  // ResourceExhausted -> 429, Unavailable -> 503, DeadlineExceeded -> 504, anything else -> 500.
  static ApiError FromStatus(const absl::Status& status, absl::string_view param = "");

  // OpenAI's body: {"error": {"message": ..., "type": ..., "param": ...|null, "code": ...|null}}.
  // Never throws (invalid UTF-8 in the message is replaced by U+FFFD).
  std::string ToJson() const;

  bool operator==(const ApiError&) const = default;
};

// A value or an ApiError: what the request parsers return.
template <typename T>
class ApiResult {
 public:
  ApiResult(T value) : v_(std::in_place_index<0>, std::move(value)) {}          // NOLINT
  ApiResult(ApiError error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  const T& value() const& { return std::get<0>(v_); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }
  // Only when !ok().
  const ApiError& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, ApiError> v_;
};

}  // namespace tailor::service

#endif  // TAILOR_SERVICE_API_ERROR_H_
