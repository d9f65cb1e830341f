#include "scheduler/step_planner.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"

namespace tailor {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// a < b by more than rounding noise (sums of the same costs in another order).
bool Less(double a, double b) {
  if (b == kInf) return a < b;
  return a < b - 1e-12 * std::max(1.0, std::fabs(b));
}

int64_t Volume(const SpecShape& s) { return int64_t{s.batch_size} * s.seq_len * s.ctx_len; }

class Planner {
 public:
  Planner(std::span<const Specialization> specs, const CostTable& costs, SchedulePolicy policy)
      : specs_(specs), costs_(costs), policy_(policy) {
    for (const auto& s : specs) max_batch_ = std::max(max_batch_, s.shape.batch_size);
  }

  // Seconds of a step of `shape` on `spec`.
  double Cost(int32_t spec, const StepShape& shape) const { return costs_.Seconds(spec, shape); }
  const SpecShape& Shape(int32_t spec) const { return specs_[spec].shape; }
  int32_t num_specs() const { return static_cast<int32_t>(specs_.size()); }

  bool AnyCovers(const StepShape& shape) const {
    for (const auto& s : specs_) {
      if (Covers(s.shape, shape)) return true;
    }
    return false;
  }

  // The specialization the policy runs a step of `shape` on.
  std::optional<int32_t> Choose(const StepShape& shape) const {
    if (policy_ == SchedulePolicy::kCostModel) return SelectSpecialization(specs_, costs_, shape);
    std::optional<int32_t> best;
    for (int32_t i = 0; i < num_specs(); ++i) {
      if (!Covers(Shape(i), shape)) continue;
      if (!best) {
        best = i;
        continue;
      }
      const int64_t v = Volume(Shape(i)), bv = Volume(Shape(*best));
      const bool better = policy_ == SchedulePolicy::kSmallestFitting ? v < bv : v > bv;
      if (better || (v == bv && Cost(i, shape) < Cost(*best, shape))) best = i;
    }
    return best;
  }

  struct Partition {
    double cost = 0.0;
    std::vector<PlannedStep> steps;
  };

  // Cost-model partition of the decode items `items` (indices into `starts`): sorted by end
  // position, split into contiguous groups by dynamic programming over the cheapest covering
  // specialization of each group. O(n * max_batch * specializations).
  Partition PartitionDecode(std::span<const int32_t> starts, std::vector<int32_t> items) {
    std::stable_sort(items.begin(), items.end(), [&](int32_t a, int32_t b) { return starts[a] < starts[b]; });
    const size_t n = items.size();
    std::vector<double> dp(n + 1, kInf);
    std::vector<size_t> prev(n + 1, 0);
    std::vector<int32_t> spec(n + 1, -1);
    std::vector<int64_t> attended(n + 1, 0);  // prefix sums of the items' positions + 1
    for (size_t j = 1; j <= n; ++j) attended[j] = attended[j - 1] + starts[items[j - 1]] + 1;
    dp[0] = 0.0;
    for (size_t j = 1; j <= n; ++j) {
      const int32_t end = starts[items[j - 1]] + 1;
      const size_t lo = j > static_cast<size_t>(max_batch_) ? j - max_batch_ : 0;
      // k ascending: on equal cost the largest last group (fewest steps) wins.
      for (size_t k = lo; k < j; ++k) {
        if (dp[k] == kInf) continue;
        const StepShape shape{static_cast<int32_t>(j - k), 1, end, attended[j] - attended[k]};
        auto sel = SelectSpecialization(specs_, costs_, shape);
        if (!sel) continue;
        const double c = dp[k] + Cost(*sel, shape);
        if (Less(c, dp[j])) {
          dp[j] = c;
          prev[j] = k;
          spec[j] = *sel;
        }
      }
    }
    Partition out;
    if (n == 0) return out;
    out.cost = dp[n];
    for (size_t j = n; j > 0; j = prev[j]) {
      PlannedStep step;
      step.spec_index = spec[j];
      for (size_t k = prev[j]; k < j; ++k) step.rows.push_back(PlannedRow{true, items[k], 1});
      out.steps.push_back(std::move(step));
    }
    std::reverse(out.steps.begin(), out.steps.end());  // ascending ctx_len
    return out;
  }

