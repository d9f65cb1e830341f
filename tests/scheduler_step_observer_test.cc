// SchedulerOptions::step_observer: one observation per executed step, agreeing with what the
// executor ran (specialization, rows, tokens) and with the scheduler's own statistics.
#include <vector>

#include "gtest/gtest.h"
#include "scheduler/scheduler.h"
#include "tests/fake_executor.h"

namespace tailor {
namespace {

using fake::EventCollector;
using fake::FakeExecutor;
using fake::FakeExecutorOptions;

TEST(StepObserverTest, ReportsEveryStepAsExecuted) {
  FakeExecutorOptions fo;
  fo.shapes = {{1, 8, 64}, {4, 1, 64}};
  fo.costs = {1.0, 0.5};
  FakeExecutor executor(fo);
  std::vector<StepObservation> seen;
  SchedulerOptions options;
  options.step_observer = [&](const StepObservation& o) { seen.push_back(o); };
  auto scheduler = Scheduler::Create(executor, options);
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();
  EventCollector events;
  SamplingOptions greedy;
  greedy.temperature = 0;
  greedy.max_tokens = 5;
  ASSERT_TRUE((*scheduler)->Add(1, {1, 2, 3}, greedy, events.Callback()).ok());
  ASSERT_TRUE((*scheduler)->Add(2, {4, 5, 6, 7, 8}, greedy, events.Callback()).ok());
  while ((*scheduler)->HasWork()) {
    ASSERT_TRUE((*scheduler)->Step().ok());
    (*scheduler)->DeliverEvents();
  }
  const SchedulerStats stats = (*scheduler)->stats();
  ASSERT_EQ(static_cast<int64_t>(seen.size()), stats.num_steps);
  const auto& steps = executor.steps();
  ASSERT_EQ(steps.size(), seen.size());
  int64_t valid = 0, slots = 0;
  for (size_t i = 0; i < seen.size(); ++i) {
    const StepObservation& o = seen[i];
    EXPECT_EQ(o.spec_index, steps[i].spec_index);
    EXPECT_EQ(o.rows_used, static_cast<int32_t>(steps[i].rows.size()));
    int64_t tokens = 0;
    for (const auto& row : steps[i].rows) tokens += row.num_tokens;
    EXPECT_EQ(o.valid_tokens, tokens);
    const SpecShape& shape = fo.shapes[o.spec_index];
    EXPECT_EQ(o.slot_tokens, int64_t{shape.batch_size} * shape.seq_len);
    EXPECT_LE(o.valid_tokens, o.slot_tokens);
    EXPECT_GE(o.wall_seconds, 0.0);
    EXPECT_TRUE(o.ok);
    valid += o.valid_tokens;
    slots += o.slot_tokens;
  }
  EXPECT_EQ(valid, stats.useful_tokens);
  EXPECT_EQ(slots, stats.slot_tokens);
}

}  // namespace
}  // namespace tailor
