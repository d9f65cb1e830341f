// The specialization-set search: names, servability, and the proposed set against the
// exhaustive best on small candidate grids with injected costs.
#include "scheduler/spec_set_search.h"

#include <algorithm>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tailor {
namespace {

using ::testing::HasSubstr;

SpecCandidate Candidate(int32_t b, int32_t s, int32_t c, int32_t ols, StepCostModel cost) {
  return SpecCandidate{Specialization{SpecShape{b, s, c}, ols}, cost};
}

std::vector<TraceRequest> MakeTrace(int32_t n, double rate, uint64_t seed, int32_t max_total = 128) {
  TraceOptions t;
  t.num_requests = n;
  t.rate = rate;
  t.max_total_len = max_total;
  t.prompt_len = *ParseLengthDist("lognormal:30:0.7");
  t.output_len = *ParseLengthDist("lognormal:24:0.7");
  t.seed = seed;
  return *GenerateTrace(t);
}

// A plausible machine: a step reads the weights once (w), computes per token (f), reads KV per
// attended position (a); ols=2 speeds up the first two by `ols_gain`. Each candidate's cost is
// perturbed by up to +-`noise` so that the landscape has no simple structure.
std::vector<SpecCandidate> Grid(uint64_t seed, double noise, int32_t ctx) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> jitter(1 - noise, 1 + noise);
  const double w = 1e-3, f = 4e-5, a = 2e-8, ols_gain = 0.7;
  std::vector<SpecCandidate> out;
  auto add = [&](int32_t b, int32_t s, int32_t c, int32_t ols) {
    const double g = ols == 2 ? ols_gain : 1.0;
    out.push_back(Candidate(b, s, c, ols, StepCostModel{(w + f * b * s) * g * jitter(rng), 2e-6, a * jitter(rng)}));
  };
  for (int32_t b : {1, 4, 8}) add(b, 1, ctx, 1);
  add(4, 1, ctx / 2, 2);
  add(8, 1, ctx, 2);
  for (int32_t s : {16, 32}) add(1, s, ctx, 1);
  add(2, 16, ctx, 2);
  add(1, 32, ctx / 2, 1);
  return out;
}

TEST(CandidateNames, RoundTrip) {
  Specialization s{SpecShape{4, 1, 512}, 2};
  EXPECT_EQ(CandidateName(s), "b4_s1_c512_ols2");
  auto p = ParseCandidateName("b4_s1_c512_ols2");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->shape, s.shape);
  EXPECT_EQ(p->ols, 2);
  auto q = ParseCandidateName("b1_s32_c256");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->ols, 1);
  for (const char* bad : {"b4_s1", "b0_s1_c512", "x4_s1_c512", "b4_s1_c512_ols", "b1_s64_c32", "b4_s1_c512_q2"}) {
    EXPECT_FALSE(ParseCandidateName(bad).ok()) << bad;
  }
  EXPECT_THAT(ParseCandidateName("b1_s64_c32").status().message(), HasSubstr("larger than ctx_len"));
}

TEST(SpecSetSearch, CanServeNeedsDecodePrefillAndContext) {
  const std::vector<SpecCandidate> c = {Candidate(4, 1, 64, 1, {}), Candidate(1, 16, 128, 1, {}),
                                        Candidate(8, 1, 128, 1, {}), Candidate(1, 32, 64, 1, {})};
  EXPECT_TRUE(CanServe(c, std::vector<int32_t>{0, 1}, 100));  // the prefill spec covers ctx 100
  EXPECT_FALSE(CanServe(c, std::vector<int32_t>{0, 3}, 100));
  EXPECT_TRUE(CanServe(c, std::vector<int32_t>{0, 3}, 64));
  EXPECT_FALSE(CanServe(c, std::vector<int32_t>{0, 2}, 64));  // no prefill
  EXPECT_FALSE(CanServe(c, std::vector<int32_t>{1, 3}, 64));  // no decode
}

