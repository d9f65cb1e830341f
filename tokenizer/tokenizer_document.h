// Reads tokenizer.json text without building its two big members as a JSON tree: the entries of
// "model.vocab" and the elements of "model.merges" (Gemma 3: 262144 and 514906) are collected
// into flat vectors while nlohmann's parser streams past them, and everything else becomes the
// usual tree. This halves the load time of large files and their peak memory.
#ifndef TAILOR_TOKENIZER_TOKENIZER_DOCUMENT_H_
#define TAILOR_TOKENIZER_TOKENIZER_DOCUMENT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "tokenizer/json_field.h"

namespace tailor::tokenizer_internal {

struct VocabEntry {
  std::string token;
  int64_t id = 0;
  bool is_integer = false;  // false: the value was not an integer (id meaningless)
};

struct MergeEntry {
  enum class Kind : uint8_t { kString, kPair, kInvalid };
  Kind kind = Kind::kInvalid;
  std::string left;   // kString: the whole "a b" string; kPair: "a"
  std::string right;  // kPair: "b"
};

struct TokenizerDocument {
  // The document, with model.vocab and model.merges present but emptied (their contents are
  // below, when they were an object and an array as expected).
  Json tree;
  std::vector<VocabEntry> vocab;   // in document order
  std::vector<MergeEntry> merges;  // in document order (= rank)
};

// Parses `text`. Malformed JSON is an error naming `origin` and nlohmann's position.
absl::StatusOr<TokenizerDocument> ParseTokenizerDocument(std::string_view text,
                                                         const std::string& origin);

}  // namespace tailor::tokenizer_internal

#endif  // TAILOR_TOKENIZER_TOKENIZER_DOCUMENT_H_
