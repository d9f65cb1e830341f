// Stack-independent token masks per automaton state, shared by every GrammarMatcher of one
// (Grammar, TokenVocabulary) pair (an "adaptive token mask cache").
//
// A parse position is a set of frames (state, parent stack node). For a frame at state s, most
// tokens are decided by s's own rule DFA alone: walking the token's bytes from s through byte
// edges only, either
//   - some byte has no edge (the frame rejects the token whatever its stack), or
//   - every byte has an edge and every state reached BEFORE the last byte neither accepts nor
//     calls (the frame accepts the token whatever its stack: the last state is live, since
//     states that cannot finish are pruned at compile time), or
//   - the walk reaches a state that accepts (may return into the caller) or calls another rule
//     before the last byte: whether the token is allowed depends on the stack.
// StateMasks records the second set and the third, so a mask is the union of the frames'
// accepted sets plus a recognizer walk of only the stack-dependent tokens (inside a JSON string:
// those with a '"' before their last byte).
//
// Thread-safety: ForState may be called concurrently; each state's entry is computed once (two
// threads racing on the same new state may both compute it, one result is kept) and is
// immutable afterwards. Memory: one entry per state ever asked for, kept for the cache's life
// (a dense entry holds vocab/8 bytes of bits; sparse ones 4 bytes per accepted token).
#ifndef TAILOR_SERVICE_GRAMMAR_TOKEN_MASK_CACHE_H_
#define TAILOR_SERVICE_GRAMMAR_TOKEN_MASK_CACHE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "service/grammar/grammar.h"
#include "service/grammar/token_vocabulary.h"

namespace tailor::grammar {

class TokenMaskCache {
 public:
  struct StateMasks {
    // Tokens every frame at this state accepts (see above), in exactly one of two forms:
    std::vector<uint64_t> accepted_bits;  // dense: [(vocab size + 63) / 64] words, or empty
    std::vector<int32_t> accepted_ids;    // sparse: token ids (used when accepted_bits is empty)
    // Stack-dependent tokens as half-open ranges of ranks into vocab.trie_tokens() (trie order),
    // ascending, disjoint and not adjacent.
    std::vector<std::pair<int32_t, int32_t>> dependent;
    // Max over accepted tokens of Automaton::dist at the state the token ends in (so a frame
    // (s, parent) leaves at most this + the parent's completion bytes); -1 if none accepted.
    int32_t max_accepted_dist = -1;
    int32_t num_accepted = 0;
    int32_t num_dependent = 0;
  };

  // Both must be non-null; the cache keeps them alive.
  TokenMaskCache(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenVocabulary> vocab);
  ~TokenMaskCache();
  TokenMaskCache(const TokenMaskCache&) = delete;
  TokenMaskCache& operator=(const TokenMaskCache&) = delete;

  // The cache of this pair that some live matcher (or other owner) already holds, else a new
  // one. Keyed by object identity; process-wide, thread-safe. Hold the result (e.g. next to a
  // per-schema Grammar) to keep the precomputation across requests that do not overlap.
  static std::shared_ptr<TokenMaskCache> Get(const std::shared_ptr<const Grammar>& grammar,
                                             const std::shared_ptr<const TokenVocabulary>& vocab);

  // The entry of `state` (a state with byte edges), computed on first use: one walk of the
  // vocabulary trie through the state's rule DFA. Thread-safe; the reference stays valid for the
  // cache's life.
  const StateMasks& ForState(int32_t state) const;

  const Grammar& grammar() const { return *grammar_; }
  const TokenVocabulary& vocabulary() const { return *vocab_; }
  // States computed so far (for stats and tests).
  int32_t num_computed() const { return num_computed_.load(std::memory_order_relaxed); }

 private:
  std::unique_ptr<const StateMasks> Compute(int32_t state) const;

  std::shared_ptr<const Grammar> grammar_;
  std::shared_ptr<const TokenVocabulary> vocab_;
  std::vector<int32_t> first_rank_;  // [trie size + 1]: first trie_tokens rank at node >= i
  // [num_states]: owned entries (deleted in the destructor), null until computed.
  std::unique_ptr<std::atomic<const StateMasks*>[]> states_;
  mutable std::atomic<int32_t> num_computed_{0};
};

}  // namespace tailor::grammar

#endif  // TAILOR_SERVICE_GRAMMAR_TOKEN_MASK_CACHE_H_
