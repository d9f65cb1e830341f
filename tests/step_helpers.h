// Step plans for engine tests: random batches, and one sequence fed beside random companions.
#ifndef TAILOR_TESTS_STEP_HELPERS_H_
#define TAILOR_TESTS_STEP_HELPERS_H_

#include <algorithm>
#include <filesystem>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "engine/runtime.h"
#include "gtest/gtest.h"

namespace tailor::testing_util {

// Opens a package's runtime with a KV pool of `kv_cache_mb` (failing the test if it cannot).
inline std::unique_ptr<Runtime> OpenRuntime(const std::filesystem::path& dir, bool native, int64_t kv_cache_mb) {
  RuntimeOptions o;
  o.force_native = native;
  o.kv_cache_mb = kv_cache_mb;
  auto rt = Runtime::Open(dir, o);
  EXPECT_TRUE(rt.ok()) << rt.status();
  return rt.ok() ? std::move(rt).value() : nullptr;
}

// A random plan filling `spec`: rows with 1..seq_len tokens at random positions, own blocks.
struct RandomPlan {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::vector<BlockId>> tables;
  StepPlan plan;
};
inline RandomPlan MakeRandomPlan(const Runtime& rt, int32_t spec, std::mt19937& rng) {
  const SpecShape& s = rt.specializations()[spec].shape;
  const int32_t B = rt.kv_block_size(), per_row = (s.ctx_len + B - 1) / B;
  RandomPlan p;
  p.plan.spec_index = spec;
  const int32_t rows = 1 + static_cast<int32_t>(rng() % s.batch_size);
  p.tokens.resize(rows);
  p.tables.resize(rows);
  for (int32_t r = 0; r < rows; ++r) {
    const int32_t n = 1 + static_cast<int32_t>(rng() % s.seq_len);
    for (int32_t i = 0; i < n; ++i) p.tokens[r].push_back(static_cast<int32_t>(rng() % rt.vocab_size()));
    for (int32_t b = 0; b < per_row; ++b) p.tables[r].push_back(r * per_row + b);
  }
  for (int32_t r = 0; r < rows; ++r) {
    const int32_t n = static_cast<int32_t>(p.tokens[r].size());
    const int32_t start = static_cast<int32_t>(rng() % (s.ctx_len - n + 1));
    p.plan.rows.push_back(StepRow{r, p.tokens[r], start, p.tables[r], 1});
  }
  return p;
}

// Feeds `seq` to a fresh slot in steps of `chunk` tokens on `spec`, with random companion rows
// filling the rest of the batch; returns the logits after every step.
inline std::vector<std::vector<float>> FeedWithCompanions(Runtime& rt, int32_t spec, const std::vector<int32_t>& seq,
                                                          int32_t chunk, uint32_t seed, int32_t ctx = 512) {
  std::mt19937 rng(seed);
  const SpecShape& s = rt.specializations()[spec].shape;
  const int32_t B = rt.kv_block_size(), per_row = (ctx + B - 1) / B;
  std::vector<BlockId> mine;
  for (int32_t b = 0; b < per_row; ++b) mine.push_back(7 * per_row + b);  // any free blocks
  std::vector<std::vector<float>> out;
  for (size_t done = 0; done < seq.size(); done += chunk) {
    const int32_t n = std::min<int32_t>(chunk, static_cast<int32_t>(seq.size() - done));
    std::span<const int32_t> part(seq.data() + done, n);
    RandomPlan companions = MakeRandomPlan(rt, spec, rng);
    StepPlan plan;
    plan.spec_index = spec;
    // Our row at a random place among at most batch_size - 1 companions.
    size_t keep = std::min<size_t>(companions.plan.rows.size(), s.batch_size - 1);
    companions.plan.rows.resize(keep);
    const size_t at = rng() % (keep + 1);
    plan.rows = companions.plan.rows;
    plan.rows.insert(plan.rows.begin() + at, StepRow{99, part, static_cast<int32_t>(done), mine, 1});
    auto r = rt.Execute(plan);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return out;
    out.push_back(r->logits[at]);
  }
  return out;
}

}  // namespace tailor::testing_util

#endif  // TAILOR_TESTS_STEP_HELPERS_H_
