#include "scheduler/kv_cache_manager.h"

#include <algorithm>
#include <cassert>

#include "absl/strings/str_cat.h"

namespace tailor {
namespace {

uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

int32_t CeilDiv(int64_t a, int32_t b) { return static_cast<int32_t>((a + b - 1) / b); }

}  // namespace

KvCacheManager::KvCacheManager(int32_t num_blocks, int32_t block_size, Options options)
    : block_size_(block_size), options_(std::move(options)) {
  blocks_.resize(std::max(0, num_blocks));
  tokens_.assign(static_cast<size_t>(blocks_.size()) * std::max(1, block_size), 0);
  free_.reserve(blocks_.size());
  // Popped from the back: block 0 is handed out first.
  for (int32_t b = num_blocks - 1; b >= 0; --b) free_.push_back(b);
}

uint64_t KvCacheManager::Hash(uint64_t parent, std::span<const int32_t> tokens) const {
  if (options_.hash) return options_.hash(parent, tokens);
  uint64_t h = Mix(parent ^ 0x243f6a8885a308d3ull);
  for (int32_t t : tokens) h = Mix(h ^ (static_cast<uint64_t>(static_cast<uint32_t>(t)) + 0x9e3779b97f4a7c15ull));
  return h;
}

bool KvCacheManager::Matches(BlockId b, std::span<const int32_t> tokens, BlockId parent) const {
  const BlockInfo& info = blocks_[b];
  if (!info.cached || info.parent != parent) return false;
  if (parent >= 0 && info.parent_gen != blocks_[parent].gen) return false;
  return std::equal(tokens.begin(), tokens.end(), tokens_.begin() + static_cast<size_t>(b) * block_size_);
}

PrefixMatch KvCacheManager::FindCachedPrefix(std::span<const int32_t> tokens) const {
  PrefixMatch match;
  match.num_query_tokens = static_cast<int32_t>(tokens.size());
  if (!options_.enable_prefix_caching || tokens.empty()) return match;
  const size_t max_blocks = (tokens.size() - 1) / block_size_;  // leave at least one token
  uint64_t chain = kRootHash;
  BlockId parent = -1;
  for (size_t i = 0; i < max_blocks; ++i) {
    auto block_tokens = tokens.subspan(i * block_size_, block_size_);
    chain = Hash(chain, block_tokens);
    auto it = index_.find(chain);
    if (it == index_.end() || !Matches(it->second, block_tokens, parent)) break;
    parent = it->second;
    match.blocks.push_back(parent);
  }
  match.num_tokens = static_cast<int32_t>(match.blocks.size()) * block_size_;
  return match;
}

int32_t KvCacheManager::BlocksNeeded(RequestId id, int32_t end_pos) const {
  auto it = seqs_.find(id);
  const int32_t have = it == seqs_.end() ? 0 : static_cast<int32_t>(it->second.table.size());
  return std::max(0, CeilDiv(end_pos, block_size_) - have);
}

bool KvCacheManager::IsStale(BlockId b) const {
  const BlockInfo& info = blocks_[b];
  return info.parent >= 0 && blocks_[info.parent].gen != info.parent_gen;
}

void KvCacheManager::Uncache(BlockId b) {
  BlockInfo& info = blocks_[b];
  info.cached = false;
  info.parent = -1;
  if (info.in_lru) {  // unreferenced: back to the plain free list
    lru_.erase(info.lru_it);
    info.in_lru = false;
    free_.push_back(b);
  }
}

BlockId KvCacheManager::TakeFreshBlock() {
  BlockId b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else {
    b = lru_.front();
    lru_.pop_front();
    BlockInfo& info = blocks_[b];
    info.in_lru = false;
    auto it = index_.find(info.hash);
    if (it != index_.end() && it->second == b) index_.erase(it);
    info.cached = false;
    ++evictions_;
  }
  BlockInfo& info = blocks_[b];
  ++info.gen;
  info.ref = 1;
  info.parent = -1;
  ++used_;
  return b;
}

void KvCacheManager::AddRef(BlockId b) {
  BlockInfo& info = blocks_[b];
  if (info.ref == 0) {
    if (info.in_lru) {
      lru_.erase(info.lru_it);
      info.in_lru = false;
    }
    ++used_;
  }
  ++info.ref;
}

void KvCacheManager::Release(BlockId b) {
  BlockInfo& info = blocks_[b];
  assert(info.ref > 0);
  if (--info.ref > 0) return;
  --used_;
  if (info.cached) {
    info.lru_it = lru_.insert(lru_.end(), b);
    info.in_lru = true;
  } else {
    free_.push_back(b);
  }
}

bool KvCacheManager::Allocate(RequestId id, int32_t end_pos, const PrefixMatch* prefix) {
  auto it = seqs_.find(id);
  const bool is_new = it == seqs_.end();
  const size_t prefix_blocks = is_new && prefix != nullptr ? prefix->blocks.size() : 0;
  const int32_t have = is_new ? static_cast<int32_t>(prefix_blocks) : static_cast<int32_t>(it->second.table.size());
  const int32_t fresh = std::max(0, CeilDiv(end_pos, block_size_) - have);
  int32_t revived = 0;  // prefix blocks that leave the evictable list when referenced
  for (size_t i = 0; i < prefix_blocks; ++i) revived += blocks_[prefix->blocks[i]].ref == 0 ? 1 : 0;
  if (fresh > NumAvailableBlocks() - revived) return false;
  if (is_new) {
    it = seqs_.emplace(id, SeqInfo{}).first;
    if (prefix != nullptr) {
      SeqInfo& seq = it->second;
      for (BlockId b : prefix->blocks) {
        AddRef(b);
        seq.table.push_back(b);
      }
      seq.num_registered = static_cast<int32_t>(prefix->blocks.size());
      if (!prefix->blocks.empty()) seq.chain_hash = blocks_[prefix->blocks.back()].hash;
      query_tokens_ += prefix->num_query_tokens;
      hit_tokens_ += prefix->num_tokens;
    }
  }
  for (int32_t i = 0; i < fresh; ++i) it->second.table.push_back(TakeFreshBlock());
  return true;
}

void KvCacheManager::Commit(RequestId id, std::span<const int32_t> tokens, int32_t num_computed) {
  if (!options_.enable_prefix_caching) return;
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return;
  SeqInfo& seq = it->second;
  num_computed = std::min<int32_t>(num_computed, static_cast<int32_t>(tokens.size()));
  while (!seq.stop_registering && (seq.num_registered + 1) * block_size_ <= num_computed &&
         seq.num_registered < static_cast<int32_t>(seq.table.size())) {
    const int32_t i = seq.num_registered;
    auto block_tokens = tokens.subspan(static_cast<size_t>(i) * block_size_, block_size_);
    const uint64_t h = Hash(seq.chain_hash, block_tokens);
    const BlockId parent = i > 0 ? seq.table[i - 1] : -1;
    BlockId& mine = seq.table[i];
    auto found = index_.find(h);
    if (found != index_.end() && IsStale(found->second)) {
      // A block cached under a parent that has since been evicted: unreachable, drop it.
      const BlockId stale = found->second;
      index_.erase(found);
      Uncache(stale);
      found = index_.end();
    }
    if (found != index_.end()) {
      const BlockId other = found->second;
      if (!Matches(other, block_tokens, parent)) {
        seq.stop_registering = true;  // a different prefix with the same hash: leave it
        break;
      }
      if (other != mine) {  // the same prefix computed twice: keep the cached copy
        AddRef(other);
        Release(mine);
        mine = other;
      }
    } else {
      BlockInfo& info = blocks_[mine];
      assert(!info.cached && info.ref == 1);
      info.cached = true;
      info.hash = h;
      info.parent = parent;
      info.parent_gen = parent >= 0 ? blocks_[parent].gen : 0;
      std::copy(block_tokens.begin(), block_tokens.end(), tokens_.begin() + static_cast<size_t>(mine) * block_size_);
      index_.emplace(h, mine);
    }
    seq.chain_hash = h;
    ++seq.num_registered;
  }
}

void KvCacheManager::Free(RequestId id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return;
  const std::vector<BlockId>& table = it->second.table;
  // Last blocks first: they reach the front of the eviction order before the shared prefix.
  for (auto b = table.rbegin(); b != table.rend(); ++b) Release(*b);
  seqs_.erase(it);
}

std::span<const BlockId> KvCacheManager::BlockTable(RequestId id) const {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return {};
  return it->second.table;
}

KvCacheStats KvCacheManager::stats() const {
  KvCacheStats s;
  s.num_blocks = num_blocks();
  s.used_blocks = used_;
  s.cached_free_blocks = static_cast<int32_t>(lru_.size());
  s.free_blocks = static_cast<int32_t>(free_.size());
  s.prefix_query_tokens = query_tokens_;
  s.prefix_hit_tokens = hit_tokens_;
  s.evictions = evictions_;
  return s;
}

absl::Status KvCacheManager::CheckInvariants() const {
  std::vector<int32_t> refs(blocks_.size(), 0);
  for (const auto& [id, seq] : seqs_) {
    for (BlockId b : seq.table) {
      if (b < 0 || b >= num_blocks()) return absl::InternalError(absl::StrCat("request ", id, ": block ", b));
      ++refs[b];
    }
    for (int32_t i = 0; i < seq.num_registered; ++i) {
      if (!blocks_[seq.table[i]].cached) {
        return absl::InternalError(absl::StrCat("request ", id, ": registered block ", seq.table[i], " not cached"));
      }
    }
  }
  std::vector<int32_t> where(blocks_.size(), 0);
  for (BlockId b : free_) ++where[b];
  for (BlockId b : lru_) ++where[b];
  int32_t used = 0;
  for (size_t b = 0; b < blocks_.size(); ++b) {
    const BlockInfo& info = blocks_[b];
    if (info.ref != refs[b]) {
      return absl::InternalError(absl::StrCat("block ", b, ": ref ", info.ref, ", tables hold ", refs[b]));
    }
    if (info.ref > 0) ++used;
    const int32_t expected = info.ref > 0 ? 0 : 1;
    if (where[b] != expected) {
      return absl::InternalError(absl::StrCat("block ", b, " (ref ", info.ref, ") is on ", where[b], " free lists"));
    }
    if (info.in_lru != (info.ref == 0 && info.cached)) {
      return absl::InternalError(absl::StrCat("block ", b, ": in_lru flag wrong"));
    }
    if (info.cached) {
      auto it = index_.find(info.hash);
      if (it == index_.end() || it->second != static_cast<BlockId>(b)) {
        return absl::InternalError(absl::StrCat("cached block ", b, " missing from the index"));
      }
    }
  }
  for (BlockId b : free_) {
    if (blocks_[b].cached) return absl::InternalError(absl::StrCat("free block ", b, " is cached"));
  }
  if (used != used_) return absl::InternalError(absl::StrCat("used count ", used_, ", actual ", used));
  for (const auto& [h, b] : index_) {
    if (!blocks_[b].cached || blocks_[b].hash != h) {
      return absl::InternalError(absl::StrCat("index entry for block ", b, " is stale"));
    }
  }
  return absl::OkStatus();
}

}  // namespace tailor