  RoundPlan PlanCostModel(std::span<const PrefillItem> prefill, std::span<const int32_t> starts,
                          const std::vector<int32_t>& decode) {
    RoundPlan plan;
    Partition all = PartitionDecode(starts, decode);
    struct Option {
      double score = kInf;
      PlannedStep step;
      Partition rest;
    };
    Option best;
    const double useful_decode = static_cast<double>(decode.size());
    for (int32_t i = 0; i < num_specs() && !prefill.empty(); ++i) {
      const SpecShape& s = Shape(i);
      PlannedStep step;
      StepShape shape;
      int64_t useful = 0;
      bool head_fits = true;
      for (size_t k = 0; k < prefill.size(); ++k) {
        if (static_cast<int32_t>(step.rows.size()) == s.batch_size) break;
        const int32_t n = std::min({prefill[k].max_tokens, s.seq_len, s.ctx_len - prefill[k].start});
        if (n <= 0) {
          if (k == 0) {  // the oldest prefill item must progress: not a candidate
            head_fits = false;
            break;
          }
          continue;
        }
        step.rows.push_back(PlannedRow{false, static_cast<int32_t>(k), n});
        useful += n;
        shape.max_tokens_per_row = std::max(shape.max_tokens_per_row, n);
        shape.max_end_pos = std::max(shape.max_end_pos, prefill[k].start + n);
        shape.attended += AttendedPositions(1, n, prefill[k].start + n);
      }
      if (!head_fits || step.rows.empty()) continue;
      shape.rows = static_cast<int32_t>(step.rows.size());
      const double denom = static_cast<double>(useful) + useful_decode;
      // Pure prefill step, decode items partitioned separately.
      if (auto sel = SelectSpecialization(specs_, costs_, shape)) {
        const double score = (Cost(*sel, shape) + all.cost) / denom;
        if (Less(score, best.score)) {
          best.score = score;
          best.step = step;
          best.step.spec_index = *sel;
          best.rest = all;
        }
      }
      // Mixed: the spare rows carry the decode items with the largest positions that fit.
      const int32_t spare = s.batch_size - shape.rows;
      if (spare <= 0 || decode.empty()) continue;
      std::vector<int32_t> fitting;
      for (int32_t d : decode) {
        if (starts[d] + 1 <= s.ctx_len) fitting.push_back(d);
      }
      if (fitting.empty()) continue;
      std::stable_sort(fitting.begin(), fitting.end(), [&](int32_t a, int32_t b) { return starts[a] > starts[b]; });
      fitting.resize(std::min<size_t>(fitting.size(), spare));
      PlannedStep mixed = step;
      StepShape mixed_shape = shape;
      for (int32_t d : fitting) {
        mixed.rows.push_back(PlannedRow{true, d, 1});
        mixed_shape.max_tokens_per_row = std::max(mixed_shape.max_tokens_per_row, 1);
        mixed_shape.max_end_pos = std::max(mixed_shape.max_end_pos, starts[d] + 1);
        mixed_shape.attended += starts[d] + 1;
      }
      mixed_shape.rows = static_cast<int32_t>(mixed.rows.size());
      auto sel = SelectSpecialization(specs_, costs_, mixed_shape);
      if (!sel) continue;
      std::vector<int32_t> rest_items;
      for (int32_t d : decode) {
        if (std::find(fitting.begin(), fitting.end(), d) == fitting.end()) rest_items.push_back(d);
      }
      Partition rest = PartitionDecode(starts, rest_items);
      const double score = (Cost(*sel, mixed_shape) + rest.cost) / denom;
      if (Less(score, best.score)) {
        best.score = score;
        best.step = std::move(mixed);
        best.step.spec_index = *sel;
        best.rest = std::move(rest);
      }
    }
    if (best.score == kInf) {
      plan.steps = std::move(all.steps);
    } else {
      plan.steps.push_back(std::move(best.step));
      for (auto& s : best.rest.steps) plan.steps.push_back(std::move(s));
    }
    return plan;
  }

