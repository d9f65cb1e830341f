#include "tokenizer/decoder.h"

#include <utility>

#include "common/status_macros.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/unicode_text.h"

namespace tailor::tokenizer_internal {
namespace {

using Kind = DecoderPipeline::Stage::Kind;

// The byte of a byte-fallback token "<0xXX>" (hex digits of either case), or -1.
int ByteTokenValue(std::string_view t) {
  if (t.size() != 6 || !t.starts_with("<0x") || t[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

std::string ReplaceLiteral(std::string_view s, std::string_view from, std::string_view to) {
  if (from.empty()) return std::string(s);
  std::string out;
  size_t pos = 0, found;
  while ((found = s.find(from, pos)) != std::string_view::npos) {
    out.append(s.substr(pos, found - pos));
    out.append(to);
    pos = found + from.size();
  }
  out.append(s.substr(pos));
  return out;
}

// A byte-level token's bytes: each character's byte, or the token's own bytes when some
// character stands for no byte (as HF's ByteLevel decoder does for added tokens).
std::string ByteLevelBytes(std::string_view token) {
  const ByteLevelTables& t = ByteLevelTables::Get();
  std::string bytes;
  bytes.reserve(token.size());
  size_t pos = 0;
  while (pos < token.size()) {
    size_t len;
    const int b = t.ByteOf(DecodeChar(token, pos, &len));
    if (b < 0) return std::string(token);
    bytes.push_back(static_cast<char>(b));
    pos += len;
  }
  return bytes;
}

// The one-character string of a field, checked.
absl::StatusOr<std::string> OneChar(const JsonField& parent, std::string_view key,
                                    std::string fallback) {
  TAILOR_ASSIGN_OR_RETURN(std::string s, parent.StringOr(key, std::move(fallback)));
  size_t len = 0;
  if (s.empty() || !IsValidUtf8(s) || (DecodeChar(s, 0, &len), len != s.size())) {
    return parent.Error("'", key, "' must be one character");
  }
  return s;
}

}  // namespace

absl::StatusOr<DecoderPipeline> DecoderPipeline::Parse(const std::optional<JsonField>& field) {
  DecoderPipeline p;
  if (!field) {
    Stage join;
    join.kind = Kind::kJoin;
    p.stages_.push_back(std::move(join));
    return p;
  }
  bool fused = false;
  TAILOR_RETURN_IF_ERROR(p.Add(*field, &fused));
  return p;
}

absl::Status DecoderPipeline::Add(const JsonField& field, bool* fused) {
  TAILOR_ASSIGN_OR_RETURN(std::string type,
                          field.Type({"ByteLevel", "ByteFallback", "Replace", "Fuse", "Strip",
                                      "Metaspace", "Sequence"}));
  if (type == "Sequence") {
    TAILOR_ASSIGN_OR_RETURN(JsonField list, field.Require("decoders"));
    if (!list.is_array()) return list.Error("expected an array");
    for (size_t i = 0; i < list.size(); ++i) TAILOR_RETURN_IF_ERROR(Add(list.At(i), fused));
    return absl::OkStatus();
  }
  Stage s;
  s.fused_input = *fused;
  if (type == "ByteLevel" || type == "ByteFallback") {
    if (*fused) {
      return field.Error("a ", type, " decoder after one that fuses tokens (Fuse, ByteLevel) ",
                         "is not supported");
    }
    s.kind = type == "ByteLevel" ? Kind::kByteLevel : Kind::kByteFallback;
    if (type == "ByteLevel") *fused = true;
  } else if (type == "Replace") {
    s.kind = Kind::kReplace;
    TAILOR_ASSIGN_OR_RETURN(JsonField pattern, field.Require("pattern"));
    std::optional<JsonField> literal = pattern.Get("String");
    if (!literal) {
      return pattern.Error("only {\"String\": ...} patterns are supported in decoders");
    }
    TAILOR_ASSIGN_OR_RETURN(s.from, literal->String());
    TAILOR_ASSIGN_OR_RETURN(JsonField content, field.Require("content"));
    TAILOR_ASSIGN_OR_RETURN(s.to, content.String());
  } else if (type == "Fuse") {
    s.kind = Kind::kFuse;
    *fused = true;
  } else if (type == "Strip") {
    s.kind = Kind::kStrip;
    TAILOR_ASSIGN_OR_RETURN(s.from, OneChar(field, "content", " "));
    TAILOR_ASSIGN_OR_RETURN(int64_t start, field.IntOr("start", 0));
    TAILOR_ASSIGN_OR_RETURN(int64_t stop, field.IntOr("stop", 0));
    if (start < 0 || stop < 0) return field.Error("'start' and 'stop' must not be negative");
    s.strip_start = static_cast<size_t>(start);
    s.strip_stop = static_cast<size_t>(stop);
  } else {  // Metaspace
    s.kind = Kind::kMetaspace;
    TAILOR_ASSIGN_OR_RETURN(s.from, OneChar(field, "replacement", "\xE2\x96\x81"));
    if (std::optional<JsonField> scheme = field.Get("prepend_scheme")) {
      TAILOR_ASSIGN_OR_RETURN(std::string v, scheme->String());
      if (v != "always" && v != "first" && v != "never") {
        return scheme->Error("\"", v, "\" is not supported (supported: always, first, never)");
      }
      s.drop_in_first = v != "never";
    } else {
      TAILOR_ASSIGN_OR_RETURN(s.drop_in_first, field.BoolOr("add_prefix_space", true));
    }
  }
  stages_.push_back(std::move(s));
  return absl::OkStatus();
}

std::string DecoderPipeline::TokenText(std::string_view token) const {
  std::string s(token);
  for (const Stage& st : stages_) {
    switch (st.kind) {
      case Kind::kByteLevel:
        s = ByteLevelBytes(s);
        break;
      case Kind::kByteFallback:
        if (const int b = ByteTokenValue(s); b >= 0) s = std::string(1, static_cast<char>(b));
        break;
      case Kind::kReplace:
        s = ReplaceLiteral(s, st.from, st.to);
        break;
      case Kind::kMetaspace:
        s = ReplaceLiteral(s, st.from, " ");
        break;
      default:
        break;
    }
  }
  return s;
}

DecodeStream::DecodeStream(const DecoderPipeline& pipeline)
    : pipeline_(&pipeline), states_(pipeline.stages().size()) {}

void DecodeStream::Push(std::string_view token, std::string* out) {
  std::vector<Chunk> chunks;
  chunks.push_back(Chunk{std::string(token), true});
  Run(0, std::move(chunks), out);
}

void DecodeStream::Run(size_t first_stage, std::vector<Chunk> chunks, std::string* out) {
  const size_t n = pipeline_->stages().size();
  for (size_t i = first_stage; i < n && !chunks.empty(); ++i) {
    std::vector<Chunk> next;
    for (Chunk& c : chunks) Process(i, std::move(c), &next);
    chunks = std::move(next);
  }
  for (const Chunk& c : chunks) out->append(c.text);
}

void DecodeStream::Finish(std::string* out) {
  const size_t n = pipeline_->stages().size();
  std::vector<Chunk> carry;
  for (size_t i = 0; i < n; ++i) {
    std::vector<Chunk> next;
    for (Chunk& c : carry) Process(i, std::move(c), &next);
    FinishStage(i, &next);
    carry = std::move(next);
  }
  for (const Chunk& c : carry) out->append(c.text);
}

void DecodeStream::Process(size_t i, Chunk chunk, std::vector<Chunk>* next) {
  const DecoderPipeline::Stage& st = pipeline_->stages()[i];
  State& state = states_[i];
  switch (st.kind) {
    case Kind::kByteLevel: {
      state.held += ByteLevelBytes(chunk.text);
      std::string text;
      state.held.erase(0, AppendUtf8Lossy(state.held, /*final=*/false, &text));
      if (!text.empty()) next->push_back(Chunk{std::move(text), state.count++ == 0});
      return;
    }
    case Kind::kByteFallback: {
      const int b = ByteTokenValue(chunk.text);
      if (b < 0) {
        FinishStage(i, next);
        next->push_back(std::move(chunk));
      } else if (state.flag) {  // the run is already invalid: one U+FFFD per byte token
        next->push_back(Chunk{std::string(kReplacementChar), true});
      } else {
        state.held.push_back(static_cast<char>(b));
        if (!IsValidUtf8Prefix(state.held)) {
          for (size_t k = 0; k < state.held.size(); ++k) {
            next->push_back(Chunk{std::string(kReplacementChar), true});
          }
          state.held.clear();
          state.flag = true;
        }
      }
      return;
    }
    case Kind::kReplace: {
      if (!st.fused_input) {
        next->push_back(Chunk{ReplaceLiteral(chunk.text, st.from, st.to), chunk.new_token});
        return;
      }
      std::string buf = std::move(state.held) + chunk.text;
      state.held.clear();
      std::string text;
      size_t pos = 0, found;
      while (!st.from.empty() && (found = buf.find(st.from, pos)) != std::string::npos) {
        text.append(buf, pos, found - pos);
        text.append(st.to);
        pos = found + st.from.size();
      }
      // Hold the longest tail that could still begin a match.
      size_t keep = std::min(st.from.empty() ? 0 : st.from.size() - 1, buf.size() - pos);
      while (keep > 0 && !std::string_view(st.from).starts_with(std::string_view(buf).substr(buf.size() - keep))) {
        --keep;
      }
      text.append(buf, pos, buf.size() - pos - keep);
      state.held = buf.substr(buf.size() - keep);
      if (!text.empty()) next->push_back(Chunk{std::move(text), false});
      return;
    }
    case Kind::kFuse:
      if (!chunk.text.empty()) next->push_back(Chunk{std::move(chunk.text), state.count++ == 0});
      return;
    case Kind::kStrip: {
      std::string_view t = chunk.text;
      const std::string_view c = st.from;
      if (!st.fused_input) {  // each token on its own
        for (size_t k = 0; k < st.strip_start && t.starts_with(c); ++k) t.remove_prefix(c.size());
        for (size_t k = 0; k < st.strip_stop && t.ends_with(c); ++k) t.remove_suffix(c.size());
        next->push_back(Chunk{std::string(t), chunk.new_token});
        return;
      }
      if (!state.flag) {  // the start of the fused text
        while (state.count < st.strip_start && t.starts_with(c)) {
          t.remove_prefix(c.size());
          ++state.count;
        }
        state.flag = !t.empty() || state.count >= st.strip_start;
      }
      if (t.empty()) return;
      std::string buf = std::move(state.held);
      buf.append(t);
      size_t trailing = 0;  // held back: they are stripped if the text ends here
      while (trailing < st.strip_stop &&
             std::string_view(buf).substr(0, buf.size() - trailing * c.size()).ends_with(c)) {
        ++trailing;
      }
      const size_t cut = buf.size() - trailing * c.size();
      state.held = buf.substr(cut);
      buf.resize(cut);
      if (!buf.empty()) next->push_back(Chunk{std::move(buf), false});
      return;
    }
    case Kind::kMetaspace: {
      const bool first = st.fused_input || state.count++ == 0;
      next->push_back(Chunk{ReplaceLiteral(chunk.text, st.from, first && st.drop_in_first ? "" : " "),
                            chunk.new_token});
      return;
    }
    case Kind::kJoin:
      next->push_back(Chunk{state.count++ == 0 ? std::move(chunk.text) : " " + chunk.text, false});
      return;
  }
}

void DecodeStream::FinishStage(size_t i, std::vector<Chunk>* next) {
  const DecoderPipeline::Stage& st = pipeline_->stages()[i];
  State& state = states_[i];
  switch (st.kind) {
    case Kind::kByteLevel: {
      std::string text;
      AppendUtf8Lossy(state.held, /*final=*/true, &text);
      state.held.clear();
      if (!text.empty()) next->push_back(Chunk{std::move(text), state.count++ == 0});
      return;
    }
    case Kind::kByteFallback:
      if (!state.held.empty()) {
        if (IsValidUtf8(state.held)) {
          next->push_back(Chunk{std::move(state.held), true});
        } else {
          for (size_t k = 0; k < state.held.size(); ++k) {
            next->push_back(Chunk{std::string(kReplacementChar), true});
          }
        }
      }
      state.held.clear();
      state.flag = false;
      return;
    case Kind::kReplace:
      if (!state.held.empty()) next->push_back(Chunk{std::move(state.held), false});
      state.held.clear();
      return;
    case Kind::kStrip:
      state.held.clear();  // trailing characters of the whole text: stripped
      return;
    default:
      return;
  }
}

}  // namespace tailor::tokenizer_internal
