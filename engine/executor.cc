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

int64_t StepShape::Attended() const {
  if (attended > 0) return attended;
  return int64_t{rows} * max_tokens_per_row * max_end_pos;
}

int64_t AttendedPositions(int32_t rows, int32_t tokens, int32_t end) {
  // Positions end - tokens .. end - 1 attend (position + 1) positions each.
  const int64_t n = tokens, e = end;
  return int64_t{rows} * (n * e - n * (n - 1) / 2);
}

StepCostModel StepCostModel::FromEnds(const SpecShape& shape, double full, double at_start) {
  StepCostModel m;
  m.fixed_seconds = full;
  const int64_t a_full = AttendedPositions(shape.batch_size, shape.seq_len, shape.ctx_len);
  const int64_t a_start = AttendedPositions(shape.batch_size, shape.seq_len, shape.seq_len);
  if (at_start > 0 && full > at_start && a_full > a_start) {
    m.per_position_seconds = (full - at_start) / static_cast<double>(a_full - a_start);
    m.fixed_seconds = std::max(0.0, at_start - m.per_position_seconds * static_cast<double>(a_start));
  }
  return m;
}

CostTable CostTable::Fixed(std::vector<double> seconds) {
  CostTable t;
  for (double s : seconds) t.models.push_back(StepCostModel{s, 0, 0});
  return t;
}

double CostTable::FullStep(int32_t spec, const SpecShape& shape) const {
  return models[spec].Seconds(shape.batch_size, AttendedPositions(shape.batch_size, shape.seq_len, shape.ctx_len));
}

std::optional<int32_t> SelectSpecialization(std::span<const Specialization> specs,
                                            const CostTable& costs, const StepShape& shape) {
  std::optional<int32_t> best;
  double best_cost = 0.0;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (!Covers(specs[i].shape, shape)) continue;
    const double c = costs.Seconds(static_cast<int32_t>(i), shape);
    if (!best || c < best_cost) {
      best = static_cast<int32_t>(i);
      best_cost = c;
    }
  }
  return best;
}

}  // namespace tailor
