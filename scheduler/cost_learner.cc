#include "scheduler/cost_learner.h"

#include <algorithm>
#include <cmath>

namespace tailor {

CostLearner::CostLearner(size_t num_specs, CostLearnerOptions options)
    : options_(options),
      ratios_(num_specs),
      factor_(num_specs, 0.0),
      last_change_s_(num_specs, 0.0),
      observed_(num_specs, 0) {}

void CostLearner::Observe(int32_t spec, double modeled_seconds, double measured_seconds, double now_seconds) {
  if (!(modeled_seconds > 0) || !(measured_seconds >= 0) || !std::isfinite(measured_seconds)) return;
  const double r = std::clamp(measured_seconds / modeled_seconds, 1.0 / options_.max_ratio, options_.max_ratio);
  auto& q = ratios_[spec];
  q.push_back(r);
  while (static_cast<int>(q.size()) > options_.window) q.pop_front();
  last_change_s_[spec] = now_seconds;
  ++observed_[spec];
  Update(spec);
}

void CostLearner::Age(double now_seconds) {
  for (size_t s = 0; s < ratios_.size(); ++s) {
    if (ratios_[s].empty() || now_seconds - last_change_s_[s] < options_.forget_after_seconds) continue;
    ratios_[s].pop_front();
    last_change_s_[s] = now_seconds;
    Update(static_cast<int32_t>(s));
  }
}

double CostLearner::Factor(int32_t spec) const {
  if (factor_[spec] > 0) return factor_[spec];
  std::vector<double> known;
  for (double f : factor_) {
    if (f > 0) known.push_back(f);
  }
  if (known.empty()) return 1.0;
  std::nth_element(known.begin(), known.begin() + known.size() / 2, known.end());
  return std::min(1.0, known[known.size() / 2]);
}

void CostLearner::Update(int32_t spec) {
  const auto& q = ratios_[spec];
  if (static_cast<int>(q.size()) < options_.min_samples) {
    factor_[spec] = 0.0;
    return;
  }
  std::vector<double> v(q.begin(), q.end());
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  double m = v[mid];
  if (v.size() % 2 == 0) m = 0.5 * (m + *std::max_element(v.begin(), v.begin() + mid));
  factor_[spec] = m;
}

}  // namespace tailor
