#include "api/openai_stream.h"

#include <utility>

namespace tailor {
namespace {

int64_t CountCodePoints(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

SseStreamFormatter::SseStreamFormatter(service::ResponseMeta meta, service::Endpoint endpoint,
                                       bool include_usage, int32_t num_choices)
    : meta_(std::move(meta)), endpoint_(endpoint), include_usage_(include_usage),
      role_sent_(static_cast<size_t>(num_choices), false),
      chars_sent_(static_cast<size_t>(num_choices), 0) {}

std::string SseStreamFormatter::Format(const SessionEvent& event) {
  std::string out;
  if (event.kind == SessionEvent::Kind::kDone) {
    if (event.error) {
      service::ResponseJson err = service::ResponseJson::parse(event.error->ToJson(), nullptr, false);
      if (!err.is_discarded()) out += service::SseData(err);
    } else if (include_usage_) {
      out += service::SseData(service::UsageChunk(meta_, endpoint_, event.usage));
    }
    out += service::SseDone();
    return out;
  }
  const ChoiceDelta& d = event.delta;
  const size_t i = static_cast<size_t>(d.index);
  if (i >= role_sent_.size()) return out;
  const std::vector<service::TokenLogprob>* lp = d.logprobs.empty() ? nullptr : &d.logprobs;
  if (endpoint_ == service::Endpoint::kChatCompletions) {
    if (!role_sent_[i]) {
      role_sent_[i] = true;
      service::ChatDelta role;
      role.role = true;
      role.content = "";
      out += service::SseData(service::ChatChunk(meta_, d.index, role, std::nullopt, nullptr, include_usage_));
    }
    if (!d.text.empty() || lp != nullptr) {
      service::ChatDelta content;
      content.content = d.text;
      out += service::SseData(service::ChatChunk(meta_, d.index, content, std::nullopt, lp, include_usage_));
    }
    for (const service::ToolCallDelta& call : d.tool_calls) {
      service::ChatDelta piece;
      piece.tool_calls.push_back(call);
      out += service::SseData(service::ChatChunk(meta_, d.index, piece, std::nullopt, nullptr, include_usage_));
    }
    if (d.finish) {
      out += service::SseData(service::ChatChunk(meta_, d.index, {}, d.finish, nullptr, include_usage_));
    }
    return out;
  }
  if (!d.text.empty() || lp != nullptr) {
    out += service::SseData(service::CompletionChunk(meta_, d.index, d.text, std::nullopt, lp, chars_sent_[i],
                                                     include_usage_));
    chars_sent_[i] += CountCodePoints(d.text);
  }
  if (d.finish) {
    out += service::SseData(service::CompletionChunk(meta_, d.index, "", d.finish, nullptr, chars_sent_[i],
                                                     include_usage_));
  }
  return out;
}

}  // namespace tailor
