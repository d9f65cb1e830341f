// KV-cache manager: allocation, growth, freeing, prefix sharing, LRU eviction, hash collisions.
#include "scheduler/kv_cache_manager.h"

#include <numeric>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tailor {
namespace {

using ::testing::ElementsAre;

std::vector<int32_t> Range(int32_t from, int32_t n) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), from);
  return v;
}

std::vector<BlockId> Table(const KvCacheManager& kv, RequestId id) {
  auto t = kv.BlockTable(id);
  return std::vector<BlockId>(t.begin(), t.end());
}

TEST(KvCacheTest, AllocateGrowAndFree) {
  KvCacheManager kv(8, 4);
  EXPECT_EQ(kv.BlocksNeeded(1, 5), 2);
  ASSERT_TRUE(kv.Allocate(1, 5));
  EXPECT_THAT(Table(kv, 1), ElementsAre(0, 1));
  ASSERT_TRUE(kv.Allocate(1, 8));  // still two blocks
  EXPECT_EQ(kv.BlockTable(1).size(), 2u);
  EXPECT_EQ(kv.BlocksNeeded(1, 9), 1);
  ASSERT_TRUE(kv.Allocate(1, 9));
  EXPECT_EQ(kv.BlockTable(1).size(), 3u);
  ASSERT_TRUE(kv.Allocate(2, 4));
  EXPECT_EQ(kv.stats().used_blocks, 4);
  EXPECT_EQ(kv.stats().free_blocks, 4);
  EXPECT_TRUE(kv.CheckInvariants().ok());
  kv.Free(1);
  EXPECT_FALSE(kv.Has(1));
  EXPECT_EQ(kv.stats().used_blocks, 1);
  kv.Free(2);
  kv.Free(3);  // unknown: no-op
  const KvCacheStats s = kv.stats();
  EXPECT_EQ(s.used_blocks, 0);
  EXPECT_EQ(s.free_blocks, 8);
  EXPECT_EQ(s.cached_free_blocks, 0);  // nothing was committed
  EXPECT_TRUE(kv.CheckInvariants().ok());
}

TEST(KvCacheTest, RefusesWithoutChangeWhenThePoolIsFull) {
  KvCacheManager kv(4, 4);
  ASSERT_TRUE(kv.Allocate(1, 12));
  EXPECT_FALSE(kv.Allocate(2, 8));
  EXPECT_FALSE(kv.Has(2));
  EXPECT_FALSE(kv.Allocate(1, 17));
  EXPECT_EQ(kv.BlockTable(1).size(), 3u);
  EXPECT_TRUE(kv.Allocate(2, 4));
  EXPECT_EQ(kv.NumAvailableBlocks(), 0);
  EXPECT_TRUE(kv.CheckInvariants().ok());
}

TEST(KvCacheTest, FullBlocksAreSharedAndReferenceCounted) {
  KvCacheManager kv(16, 4);
  const std::vector<int32_t> a = Range(100, 10);
  ASSERT_TRUE(kv.Allocate(1, 10));
  kv.Commit(1, a, 10);  // blocks 0 and 1 are full and cached; block 2 holds 2 tokens
  std::vector<int32_t> b(a.begin(), a.begin() + 8);
  b.insert(b.end(), {7, 7, 7, 7});
  const PrefixMatch m = kv.FindCachedPrefix(b);
  EXPECT_EQ(m.num_tokens, 8);
  const std::vector<BlockId> t1 = Table(kv, 1);
  EXPECT_THAT(m.blocks, ElementsAre(t1[0], t1[1]));
  ASSERT_TRUE(kv.Allocate(2, 12, &m));
  EXPECT_EQ(Table(kv, 2)[0], Table(kv, 1)[0]);
  EXPECT_EQ(Table(kv, 2)[1], Table(kv, 1)[1]);
  EXPECT_NE(Table(kv, 2)[2], Table(kv, 1)[2]);
  EXPECT_EQ(kv.stats().used_blocks, 4);  // 3 + 1 new
  EXPECT_EQ(kv.stats().prefix_hit_tokens, 8);
  EXPECT_EQ(kv.stats().prefix_query_tokens, 12);
  EXPECT_TRUE(kv.CheckInvariants().ok());
  kv.Free(1);  // shared blocks stay referenced by request 2
  EXPECT_EQ(kv.stats().used_blocks, 3);
  kv.Free(2);
  EXPECT_EQ(kv.stats().used_blocks, 0);
  EXPECT_EQ(kv.stats().cached_free_blocks, 2);
  EXPECT_TRUE(kv.CheckInvariants().ok());
  // Still served after both finished.
  EXPECT_EQ(kv.FindCachedPrefix(b).num_tokens, 8);
}

TEST(KvCacheTest, AFullyCachedPromptLeavesItsLastTokenToCompute) {
  KvCacheManager kv(16, 4);
  const std::vector<int32_t> p = Range(1, 8);
  ASSERT_TRUE(kv.Allocate(1, 8));
  kv.Commit(1, p, 8);
  kv.Free(1);
  const PrefixMatch m = kv.FindCachedPrefix(p);
  EXPECT_EQ(m.num_tokens, 4);  // not 8: position 7 must run to give logits
  std::vector<int32_t> longer = p;
  longer.push_back(9);
  EXPECT_EQ(kv.FindCachedPrefix(longer).num_tokens, 8);
  EXPECT_EQ(kv.FindCachedPrefix(std::vector<int32_t>{1}).num_tokens, 0);
}

