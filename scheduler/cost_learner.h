// Run-time corrections of the cost table: per specialization, a robust running estimate of the
// ratio between the step times observed and the times the table models. A machine that turned
// slow, or a specialization that runs badly here (a -ols=2 program on cores another process
// took), shows up in its ratio within a few steps, and the planner (which charges modeled
// seconds times the ratio) avoids it.
//
// The estimate is the median of the last `window` ratios: one outlier step (a page fault, a
// preemption) moves it by nothing, a lasting change moves it after window / 2 steps. A
// specialization the planner stopped choosing is not observed any more, so its estimate ages:
// each `forget_after_seconds` without an observation drops its oldest ratio, until fewer than
// `min_samples` are left and the table's figure applies again (then the planner tries it again).
//
// Not thread-safe: owned by the Scheduler's thread.
#ifndef TAILOR_SCHEDULER_COST_LEARNER_H_
#define TAILOR_SCHEDULER_COST_LEARNER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

namespace tailor {

struct CostLearnerOptions {
  int window = 16;
  int min_samples = 3;
  double forget_after_seconds = 2.0;
  // Ratios are clamped to [1 / max_ratio, max_ratio] (a step that stalled for seconds must not
  // make a specialization look 1000x slower for ever).
  double max_ratio = 64.0;
};

class CostLearner {
 public:
  CostLearner(size_t num_specs, CostLearnerOptions options);

  // A step of `spec` that the table models at `modeled_seconds` took `measured_seconds`, at
  // `now_seconds` (any monotonic clock).
  void Observe(int32_t spec, double modeled_seconds, double measured_seconds, double now_seconds);
  // Ages the estimates of specializations not observed lately (call once per round).
  void Age(double now_seconds);
  // The correction factor (measured / modeled) of `spec`. While too few of its steps were
  // observed: the median factor of the specializations that were, if below 1 (the machine as a
  // whole runs faster than when the table was measured), else 1: optimistic about what was not
  // tried, so that a specialization that turned slow loses to one not observed yet.
  double Factor(int32_t spec) const;
  int64_t observations(int32_t spec) const { return observed_[spec]; }

 private:
  void Update(int32_t spec);

  const CostLearnerOptions options_;
  std::vector<std::deque<double>> ratios_;  // newest last
  std::vector<double> factor_;              // 0: too few samples
  std::vector<double> last_change_s_;       // last observation or ageing step
  std::vector<int64_t> observed_;
};

}  // namespace tailor

#endif  // TAILOR_SCHEDULER_COST_LEARNER_H_
