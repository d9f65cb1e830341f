#include "tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "common/status_macros.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/unicode_text.h"

namespace tailor::tokenizer_internal {
namespace {

using Spans = std::vector<std::tuple<size_t, size_t, bool>>;

// GPT-2's split, which ByteLevel's use_regex runs.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// HF's Whitespace pre-tokenizer keeps these runs.
constexpr std::string_view kWordsPattern = R"(\w+|[^\w\s]+)";

// Match ranges -> spans covering `size` bytes.
Spans SpansFromMatches(const std::vector<std::pair<size_t, size_t>>& matches, size_t size,
                       bool invert) {
  Spans spans;
  size_t prev = 0;
  for (const auto& [start, end] : matches) {
    if (prev < start) spans.emplace_back(prev, start, invert);
    spans.emplace_back(start, end, !invert);
    prev = end;
  }
  if (prev < size) spans.emplace_back(prev, size, invert);
  return spans;
}

// Spans where each character satisfying `pred` is a match of its own.
template <typename Pred>
Spans SpansFromChars(std::string_view text, Pred pred) {
  Spans spans;
  size_t last = 0, pos = 0;
  while (pos < text.size()) {
    size_t len;
    const char32_t cp = DecodeChar(text, pos, &len);
    if (pred(cp)) {
      if (last < pos) spans.emplace_back(last, pos, false);
      spans.emplace_back(pos, pos + len, true);
      last = pos + len;
    }
    pos += len;
  }
  if (last < text.size()) spans.emplace_back(last, text.size(), false);
  return spans;
}

absl::StatusOr<SplitBehavior> ParseBehavior(const JsonField& field) {
  TAILOR_ASSIGN_OR_RETURN(std::string b, field.String());
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  return field.Error("\"", b, "\" is not supported (supported: Removed, Isolated, ",
                     "MergedWithPrevious, MergedWithNext, Contiguous)");
}

}  // namespace

std::vector<std::pair<size_t, size_t>> SplitSpans(const Spans& spans, SplitBehavior behavior) {
  std::vector<std::pair<size_t, size_t>> out;
  out.reserve(spans.size());
  bool prev_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const auto& [s, e, m] : spans) out.emplace_back(s, e);
      break;
    case SplitBehavior::kRemoved:
      for (const auto& [s, e, m] : spans) {
        if (!m) out.emplace_back(s, e);
      }
      break;
    case SplitBehavior::kContiguous:
      for (const auto& [s, e, m] : spans) {
        if (m == prev_match && !out.empty()) {
          out.back().second = e;
        } else {
          out.emplace_back(s, e);
        }
        prev_match = m;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const auto& [s, e, m] : spans) {
        if (m && !prev_match && !out.empty()) {
          out.back().second = e;
        } else {
          out.emplace_back(s, e);
        }
        prev_match = m;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        const auto& [s, e, m] = *it;
        if (m && !prev_match && !out.empty()) {
          out.back().first = s;
        } else {
          out.emplace_back(s, e);
        }
        prev_match = m;
      }
      std::reverse(out.begin(), out.end());
      break;
  }
  std::erase_if(out, [](const auto& r) { return r.first == r.second; });
  return out;
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizer::Parse(const JsonField& field) {
  TAILOR_ASSIGN_OR_RETURN(std::string type,
                          field.Type({"Split", "ByteLevel", "Metaspace", "Digits", "Whitespace",
                                      "WhitespaceSplit", "Sequence"}));
  auto p = std::unique_ptr<PreTokenizer>(new PreTokenizer());
  if (type == "Split") {
    p->kind_ = Kind::kSplit;
    TAILOR_ASSIGN_OR_RETURN(JsonField pattern, field.Require("pattern"));
    TAILOR_ASSIGN_OR_RETURN(TextPattern tp, TextPattern::Parse(pattern));
    p->pattern_ = std::make_unique<TextPattern>(std::move(tp));
    TAILOR_ASSIGN_OR_RETURN(JsonField behavior, field.Require("behavior"));
    TAILOR_ASSIGN_OR_RETURN(p->behavior_, ParseBehavior(behavior));
    TAILOR_ASSIGN_OR_RETURN(p->invert_, field.BoolOr("invert", false));
  } else if (type == "ByteLevel") {
    p->kind_ = Kind::kByteLevel;
    TAILOR_ASSIGN_OR_RETURN(p->add_prefix_space_, field.BoolOr("add_prefix_space", true));
    TAILOR_ASSIGN_OR_RETURN(bool use_regex, field.BoolOr("use_regex", true));
    if (use_regex) {
      TAILOR_ASSIGN_OR_RETURN(TextPattern tp, TextPattern::FromRegex(kGpt2Pattern, "GPT-2 split"));
      p->pattern_ = std::make_unique<TextPattern>(std::move(tp));
    }
  } else if (type == "Metaspace") {
    p->kind_ = Kind::kMetaspace;
    TAILOR_ASSIGN_OR_RETURN(p->replacement_, field.StringOr("replacement", "\xE2\x96\x81"));
    size_t len = 0;
    if (p->replacement_.empty() || !IsValidUtf8(p->replacement_) ||
        (DecodeChar(p->replacement_, 0, &len), len != p->replacement_.size())) {
      return field.Error("'replacement' must be one character");
    }
    TAILOR_ASSIGN_OR_RETURN(p->split_, field.BoolOr("split", true));
    if (std::optional<JsonField> scheme = field.Get("prepend_scheme")) {
      TAILOR_ASSIGN_OR_RETURN(std::string s, scheme->String());
      if (s == "always") {
        p->prepend_ = Prepend::kAlways;
      } else if (s == "first") {
        p->prepend_ = Prepend::kFirst;
      } else if (s == "never") {
        p->prepend_ = Prepend::kNever;
      } else {
        return scheme->Error("\"", s, "\" is not supported (supported: always, first, never)");
      }
    } else {
      TAILOR_ASSIGN_OR_RETURN(bool add, field.BoolOr("add_prefix_space", true));
      p->prepend_ = add ? Prepend::kAlways : Prepend::kNever;
    }
  } else if (type == "Digits") {
    p->kind_ = Kind::kDigits;
    TAILOR_ASSIGN_OR_RETURN(p->individual_digits_, field.BoolOr("individual_digits", false));
  } else if (type == "Whitespace") {
    p->kind_ = Kind::kWhitespace;
    TAILOR_ASSIGN_OR_RETURN(TextPattern tp, TextPattern::FromRegex(kWordsPattern, "Whitespace"));
    p->pattern_ = std::make_unique<TextPattern>(std::move(tp));
  } else if (type == "WhitespaceSplit") {
    p->kind_ = Kind::kWhitespaceSplit;
  } else {
    p->kind_ = Kind::kSequence;
    TAILOR_ASSIGN_OR_RETURN(JsonField list, field.Require("pretokenizers"));
    if (!list.is_array()) return list.Error("expected an array");
    for (size_t i = 0; i < list.size(); ++i) {
      TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<PreTokenizer> child, Parse(list.At(i)));
      p->children_.push_back(std::move(child));
    }
  }
  return p;
}

