// Per-request constrained decoding: which vocabulary tokens may come next under a Grammar.
//
// A mask for a position not seen before in the request is the union of the stack-independent
// accepted sets of its frames' states (TokenMaskCache, precomputed lazily and shared by every
// matcher of the same grammar and vocabulary) plus a recognizer walk of only the tokens whose
// fate depends on the stack. Masks are then cached by the matcher's full parse position (the
// "inside a JSON string" position recurs every step, so most steps are cache hits). Per-token
// completion lengths, needed when the budget is small, come from a full walk of the
// vocabulary's byte trie in step with the pushdown recognizer, pruning dead prefixes.
//
// Termination guarantee: with remaining_tokens = R (tokens that may still be generated, this one
// included), a token is allowed only if after it a complete match is reachable in at most R - 2
// bytes (one token is kept for EOS). When the vocabulary covers every byte with a one-byte token
// (TokenVocabulary::covers_all_bytes, true for byte-fallback SentencePiece and byte-level BPE), n
// bytes take at most n tokens, so sampling under the masks always ends in a complete output
// followed by EOS whenever the first R is at least the shortest match in bytes + 1. Otherwise
// (R too small) the tokens that bring the shortest completion lowest stay allowed (best effort).
//
// Not thread-safe: one matcher per sequence. Holds shared ownership of the grammar and vocabulary.
#ifndef TAILOR_SERVICE_GRAMMAR_GRAMMAR_MATCHER_H_
#define TAILOR_SERVICE_GRAMMAR_GRAMMAR_MATCHER_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "service/grammar/automaton.h"
#include "service/grammar/grammar.h"
#include "service/grammar/token_mask_cache.h"
#include "service/grammar/token_vocabulary.h"

namespace tailor::grammar {

class GrammarMatcher {
 public:
  struct Stats {
    int64_t cache_hits = 0;    // masks served from the cache
    int64_t cache_misses = 0;  // masks computed (from the TokenMaskCache or by a trie walk)
    int64_t dependent_walked = 0;  // tokens walked on misses because their fate needs the stack
    int64_t budget_walks = 0;  // extra walks for per-token completion lengths (small budgets)
  };

  // Shares the TokenMaskCache of (grammar, vocab) with the other live matchers of the pair
  // (TokenMaskCache::Get).
  GrammarMatcher(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenVocabulary> vocab);
  // With an explicit cache (of the same grammar and vocabulary; hold one per schema to keep it
  // across requests), or nullptr: every new position is a full trie walk (a reference for tests).
  GrammarMatcher(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenVocabulary> vocab,
                 std::shared_ptr<TokenMaskCache> masks);

  // Sets logits[t] to -infinity for every token t that may not come next (and for every t >=
  // the vocabulary size; logits may be longer than it, as padded model vocabularies are).
  // `remaining_tokens`: how many tokens may still be generated, this one included.
  void ApplyMask(std::span<float> logits, int32_t remaining_tokens);
  // The same as bits: bit (t % 64) of bitmask[t / 64] is set iff t is allowed. `bitmask` needs
  // at least (vocab size + 63) / 64 words; words beyond are cleared.
  void FillBitmask(std::span<uint64_t> bitmask, int32_t remaining_tokens);
  // Whether `token` may come next (same rule as the masks).
  bool IsAllowed(int32_t token, int32_t remaining_tokens);

  // Advances by `token`. FailedPrecondition (state unchanged) if the grammar rejects its bytes,
  // if it is special (""), if it is EOS before a complete match, or after EOS. EOS when
  // complete finishes the matcher. Does not check the budget.
  absl::Status Accept(int32_t token);

  bool IsComplete() const { return pos_.complete; }
  // Some non-empty continuation exists (false after EOS and after e.g. a finished choice).
  bool CanContinue() const { return !finished_ && !pos_.frames.empty(); }
  bool IsFinished() const { return finished_; }  // EOS was accepted
  const std::string& Output() const { return output_; }
  // Fewest bytes still needed for a complete match (0 when complete).
  int32_t ShortestCompletionBytes() const { return parser_.Completion(pos_); }
  const Stats& stats() const { return stats_; }
  const TokenVocabulary& vocabulary() const { return *vocab_; }

 private:
  struct MaskEntry {
    std::vector<uint64_t> bits;       // allowed with any budget; EOS bits iff complete
    int32_t max_completion = 0;       // max over allowed non-EOS tokens of completion after them
    std::vector<int32_t> completion;  // per token (kInfinity if not allowed); filled on demand
  };

  // The mask entry of the current position (cached). With `need_completion`, also fills
  // entry.completion.
  MaskEntry& Entry(bool need_completion);
  // Walks the trie from pos_ and fills `entry` (and entry->completion when asked).
  void Walk(MaskEntry* entry, bool need_completion);
  // Fills entry->bits from masks_ and a walk of the stack-dependent tokens; max_completion is an
  // upper bound (so a budget check that passes on it is exact).
  void PrecomputedMask(MaskEntry* entry);
  // The allowed set under `remaining_tokens` into `bits` (vocab words).
  void AllowedBits(int32_t remaining_tokens, std::vector<uint64_t>* bits);

  std::shared_ptr<const Grammar> grammar_;
  std::shared_ptr<const TokenVocabulary> vocab_;
  std::shared_ptr<TokenMaskCache> masks_;  // null: full walks only
  internal::Parser parser_;
  internal::Parser::Position pos_;
  std::string output_;
  bool finished_ = false;
  absl::flat_hash_map<std::vector<int32_t>, std::unique_ptr<MaskEntry>> cache_;
  std::vector<internal::Parser::Position> walk_;  // scratch: position per trie depth
  std::vector<int32_t> key_;                      // scratch: cache key
  std::vector<uint64_t> bits_;                    // scratch: budget-restricted mask
  std::vector<std::pair<int32_t, int32_t>> ranges_;  // scratch: dependent trie-rank ranges
  Stats stats_;
};

}  // namespace tailor::grammar

#endif  // TAILOR_SERVICE_GRAMMAR_GRAMMAR_MATCHER_H_
