#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "tokenizer/unicode_text.h"

namespace tailor::tokenizer_internal {

// Owns the compiled code and a match context with limits; both are read-only after Compile
// (PCRE2 allows sharing them between threads). Match data is made per FindAll call.
struct Regex::Impl {
  pcre2_code* code = nullptr;
  pcre2_match_context* context = nullptr;
  ~Impl() {
    pcre2_match_context_free(context);
    pcre2_code_free(code);
  }
};

Regex::~Regex() = default;

absl::StatusOr<std::unique_ptr<Regex>> Regex::Compile(std::string_view pattern,
                                                      std::string_view where) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    return absl::InvalidArgumentError(absl::StrCat(
        AbslView(where), ": the regular expression does not compile (PCRE2: ",
        reinterpret_cast<const char*>(message), " at offset ", offset, ")"));
  }
  auto re = std::unique_ptr<Regex>(new Regex());
  re->impl_ = std::make_unique<Impl>();
  re->impl_->code = code;
  re->pattern_ = std::string(pattern);
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // without JIT support, the interpreter runs
  re->impl_->context = pcre2_match_context_create(nullptr);
  if (re->impl_->context == nullptr) return absl::ResourceExhaustedError("pcre2: out of memory");
  pcre2_set_match_limit(re->impl_->context, 10'000'000);
  pcre2_set_depth_limit(re->impl_->context, 100'000);
  return re;
}

std::vector<std::pair<size_t, size_t>> Regex::FindAll(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  if (data == nullptr) return matches;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    int rc = pcre2_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, data,
                         impl_->context);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {  // JIT code's stack is small: the interpreter's is not
      rc = pcre2_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                       data, impl_->context);
    }
    if (rc < 0) break;  // PCRE2_ERROR_NOMATCH, or a limit
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data);
    const size_t s = ov[0], e = ov[1];
    if (e < s) break;  // \K tricks; not in tokenizer patterns
    matches.emplace_back(s, e);
    if (e > s) {
      start = e;
    } else {
      if (e >= text.size()) break;
      start = e + CharLength(static_cast<uint8_t>(text[e]));
    }
  }
  pcre2_match_data_free(data);
  return matches;
}

absl::StatusOr<TextPattern> TextPattern::Parse(const JsonField& field) {
  TextPattern p;
  if (std::optional<JsonField> s = field.Get("String")) {
    TAILOR_ASSIGN_OR_RETURN(p.literal_, s->String());
    return p;
  }
  if (std::optional<JsonField> r = field.Get("Regex")) {
    TAILOR_ASSIGN_OR_RETURN(std::string pattern, r->String());
    return FromRegex(pattern, absl::StrCat(r->origin(), ": ", r->Name()));
  }
  return field.Error("expected {\"String\": ...} or {\"Regex\": ...}");
}

absl::StatusOr<TextPattern> TextPattern::FromRegex(std::string_view pattern,
                                                   std::string_view where) {
  TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<Regex> re, Regex::Compile(pattern, where));
  TextPattern p;
  p.regex_ = std::move(re);
  return p;
}

TextPattern TextPattern::Literal(std::string text) {
  TextPattern p;
  p.literal_ = std::move(text);
  return p;
}

std::vector<std::pair<size_t, size_t>> TextPattern::FindAll(std::string_view text) const {
  if (regex_ != nullptr) return regex_->FindAll(text);
  std::vector<std::pair<size_t, size_t>> matches;
  if (literal_.empty()) return matches;
  size_t pos = 0;
  while ((pos = text.find(literal_, pos)) != std::string_view::npos) {
    matches.emplace_back(pos, pos + literal_.size());
    pos += literal_.size();
  }
  return matches;
}

}  // namespace tailor::tokenizer_internal