// The heart of the test: on small grids, the proposed set is within 5% of the exhaustive best
// (by simulated throughput), in both arrival modes and for several budgets.
TEST(SpecSetSearch, WithinFivePercentOfExhaustive) {
  int checked = 0;
  for (uint64_t seed : {1, 2, 3}) {
    const std::vector<SpecCandidate> grid = Grid(seed, 0.25, 128);
    const std::vector<TraceRequest> trace = MakeTrace(40, 30, seed);
    for (bool realtime : {false, true}) {
      for (int32_t budget : {2, 3, 4}) {
        SearchOptions o;
        o.budget = budget;
        o.simulation.realtime = realtime;
        o.threads = 2;
        SearchStats search_stats, all_stats;
        auto found = SearchSpecSet(grid, trace, o, &search_stats);
        auto best = ExhaustiveSpecSet(grid, trace, o, &all_stats);
        ASSERT_TRUE(found.ok()) << found.status();
        ASSERT_TRUE(best.ok()) << best.status();
        EXPECT_LE(static_cast<int32_t>(found->members.size()), budget);
        EXPECT_TRUE(CanServe(grid, found->members, LongestRequest(trace)));
        EXPECT_TRUE(DistinctShapes(grid, found->members));
        EXPECT_GE(found->simulation.total_tokens_per_s, 0.95 * best->simulation.total_tokens_per_s)
            << "seed " << seed << " realtime " << realtime << " budget " << budget;
        EXPECT_LE(found->simulation.total_tokens_per_s, best->simulation.total_tokens_per_s * (1 + 1e-9));
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 18);
}

// One decode shape far cheaper than the rest is always chosen, and the best prefill with it.
TEST(SpecSetSearch, FindsADominantShape) {
  std::vector<SpecCandidate> grid = Grid(7, 0.0, 128);
  grid[2].cost = StepCostModel{1e-4, 0, 0};  // b8_s1_c128_ols1: ten times cheaper
  const std::vector<TraceRequest> trace = MakeTrace(30, 0, 7);
  SearchOptions o;
  o.budget = 2;
  auto found = SearchSpecSet(grid, trace, o);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(found->members, ::testing::Contains(2));
  auto best = ExhaustiveSpecSet(grid, trace, o);
  ASSERT_TRUE(best.ok());
  EXPECT_EQ(found->members, best->members);
}

// Two -ols of one shape, each the cheapest for some steps: a set would gain from both, but a
// spec config holds a shape once.
TEST(SpecSetSearch, NeverTwoOlsOfOneShape) {
  std::vector<SpecCandidate> grid = {Candidate(8, 1, 128, 1, StepCostModel{1e-4, 1e-4, 0}),
                                     Candidate(8, 1, 128, 2, StepCostModel{4e-4, 0, 0}),
                                     Candidate(1, 32, 128, 1, StepCostModel{2e-3, 0, 0})};
  const std::vector<TraceRequest> trace = MakeTrace(30, 0, 9);
  SearchOptions o;
  o.budget = 3;
  for (auto search : {&SearchSpecSet, &ExhaustiveSpecSet}) {
    auto r = search(grid, trace, o, nullptr);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->members.size(), 2u);
    EXPECT_TRUE(DistinctShapes(grid, r->members));
  }
  EXPECT_FALSE(DistinctShapes(grid, std::vector<int32_t>{0, 1, 2}));
}

TEST(SpecSetSearch, ThreadsDoNotChangeTheResult) {
  const std::vector<SpecCandidate> grid = Grid(5, 0.25, 128);
  const std::vector<TraceRequest> trace = MakeTrace(30, 0, 5);
  SearchOptions o;
  o.budget = 4;
  o.threads = 1;
  auto one = SearchSpecSet(grid, trace, o);
  o.threads = 3;
  auto three = SearchSpecSet(grid, trace, o);
  ASSERT_TRUE(one.ok());
  ASSERT_TRUE(three.ok());
  EXPECT_EQ(one->members, three->members);
  EXPECT_EQ(one->simulation.wall_seconds, three->simulation.wall_seconds);
}

TEST(SpecSetSearch, RefusesWhatCannotBeServed) {
  const std::vector<SpecCandidate> grid = Grid(1, 0.0, 64);  // ctx 64 and 32
  std::vector<TraceRequest> trace = MakeTrace(10, 0, 1, 128);
  trace[0].prompt_ids.assign(80, 5);  // 90 positions
  trace[0].max_tokens = 10;
  SearchOptions o;
  auto r = SearchSpecSet(grid, trace, o);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("no set of the candidates can serve the trace"));
  o.budget = 1;
  EXPECT_THAT(SearchSpecSet(grid, trace, o).status().message(), HasSubstr("budget 1: expected >= 2"));
}

}  // namespace
}  // namespace tailor
