// The "normalizer" of a Hugging Face tokenizer.json, applied to each stretch of text between
// added tokens before pre-tokenization. Supported types:
//   NFC, NFD, NFKC, NFKD   Unicode normalization (libutf8proc)
//   Replace                {"pattern": {"String"|"Regex": ...}, "content": "..."}: every match
//   Prepend                {"prepend": "▁"}: in front of non-empty text
//   Strip                  {"strip_left": bool, "strip_right": bool}: Unicode white space
//   Sequence               {"normalizers": [...]}: in order
// Anything else is refused with an error naming the file, the field and the supported types.
//
// Immutable after Parse; Apply is const and thread-safe.
#ifndef TAILOR_TOKENIZER_NORMALIZER_H_
#define TAILOR_TOKENIZER_NORMALIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tokenizer/json_field.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode_text.h"

namespace tailor::tokenizer_internal {

class Normalizer {
 public:
  static absl::StatusOr<std::unique_ptr<Normalizer>> Parse(const JsonField& field);

  // `text` (well-formed UTF-8) normalized.
  std::string Apply(std::string text) const;

 private:
  enum class Kind { kUnicode, kReplace, kPrepend, kStrip, kSequence };
  Normalizer() = default;

  Kind kind_ = Kind::kSequence;
  NormalForm form_ = NormalForm::kNfc;            // kUnicode
  std::unique_ptr<TextPattern> pattern_;          // kReplace
  std::string content_;                           // kReplace: replacement; kPrepend: prefix
  bool strip_left_ = false, strip_right_ = false;  // kStrip
  std::vector<std::unique_ptr<Normalizer>> children_;  // kSequence
};

}  // namespace tailor::tokenizer_internal

#endif  // TAILOR_TOKENIZER_NORMALIZER_H_
