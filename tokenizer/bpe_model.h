// The BPE model of a Hugging Face tokenizer.json ("model": {"type": "BPE", ...}): a vocabulary
// (token string -> id), merges ranked by their order, and HF's rules for one pre-tokenized word:
//   - ignore_merges: a word that is itself in the vocabulary is that one token;
//   - otherwise each character is a symbol (its token; with byte_fallback, when the character is
//     not in the vocabulary, one <0xXX> token per UTF-8 byte; else the unknown token, with
//     fuse_unk joining neighbouring unknowns; without unk_token the character is dropped);
//   - then the adjacent pair with the lowest merge rank (leftmost among equals) is merged, again
//     and again, through a priority queue over a linked list of symbols: O(n log n) per word.
// Supported settings: dropout null or 0, continuing_subword_prefix and end_of_word_suffix null
// or "". Others are refused with an error naming the field.
//
// Immutable after Parse; Tokenize is const and safe to call from several threads at once.
#ifndef TAILOR_TOKENIZER_BPE_MODEL_H_
#define TAILOR_TOKENIZER_BPE_MODEL_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "tokenizer/json_field.h"
#include "tokenizer/tokenizer_document.h"

namespace tailor::tokenizer_internal {

class BpeModel {
 public:
  // Reads the "model" object, whose vocab and merges are in `doc` (tokenizer_document.h).
  // `id_limit` bounds the ids (exclusive): an id at or past it is an error (the caller derives it
  // from the document's size, so that no id makes us allocate more than the input justifies).
  static absl::StatusOr<std::unique_ptr<BpeModel>> Parse(const JsonField& model,
                                                         const TokenizerDocument& doc,
                                                         int64_t id_limit);

  // Appends the ids of `word` (well-formed UTF-8, one pre-tokenized piece) to *ids.
  void Tokenize(std::string_view word, std::vector<int32_t>* ids) const;

  // The vocabulary string of `id`, or nullopt for an id the vocabulary does not have.
  std::optional<std::string_view> IdToToken(int32_t id) const;
  std::optional<int32_t> TokenToId(std::string_view token) const;
  // One past the largest id in the vocabulary.
  int32_t id_end() const { return static_cast<int32_t>(tokens_.size()); }

  int32_t unk_id() const { return unk_id_; }
  bool byte_fallback() const { return byte_fallback_; }
  // The id of the byte token <0xXX> for byte b, or -1.
  int32_t byte_id(uint8_t b) const { return byte_ids_[b]; }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };
  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  const Merge* FindMerge(int32_t left, int32_t right) const {
    auto it = merges_.find(PairKey(left, right));
    return it == merges_.end() ? nullptr : &it->second;
  }
  void MergeSymbols(std::vector<int32_t>* symbols) const;

  BpeModel() = default;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> tokens_;  // by id; "" for ids the vocabulary lacks
  std::vector<bool> present_;        // by id
  absl::flat_hash_map<uint64_t, Merge> merges_;
  std::array<int32_t, 256> byte_ids_{};
  int32_t unk_id_ = -1;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
};

}  // namespace tailor::tokenizer_internal

#endif  // TAILOR_TOKENIZER_BPE_MODEL_H_
