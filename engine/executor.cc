#include "engine/executor.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace tailor {

std::string Specialization::Name() const {
  return absl::StrCat("b", shape.batch_size, "_s", shape.seq_len, "_c", shape.ctx_len);
}

bool Covers(const SpecShape& spec, const StepShape& shape) {
  return shape.rows <= spec.batch_size && shape.max_tokens_per_row <= spec.seq_len &&
         shape.max_end_pos <= spec.ctx_len;
}

double CostTable::Seconds(int32_t spec, const SpecShape& shape, int32_t max_end_pos) const {
  const double full = seconds_per_step[spec];
  if (seconds_at_start.empty() || shape.ctx_len <= shape.seq_len) return full + step_overhead_seconds;
  const double start = seconds_at_start[spec];
  const double t = std::clamp(static_cast<double>(max_end_pos - shape.seq_len) / (shape.ctx_len - shape.seq_len),
                              0.0, 1.0);
  return start + (full - start) * t + step_overhead_seconds;
}

std::optional<int32_t> SelectSpecialization(std::span<const Specialization> specs,
                                            const CostTable& costs, const StepShape& shape) {
  std::optional<int32_t> best;
  double best_cost = 0.0;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (!Covers(specs[i].shape, shape)) continue;
    const double c = costs.Seconds(static_cast<int32_t>(i), specs[i].shape, shape.max_end_pos);
    if (!best || c < best_cost) {
      best = static_cast<int32_t>(i);
      best_cost = c;
    }
  }
  return best;
}

}  // namespace tailor
