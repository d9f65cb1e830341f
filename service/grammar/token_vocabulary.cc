#include "service/grammar/token_vocabulary.h"

#include <algorithm>
#include <utility>

#include "tokenizer/tokenizer.h"

namespace tailor::grammar {

std::shared_ptr<const TokenVocabulary> TokenVocabulary::Build(std::vector<std::string> token_bytes,
                                                              std::vector<int32_t> eos_ids) {
  auto v = std::make_shared<TokenVocabulary>();
  v->bytes_ = std::move(token_bytes);
  const int32_t n = v->size();
  v->is_eos_.assign(n, 0);
  for (int32_t id : eos_ids) {
    if (id < 0 || id >= n || v->is_eos_[id]) continue;
    v->is_eos_[id] = 1;
    v->eos_ids_.push_back(id);
  }
  std::vector<int32_t> ids;
  bool single[256] = {};
  for (int32_t id = 0; id < n; ++id) {
    const std::string& b = v->bytes_[id];
    if (v->is_eos_[id] || b.empty()) continue;
    ids.push_back(id);
    if (b.size() == 1) single[static_cast<uint8_t>(b[0])] = true;
    v->max_token_bytes_ = std::max<int32_t>(v->max_token_bytes_, static_cast<int32_t>(b.size()));
  }
  v->covers_all_bytes_ = std::all_of(std::begin(single), std::end(single), [](bool x) { return x; });
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    return v->bytes_[a] != v->bytes_[b] ? v->bytes_[a] < v->bytes_[b] : a < b;
  });
  // Sorted strings list their prefixes in preorder: each string adds nodes for its bytes past
  // the common prefix with the previous string.
  std::vector<TrieNode>& trie = v->trie_;
  trie.push_back(TrieNode{});
  std::vector<int32_t> path = {0};  // path[d]: node of the previous string's first d bytes
  std::vector<int32_t> open;        // nodes whose subtree end is not known yet (a root path)
  const std::string* prev = nullptr;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string& s = v->bytes_[ids[i]];
    size_t lcp = 0;
    if (prev != nullptr) {
      while (lcp < s.size() && lcp < prev->size() && s[lcp] == (*prev)[lcp]) ++lcp;
    }
    path.resize(lcp + 1);
    for (size_t d = lcp + 1; d <= s.size(); ++d) {
      const int32_t idx = static_cast<int32_t>(trie.size());
      while (!open.empty() && trie[open.back()].depth >= static_cast<int32_t>(d)) {
        trie[open.back()].end = idx;
        open.pop_back();
      }
      TrieNode node;
      node.byte = static_cast<uint8_t>(s[d - 1]);
      node.depth = static_cast<int32_t>(d);
      trie.push_back(node);
      open.push_back(idx);
      path.push_back(idx);
    }
    TrieNode& node = trie[path[s.size()]];
    if (node.tokens_end == 0) node.tokens_begin = static_cast<int32_t>(i);
    node.tokens_end = static_cast<int32_t>(i) + 1;
    prev = &s;
  }
  for (int32_t idx : open) trie[idx].end = static_cast<int32_t>(trie.size());
  trie[0].end = static_cast<int32_t>(trie.size());
  v->trie_tokens_ = std::move(ids);
  return v;
}

std::shared_ptr<const TokenVocabulary> TokenVocabulary::FromTokenizer(const Tokenizer& tokenizer,
                                                                      std::vector<int32_t> extra_eos_ids) {
  std::vector<std::string> bytes(tokenizer.vocab_size());
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    const PieceType type = tokenizer.Type(id);
    if (type == PieceType::kControl || type == PieceType::kUnknown || type == PieceType::kUnused) continue;
    bytes[id] = tokenizer.TokenText(id);
  }
  if (tokenizer.eos_id() >= 0) extra_eos_ids.push_back(tokenizer.eos_id());
  return Build(std::move(bytes), std::move(extra_eos_ids));
}

}  // namespace tailor::grammar
