#include "service/grammar/grammar_matcher.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace tailor::grammar {
namespace {

using internal::kInfinity;
using internal::Parser;

// Entries kept per matcher before the cache is cleared (each holds vocab/8 bytes of bits, plus
// 4 bytes per token for the few positions that needed per-token completion lengths).
constexpr size_t kMaxCacheEntries = 1024;

// kKeepLanes[b][j]: all ones if bit j of b is set, else 0 (float lanes to keep).
constexpr std::array<std::array<uint32_t, 8>, 256> kKeepLanes = [] {
  std::array<std::array<uint32_t, 8>, 256> t{};
  for (int b = 0; b < 256; ++b) {
    for (int j = 0; j < 8; ++j) t[b][j] = ((b >> j) & 1) ? 0xFFFFFFFFu : 0u;
  }
  return t;
}();
constexpr uint32_t kNegInfBits = 0xFF800000u;  // IEEE-754 binary32 -infinity

}  // namespace

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar,
                               std::shared_ptr<const TokenVocabulary> vocab)
    : GrammarMatcher(grammar, vocab, TokenMaskCache::Get(grammar, vocab)) {}

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar,
                               std::shared_ptr<const TokenVocabulary> vocab,
                               std::shared_ptr<TokenMaskCache> masks)
    : grammar_(std::move(grammar)),
      vocab_(std::move(vocab)),
      masks_(std::move(masks)),
      parser_(&grammar_->automaton()) {
  parser_.Start(&pos_);
  walk_.resize(vocab_->max_token_bytes() + 1);
}

void GrammarMatcher::PrecomputedMask(MaskEntry* entry) {
  const int32_t v = vocab_->size();
  entry->bits.assign((v + 63) / 64, 0);
  entry->max_completion = 0;
  entry->completion.clear();
  uint64_t* bits = entry->bits.data();
  ranges_.clear();
  for (const Parser::Frame& f : pos_.frames) {
    const TokenMaskCache::StateMasks& sm = masks_->ForState(f.state);
    if (!sm.accepted_bits.empty()) {
      const uint64_t* src = sm.accepted_bits.data();
      for (size_t w = 0; w < entry->bits.size(); ++w) bits[w] |= src[w];
    } else {
      for (int32_t t : sm.accepted_ids) bits[t >> 6] |= uint64_t{1} << (t & 63);
    }
    if (sm.max_accepted_dist >= 0) {
      const int64_t c = int64_t{sm.max_accepted_dist} + parser_.NodeCompletion(f.parent);
      entry->max_completion = std::max<int32_t>(entry->max_completion, std::min<int64_t>(c, kInfinity));
    }
    ranges_.insert(ranges_.end(), sm.dependent.begin(), sm.dependent.end());
  }
  if (pos_.frames.size() > 1) std::sort(ranges_.begin(), ranges_.end());
  // The dependent tokens in trie order, walked with the full recognizer from pos_, reusing the
  // positions of the longest prefix shared with the previous walked token (walk_[0..valid]) and
  // skipping tokens that extend a prefix already found dead.
  const std::vector<int32_t>& tokens = vocab_->trie_tokens();
  walk_[0] = pos_;
  const std::string* prev = nullptr;
  size_t valid = 0;
  size_t dead_at = std::numeric_limits<size_t>::max();  // prev[0, dead_at) is a dead prefix
  int32_t done = 0;  // ranks below this were handled (ranges of several frames may overlap)
  for (const auto& [lo, hi] : ranges_) {
    for (int32_t k = std::max(lo, done); k < hi; ++k) {
      const int32_t t = tokens[k];
      if ((bits[t >> 6] >> (t & 63)) & 1) continue;  // accepted by some frame regardless
      const std::string& b = vocab_->bytes(t);
      size_t lcp = 0;
      if (prev != nullptr) {
        const size_t limit = std::min(b.size(), prev->size());
        while (lcp < limit && b[lcp] == (*prev)[lcp]) ++lcp;
        if (lcp >= dead_at) continue;
      }
      ++stats_.dependent_walked;
      prev = &b;
      dead_at = std::numeric_limits<size_t>::max();
      size_t d = std::min(lcp, valid);
      for (; d < b.size(); ++d) {
        if (!parser_.Step(walk_[d], static_cast<uint8_t>(b[d]), &walk_[d + 1])) {
          dead_at = d + 1;
          break;
        }
      }
      valid = d;
      if (d < b.size()) continue;
      bits[t >> 6] |= uint64_t{1} << (t & 63);
      entry->max_completion = std::max(entry->max_completion, parser_.Completion(walk_[d]));
    }
    done = std::max(done, hi);
  }
  if (pos_.complete) {
    for (int32_t t : vocab_->eos_ids()) bits[t >> 6] |= uint64_t{1} << (t & 63);
  }
}

