#include "service/tool_call_parser.h"

#include <optional>
#include <utility>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "service/json_scan.h"

namespace tailor::service {
namespace {

using OJson = nlohmann::ordered_json;

constexpr char kOpen[] = "<tool_call>";
constexpr char kClose[] = "</tool_call>";
constexpr char kPythonTag[] = "<|python_tag|>";
constexpr size_t kOpenSize = sizeof(kOpen) - 1;
constexpr size_t kCloseSize = sizeof(kClose) - 1;
constexpr size_t kPythonTagSize = sizeof(kPythonTag) - 1;

bool IsSpace(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isspace(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// A call from one JSON object {"name": string, "arguments" | "parameters": object or JSON string}.
std::optional<ToolCall> CallFromObject(const OJson& j) {
  if (!j.is_object()) return std::nullopt;
  auto name = j.find("name");
  if (name == j.end() || !name->is_string() || name->get<std::string>().empty()) return std::nullopt;
  ToolCall call;
  call.name = name->get<std::string>();
  auto args = j.find("arguments");
  if (args == j.end()) args = j.find("parameters");
  if (args == j.end() || args->is_null()) {
    call.arguments = "{}";
  } else if (args->is_object()) {
    call.arguments = args->dump(-1, ' ', false, OJson::error_handler_t::replace);
  } else if (args->is_string()) {
    const OJson inner = OJson::parse(args->get<std::string>(), nullptr, /*allow_exceptions=*/false);
    if (!inner.is_object()) return std::nullopt;
    call.arguments = inner.dump(-1, ' ', false, OJson::error_handler_t::replace);
  } else {
    return std::nullopt;
  }
  return call;
}

std::optional<ToolCall> CallFromText(absl::string_view text) {
  const OJson j = OJson::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  return CallFromObject(j);
}

// The length of the longest suffix of `text` that is a proper prefix of `tag`.
size_t PartialTagSuffix(absl::string_view text, absl::string_view tag) {
  for (size_t n = std::min(text.size(), tag.size() - 1); n > 0; --n) {
    if (absl::EndsWith(text, tag.substr(0, n))) return n;
  }
  return 0;
}

// The end (one past the closing brace) of the JSON object starting at text[0] == '{', or npos
// when it does not close.
size_t ObjectEnd(absl::string_view text) {
  const size_t close = ScanJsonBrackets(text, [](size_t, int64_t depth) { return depth == 0; });
  return close == absl::string_view::npos ? close : close + 1;
}

// kLlama3Json: `text` (python tag already removed) as calls separated by ';', or nullopt.
std::optional<std::vector<ToolCall>> Llama3Calls(absl::string_view text) {
  std::vector<ToolCall> calls;
  text = absl::StripAsciiWhitespace(text);
  while (!text.empty()) {
    if (text[0] != '{') return std::nullopt;
    const size_t end = ObjectEnd(text);
    if (end == absl::string_view::npos) return std::nullopt;
    std::optional<ToolCall> call = CallFromText(text.substr(0, end));
    if (!call) return std::nullopt;
    calls.push_back(*std::move(call));
    text = absl::StripLeadingAsciiWhitespace(text.substr(end));
    if (!text.empty() && text[0] == ';') text = absl::StripLeadingAsciiWhitespace(text.substr(1));
  }
  if (calls.empty()) return std::nullopt;
  return calls;
}

// `{"name": "NAME", "arguments": ` (any JSON whitespace) at the start of `body`, followed by the
// arguments' '{': the name and the arguments' offset. nullopt if `body` does not (yet) read so.
std::optional<std::pair<std::string, size_t>> MatchHead(absl::string_view body) {
  size_t i = 0;
  auto ws = [&] {
    while (i < body.size() && absl::ascii_isspace(static_cast<unsigned char>(body[i]))) ++i;
  };
  auto lit = [&](absl::string_view t) {
    if (body.substr(i, t.size()) != t) return false;
    i += t.size();
    return true;
  };
  ws();
  if (!lit("{")) return std::nullopt;
  ws();
  if (!lit("\"name\"")) return std::nullopt;
  ws();
  if (!lit(":")) return std::nullopt;
  ws();
  if (!lit("\"")) return std::nullopt;
  const size_t name_start = i;
  while (i < body.size() && body[i] != '"' && body[i] != '\\') ++i;
  if (i >= body.size() || body[i] != '"' || i == name_start) return std::nullopt;
  std::string name(body.substr(name_start, i - name_start));
  ++i;
  ws();
  if (!lit(",")) return std::nullopt;
  ws();
  if (!lit("\"arguments\"")) return std::nullopt;
  ws();
  if (!lit(":")) return std::nullopt;
  ws();
  if (i >= body.size() || body[i] != '{') return std::nullopt;
  return std::make_pair(std::move(name), i);
}

// The end of the arguments in text[start, end): before trailing whitespace, one '}' (the call
// object's) and whitespace before it.
size_t ArgumentsEnd(absl::string_view text, size_t start, size_t end) {
  auto skip_ws = [&] {
    while (end > start && absl::ascii_isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  };
  skip_ws();
  if (end > start && text[end - 1] == '}') --end;
  skip_ws();
  return end;
}

}  // namespace

void ToolCallStreamParser::AddCall(const ToolCall& call, Output* out) {
  const int32_t index = num_calls_++;
  out->pieces.push_back({index, true, call.name, ""});
  out->pieces.push_back({index, false, "", call.arguments});
}

void ToolCallStreamParser::EmitContent(absl::string_view text, Output* out) {
  size_t last = text.size();
  while (last > 0 && absl::ascii_isspace(static_cast<unsigned char>(text[last - 1]))) --last;
  if (last == 0) {  // whitespace: held until non-space content follows (dropped if none does)
    absl::StrAppend(&pending_space_, text);
    return;
  }
  std::string piece = absl::StrCat(pending_space_, text.substr(0, last));
  pending_space_ = std::string(text.substr(last));
  if (!emitted_ && num_calls_ > 0) {  // content that starts after a call: no leading whitespace
    piece = std::string(absl::StripLeadingAsciiWhitespace(piece));
  }
  emitted_ = true;
  absl::StrAppend(&out->content, piece);
}

ToolCallStreamParser::Output ToolCallStreamParser::Push(absl::string_view text) {
  if (finished_) return {};
  absl::StrAppend(&buffer_, text);
  return format_ == ToolCallFormat::kLlama3Json ? PushLlama3(false) : PushHermes();
}

ToolCallStreamParser::Output ToolCallStreamParser::PushHermes() {
  Output out;
  for (;;) {
    if (!in_call_) {
      const size_t open = buffer_.find(kOpen);
      if (open == std::string::npos) {
        const size_t keep = PartialTagSuffix(buffer_, kOpen);
        EmitContent(absl::string_view(buffer_).substr(0, buffer_.size() - keep), &out);
        buffer_.erase(0, buffer_.size() - keep);
        return out;
      }
      EmitContent(absl::string_view(buffer_).substr(0, open), &out);
      buffer_.erase(0, open + kOpenSize);
      in_call_ = true;
    }
    if (!streaming_) {
      if (auto head = MatchHead(buffer_)) {
        streaming_ = true;
        call_index_ = num_calls_++;
        args_start_ = head->second;
        args_sent_ = 0;
        out.pieces.push_back({call_index_, true, head->first, ""});
      }
    }
    const size_t close = buffer_.find(kClose);
    if (close == std::string::npos) {
      if (streaming_) {  // send the arguments but what may still be the end of the call
        SendArguments(ArgumentsEnd(buffer_, args_start_, buffer_.size() - PartialTagSuffix(buffer_, kClose)), &out);
      }
      return out;
    }
    const absl::string_view body = absl::string_view(buffer_).substr(0, close);
    if (streaming_) {
      SendArguments(ArgumentsEnd(body, args_start_, body.size()), &out);
      streaming_ = false;
    } else if (std::optional<ToolCall> call = CallFromText(body)) {
      AddCall(*call, &out);
    } else {
      EmitContent(absl::StrCat(kOpen, body, kClose), &out);
    }
    buffer_.erase(0, close + kCloseSize);
    in_call_ = false;
  }
}

void ToolCallStreamParser::SendArguments(size_t end, Output* out) {
  const size_t from = args_start_ + args_sent_;
  if (end <= from) return;
  out->pieces.push_back({call_index_, false, "", buffer_.substr(from, end - from)});
  args_sent_ = end - args_start_;
}

ToolCallStreamParser::Output ToolCallStreamParser::PushLlama3(bool finish) {
  Output out;
  if (llama3_decided_) {
    EmitContent(buffer_, &out);
    buffer_.clear();
    return out;
  }
  absl::string_view rest = absl::StripLeadingAsciiWhitespace(buffer_);
  bool maybe_call = rest.empty() || (rest.size() < kPythonTagSize && absl::StartsWith(kPythonTag, rest));
  if (absl::StartsWith(rest, kPythonTag)) rest = absl::StripLeadingAsciiWhitespace(rest.substr(kPythonTagSize));
  if (!maybe_call) maybe_call = rest.empty() || rest[0] == '{';
  if (maybe_call && !finish) return out;  // held until the output ends
  if (maybe_call && !rest.empty()) {
    if (std::optional<std::vector<ToolCall>> calls = Llama3Calls(rest)) {
      for (const ToolCall& call : *calls) AddCall(call, &out);
      buffer_.clear();
      return out;
    }
  }
  llama3_decided_ = true;
  EmitContent(buffer_, &out);
  buffer_.clear();
  return out;
}

ToolCallStreamParser::Output ToolCallStreamParser::Finish() {
  if (finished_) return {};
  Output out;
  if (format_ == ToolCallFormat::kLlama3Json) {
    out = PushLlama3(true);
  } else if (in_call_ && streaming_) {  // cut short inside a call: what was written of it
    SendArguments(ArgumentsEnd(buffer_, args_start_, buffer_.size() - PartialTagSuffix(buffer_, kClose)), &out);
    streaming_ = false;
  } else if (in_call_) {
    if (std::optional<ToolCall> call = CallFromText(buffer_)) {
      AddCall(*call, &out);
    } else {
      EmitContent(absl::StrCat(kOpen, buffer_), &out);
    }
  } else {
    EmitContent(buffer_, &out);
  }
  buffer_.clear();
  in_call_ = false;
  if (num_calls_ == 0) absl::StrAppend(&out.content, pending_space_);
  pending_space_.clear();
  finished_ = true;
  return out;
}

void AppendPieces(const std::vector<ToolCallPiece>& pieces, std::vector<ToolCall>* calls) {
  for (const ToolCallPiece& p : pieces) {
    if (p.head) {
      calls->push_back(ToolCall{"", p.name, ""});
    } else if (!calls->empty()) {
      calls->back().arguments += p.arguments;
    }
  }
}

ParsedToolOutput ParseToolCalls(absl::string_view text, ToolCallFormat format) {
  ToolCallStreamParser parser(format);
  ToolCallStreamParser::Output a = parser.Push(text);
  ToolCallStreamParser::Output b = parser.Finish();
  ParsedToolOutput out;
  out.content = absl::StrCat(a.content, b.content);
  AppendPieces(a.pieces, &out.calls);
  AppendPieces(b.pieces, &out.calls);
  if (!out.calls.empty() && IsSpace(out.content)) out.content.clear();
  return out;
}

}  // namespace tailor::service
