#include "service/openai_response.h"

#include "absl/strings/str_format.h"

namespace tailor::service {
namespace {

using Json = ResponseJson;

// Characters (code points) in possibly-partial UTF-8: bytes that are not continuation bytes.
int64_t CountChars(absl::string_view s) {
  int64_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

Json Bytes(absl::string_view s) {
  Json out = Json::array();
  for (unsigned char c : s) out.push_back(static_cast<int>(c));
  return out;
}

Json Finish(std::optional<FinishReason> r) {
  return r.has_value() ? Json(FinishReasonName(*r)) : Json(nullptr);
}

Json Header(const ResponseMeta& meta, const char* object) {
  Json j = Json::object();
  j["id"] = meta.id;
  j["object"] = object;
  j["created"] = meta.created;
  j["model"] = meta.model;
  return j;
}

}  // namespace

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength:
      return "length";
    case FinishReason::kToolCalls:
      return "tool_calls";
    case FinishReason::kStop:
      break;
  }
  return "stop";
}

std::string MakeResponseId(absl::string_view prefix, uint64_t hi, uint64_t lo) {
  return absl::StrFormat("%s-%016x%016x", prefix, hi, lo);
}

ResponseJson UsageJson(const Usage& usage) {
  Json j = Json::object();
  j["prompt_tokens"] = usage.prompt_tokens;
  j["completion_tokens"] = usage.completion_tokens;
  j["total_tokens"] = usage.prompt_tokens + usage.completion_tokens;
  return j;
}

ResponseJson CompletionLogprobsJson(std::span<const TokenLogprob> tokens,
                                    int64_t initial_text_offset) {
  Json text = Json::array();
  Json lps = Json::array();
  Json tops = Json::array();
  Json offsets = Json::array();
  int64_t offset = initial_text_offset;
  for (const TokenLogprob& t : tokens) {
    text.push_back(t.token);
    offsets.push_back(offset);
    offset += CountChars(t.token);
    if (t.unscored) {
      lps.push_back(nullptr);
      tops.push_back(nullptr);
      continue;
    }
    lps.push_back(t.logprob);
    Json top = Json::object();
    for (const TopLogprob& alt : t.top) {
      if (!top.contains(alt.token)) top[alt.token] = alt.logprob;
    }
    if (!top.contains(t.token)) top[t.token] = t.logprob;
    tops.push_back(std::move(top));
  }
  Json j = Json::object();
  j["tokens"] = std::move(text);
  j["token_logprobs"] = std::move(lps);
  j["top_logprobs"] = std::move(tops);
  j["text_offset"] = std::move(offsets);
  return j;
}

ResponseJson ChatLogprobsJson(std::span<const TokenLogprob> tokens) {
  Json content = Json::array();
  for (const TokenLogprob& t : tokens) {
    Json entry = Json::object();
    entry["token"] = t.token;
    entry["logprob"] = t.logprob;
    entry["bytes"] = Bytes(t.token);
    Json top = Json::array();
    for (const TopLogprob& alt : t.top) {
      Json a = Json::object();
      a["token"] = alt.token;
      a["logprob"] = alt.logprob;
      a["bytes"] = Bytes(alt.token);
      top.push_back(std::move(a));
    }
    entry["top_logprobs"] = std::move(top);
    content.push_back(std::move(entry));
  }
  Json j = Json::object();
  j["content"] = std::move(content);
  j["refusal"] = nullptr;
  return j;
}

ResponseJson CompletionResponse(const ResponseMeta& meta, std::span<const CompletionChoice> choices,
                                const Usage& usage) {
  Json j = Header(meta, "text_completion");
  Json arr = Json::array();
  for (const CompletionChoice& c : choices) {
    Json choice = Json::object();
    choice["text"] = c.text;
    choice["index"] = c.index;
    choice["logprobs"] = c.logprobs ? CompletionLogprobsJson(*c.logprobs, 0) : Json(nullptr);
    choice["finish_reason"] = FinishReasonName(c.finish_reason);
    arr.push_back(std::move(choice));
  }
  j["choices"] = std::move(arr);
  j["usage"] = UsageJson(usage);
  return j;
}