void GrammarMatcher::Walk(MaskEntry* entry, bool need_completion) {
  const int32_t v = vocab_->size();
  entry->bits.assign((v + 63) / 64, 0);
  entry->max_completion = 0;
  if (need_completion) entry->completion.assign(v, kInfinity);
  const std::vector<TokenVocabulary::TrieNode>& trie = vocab_->trie();
  const std::vector<int32_t>& tokens = vocab_->trie_tokens();
  walk_[0] = pos_;
  const int32_t n = static_cast<int32_t>(trie.size());
  for (int32_t i = 1; i < n;) {
    const TokenVocabulary::TrieNode& node = trie[i];
    if (!parser_.Step(walk_[node.depth - 1], node.byte, &walk_[node.depth])) {
      i = node.end;  // no token with this prefix can continue
      continue;
    }
    if (node.tokens_begin != node.tokens_end) {
      const int32_t c = parser_.Completion(walk_[node.depth]);
      entry->max_completion = std::max(entry->max_completion, c);
      for (int32_t k = node.tokens_begin; k < node.tokens_end; ++k) {
        const int32_t t = tokens[k];
        entry->bits[t >> 6] |= uint64_t{1} << (t & 63);
        if (need_completion) entry->completion[t] = c;
      }
    }
    ++i;
  }
  if (pos_.complete) {
    for (int32_t t : vocab_->eos_ids()) entry->bits[t >> 6] |= uint64_t{1} << (t & 63);
  }
}

GrammarMatcher::MaskEntry& GrammarMatcher::Entry(bool need_completion) {
  key_.clear();
  std::vector<Parser::Frame> frames = pos_.frames;
  std::sort(frames.begin(), frames.end(), [](const Parser::Frame& a, const Parser::Frame& b) {
    return a.state != b.state ? a.state < b.state : a.parent < b.parent;
  });
  for (const Parser::Frame& f : frames) {
    key_.push_back(f.state);
    key_.push_back(f.parent);
  }
  key_.push_back(pos_.complete ? 1 : 0);
  auto it = cache_.find(key_);
  if (it != cache_.end()) {
    ++stats_.cache_hits;
    if (need_completion && it->second->completion.empty()) {
      ++stats_.budget_walks;
      Walk(it->second.get(), true);
    }
    return *it->second;
  }
  ++stats_.cache_misses;
  if (cache_.size() >= kMaxCacheEntries) cache_.clear();
  auto entry = std::make_unique<MaskEntry>();
  if (masks_ != nullptr && !need_completion) {
    PrecomputedMask(entry.get());
  } else {
    Walk(entry.get(), need_completion);
  }
  MaskEntry& ref = *entry;
  cache_.emplace(key_, std::move(entry));
  return ref;
}