void PreTokenizer::SplitPiece(PreToken piece, std::vector<PreToken>* out) const {
  std::string& text = piece.text;
  Spans spans;
  SplitBehavior behavior = behavior_;
  switch (kind_) {
    case Kind::kSplit:
      spans = SpansFromMatches(pattern_->FindAll(text), text.size(), invert_);
      break;
    case Kind::kByteLevel: {
      if (add_prefix_space_ && !text.empty() && text[0] != ' ') text.insert(0, 1, ' ');
      if (pattern_ != nullptr) {
        spans = SpansFromMatches(pattern_->FindAll(text), text.size(), false);
      } else {
        spans.emplace_back(0, text.size(), false);
      }
      behavior = SplitBehavior::kIsolated;
      const ByteLevelTables& bl = ByteLevelTables::Get();
      for (const auto& [s, e] : SplitSpans(spans, behavior)) {
        PreToken t;
        t.at_origin = piece.at_origin && s == 0;
        t.text.reserve((e - s) * 2);
        for (size_t i = s; i < e; ++i) t.text += bl.byte_to_text[static_cast<uint8_t>(text[i])];
        out->push_back(std::move(t));
      }
      return;
    }
    case Kind::kMetaspace: {
      std::string replaced;
      replaced.reserve(text.size() + 8);
      for (char c : text) {
        if (c == ' ') {
          replaced += replacement_;
        } else {
          replaced.push_back(c);
        }
      }
      const bool prepend = prepend_ == Prepend::kAlways ||
                           (prepend_ == Prepend::kFirst && piece.at_origin);
      if (prepend && !replaced.empty() && !replaced.starts_with(replacement_)) {
        replaced.insert(0, replacement_);
      }
      text = std::move(replaced);
      if (!split_) {
        if (!text.empty()) out->push_back(std::move(piece));
        return;
      }
      spans = SpansFromMatches(TextPattern::Literal(replacement_).FindAll(text), text.size(), false);
      behavior = SplitBehavior::kMergedWithNext;
      break;
    }
    case Kind::kDigits:
      spans = SpansFromChars(text, IsNumeric);
      behavior = individual_digits_ ? SplitBehavior::kIsolated : SplitBehavior::kContiguous;
      break;
    case Kind::kWhitespace:
      spans = SpansFromMatches(pattern_->FindAll(text), text.size(), /*invert=*/true);
      behavior = SplitBehavior::kRemoved;
      break;
    case Kind::kWhitespaceSplit:
      spans = SpansFromChars(text, IsWhiteSpace);
      behavior = SplitBehavior::kRemoved;
      break;
    case Kind::kSequence:
      break;  // handled by Apply
  }
  for (const auto& [s, e] : SplitSpans(spans, behavior)) {
    out->push_back(PreToken{text.substr(s, e - s), piece.at_origin && s == 0});
  }
}

void PreTokenizer::Apply(std::vector<PreToken>* pieces) const {
  if (kind_ == Kind::kSequence) {
    for (const auto& child : children_) child->Apply(pieces);
    return;
  }
  std::vector<PreToken> out;
  out.reserve(pieces->size() * 2);
  for (PreToken& piece : *pieces) SplitPiece(std::move(piece), &out);
  *pieces = std::move(out);
}

}  // namespace tailor::tokenizer_internal
