// A compiled regular expression run by PCRE2 (Debian's libpcre2-8) in UTF + UCP mode, so that
// \p{L}, \p{N}, \s, \w and case-insensitive groups have their Unicode meanings, with JIT
// compilation where the platform has it. Hugging Face tokenizers write their split patterns for
// Oniguruma; the ones in use (GPT-2, Llama 3, Qwen2) mean the same in PCRE2, except that \s
// follows PCRE2 (Unicode Z categories plus \h and \v: it includes U+0085 and U+180E and excludes
// U+FEFF, as Oniguruma does for the first and third).
//
// Immutable after Compile; FindAll is const and may be called from several threads at once.
#ifndef TAILOR_TOKENIZER_REGEX_H_
#define TAILOR_TOKENIZER_REGEX_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "tokenizer/json_field.h"

namespace tailor::tokenizer_internal {

class Regex {
 public:
  // Compiles `pattern` (UTF-8). An error names `where` and quotes PCRE2's message and offset.
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(std::string_view pattern,
                                                        std::string_view where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Every non-overlapping match in `text` (well-formed UTF-8), left to right, as [start, end)
  // byte offsets; an empty match advances the search by one character. Should PCRE2 give up
  // (its match limit, against catastrophic backtracking), the matches found so far are returned.
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view text) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string pattern_;
};

// The pattern of HF's Split pre-tokenizer and Replace normalizer/decoder: {"String": "..."}
// (a literal) or {"Regex": "..."}. Immutable; FindAll is thread-safe.
class TextPattern {
 public:
  // Reads the pattern object at `field` (its errors name the field).
  static absl::StatusOr<TextPattern> Parse(const JsonField& field);
  static TextPattern Literal(std::string text);
  static absl::StatusOr<TextPattern> FromRegex(std::string_view pattern, std::string_view where);

  // Non-overlapping matches, left to right, as Regex::FindAll; a literal matches where it
  // occurs (an empty literal nowhere).
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view text) const;
  bool is_literal() const { return regex_ == nullptr; }
  const std::string& literal() const { return literal_; }

 private:
  std::string literal_;
  std::shared_ptr<const Regex> regex_;  // shared by copies
};

}  // namespace tailor::tokenizer_internal

#endif  // TAILOR_TOKENIZER_REGEX_H_
