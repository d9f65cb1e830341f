// Tokens matched in the text before anything else runs: Hugging Face's added tokens (special
// or not) and, for SentencePiece tokenizers asked to parse special tokens, the control pieces.
// Matching follows HF's AddedVocabulary: scanning left to right, the leftmost position where
// some token's text occurs, and there the longest such token (Aho-Corasick "leftmost longest",
// here a byte trie walked from each position); then
//   single_word: the match is dropped (and the scan goes on after it) unless no word character
//                touches it on either side;
//   lstrip / rstrip: white space before / after it joins the match;
// and the scan continues after the match.
//
// Immutable after construction; Split is const and thread-safe.
#ifndef TAILOR_TOKENIZER_ADDED_TOKENS_H_
#define TAILOR_TOKENIZER_ADDED_TOKENS_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tailor::tokenizer_internal {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool single_word = false;
};

// A stretch of text: either an added token (`id` >= 0) or text still to tokenize (id -1).
struct TextSegment {
  size_t start = 0;  // byte offsets into the text given to Split
  size_t end = 0;
  int32_t id = -1;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() { first_.fill(-1); }
  // Matches `tokens` (empty contents are ignored; for equal contents the first one wins).
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  bool empty() const { return tokens_.empty(); }
  // Cuts `text` into segments covering it in order; text segments are never empty.
  std::vector<TextSegment> Split(std::string_view text) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // sorted by byte
    int32_t token = -1;                                  // index into tokens_ ending here
  };
  int32_t Child(int32_t node, uint8_t byte) const;
  // The longest token starting at text[pos], as (index into tokens_, length), or (-1, 0).
  std::pair<int32_t, size_t> LongestAt(std::string_view text, size_t pos) const;

  std::vector<AddedToken> tokens_;
  std::vector<Node> nodes_;          // nodes_[0] is the root
  std::array<int32_t, 256> first_;  // the root's children by byte, -1 if none
};

}  // namespace tailor::tokenizer_internal

#endif  // TAILOR_TOKENIZER_ADDED_TOKENS_H_
