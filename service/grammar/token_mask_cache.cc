#include "service/grammar/token_mask_cache.h"

#include <algorithm>
#include <mutex>

#include "absl/container/flat_hash_map.h"

namespace tailor::grammar {

TokenMaskCache::TokenMaskCache(std::shared_ptr<const Grammar> grammar,
                               std::shared_ptr<const TokenVocabulary> vocab)
    : grammar_(std::move(grammar)), vocab_(std::move(vocab)) {
  const std::vector<TokenVocabulary::TrieNode>& trie = vocab_->trie();
  const int32_t n = static_cast<int32_t>(trie.size());
  // Ranks grow in preorder (the trie lists sorted strings), so node i's subtree holds the ranks
  // [first_rank_[i], first_rank_[trie[i].end]).
  first_rank_.assign(n + 1, static_cast<int32_t>(vocab_->trie_tokens().size()));
  for (int32_t i = n - 1; i >= 0; --i) {
    first_rank_[i] = trie[i].tokens_begin != trie[i].tokens_end ? trie[i].tokens_begin : first_rank_[i + 1];
  }
  const int32_t states = grammar_->automaton().num_states;
  states_ = std::make_unique<std::atomic<const StateMasks*>[]>(states);
  for (int32_t s = 0; s < states; ++s) states_[s].store(nullptr, std::memory_order_relaxed);
}

TokenMaskCache::~TokenMaskCache() {
  for (int32_t s = 0; s < grammar_->automaton().num_states; ++s) {
    delete states_[s].load(std::memory_order_relaxed);
  }
}

std::shared_ptr<TokenMaskCache> TokenMaskCache::Get(const std::shared_ptr<const Grammar>& grammar,
                                                    const std::shared_ptr<const TokenVocabulary>& vocab) {
  using Key = std::pair<const Grammar*, const TokenVocabulary*>;
  static std::mutex mu;
  static auto* registry = new absl::flat_hash_map<Key, std::weak_ptr<TokenMaskCache>>();
  static size_t prune_at = 64;
  std::lock_guard<std::mutex> lock(mu);
  const Key key{grammar.get(), vocab.get()};
  // A live entry's cache holds the grammar and vocabulary, so their addresses are not reused
  // while it lives; an expired entry is simply replaced.
  if (auto it = registry->find(key); it != registry->end()) {
    if (auto cache = it->second.lock()) return cache;
  }
  auto cache = std::make_shared<TokenMaskCache>(grammar, vocab);
  (*registry)[key] = cache;
  if (registry->size() >= prune_at) {
    absl::erase_if(*registry, [](const auto& kv) { return kv.second.expired(); });
    prune_at = std::max<size_t>(64, 2 * registry->size());
  }
  return cache;
}

const TokenMaskCache::StateMasks& TokenMaskCache::ForState(int32_t state) const {
  const StateMasks* masks = states_[state].load(std::memory_order_acquire);
  if (masks != nullptr) return *masks;
  std::unique_ptr<const StateMasks> fresh = Compute(state);
  const StateMasks* expected = nullptr;
  if (states_[state].compare_exchange_strong(expected, fresh.get(), std::memory_order_acq_rel,
                                             std::memory_order_acquire)) {
    num_computed_.fetch_add(1, std::memory_order_relaxed);
    return *fresh.release();
  }
  return *expected;  // another thread installed it first; ours is dropped
}

std::unique_ptr<const TokenMaskCache::StateMasks> TokenMaskCache::Compute(int32_t state) const {
  const internal::Automaton& a = grammar_->automaton();
  const std::vector<TokenVocabulary::TrieNode>& trie = vocab_->trie();
  const std::vector<int32_t>& tokens = vocab_->trie_tokens();
  auto masks = std::make_unique<StateMasks>();
  std::vector<int32_t> accepted;
  // at[d]: the rule-DFA state after the current node's first d bytes (all plain states).
  std::vector<int32_t> at(vocab_->max_token_bytes() + 1);
  at[0] = state;
  const int32_t n = static_cast<int32_t>(trie.size());
  for (int32_t i = 1; i < n;) {
    const TokenVocabulary::TrieNode& node = trie[i];
    const int32_t t = a.next[at[node.depth - 1] * 256 + node.byte];
    if (t < 0) {  // rejected here, with every longer token sharing this prefix
      i = node.end;
      continue;
    }
    if (node.tokens_begin != node.tokens_end) {
      accepted.insert(accepted.end(), tokens.begin() + node.tokens_begin, tokens.begin() + node.tokens_end);
      masks->max_accepted_dist = std::max(masks->max_accepted_dist, a.dist[t]);
    }
    if (a.accepting[t] || a.call_begin[t] != a.call_begin[t + 1]) {
      // Longer tokens through here may return into the caller or enter a callee.
      const int32_t lo = first_rank_[i + 1], hi = first_rank_[node.end];
      if (lo < hi) {
        if (!masks->dependent.empty() && masks->dependent.back().second == lo) {
          masks->dependent.back().second = hi;
        } else {
          masks->dependent.push_back({lo, hi});
        }
        masks->num_dependent += hi - lo;
      }
      i = node.end;
      continue;
    }
    at[node.depth] = t;
    ++i;
  }
  masks->num_accepted = static_cast<int32_t>(accepted.size());
  const int32_t v = vocab_->size();
  if (int64_t{masks->num_accepted} * 32 >= v) {  // ids would take more room than bits
    masks->accepted_bits.assign((v + 63) / 64, 0);
    for (int32_t id : accepted) masks->accepted_bits[id >> 6] |= uint64_t{1} << (id & 63);
  } else {
    masks->accepted_ids = std::move(accepted);
  }
  return masks;
}

}  // namespace tailor::grammar