TEST(KvCacheTest, DuplicateComputationSwitchesToTheCachedBlock) {
  KvCacheManager kv(16, 4);
  const std::vector<int32_t> p = Range(1, 6);
  ASSERT_TRUE(kv.Allocate(1, 6));
  ASSERT_TRUE(kv.Allocate(2, 6));  // both computing the same prompt, nothing cached yet
  EXPECT_EQ(kv.stats().used_blocks, 4);
  kv.Commit(1, p, 6);
  kv.Commit(2, p, 6);
  EXPECT_EQ(Table(kv, 2)[0], Table(kv, 1)[0]);
  EXPECT_EQ(kv.stats().used_blocks, 3);
  EXPECT_TRUE(kv.CheckInvariants().ok());
}

TEST(KvCacheTest, EvictsLeastRecentlyUsedAndDeepestBlocksFirst) {
  KvCacheManager kv(4, 2);
  const std::vector<int32_t> a{1, 2, 3, 4, 0}, b{5, 6, 7, 8, 0};
  ASSERT_TRUE(kv.Allocate(1, 4));
  kv.Commit(1, a, 4);
  kv.Free(1);
  ASSERT_TRUE(kv.Allocate(2, 4));
  kv.Commit(2, b, 4);
  kv.Free(2);
  EXPECT_EQ(kv.stats().cached_free_blocks, 4);
  // Touch a's prefix: now b is the least recently used.
  PrefixMatch m = kv.FindCachedPrefix(a);
  ASSERT_EQ(m.num_tokens, 4);
  ASSERT_TRUE(kv.Allocate(3, 4, &m));
  kv.Free(3);
  // One fresh block: evicts b's second block (the deepest of the oldest).
  ASSERT_TRUE(kv.Allocate(4, 2));
  EXPECT_EQ(kv.stats().evictions, 1);
  EXPECT_EQ(kv.FindCachedPrefix(b).num_tokens, 2);
  EXPECT_EQ(kv.FindCachedPrefix(a).num_tokens, 4);
  ASSERT_TRUE(kv.Allocate(4, 4));
  EXPECT_EQ(kv.FindCachedPrefix(b).num_tokens, 0);
  EXPECT_EQ(kv.FindCachedPrefix(a).num_tokens, 4);
  EXPECT_TRUE(kv.CheckInvariants().ok());
  // Blocks referenced by a live sequence are never evicted.
  m = kv.FindCachedPrefix(a);
  ASSERT_TRUE(kv.Allocate(5, 4, &m));
  EXPECT_FALSE(kv.Allocate(6, 2));
  EXPECT_TRUE(kv.CheckInvariants().ok());
}

TEST(KvCacheTest, NeverTrustsTheHashAlone) {
  // Every block hashes alike: tokens decide.
  KvCacheManager::Options options;
  options.hash = [](uint64_t, std::span<const int32_t>) -> uint64_t { return 7; };
  KvCacheManager kv(16, 4, options);
  const std::vector<int32_t> a = Range(1, 9);
  ASSERT_TRUE(kv.Allocate(1, 9));
  kv.Commit(1, a, 9);  // block 0 cached; block 1 collides with it and stays uncached
  EXPECT_TRUE(kv.CheckInvariants().ok());
  EXPECT_EQ(kv.FindCachedPrefix(Range(50, 9)).num_tokens, 0);
  EXPECT_EQ(kv.FindCachedPrefix(a).num_tokens, 4);
}

TEST(KvCacheTest, ChecksTheParentNotOnlyTheBlockTokens) {
  // Hash of the block's own tokens only, ignoring the parent: [C][B] must not match [A][B].
  KvCacheManager::Options options;
  options.hash = [](uint64_t, std::span<const int32_t> t) -> uint64_t {
    uint64_t h = 0;
    for (int32_t x : t) h = h * 31 + static_cast<uint64_t>(x);
    return h;
  };
  KvCacheManager kv(16, 2, options);
  const std::vector<int32_t> ab{1, 2, 3, 4, 0}, cb{5, 6, 3, 4, 0};
  ASSERT_TRUE(kv.Allocate(1, 4));
  kv.Commit(1, ab, 4);
  ASSERT_TRUE(kv.Allocate(2, 4));
  kv.Commit(2, cb, 4);
  EXPECT_TRUE(kv.CheckInvariants().ok());
  EXPECT_EQ(kv.FindCachedPrefix(ab).num_tokens, 4);
  EXPECT_EQ(kv.FindCachedPrefix(cb).num_tokens, 2);  // [C] only: [B] here follows another parent
}

TEST(KvCacheTest, DisabledPrefixCachingCachesNothing) {
  KvCacheManager kv(8, 2, KvCacheManager::Options{false, {}});
  const std::vector<int32_t> a{1, 2, 3, 4, 5};
  ASSERT_TRUE(kv.Allocate(1, 5));
  kv.Commit(1, a, 5);
  kv.Free(1);
  EXPECT_EQ(kv.FindCachedPrefix(a).num_tokens, 0);
  EXPECT_EQ(kv.stats().cached_free_blocks, 0);
  EXPECT_EQ(kv.stats().free_blocks, 8);
}

}  // namespace
}  // namespace tailor
