#include "engine/sequence_runner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace tailor {

std::optional<ChunkChoice> ChooseChunk(std::span<const Specialization> specs, const CostTable& costs,
                                       int32_t start, int32_t remaining) {
  std::optional<ChunkChoice> best;
  double best_cost = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const SpecShape& s = specs[i].shape;
    const int32_t n = std::min(remaining, std::min(s.seq_len, s.ctx_len - start));
    if (n <= 0) continue;
    const double per_token = costs.Seconds(static_cast<int32_t>(i), StepShape{1, n, start + n, AttendedPositions(1, n, start + n)}) / n;
    if (!best || per_token < best_cost) {
      best = ChunkChoice{static_cast<int32_t>(i), n};
      best_cost = per_token;
    }
  }
  return best;
}

absl::StatusOr<std::vector<float>> SequenceRunner::Feed(std::span<const int32_t> tokens) {
  if (tokens.empty()) return absl::InvalidArgumentError("no tokens to feed");
  auto specs = executor_.specializations();
  int32_t max_ctx = 0;
  for (const auto& s : specs) max_ctx = std::max(max_ctx, s.shape.ctx_len);
  const int64_t end = length_ + static_cast<int64_t>(tokens.size());
  if (end > max_ctx) {
    return absl::InvalidArgumentError(absl::StrCat("the sequence needs ", end,
                                                   " positions; the largest compiled ctx_len is ", max_ctx));
  }
  const int32_t B = executor_.kv_block_size();
  const int64_t blocks = (end + B - 1) / B;
  if (blocks > executor_.num_kv_blocks()) {
    return absl::ResourceExhaustedError(absl::StrCat("the sequence needs ", blocks, " KV blocks; the pool has ",
                                                     executor_.num_kv_blocks()));
  }
  while (static_cast<int64_t>(table_.size()) < blocks) table_.push_back(static_cast<BlockId>(table_.size()));
  std::vector<float> logits;
  size_t done = 0;
  while (done < tokens.size()) {
    auto choice = ChooseChunk(specs, executor_.costs(), length_, static_cast<int32_t>(tokens.size() - done));
    if (!choice) {
      return absl::InvalidArgumentError(absl::StrCat("no specialization fits position ", length_));
    }
    StepPlan plan;
    plan.spec_index = choice->spec_index;
    const bool last = done + choice->tokens == tokens.size();
    plan.rows.push_back(StepRow{0, tokens.subspan(done, choice->tokens), length_, table_, last ? 1 : 0});
    TAILOR_ASSIGN_OR_RETURN(StepOutput out, executor_.Execute(plan));
    steps_.push_back(choice->spec_index);
    length_ += choice->tokens;
    done += choice->tokens;
    if (last) logits = std::move(out.logits[0]);
  }
  return logits;
}

}  // namespace tailor
