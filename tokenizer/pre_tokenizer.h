// The "pre_tokenizer" of a Hugging Face tokenizer.json: splits normalized text into the words
// the model tokenizes one by one. Supported types:
//   Split            {"pattern": {"String"|"Regex"}, "behavior": Removed | Isolated |
//                    MergedWithPrevious | MergedWithNext | Contiguous, "invert": bool}
//   ByteLevel        {"add_prefix_space", "use_regex"}: optionally " " in front, optionally the
//                    GPT-2 split, then every byte as its byte-level character (byte_level.h)
//   Metaspace        {"replacement", "prepend_scheme": always | first | never (or the older
//                    "add_prefix_space"), "split"}: spaces become the replacement character
//   Digits           {"individual_digits"}: numeric characters apart from the rest
//   Whitespace       \w+ and [^\w\s]+ runs, white space dropped
//   WhitespaceSplit  split on white space, dropped
//   Sequence         {"pretokenizers": [...]}: in order
// Anything else is refused with an error naming the file, the field and the supported types.
//
// Immutable after Parse; Apply is const and thread-safe.
#ifndef TAILOR_TOKENIZER_PRE_TOKENIZER_H_
#define TAILOR_TOKENIZER_PRE_TOKENIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tokenizer/json_field.h"
#include "tokenizer/regex.h"

namespace tailor::tokenizer_internal {

// A piece of text on its way through pre-tokenization.
struct PreToken {
  std::string text;
  // The piece begins at the start of the whole input (HF: its original offset is 0), which
  // Metaspace's prepend_scheme "first" asks.
  bool at_origin = false;
};

// How a Split keeps the matches of its pattern.
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// The pieces of `text` that HF's split with `behavior` keeps, as [start, end) byte ranges, given
// `spans`: ranges covering `text` in order, each flagged as a match or not. Empty ranges are
// dropped.
std::vector<std::pair<size_t, size_t>> SplitSpans(
    const std::vector<std::tuple<size_t, size_t, bool>>& spans, SplitBehavior behavior);

class PreTokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<PreTokenizer>> Parse(const JsonField& field);

  // Splits and rewrites *pieces in place (empty pieces are removed).
  void Apply(std::vector<PreToken>* pieces) const;

 private:
  enum class Kind { kSplit, kByteLevel, kMetaspace, kDigits, kWhitespace, kWhitespaceSplit,
                    kSequence };
  PreTokenizer() = default;
  // Splits one piece into *out.
  void SplitPiece(PreToken piece, std::vector<PreToken>* out) const;

  Kind kind_ = Kind::kSequence;
  std::unique_ptr<TextPattern> pattern_;  // kSplit, kByteLevel (GPT-2 regex), kWhitespace
  SplitBehavior behavior_ = SplitBehavior::kIsolated;
  bool invert_ = false;            // kSplit
  bool add_prefix_space_ = false;  // kByteLevel
  bool individual_digits_ = false;  // kDigits
  std::string replacement_;        // kMetaspace
  enum class Prepend { kAlways, kFirst, kNever } prepend_ = Prepend::kAlways;  // kMetaspace
  bool split_ = true;              // kMetaspace
  std::vector<std::unique_ptr<PreTokenizer>> children_;  // kSequence
};

}  // namespace tailor::tokenizer_internal

#endif  // TAILOR_TOKENIZER_PRE_TOKENIZER_H_
