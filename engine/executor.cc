#include "engine/executor.h"

#include "absl/strings/str_cat.h"

namespace tailor {

std::string Specialization::Name() const {
  return absl::StrCat("b", shape.batch_size, "_s", shape.seq_len, "_c", shape.ctx_len);
}

bool Covers(const SpecShape& spec, const StepShape& shape) {
  return shape.rows <= spec.batch_size && shape.max_tokens_per_row <= spec.seq_len &&
         shape.max_end_pos <= spec.ctx_len;
}

std::optional<int32_t> SelectSpecialization(std::span<const Specialization> specs,
                                            const CostTable& costs, const StepShape& shape) {
  std::optional<int32_t> best;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (!Covers(specs[i].shape, shape)) continue;
    if (!best || costs.seconds_per_step[i] < costs.seconds_per_step[*best]) {
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

}  // namespace tailor
