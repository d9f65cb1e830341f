// Turns a ServingSession's events into OpenAI server-sent events, in the order that
// service/openai_response.h prescribes (chat: a role chunk first per choice; content deltas; an
// empty delta with the finish reason; a tool call as deltas, the first with its id and name,
// the next ones pieces of its arguments; completions: text chunks, then a finish chunk per choice;
// then the usage chunk if asked; then "data: [DONE]"). Independent of any HTTP library.
// Not thread-safe: one formatter per streamed request, fed by one thread at a time (the
// session's callbacks all run on the engine's loop thread).
#ifndef TAILOR_API_OPENAI_STREAM_H_
#define TAILOR_API_OPENAI_STREAM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "api/serving_session.h"
#include "service/openai_request.h"
#include "service/openai_response.h"

namespace tailor {

class SseStreamFormatter {
 public:
  SseStreamFormatter(service::ResponseMeta meta, service::Endpoint endpoint, bool include_usage,
                     int32_t num_choices);

  // The SSE text for one event ("" when there is nothing to send). The kDone event ends the
  // stream: an error object first if the request failed, the usage chunk, and "data: [DONE]".
  std::string Format(const SessionEvent& event);

 private:
  service::ResponseMeta meta_;
  service::Endpoint endpoint_;
  bool include_usage_;
  std::vector<bool> role_sent_;       // chat: per choice
  std::vector<int64_t> chars_sent_;   // completions: code points sent per choice (text_offset)
};

}  // namespace tailor

#endif  // TAILOR_API_OPENAI_STREAM_H_
