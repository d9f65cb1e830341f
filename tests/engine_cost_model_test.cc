// The step cost model (engine/executor.h) and its fit to timings (engine/runtime.h).
#include <vector>

#include "engine/executor.h"
#include "engine/runtime.h"
#include "gtest/gtest.h"

namespace tailor {
namespace {

TEST(CostModel, AttendedPositionsCountEachTokensPrefix) {
  EXPECT_EQ(AttendedPositions(1, 1, 10), 10);         // one decode token at position 9
  EXPECT_EQ(AttendedPositions(4, 1, 10), 40);
  EXPECT_EQ(AttendedPositions(1, 3, 3), 1 + 2 + 3);   // positions 0, 1, 2
  EXPECT_EQ(AttendedPositions(2, 3, 10), 2 * (8 + 9 + 10));
  EXPECT_EQ((StepShape{2, 1, 50, 0}.Attended()), 100);  // unknown: the upper bound
  EXPECT_EQ((StepShape{2, 1, 50, 60}.Attended()), 60);
}

TEST(CostModel, FromEndsGoesThroughBothFigures) {
  const SpecShape s{4, 1, 512};
  const StepCostModel m = StepCostModel::FromEnds(s, 4.0, 1.0);
  EXPECT_NEAR(m.Seconds(4, AttendedPositions(4, 1, 512)), 4.0, 1e-12);
  EXPECT_NEAR(m.Seconds(4, AttendedPositions(4, 1, 1)), 1.0, 1e-12);
  const StepCostModel flat = StepCostModel::FromEnds(s, 4.0, 0.0);  // start not known
  EXPECT_EQ(flat.Seconds(1, 7), 4.0);
}

TEST(CostModel, FitRecoversAModelFromTimings) {
  const StepCostModel truth{2e-3, 1e-4, 3e-6};
  std::vector<CostSample> samples;
  for (int rows : {1, 8}) {
    for (int end : {1, 256, 512}) {
      const int64_t a = AttendedPositions(rows, 1, end);
      samples.push_back(CostSample{rows, a, truth.Seconds(rows, a)});
    }
  }
  const StepCostModel fit = FitStepCostModel(samples);
  EXPECT_NEAR(fit.fixed_seconds, truth.fixed_seconds, 1e-9);
  EXPECT_NEAR(fit.per_row_seconds, truth.per_row_seconds, 1e-10);
  EXPECT_NEAR(fit.per_position_seconds, truth.per_position_seconds, 1e-12);
}

TEST(CostModel, FitKeepsEveryTermNonNegative) {
  // Timings that grow with positions but shrink with rows (noise): the unconstrained fit has a
  // negative per-row term; the fit keeps positions and drops rows, not the other way round.
  std::vector<CostSample> samples = {{1, 1, 1.0e-3},     {1, 512, 2.0e-3},   {16, 16, 0.95e-3},
                                     {16, 8192, 17e-3}, {16, 4096, 9.0e-3}, {1, 256, 1.5e-3}};
  const StepCostModel fit = FitStepCostModel(samples);
  EXPECT_GE(fit.fixed_seconds, 0);
  EXPECT_GE(fit.per_row_seconds, 0);
  EXPECT_GT(fit.per_position_seconds, 1e-6);
  EXPECT_NEAR(fit.Seconds(16, 8192), 17e-3, 2e-3);
}

}  // namespace
}  // namespace tailor
