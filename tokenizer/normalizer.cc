#include "tokenizer/normalizer.h"

#include <utility>

#include "common/status_macros.h"

namespace tailor::tokenizer_internal {
namespace {

// Replaces every match of `pattern` in `text` with `content` (empty matches are left alone).
std::string ReplaceAll(const TextPattern& pattern, const std::string& content, std::string text) {
  const std::vector<std::pair<size_t, size_t>> matches = pattern.FindAll(text);
  if (matches.empty()) return text;
  std::string out;
  out.reserve(text.size());
  size_t last = 0;
  for (const auto& [start, end] : matches) {
    if (start == end) continue;
    out.append(text, last, start - last);
    out.append(content);
    last = end;
  }
  out.append(text, last, std::string::npos);
  return out;
}

// Byte length of the white space at the start (from_end false) or end of `text`.
size_t WhiteSpaceRun(std::string_view text, bool from_end) {
  if (!from_end) {
    size_t pos = 0;
    while (pos < text.size()) {
      size_t len;
      if (!IsWhiteSpace(DecodeChar(text, pos, &len))) break;
      pos += len;
    }
    return pos;
  }
  size_t end = text.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
    size_t len;
    if (!IsWhiteSpace(DecodeChar(text, start, &len))) break;
    end = start;
  }
  return text.size() - end;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> Normalizer::Parse(const JsonField& field) {
  TAILOR_ASSIGN_OR_RETURN(std::string type,
                          field.Type({"NFC", "NFD", "NFKC", "NFKD", "Replace", "Prepend", "Strip",
                                      "Sequence"}));
  auto n = std::unique_ptr<Normalizer>(new Normalizer());
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    n->kind_ = Kind::kUnicode;
    n->form_ = type == "NFC"    ? NormalForm::kNfc
               : type == "NFD"  ? NormalForm::kNfd
               : type == "NFKC" ? NormalForm::kNfkc
                                : NormalForm::kNfkd;
  } else if (type == "Replace") {
    n->kind_ = Kind::kReplace;
    TAILOR_ASSIGN_OR_RETURN(JsonField pattern, field.Require("pattern"));
    TAILOR_ASSIGN_OR_RETURN(TextPattern p, TextPattern::Parse(pattern));
    n->pattern_ = std::make_unique<TextPattern>(std::move(p));
    TAILOR_ASSIGN_OR_RETURN(JsonField content, field.Require("content"));
    TAILOR_ASSIGN_OR_RETURN(n->content_, content.String());
  } else if (type == "Prepend") {
    n->kind_ = Kind::kPrepend;
    TAILOR_ASSIGN_OR_RETURN(JsonField prepend, field.Require("prepend"));
    TAILOR_ASSIGN_OR_RETURN(n->content_, prepend.String());
  } else if (type == "Strip") {
    n->kind_ = Kind::kStrip;
    TAILOR_ASSIGN_OR_RETURN(n->strip_left_, field.BoolOr("strip_left", false));
    TAILOR_ASSIGN_OR_RETURN(n->strip_right_, field.BoolOr("strip_right", false));
  } else {
    n->kind_ = Kind::kSequence;
    TAILOR_ASSIGN_OR_RETURN(JsonField list, field.Require("normalizers"));
    if (!list.is_array()) return list.Error("expected an array");
    for (size_t i = 0; i < list.size(); ++i) {
      TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<Normalizer> child, Parse(list.At(i)));
      n->children_.push_back(std::move(child));
    }
  }
  return n;
}

std::string Normalizer::Apply(std::string text) const {
  switch (kind_) {
    case Kind::kUnicode:
      return NormalizeUnicode(text, form_);
    case Kind::kReplace:
      return ReplaceAll(*pattern_, content_, std::move(text));
    case Kind::kPrepend:
      return text.empty() ? text : content_ + text;
    case Kind::kStrip: {
      const size_t right = strip_right_ ? WhiteSpaceRun(text, /*from_end=*/true) : 0;
      text.resize(text.size() - right);
      const size_t left = strip_left_ ? WhiteSpaceRun(text, /*from_end=*/false) : 0;
      return text.substr(left);
    }
    case Kind::kSequence:
      for (const auto& child : children_) text = child->Apply(std::move(text));
      return text;
  }
  return text;
}

}  // namespace tailor::tokenizer_internal
