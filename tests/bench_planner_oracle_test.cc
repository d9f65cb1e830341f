// The planner against an exhaustive search of the same round (bench/planner_oracle.h): on rounds
// like those of the mixed serving trace, under a cost table shaped like the 110M model's, its
// plans cost within 5% (seconds per useful token) of the best plan; and the oracle itself on
// rounds whose best plan is known.
#include "bench/planner_oracle.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace tailor::bench {
namespace {

// b1/b4/b8/b16 decode and b1_s64/b4_s16 prefill at ctx 512 (the mixed set). Costs: a
// decode step bound by its padded rows' matmuls (7 ms + 1.8 ms per batch row) plus attention,
// prefill steps ~60 ms, 0.1 ms of overhead per step.
struct MixedSet {
  std::vector<Specialization> specs;
  CostTable costs;
  MixedSet() {
    for (int b : {1, 4, 8, 16}) {
      specs.push_back(Specialization{{b, 1, 512}, 2});
      costs.models.push_back(StepCostModel{7e-3 + 1.8e-3 * b, 2e-5, 2.5e-6});
    }
    specs.push_back(Specialization{{1, 64, 512}, 2});
    costs.models.push_back(StepCostModel{60e-3, 1e-4, 4e-7});
    specs.push_back(Specialization{{4, 16, 512}, 2});
    costs.models.push_back(StepCostModel{62e-3, 1e-4, 4e-7});
    costs.step_overhead_seconds = 1e-4;
  }
};

TEST(PlannerOracle, FindsTheKnownBestPlans) {
  MixedSet set;
  // 9 decode rows: b8 + b1 (7+14.4 + 7+1.8 ms) beats one b16 step (35.8 ms).
  std::vector<int32_t> nine(9, 100);
  OracleResult r = OracleRound(set.specs, set.costs, {}, nine);
  EXPECT_EQ(r.useful_tokens, 9);
  const double b8 = 7e-3 + 1.8e-3 * 8 + 8 * 2e-5 + 8 * 101 * 2.5e-6 + 1e-4;
  const double b1 = 7e-3 + 1.8e-3 + 2e-5 + 101 * 2.5e-6 + 1e-4;
  EXPECT_NEAR(r.seconds, b8 + b1, 1e-12);
  // One 40-token prompt alone: b1_s64 (one step, 40 useful tokens).
  std::vector<PrefillItem> one{{0, 40}};
  r = OracleRound(set.specs, set.costs, one, {});
  EXPECT_EQ(r.useful_tokens, 40);
  EXPECT_NEAR(r.seconds, 60e-3 + 1e-4 + 4e-7 * AttendedPositions(1, 40, 40) + 1e-4, 1e-12);
}

TEST(PlannerOracle, PlannerIsWithinFivePercentOfTheOracle) {
  MixedSet set;
  std::mt19937_64 rng(7);
  int rounds = 0, worse = 0;
  double worst = 1.0;
  for (int trial = 0; trial < 300; ++trial) {
    // Like the mixed trace's rounds: up to 12 decoding sequences anywhere in their context,
    // 0-3 prompts waiting with 1-200 tokens to go.
    std::vector<int32_t> decode(rng() % 13);
    for (auto& d : decode) d = static_cast<int32_t>(rng() % 500);
    std::vector<PrefillItem> prefill(rng() % 4);
    for (auto& p : prefill) {
      p.start = static_cast<int32_t>(rng() % 128);
      p.max_tokens = 1 + static_cast<int32_t>(rng() % 200);
    }
    if (decode.empty() && prefill.empty()) continue;
    const RoundPlan plan = PlanRound(set.specs, set.costs, SchedulePolicy::kCostModel, prefill, decode);
    const OracleResult best = OracleRound(set.specs, set.costs, prefill, decode);
    const double ratio = SecondsPerToken(plan) / best.seconds_per_token;
    ++rounds;
    EXPECT_GE(ratio, 1.0 - 1e-9) << "the oracle missed a plan the planner found (trial " << trial << ")";
    EXPECT_LE(ratio, 1.05) << "trial " << trial << ": " << decode.size() << " decode, " << prefill.size()
                           << " prefill items";
    worse += ratio > 1.0 + 1e-9;
    worst = std::max(worst, ratio);
  }
  EXPECT_GT(rounds, 250);
  RecordProperty("rounds_worse_than_oracle", worse);
  RecordProperty("worst_ratio_x1000", static_cast<int>(worst * 1000));
}

}  // namespace
}  // namespace tailor::bench
