// The token side of constrained decoding: each token id's exact bytes, arranged as a byte trie
// so a mask is one walk of the trie in step with the grammar (pruning every dead prefix).
//
// Immutable after Build; safe to share across threads and requests (shared_ptr<const ...>). Build
// it once per tokenizer.
#ifndef TAILOR_SERVICE_GRAMMAR_TOKEN_VOCABULARY_H_
#define TAILOR_SERVICE_GRAMMAR_TOKEN_VOCABULARY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tailor {
class Tokenizer;
}

namespace tailor::grammar {

class TokenVocabulary {
 public:
  // One trie node; nodes are stored in preorder, so node i's subtree is [i, end).
  struct TrieNode {
    uint8_t byte = 0;           // the byte on the edge from the parent (root: unused)
    int32_t depth = 0;          // bytes from the root (root: 0)
    int32_t end = 0;            // one past the last node of this subtree
    int32_t tokens_begin = 0;   // token ids spelling exactly this node's bytes:
    int32_t tokens_end = 0;     //   trie_tokens()[tokens_begin, tokens_end)
  };

  // `token_bytes[id]`: the exact bytes token `id` stands for; "" for special/control tokens,
  // which are never allowed. `eos_ids`: ids that end generation (allowed exactly when the output
  // is a complete match); their bytes are ignored. Ids outside [0, token_bytes.size()) in
  // `eos_ids` are dropped.
  static std::shared_ptr<const TokenVocabulary> Build(std::vector<std::string> token_bytes,
                                                      std::vector<int32_t> eos_ids);
  // From a tailor Tokenizer: TokenText(id) for every id but control/unknown/unused ones (""),
  // with the tokenizer's eos_id() (plus `extra_eos_ids`, e.g. a chat template's end-of-turn).
  static std::shared_ptr<const TokenVocabulary> FromTokenizer(const Tokenizer& tokenizer,
                                                              std::vector<int32_t> extra_eos_ids = {});

  int32_t size() const { return static_cast<int32_t>(bytes_.size()); }
  const std::string& bytes(int32_t id) const { return bytes_[id]; }
  bool is_eos(int32_t id) const { return id >= 0 && id < size() && is_eos_[id]; }
  const std::vector<int32_t>& eos_ids() const { return eos_ids_; }
  // Every byte value 0..255 is some token's whole text. Then a completion of n bytes takes at
  // most n tokens, which the matcher's max_tokens guarantee relies on (else it is best effort).
  bool covers_all_bytes() const { return covers_all_bytes_; }
  const std::vector<TrieNode>& trie() const { return trie_; }
  const std::vector<int32_t>& trie_tokens() const { return trie_tokens_; }
  int32_t max_token_bytes() const { return max_token_bytes_; }

 private:
  std::vector<std::string> bytes_;
  std::vector<uint8_t> is_eos_;
  std::vector<int32_t> eos_ids_;
  std::vector<TrieNode> trie_;
  std::vector<int32_t> trie_tokens_;
  bool covers_all_bytes_ = false;
  int32_t max_token_bytes_ = 0;
};

}  // namespace tailor::grammar

#endif  // TAILOR_SERVICE_GRAMMAR_TOKEN_VOCABULARY_H_
