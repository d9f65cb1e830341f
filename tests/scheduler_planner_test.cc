// The per-round choice of steps and specializations, under injected cost tables.
#include "scheduler/step_planner.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tailor {
namespace {

struct SpecSet {
  std::vector<Specialization> specs;
  CostTable costs;
  SpecSet(std::vector<SpecShape> shapes, std::vector<double> c) : costs(CostTable::Fixed(std::move(c))) {
    for (const auto& s : shapes) specs.push_back(Specialization{s, 1});
  }
  RoundPlan Plan(SchedulePolicy p, std::vector<PrefillItem> prefill, std::vector<int32_t> decode) const {
    return PlanRound(specs, costs, p, prefill, decode);
  }
};

std::vector<int32_t> SpecsOf(const RoundPlan& plan) {
  std::vector<int32_t> out;
  for (const auto& s : plan.steps) out.push_back(s.spec_index);
  return out;
}

// Every item runs exactly once, within the limits of its step's specialization.
void ExpectValid(const SpecSet& setup, const RoundPlan& plan, const std::vector<PrefillItem>& prefill,
                 const std::vector<int32_t>& decode) {
  std::vector<int> decode_seen(decode.size(), 0), prefill_seen(prefill.size(), 0);
  for (const auto& step : plan.steps) {
    const SpecShape& s = setup.specs[step.spec_index].shape;
    EXPECT_LE(static_cast<int32_t>(step.rows.size()), s.batch_size);
    for (const auto& row : step.rows) {
      const int32_t start = row.decode ? decode[row.index] : prefill[row.index].start;
      EXPECT_GE(row.tokens, 1);
      EXPECT_LE(row.tokens, s.seq_len);
      EXPECT_LE(start + row.tokens, s.ctx_len);
      if (row.decode) {
        EXPECT_EQ(row.tokens, 1);
        ++decode_seen[row.index];
      } else {
        EXPECT_LE(row.tokens, prefill[row.index].max_tokens);
        ++prefill_seen[row.index];
      }
    }
  }
  for (int n : decode_seen) EXPECT_EQ(n, 1);
  for (int n : prefill_seen) EXPECT_LE(n, 1);
  if (!prefill.empty()) {
    EXPECT_EQ(prefill_seen[0], 1);  // the oldest prefill always progresses
  }
}

// With costs at both ends of the context, a step's cost follows its positions: a large
// ctx_len specialization is cheap for rows near their start and dear for rows near its end.
TEST(PlannerTest, PositionDependentCostsFollowTheRowsPositions) {
  SpecSet set({{1, 1, 128}, {1, 1, 512}}, {1.0, 4.0});
  set.costs.models[1] = StepCostModel::FromEnds(set.specs[1].shape, 4.0, 0.5);
  const auto one_row = [](int32_t end) { return StepShape{1, 1, end, end}; };
  EXPECT_DOUBLE_EQ(set.costs.Seconds(1, one_row(1)), 0.5);
  EXPECT_DOUBLE_EQ(set.costs.Seconds(1, one_row(512)), 4.0);
  EXPECT_NEAR(set.costs.Seconds(1, one_row(256)), 0.5 + 3.5 * 255 / 511, 1e-12);
  EXPECT_DOUBLE_EQ(set.costs.FullStep(1, set.specs[1].shape), 4.0);
  // Near the start (end 20) the c512 program costs ~0.63 s < 1 s; at end 100, ~1.18 s > 1 s.
  EXPECT_EQ(SelectSpecialization(set.specs, set.costs, one_row(20)), 1);
  EXPECT_EQ(SelectSpecialization(set.specs, set.costs, one_row(100)), 0);
  RoundPlan early = set.Plan(SchedulePolicy::kCostModel, {}, {19});
  EXPECT_EQ(SpecsOf(early), std::vector<int32_t>{1});
  EXPECT_NEAR(early.seconds, 0.5 + 3.5 * 19 / 511, 1e-12);
  EXPECT_EQ(SpecsOf(set.Plan(SchedulePolicy::kCostModel, {}, {99})), std::vector<int32_t>{0});
  // Without them, the cost is the same everywhere: c128 (1 s) always wins where it fits.
  set.costs.models[1] = StepCostModel{4.0, 0, 0};
  EXPECT_EQ(SelectSpecialization(set.specs, set.costs, one_row(20)), 0);
}

// A step's cost follows the sum of its rows' positions and the rows used, not only the largest
// position: four decode rows of which one is far into its context cost a b4 c512 step less than
// four rows all that far, and a b1 step is preferred for one row only when it is cheaper.
TEST(PlannerTest, CostsFollowTheSumOfPositionsAndTheRowsUsed) {
  SpecSet set({{4, 1, 512}, {1, 1, 512}}, {0, 0});
  set.costs.models[0] = StepCostModel{1.0, 0.1, 0.001};  // 1 s + 0.1 s per row + 1 ms per position
  set.costs.models[1] = StepCostModel{0.9, 0.0, 0.001};
  const StepShape mixed{4, 1, 500, 500 + 3 * 10};
  const StepShape far{4, 1, 500, 4 * 500};
  EXPECT_NEAR(set.costs.Seconds(0, mixed), 1.0 + 0.4 + 0.53, 1e-12);
  EXPECT_NEAR(set.costs.Seconds(0, far), 1.0 + 0.4 + 2.0, 1e-12);
  RoundPlan plan = set.Plan(SchedulePolicy::kCostModel, {}, {499, 9, 9, 9});
  EXPECT_EQ(SpecsOf(plan), std::vector<int32_t>{0});
  EXPECT_NEAR(plan.seconds, 1.0 + 0.4 + 0.53, 1e-12);
  // One row: b1 (0.9 + 0.5) beats b4 with one row used (1.0 + 0.1 + 0.5).
  EXPECT_EQ(SpecsOf(set.Plan(SchedulePolicy::kCostModel, {}, {499})), std::vector<int32_t>{1});
  // A learned correction (the b1 program now runs 2x slower than modeled) turns that around.
  set.costs.scale = {1.0, 2.0};
  EXPECT_EQ(SpecsOf(set.Plan(SchedulePolicy::kCostModel, {}, {499})), std::vector<int32_t>{0});
}

TEST(PlannerTest, SplitsDecodeByCtxLenWhenThatIsCheaper) {
  // 4 rows near position 30, 4 near 300.
  const std::vector<int32_t> decode{300, 20, 310, 25, 30, 305, 28, 299};
  SpecSet split({{4, 1, 64}, {4, 1, 512}, {8, 1, 512}}, {1.0, 10.0, 12.0});
  RoundPlan plan = split.Plan(SchedulePolicy::kCostModel, {}, decode);
  ExpectValid(split, plan, {}, decode);
  EXPECT_THAT(SpecsOf(plan), ::testing::ElementsAre(0, 1));
  EXPECT_DOUBLE_EQ(plan.seconds, 11.0);
  for (const auto& row : plan.steps[0].rows) EXPECT_LT(decode[row.index], 64);

  SpecSet merged({{4, 1, 64}, {4, 1, 512}, {8, 1, 512}}, {1.0, 10.0, 10.5});
  plan = merged.Plan(SchedulePolicy::kCostModel, {}, decode);
  ExpectValid(merged, plan, {}, decode);
  EXPECT_THAT(SpecsOf(plan), ::testing::ElementsAre(2));

  // The scheduler's own time per step is charged to each step: with 1.5 s of it, two steps
  // (11 + 3 s) cost more than one (12 + 1.5 s).
  split.costs.step_overhead_seconds = 1.5;
  plan = split.Plan(SchedulePolicy::kCostModel, {}, decode);
  EXPECT_THAT(SpecsOf(plan), ::testing::ElementsAre(2));
  EXPECT_DOUBLE_EQ(plan.seconds, 13.5);
}

TEST(PlannerTest, SplitsDecodeByBatchSizeWhenThatIsCheaper) {
  const std::vector<int32_t> decode{1, 2, 3, 4, 5, 6, 7, 8};
  SpecSet split({{4, 1, 64}, {8, 1, 64}}, {8.0, 20.0});
  RoundPlan plan = split.Plan(SchedulePolicy::kCostModel, {}, decode);
  ExpectValid(split, plan, {}, decode);
  EXPECT_THAT(SpecsOf(plan), ::testing::ElementsAre(0, 0));
  SpecSet one({{4, 1, 64}, {8, 1, 64}}, {8.0, 15.0});
  plan = one.Plan(SchedulePolicy::kCostModel, {}, decode);
  EXPECT_THAT(SpecsOf(plan), ::testing::ElementsAre(1));
  // Fewer rows than the big batch: the small one.
  plan = one.Plan(SchedulePolicy::kCostModel, {}, {1, 2, 3});
  EXPECT_THAT(SpecsOf(plan), ::testing::ElementsAre(0));
}

TEST(PlannerTest, MixesPrefillAndDecodeWhenThatIsCheaper) {
  const std::vector<PrefillItem> prefill{{0, 10}};
  const std::vector<int32_t> decode{20};
  SpecSet mix({{2, 16, 128}, {1, 1, 128}}, {5.0, 4.0});
  RoundPlan plan = mix.Plan(SchedulePolicy::kCostModel, prefill, decode);
  ExpectValid(mix, plan, prefill, decode);
  ASSERT_EQ(plan.steps.size(), 1u);
  EXPECT_EQ(plan.steps[0].spec_index, 0);
  EXPECT_EQ(plan.steps[0].rows.size(), 2u);
  EXPECT_EQ(plan.useful_tokens, 11);

  SpecSet apart({{1, 16, 128}, {2, 16, 128}, {1, 1, 128}}, {5.0, 10.0, 4.0});
  plan = apart.Plan(SchedulePolicy::kCostModel, prefill, decode);
  ExpectValid(apart, plan, prefill, decode);
  EXPECT_THAT(SpecsOf(plan), ::testing::ElementsAre(0, 2));
}

TEST(PlannerTest, ChoosesTheChunkWithTheLowestCostPerToken) {
  SpecSet s({{1, 8, 64}, {1, 32, 64}, {1, 1, 64}}, {1.0, 2.0, 0.5});
  const std::vector<PrefillItem> prefill{{0, 40}};
  RoundPlan plan = s.Plan(SchedulePolicy::kCostModel, prefill, {});
  ExpectValid(s, plan, prefill, {});
  ASSERT_EQ(plan.steps.size(), 1u);
  EXPECT_EQ(plan.steps[0].spec_index, 1);
  EXPECT_EQ(plan.steps[0].rows[0].tokens, 32);
  // Near the end of the context only the tokens that fit are planned.
  const std::vector<PrefillItem> late{{60, 10}};
  plan = s.Plan(SchedulePolicy::kCostModel, late, {});
  ExpectValid(s, plan, late, {});
  EXPECT_EQ(plan.steps[0].rows[0].tokens, 4);
}

TEST(PlannerTest, PoliciesPickTheirSpecializations) {
  // prefill-only b1_s8, decode-only b4_s1, and a large b4_s8 that covers everything.
  SpecSet s({{1, 8, 64}, {4, 1, 64}, {4, 8, 64}}, {1.0, 0.5, 3.0});
  const std::vector<PrefillItem> prefill{{0, 8}};
  const std::vector<int32_t> decode{10, 11};
  RoundPlan cost = s.Plan(SchedulePolicy::kCostModel, prefill, decode);
  RoundPlan smallest = s.Plan(SchedulePolicy::kSmallestFitting, prefill, decode);
  RoundPlan largest = s.Plan(SchedulePolicy::kLargest, prefill, decode);
  for (const auto* p : {&cost, &smallest, &largest}) ExpectValid(s, *p, prefill, decode);
  EXPECT_THAT(SpecsOf(cost), ::testing::ElementsAre(0, 1));      // 1.5 for 10 tokens
  EXPECT_THAT(SpecsOf(smallest), ::testing::ElementsAre(0, 1));  // smallest volumes
  EXPECT_THAT(SpecsOf(largest), ::testing::ElementsAre(2, 2));   // one static shape
  // Make the big one cheap: only the cost model notices, and mixes.
  SpecSet cheap_big({{1, 8, 64}, {4, 1, 64}, {4, 8, 64}}, {1.0, 0.5, 1.2});
  cost = cheap_big.Plan(SchedulePolicy::kCostModel, prefill, decode);
  smallest = cheap_big.Plan(SchedulePolicy::kSmallestFitting, prefill, decode);
  EXPECT_THAT(SpecsOf(cost), ::testing::ElementsAre(2));
  EXPECT_EQ(cost.steps[0].rows.size(), 3u);
  EXPECT_THAT(SpecsOf(smallest), ::testing::ElementsAre(0, 1));
}

TEST(PlannerTest, PackedPoliciesSplitOnlyWhenNoSpecializationCoversTheBatch) {
  SpecSet s({{4, 1, 64}, {2, 1, 64}, {1, 1, 64}}, {4.0, 2.0, 1.0});
  const std::vector<int32_t> decode{1, 2, 3, 4, 5, 6};
  RoundPlan smallest = s.Plan(SchedulePolicy::kSmallestFitting, {}, decode);
  ExpectValid(s, smallest, {}, decode);
  EXPECT_THAT(SpecsOf(smallest), ::testing::ElementsAre(0, 1));  // 4 rows, then 2 rows
  RoundPlan largest = s.Plan(SchedulePolicy::kLargest, {}, decode);
  EXPECT_THAT(SpecsOf(largest), ::testing::ElementsAre(0, 0));
}

TEST(PlannerTest, PrefillRowsFillTheBatchInOrder) {
  SpecSet s({{2, 4, 64}, {1, 1, 64}}, {1.0, 1.0});
  const std::vector<PrefillItem> prefill{{0, 10}, {0, 3}, {0, 8}};
  RoundPlan plan = s.Plan(SchedulePolicy::kCostModel, prefill, {});
  ExpectValid(s, plan, prefill, {});
  ASSERT_EQ(plan.steps.size(), 1u);
  ASSERT_EQ(plan.steps[0].rows.size(), 2u);
  EXPECT_EQ(plan.steps[0].rows[0].index, 0);
  EXPECT_EQ(plan.steps[0].rows[0].tokens, 4);
  EXPECT_EQ(plan.steps[0].rows[1].index, 1);
  EXPECT_EQ(plan.steps[0].rows[1].tokens, 3);
}

TEST(PlannerTest, ParsesPolicyNames) {
  EXPECT_EQ(*ParseSchedulePolicy("cost-model"), SchedulePolicy::kCostModel);
  EXPECT_EQ(*ParseSchedulePolicy("smallest"), SchedulePolicy::kSmallestFitting);
  EXPECT_EQ(*ParseSchedulePolicy("largest"), SchedulePolicy::kLargest);
  EXPECT_FALSE(ParseSchedulePolicy("fastest").ok());
}

}  // namespace
}  // namespace tailor