ResponseJson ChatCompletionResponse(const ResponseMeta& meta, std::span<const ChatChoice> choices,
                                    const Usage& usage) {
  Json j = Header(meta, "chat.completion");
  Json arr = Json::array();
  for (const ChatChoice& c : choices) {
    Json choice = Json::object();
    choice["index"] = c.index;
    Json message = Json::object();
    message["role"] = "assistant";
    message["content"] = c.content.empty() && !c.tool_calls.empty() ? Json(nullptr) : Json(c.content);
    if (!c.tool_calls.empty()) {
      Json calls = Json::array();
      for (const ToolCall& call : c.tool_calls) {
        Json fn = Json::object();
        fn["name"] = call.name;
        fn["arguments"] = call.arguments;
        Json entry = Json::object();
        entry["id"] = call.id;
        entry["type"] = "function";
        entry["function"] = std::move(fn);
        calls.push_back(std::move(entry));
      }
      message["tool_calls"] = std::move(calls);
    }
    choice["message"] = std::move(message);
    choice["logprobs"] = c.logprobs ? ChatLogprobsJson(*c.logprobs) : Json(nullptr);
    choice["finish_reason"] = FinishReasonName(c.finish_reason);
    arr.push_back(std::move(choice));
  }
  j["choices"] = std::move(arr);
  j["usage"] = UsageJson(usage);
  return j;
}

ResponseJson CompletionChunk(const ResponseMeta& meta, int32_t index, absl::string_view text,
                             std::optional<FinishReason> finish_reason,
                             const std::vector<TokenLogprob>* logprobs, int64_t text_offset,
                             bool include_usage) {
  Json j = Header(meta, "text_completion");
  Json choice = Json::object();
  choice["text"] = std::string(text);
  choice["index"] = index;
  choice["logprobs"] =
      logprobs != nullptr ? CompletionLogprobsJson(*logprobs, text_offset) : Json(nullptr);
  choice["finish_reason"] = Finish(finish_reason);
  j["choices"] = Json::array({std::move(choice)});
  if (include_usage) j["usage"] = nullptr;
  return j;
}

ResponseJson ChatChunk(const ResponseMeta& meta, int32_t index, const ChatDelta& delta,
                       std::optional<FinishReason> finish_reason,
                       const std::vector<TokenLogprob>* logprobs, bool include_usage) {
  Json j = Header(meta, "chat.completion.chunk");
  Json d = Json::object();
  if (delta.role) d["role"] = "assistant";
  if (delta.content.has_value()) d["content"] = *delta.content;
  if (!delta.tool_calls.empty()) {
    Json calls = Json::array();
    for (const ToolCallDelta& t : delta.tool_calls) {
      Json entry = Json::object();
      entry["index"] = t.index;
      if (t.id) {
        entry["id"] = *t.id;
        entry["type"] = "function";
      }
      Json fn = Json::object();
      if (t.name) fn["name"] = *t.name;
      fn["arguments"] = t.arguments;
      entry["function"] = std::move(fn);
      calls.push_back(std::move(entry));
    }
    d["tool_calls"] = std::move(calls);
  }
  Json choice = Json::object();
  choice["index"] = index;
  choice["delta"] = std::move(d);
  choice["logprobs"] = logprobs != nullptr ? ChatLogprobsJson(*logprobs) : Json(nullptr);
  choice["finish_reason"] = Finish(finish_reason);
  j["choices"] = Json::array({std::move(choice)});
  if (include_usage) j["usage"] = nullptr;
  return j;
}

ResponseJson UsageChunk(const ResponseMeta& meta, Endpoint endpoint, const Usage& usage) {
  Json j = Header(meta, endpoint == Endpoint::kChatCompletions ? "chat.completion.chunk"
                                                               : "text_completion");
  j["choices"] = Json::array();
  j["usage"] = UsageJson(usage);
  return j;
}

ResponseJson ModelList(absl::string_view model_id, int64_t created, absl::string_view owned_by) {
  Json model = Json::object();
  model["id"] = std::string(model_id);
  model["object"] = "model";
  model["created"] = created;
  model["owned_by"] = std::string(owned_by);
  Json j = Json::object();
  j["object"] = "list";
  j["data"] = Json::array({std::move(model)});
  return j;
}

std::string DumpJson(const ResponseJson& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string SseData(const ResponseJson& value) {
  std::string out = "data: ";
  out += DumpJson(value);
  out += "\n\n";
  return out;
}

std::string SseDone() { return "data: [DONE]\n\n"; }

}  // namespace tailor::service
