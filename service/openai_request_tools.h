// Internal to service/openai_request.cc: parsing of the structured-output and tool-calling
// fields of a request body and of tool parts of chat messages. Pure functions; errors are 400s
// naming the field ("response_format.json_schema.schema", "tools[0].function.name",
// "messages[2].tool_calls[0].function.arguments", ...).
#ifndef TAILOR_SERVICE_OPENAI_REQUEST_TOOLS_H_
#define TAILOR_SERVICE_OPENAI_REQUEST_TOOLS_H_

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/strings/string_view.h"

#include "service/api_error.h"
#include "service/openai_request.h"

namespace tailor::service::request_internal {

// response_format, guided_regex, guided_choice, guided_json (at most one constraint).
std::optional<ApiError> ParseStructuredOutput(const nlohmann::json& body, StructuredOutput* out);
// tools, tool_choice, parallel_tool_calls (chat).
std::optional<ApiError> ParseTools(const nlohmann::json& body, OpenAiRequest* req);
// An assistant message's `tool_calls` and a tool message's `tool_call_id`; `param` is
// "messages[i]".
std::optional<ApiError> ParseMessageToolParts(const nlohmann::json& msg, const std::string& param,
                                              ChatMessage* out);

// nlohmann::json sorts object keys; schemas and tools keep their given key order (the order in
// which a grammar generates properties) when taken again from the body text.
void KeepKeyOrder(absl::string_view body, OpenAiRequest* req);

}  // namespace tailor::service::request_internal

#endif  // TAILOR_SERVICE_OPENAI_REQUEST_TOOLS_H_