void GrammarMatcher::AllowedBits(int32_t remaining_tokens, std::vector<uint64_t>* bits) {
  const int32_t v = vocab_->size();
  if (finished_) {
    bits->assign((v + 63) / 64, 0);
    return;
  }
  // Bytes a completion may take after this token: one token per byte, one token kept for EOS.
  const int32_t budget = remaining_tokens - 2;
  {
    const MaskEntry& entry = Entry(false);
    if (entry.max_completion <= budget) {
      *bits = entry.bits;
      return;
    }
  }
  const MaskEntry& entry = Entry(true);
  bits->assign((v + 63) / 64, 0);
  bool any = false;
  int32_t best = kInfinity;
  for (int32_t t = 0; t < v; ++t) {
    const int32_t c = entry.completion[t];
    best = std::min(best, c);
    if (c <= budget) {
      (*bits)[t >> 6] |= uint64_t{1} << (t & 63);
      any = true;
    }
  }
  if (!any && !pos_.complete && best < kInfinity) {  // best effort: the shortest completions
    for (int32_t t = 0; t < v; ++t) {
      if (entry.completion[t] == best) (*bits)[t >> 6] |= uint64_t{1} << (t & 63);
    }
  }
  if (pos_.complete) {
    for (int32_t t : vocab_->eos_ids()) (*bits)[t >> 6] |= uint64_t{1} << (t & 63);
  }
}

void GrammarMatcher::ApplyMask(std::span<float> logits, int32_t remaining_tokens) {
  AllowedBits(remaining_tokens, &bits_);
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const size_t v = std::min<size_t>(logits.size(), static_cast<size_t>(vocab_->size()));
  float* out = logits.data();
  const size_t full_words = v / 64;
  for (size_t w = 0; w < full_words; ++w) {
    const uint64_t word = bits_[w];
    if (word == ~uint64_t{0}) continue;
    float* l = out + w * 64;
    if (word == 0) {
      std::fill(l, l + 64, kNegInf);
      continue;
    }
    for (int k = 0; k < 8; ++k) {  // a byte of mask bits at a time, as 8 lane masks
      const uint8_t byte = static_cast<uint8_t>(word >> (8 * k));
      if (byte == 0xFF) continue;
      const std::array<uint32_t, 8>& keep = kKeepLanes[byte];
      uint32_t x[8];
      std::memcpy(x, l + 8 * k, sizeof(x));
      for (int j = 0; j < 8; ++j) x[j] = (x[j] & keep[j]) | (kNegInfBits & ~keep[j]);
      std::memcpy(l + 8 * k, x, sizeof(x));
    }
  }
  for (size_t t = full_words * 64; t < v; ++t) {
    if (!((bits_[t >> 6] >> (t & 63)) & 1)) out[t] = kNegInf;
  }
  for (size_t t = v; t < logits.size(); ++t) logits[t] = kNegInf;
}

void GrammarMatcher::FillBitmask(std::span<uint64_t> bitmask, int32_t remaining_tokens) {
  AllowedBits(remaining_tokens, &bits_);
  for (size_t w = 0; w < bitmask.size(); ++w) bitmask[w] = w < bits_.size() ? bits_[w] : 0;
}

bool GrammarMatcher::IsAllowed(int32_t token, int32_t remaining_tokens) {
  if (token < 0 || token >= vocab_->size()) return false;
  AllowedBits(remaining_tokens, &bits_);
  return (bits_[token >> 6] >> (token & 63)) & 1;
}

absl::Status GrammarMatcher::Accept(int32_t token) {
  if (finished_) return absl::FailedPreconditionError("grammar matcher: the output already ended (EOS)");
  if (token < 0 || token >= vocab_->size()) {
    return absl::FailedPreconditionError(absl::StrCat("grammar matcher: token ", token, " is out of range"));
  }
  if (vocab_->is_eos(token)) {
    if (!pos_.complete) {
      return absl::FailedPreconditionError(
          absl::StrCat("grammar matcher: EOS (token ", token, ") before the output is complete"));
    }
    finished_ = true;
    return absl::OkStatus();
  }
  const std::string& bytes = vocab_->bytes(token);
  if (bytes.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("grammar matcher: special token ", token, " is never allowed"));
  }
  Parser::Position cur = pos_, next;
  for (char c : bytes) {
    if (!parser_.Step(cur, static_cast<uint8_t>(c), &next)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "grammar matcher: token ", token, " (\"", absl::CEscape(bytes),
          "\") cannot continue the output \"", absl::CEscape(output_), "\""));
    }
    std::swap(cur, next);
  }
  pos_ = std::move(cur);
  output_ += bytes;
  return absl::OkStatus();
}

}  // namespace tailor::grammar
