// Bookkeeping of the executor's paged KV pool (the executor owns the memory; only block ids
// cross): per-sequence block tables that grow with the sequence, and automatic prefix caching.
//
// Block i of a sequence holds positions [i*B, (i+1)*B) (B = block_size). Once a block is full and
// its KV written (Commit), it enters the prefix cache, keyed by a hash chain: hash(parent block's
// hash, the block's B tokens). A lookup never trusts the hash alone: the candidate's tokens are
// compared, and so is its parent link (block id plus the generation the parent had when the
// child was cached), so a hit guarantees the whole prefix, token for token. Cached blocks are
// shared between sequences and reference-counted; a cached block no sequence references stays
// cached (evictable) until an allocation needs it: least recently used first. If a sequence
// computes a block that is already cached, its table switches to the cached copy (one canonical
// block per prefix) and its own copy is freed.
//
// Not thread-safe: owned by the scheduler's step loop.
#ifndef TAILOR_SCHEDULER_KV_CACHE_MANAGER_H_
#define TAILOR_SCHEDULER_KV_CACHE_MANAGER_H_

#include <cstdint>
#include <functional>
#include <list>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "engine/executor.h"

namespace tailor {

struct KvCacheStats {
  int32_t num_blocks = 0;
  int32_t used_blocks = 0;         // referenced by at least one live sequence
  int32_t cached_free_blocks = 0;  // in the prefix cache, referenced by none (evictable)
  int32_t free_blocks = 0;         // neither
  int64_t prefix_query_tokens = 0; // tokens looked up at admission (Allocate with a PrefixMatch)
  int64_t prefix_hit_tokens = 0;   // of those, served from the cache
  int64_t evictions = 0;           // cached blocks reclaimed for new allocations
};

// The cached prefix of a token sequence: whole blocks only, and never the last token (a prompt
// must compute at least one token to get logits).
struct PrefixMatch {
  std::vector<BlockId> blocks;
  int32_t num_tokens = 0;        // blocks.size() * block_size
  int32_t num_query_tokens = 0;  // length of the looked-up sequence
};

class KvCacheManager {
 public:
  // Hash of one full block given its parent's hash (kRootHash for block 0).
  using BlockHashFn = std::function<uint64_t(uint64_t parent_hash, std::span<const int32_t> tokens)>;
  static constexpr uint64_t kRootHash = 0x9e3779b97f4a7c15ull;

  struct Options {
    bool enable_prefix_caching = true;
    BlockHashFn hash;  // empty: the built-in 64-bit hash (tests inject a colliding one)
  };

  KvCacheManager(int32_t num_blocks, int32_t block_size, Options options);
  KvCacheManager(int32_t num_blocks, int32_t block_size) : KvCacheManager(num_blocks, block_size, Options{}) {}

  int32_t num_blocks() const { return static_cast<int32_t>(blocks_.size()); }
  int32_t block_size() const { return block_size_; }
  // Blocks an allocation could take now: free ones plus cached unreferenced ones.
  int32_t NumAvailableBlocks() const { return static_cast<int32_t>(free_.size() + lru_.size()); }

  // The longest cached prefix of `tokens` (see PrefixMatch). Changes nothing.
  PrefixMatch FindCachedPrefix(std::span<const int32_t> tokens) const;

  // Grows `id`'s table to cover positions [0, end_pos). For a sequence not yet known, `prefix`
  // (from FindCachedPrefix, with no state change in between; may be null) becomes the start of
  // its table, each of its blocks taking a reference. Returns false, changing nothing, when the
  // pool lacks the blocks.
  bool Allocate(RequestId id, int32_t end_pos, const PrefixMatch* prefix = nullptr);
  // New blocks Allocate(id, end_pos) would take for a known sequence.
  int32_t BlocksNeeded(RequestId id, int32_t end_pos) const;

  // Records that the KV of tokens[0, num_computed) of `id` is written: its newly full blocks
  // enter the prefix cache (or are replaced by an identical cached block).
  void Commit(RequestId id, std::span<const int32_t> tokens, int32_t num_computed);

  // Releases every block of `id` (finished, cancelled or preempted). Its cached blocks stay in
  // the cache, its last blocks first in line for eviction. No-op for an unknown id.
  void Free(RequestId id);

  bool Has(RequestId id) const { return seqs_.contains(id); }
  // `id`'s block table (empty for an unknown id). Valid until the next non-const call.
  std::span<const BlockId> BlockTable(RequestId id) const;

  KvCacheStats stats() const;
  // Checks reference counts, lists and the hash index against each other (tests).
  absl::Status CheckInvariants() const;

 private:
  struct BlockInfo {
    int32_t ref = 0;
    bool cached = false;    // in the prefix index; tokens_ holds its tokens
    bool in_lru = false;    // cached and unreferenced
    uint64_t hash = 0;      // chain hash, when cached
    uint64_t gen = 0;       // incremented each time the block is handed out fresh
    BlockId parent = -1;    // when cached: the previous block of the prefix (-1: first block)
    uint64_t parent_gen = 0;
    std::list<BlockId>::iterator lru_it;
  };
  struct SeqInfo {
    std::vector<BlockId> table;
    int32_t num_registered = 0;  // leading blocks that are cached (canonical)
    uint64_t chain_hash = kRootHash;
    bool stop_registering = false;  // a hash collision: later blocks are left uncached
  };

  uint64_t Hash(uint64_t parent, std::span<const int32_t> tokens) const;
  bool Matches(BlockId b, std::span<const int32_t> tokens, BlockId parent) const;
  // True when `b`'s parent has been reused since `b` was cached (no lookup can reach `b`).
  bool IsStale(BlockId b) const;
  // Removes `b` (already out of index_) from the cache.
  void Uncache(BlockId b);
  BlockId TakeFreshBlock();
  void AddRef(BlockId b);
  void Release(BlockId b);

  const int32_t block_size_;
  Options options_;
  std::vector<BlockInfo> blocks_;
  std::vector<int32_t> tokens_;  // [num_blocks, block_size]: the tokens of cached blocks
  std::vector<BlockId> free_;    // stack of unreferenced, uncached blocks
  std::list<BlockId> lru_;       // cached, unreferenced; front = least recently used
  absl::flat_hash_map<uint64_t, BlockId> index_;  // chain hash -> cached block
  absl::flat_hash_map<RequestId, SeqInfo> seqs_;
  int32_t used_ = 0;
  int64_t query_tokens_ = 0, hit_tokens_ = 0, evictions_ = 0;
};

}  // namespace tailor

#endif  // TAILOR_SCHEDULER_KV_CACHE_MANAGER_H_