  RoundPlan PlanPacked(std::span<const PrefillItem> prefill, std::span<const int32_t> starts,
                       const std::vector<int32_t>& decode) {
    RoundPlan plan;
    // One prefill step: items in order, each with the longest chunk some specialization covers
    // together with the rows already taken.
    PlannedStep step;
    StepShape shape;
    for (size_t k = 0; k < prefill.size(); ++k) {
      int32_t best_n = 0;
      for (const auto& spec : specs_) {
        const SpecShape& s = spec.shape;
        if (s.batch_size < shape.rows + 1 || s.seq_len < shape.max_tokens_per_row || s.ctx_len < shape.max_end_pos) {
          continue;
        }
        best_n = std::max(best_n, std::min({prefill[k].max_tokens, s.seq_len, s.ctx_len - prefill[k].start}));
      }
      if (best_n <= 0) continue;
      step.rows.push_back(PlannedRow{false, static_cast<int32_t>(k), best_n});
      shape.rows += 1;
      shape.max_tokens_per_row = std::max(shape.max_tokens_per_row, best_n);
      shape.max_end_pos = std::max(shape.max_end_pos, prefill[k].start + best_n);
      shape.attended += AttendedPositions(1, best_n, prefill[k].start + best_n);
    }
    if (!step.rows.empty()) {
      if (auto sel = Choose(shape)) {
        step.spec_index = *sel;
        plan.steps.push_back(std::move(step));
      }
    }
    // Decode items in order, as many per step as some specialization covers.
    PlannedStep group;
    StepShape gshape{0, 1, 0};
    auto flush = [&]() {
      if (group.rows.empty()) return;
      if (auto sel = Choose(gshape)) {
        group.spec_index = *sel;
        plan.steps.push_back(std::move(group));
      }
      group = PlannedStep{};
      gshape = StepShape{0, 1, 0};
    };
    for (int32_t d : decode) {
      StepShape grown{gshape.rows + 1, 1, std::max(gshape.max_end_pos, starts[d] + 1), gshape.attended + starts[d] + 1};
      if (!AnyCovers(grown)) {
        flush();
        grown = StepShape{1, 1, starts[d] + 1, starts[d] + 1};
      }
      group.rows.push_back(PlannedRow{true, d, 1});
      gshape = grown;
    }
    flush();
    return plan;
  }

 private:
  std::span<const Specialization> specs_;
  const CostTable& costs_;
  SchedulePolicy policy_;
  int32_t max_batch_ = 1;
};

}  // namespace

absl::StatusOr<SchedulePolicy> ParseSchedulePolicy(absl::string_view name) {
  if (name == "cost-model" || name == "cost") return SchedulePolicy::kCostModel;
  if (name == "smallest" || name == "smallest-fitting") return SchedulePolicy::kSmallestFitting;
  if (name == "largest") return SchedulePolicy::kLargest;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown scheduling policy \"", name, "\": expected cost-model, smallest or largest"));
}

absl::string_view SchedulePolicyName(SchedulePolicy policy) {
  switch (policy) {
    case SchedulePolicy::kCostModel: return "cost-model";
    case SchedulePolicy::kSmallestFitting: return "smallest";
    case SchedulePolicy::kLargest: return "largest";
  }
  return "";
}

RoundPlan PlanRound(std::span<const Specialization> specs, const CostTable& costs, SchedulePolicy policy,
                    std::span<const PrefillItem> prefill, std::span<const int32_t> decode_starts) {
  Planner planner(specs, costs, policy);
  // Decode items that no specialization can run even alone are left out.
  std::vector<int32_t> decode;
  for (size_t d = 0; d < decode_starts.size(); ++d) {
    if (planner.AnyCovers(StepShape{1, 1, decode_starts[d] + 1})) decode.push_back(static_cast<int32_t>(d));
  }
  RoundPlan plan = policy == SchedulePolicy::kCostModel ? planner.PlanCostModel(prefill, decode_starts, decode)
                                                        : planner.PlanPacked(prefill, decode_starts, decode);
  for (const auto& step : plan.steps) {
    StepShape shape;
    for (const auto& row : step.rows) {
      plan.useful_tokens += row.tokens;
      const int32_t end = row.decode ? decode_starts[row.index] + 1 : prefill[row.index].start + row.tokens;
      shape.rows += 1;
      shape.max_tokens_per_row = std::max(shape.max_tokens_per_row, row.tokens);
      shape.max_end_pos = std::max(shape.max_end_pos, end);
      shape.attended += AttendedPositions(1, row.tokens, end);
    }
    plan.seconds += planner.Cost(step.spec_index, shape);
  }
  return plan;
}

}  // namespace tailor
