// Run-time corrections of the cost table (scheduler/cost_learner.h): the robust estimate itself,
// and the scheduler avoiding a specialization that turned slow mid-run.
#include <chrono>
#include <vector>

#include "gtest/gtest.h"
#include "scheduler/cost_learner.h"
#include "scheduler/scheduler.h"
#include "tests/fake_executor.h"

namespace tailor {
namespace {

using std::chrono::microseconds;

TEST(CostLearner, MedianIgnoresOutliersAndFollowsLastingChanges) {
  CostLearner l(2, CostLearnerOptions{.window = 8, .min_samples = 3, .forget_after_seconds = 1.0});
  EXPECT_EQ(l.Factor(0), 1.0);
  l.Observe(0, 1.0, 1.1, 0.0);
  l.Observe(0, 1.0, 1.1, 0.0);
  EXPECT_EQ(l.Factor(0), 1.0);  // too few samples
  l.Observe(0, 1.0, 1.1, 0.0);
  EXPECT_DOUBLE_EQ(l.Factor(0), 1.1);
  l.Observe(0, 1.0, 50.0, 0.0);  // one stalled step: the median does not move
  EXPECT_DOUBLE_EQ(l.Factor(0), 1.1);
  for (int i = 0; i < 4; ++i) l.Observe(0, 1.0, 3.0, 0.0);  // 5 of 8 now slow
  EXPECT_DOUBLE_EQ(l.Factor(0), 3.0);
  EXPECT_EQ(l.observations(0), 8);
  // Ratios are clamped: a step that stalled for minutes counts as max_ratio.
  CostLearner c(1, CostLearnerOptions{.window = 3, .min_samples = 1, .max_ratio = 10});
  c.Observe(0, 1e-3, 100.0, 0.0);
  EXPECT_DOUBLE_EQ(c.Factor(0), 10.0);
}

TEST(CostLearner, UnobservedSpecializationsAreOptimisticAndEstimatesAge) {
  CostLearner l(3, CostLearnerOptions{.window = 4, .min_samples = 2, .forget_after_seconds = 1.0});
  for (int i = 0; i < 4; ++i) l.Observe(0, 1.0, 4.0, 10.0);
  EXPECT_DOUBLE_EQ(l.Factor(0), 4.0);
  EXPECT_DOUBLE_EQ(l.Factor(1), 1.0);  // the machine may be fine: spec 0 alone is slow
  for (int i = 0; i < 4; ++i) l.Observe(2, 1.0, 0.5, 10.0);
  for (int i = 0; i < 4; ++i) l.Observe(0, 1.0, 0.5, 10.0);
  EXPECT_DOUBLE_EQ(l.Factor(1), 0.5);  // everything observed runs 2x faster than measured
  // Not observed for a while: one ratio dropped per second until too few are left.
  l.Age(10.5);
  EXPECT_DOUBLE_EQ(l.Factor(2), 0.5);
  l.Age(11.0);
  l.Age(12.0);
  EXPECT_DOUBLE_EQ(l.Factor(2), 0.5);  // 2 left
  l.Age(13.0);  // 1 left of each: the table's figures apply again
  EXPECT_DOUBLE_EQ(l.Factor(0), 1.0);
  EXPECT_DOUBLE_EQ(l.Factor(2), 1.0);
}

// Two decode specializations that both cover the work, modeled at 2 ms and 20 ms per step and
// running at those speeds (10x apart, so that sleeps overshooting on a loaded machine do not
// change the choice); a 16-token prefill one (too dear for decode). Mid-run the 2 ms one turns
// 50x slower.
struct SlowdownRun {
  std::vector<int32_t> decode_specs;  // the specialization of each decode step, in order
  int32_t slow_from = -1;             // index into decode_specs of the first step after the change
  std::vector<double> cost_factor;
};

SlowdownRun RunWithSlowdown(bool learn) {
  fake::FakeExecutorOptions fo;
  fo.shapes = {{1, 1, 64}, {1, 1, 128}, {1, 16, 128}};
  fo.costs = {2e-3, 20e-3, 200e-3};
  fo.vocab_size = 32;
  fo.kv_block_size = 4;
  fo.num_kv_blocks = 64;
  fake::FakeExecutor executor(fo);
  executor.SetSpecLatency(0, microseconds(2000));
  executor.SetSpecLatency(1, microseconds(20000));
  SchedulerOptions so;
  so.learn_costs = learn;
  so.cost_learning.window = 8;
  auto scheduler = Scheduler::Create(executor, so);
  EXPECT_TRUE(scheduler.ok()) << scheduler.status();
  SamplingOptions greedy;
  greedy.temperature = 0.0f;
  greedy.max_tokens = 40;
  greedy.ignore_eos = true;
  EXPECT_TRUE((*scheduler)->Add(1, std::vector<int32_t>(8, 3), greedy, [](const TokenEvent&) {}).ok());
  SlowdownRun run;
  size_t seen = 0;
  while ((*scheduler)->HasWork()) {
    const absl::Status st = (*scheduler)->Step();
    EXPECT_TRUE(st.ok()) << st;
    (*scheduler)->DeliverEvents();
    const auto steps = executor.steps();
    for (; seen < steps.size(); ++seen) {
      if (steps[seen].spec_index == 2) continue;
      run.decode_specs.push_back(steps[seen].spec_index);
      if (run.decode_specs.size() == 10) {
        executor.SetSpecLatency(0, microseconds(100000));
        run.slow_from = 10;
      }
    }
  }
  run.cost_factor = (*scheduler)->stats().cost_factor;
  return run;
}

TEST(CostLearning, ASpecializationMadeSlowMidRunIsAvoidedAfterwards) {
  const SlowdownRun run = RunWithSlowdown(/*learn=*/true);
  ASSERT_GE(run.decode_specs.size(), 35u);
  for (int i = 0; i < run.slow_from; ++i) EXPECT_EQ(run.decode_specs[i], 0) << "step " << i;
  // The window of 8 turns after 5 slow steps (the step that observes the change included);
  // from then on every decode step runs on the other specialization.
  int first_switch = -1;
  for (size_t i = run.slow_from; i < run.decode_specs.size(); ++i) {
    if (run.decode_specs[i] == 1) {
      first_switch = static_cast<int>(i);
      break;
    }
  }
  ASSERT_GE(first_switch, 0) << "never avoided the slow specialization";
  EXPECT_LE(first_switch - run.slow_from, 6);
  for (size_t i = first_switch; i < run.decode_specs.size(); ++i) EXPECT_EQ(run.decode_specs[i], 1) << "step " << i;
  EXPECT_GT(run.cost_factor[0], 20.0);  // 100 ms observed / 2 ms modeled (sleep overshoot aside)
  EXPECT_LT(run.cost_factor[1], 3.0);
}

TEST(CostLearning, InjectedCostsStayAsGivenWithoutLearning) {
  const SlowdownRun run = RunWithSlowdown(/*learn=*/false);
  for (int32_t s : run.decode_specs) EXPECT_EQ(s, 0);
  for (double f : run.cost_factor) EXPECT_EQ(f, 1.0);
}

}  // namespace
}  // namespace tailor
