#include "scheduler/trace_simulator.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "scheduler/scheduler.h"

namespace tailor {
namespace {

// An Executor that runs nothing: Execute() checks that the plan fits its specialization,
// advances the virtual clock by the modeled seconds of the step plus the overhead, and returns
// all-zero logits (greedy sampling then picks token 0). Not thread-safe; one per simulation.
class VirtualExecutor final : public Executor {
 public:
  VirtualExecutor(std::span<const Specialization> specs, const CostTable& costs, int32_t vocab_size,
                  int32_t block_size, int32_t num_blocks, double overhead, double* clock)
      : specs_(specs.begin(), specs.end()),
        vocab_size_(vocab_size),
        block_size_(block_size),
        num_blocks_(num_blocks),
        overhead_(overhead),
        clock_(clock) {
    costs_.models = costs.models;  // no scale, no overhead: the executor's own table
  }

  std::span<const Specialization> specializations() const override { return specs_; }
  const CostTable& costs() const override { return costs_; }
  int32_t vocab_size() const override { return vocab_size_; }
  int32_t kv_block_size() const override { return block_size_; }
  int32_t num_kv_blocks() const override { return num_blocks_; }

  absl::StatusOr<StepOutput> Execute(const StepPlan& plan) override {
    if (plan.spec_index < 0 || plan.spec_index >= static_cast<int32_t>(specs_.size())) {
      return absl::InvalidArgumentError(absl::StrCat("specialization index ", plan.spec_index, " out of range"));
    }
    const SpecShape& s = specs_[plan.spec_index].shape;
    if (plan.rows.empty() || static_cast<int32_t>(plan.rows.size()) > s.batch_size) {
      return absl::InvalidArgumentError(absl::StrCat(plan.rows.size(), " rows for batch_size ", s.batch_size));
    }
    StepShape load;
    StepOutput out;
    out.logits.resize(plan.rows.size());
    for (size_t r = 0; r < plan.rows.size(); ++r) {
      const StepRow& row = plan.rows[r];
      const int32_t n = static_cast<int32_t>(row.tokens.size());
      if (n < 1 || n > s.seq_len || row.start_pos < 0 || row.start_pos + n > s.ctx_len) {
        return absl::InvalidArgumentError(absl::StrCat("row ", r, ": ", n, " tokens at ", row.start_pos,
                                                       " do not fit ", specs_[plan.spec_index].Name()));
      }
      load.rows += 1;
      load.max_tokens_per_row = std::max(load.max_tokens_per_row, n);
      load.max_end_pos = std::max(load.max_end_pos, row.start_pos + n);
      load.attended += AttendedPositions(1, n, row.start_pos + n);
      if (row.logits_to_keep > 0) out.logits[r].assign(static_cast<size_t>(vocab_size_), 0.0f);
    }
    *clock_ += costs_.Modeled(plan.spec_index, load) + overhead_;
    return out;
  }

 private:
  std::vector<Specialization> specs_;
  CostTable costs_;
  int32_t vocab_size_, block_size_, num_blocks_;
  double overhead_;
  double* clock_;  // not owned: the simulation's virtual time in seconds
};

// The prompts with their token ids renamed so that the vocabulary is small (what greedy sampling
// scans per token) while prefix sharing is kept exactly: prompts form a trie, and a token is
// renamed to its 1-based rank among the children of its trie node (its prefix). Two prompts
// agree on a prefix after renaming iff they did before. Id 0 is left to the generated tokens
// (greedy over all-zero logits picks 0), so no generated token equals a prompt token.
struct RenamedPrompts {
  std::vector<std::vector<int32_t>> prompts;
  int32_t vocab_size = 1;  // 1 + the largest number of children of a node
};

RenamedPrompts RenameTokens(std::span<const TraceRequest> trace) {
  RenamedPrompts out;
  absl::flat_hash_map<std::pair<int64_t, int32_t>, int64_t> child;  // (node, token) -> node
  std::vector<int32_t> num_children = {0};                            // per node; 0 is the root
  std::vector<int32_t> rank = {0};                                    // per node
  for (const TraceRequest& r : trace) {
    std::vector<int32_t> renamed;
    renamed.reserve(r.prompt_ids.size());
    int64_t node = 0;
    for (int32_t t : r.prompt_ids) {
      auto [it, inserted] = child.try_emplace({node, t}, static_cast<int64_t>(rank.size()));
      if (inserted) {
        rank.push_back(++num_children[node]);
        num_children.push_back(0);
        out.vocab_size = std::max(out.vocab_size, rank.back() + 1);
      }
      node = it->second;
      renamed.push_back(rank[node]);
    }
    out.prompts.push_back(std::move(renamed));
  }
  return out;
}

struct Timing {
  double arrival = 0, first = -1, last = -1;
  int32_t generated = 0;
  bool finished = false;
};

}  // namespace

int32_t FullBatchKvBlocks(std::span<const Specialization> specs, int32_t block_size) {
  int64_t blocks = 1;
  for (const Specialization& s : specs) {
    const int64_t per_row = (int64_t{s.shape.ctx_len} + block_size - 1) / std::max(1, block_size);
    blocks = std::max(blocks, int64_t{s.shape.batch_size} * per_row);
  }
  return static_cast<int32_t>(std::min<int64_t>(blocks, INT32_MAX / 2));
}

absl::StatusOr<SimulationResult> SimulateTrace(std::span<const Specialization> specs, const CostTable& costs,
                                               std::span<const TraceRequest> trace,
                                               const SimulationOptions& options) {
  if (options.kv_block_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("kv_block_size ", options.kv_block_size, ": expected >= 1"));
  }
  if (!(options.step_overhead_seconds >= 0) || !std::isfinite(options.step_overhead_seconds)) {
    return absl::InvalidArgumentError(
        absl::StrCat("step overhead ", options.step_overhead_seconds, " s: expected a number >= 0"));
  }
  for (const TraceRequest& r : trace) {
    for (size_t i = 0; i < r.prompt_ids.size(); ++i) {
      const int32_t t = r.prompt_ids[i];
      if (t < 0 || (options.vocab_size > 0 && t >= options.vocab_size)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "trace request ", r.id, ": prompt token ", i, " has id ", t, ", outside the vocabulary [0, ",
            options.vocab_size > 0 ? absl::StrCat(options.vocab_size) : std::string("..."), ")"));
      }
    }
  }
  RenamedPrompts renamed = RenameTokens(trace);
  const int32_t vocab = renamed.vocab_size;
  const int32_t blocks =
      options.num_kv_blocks > 0 ? options.num_kv_blocks : FullBatchKvBlocks(specs, options.kv_block_size);
  double clock = 0.0;
  VirtualExecutor executor(specs, costs, vocab, options.kv_block_size, blocks, options.step_overhead_seconds, &clock);
  SchedulerOptions so;
  so.policy = options.policy;
  so.admission = options.admission;
  so.max_running = options.max_running;
  so.enable_prefix_caching = options.enable_prefix_caching;
  so.step_overhead_seconds = options.step_overhead_seconds;
  so.learn_costs = false;
  auto scheduler = Scheduler::Create(executor, std::move(so));
  if (!scheduler.ok()) return scheduler.status();

  // Requests in arrival order (stable: the trace's order among equal times).
  std::vector<size_t> order(trace.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return trace[a].arrival_s < trace[b].arrival_s; });
  std::vector<Timing> timing(trace.size());
  size_t next = 0;
  auto submit = [&](size_t i) -> absl::Status {
    const TraceRequest& r = trace[i];
    timing[i].arrival = options.realtime ? r.arrival_s : 0.0;
    SamplingOptions sampling;
    sampling.temperature = 0.0f;
    sampling.max_tokens = r.max_tokens;
    sampling.ignore_eos = true;
    Timing* t = &timing[i];
    absl::Status s = (*scheduler)->Add(static_cast<RequestId>(i), std::move(renamed.prompts[i]), std::move(sampling),
                                       [t, &clock](const TokenEvent& e) {
                                         if (e.token >= 0) {
                                           if (t->first < 0) t->first = clock;
                                           t->last = clock;
                                           ++t->generated;
                                         }
                                         if (e.finish != FinishReason::kNone) t->finished = true;
                                       });
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("trace request ", r.id, ": ", s.message()));
    return absl::OkStatus();
  };

  // A bound on rounds that no correct schedule reaches (every round advances some sequence).
  int64_t work = 0;
  for (const TraceRequest& r : trace) work += static_cast<int64_t>(r.prompt_ids.size()) + r.max_tokens;
  const int64_t max_rounds = 4 * work + 1000;
  while (next < order.size() || (*scheduler)->HasWork()) {
    if (!options.realtime) {
      while (next < order.size()) {
        if (absl::Status s = submit(order[next++]); !s.ok()) return s;
      }
    } else {
      if (!(*scheduler)->HasWork() && next < order.size()) clock = std::max(clock, trace[order[next]].arrival_s);
      while (next < order.size() && trace[order[next]].arrival_s <= clock) {
        if (absl::Status s = submit(order[next++]); !s.ok()) return s;
      }
    }
    if (absl::Status s = (*scheduler)->Step(); !s.ok()) return s;
    (*scheduler)->DeliverEvents();
    if ((*scheduler)->stats().num_rounds > max_rounds) {
      return absl::InternalError(absl::StrCat("the simulation made no progress after ", max_rounds, " rounds"));
    }
  }

  const SchedulerStats st = (*scheduler)->stats();
  SimulationResult out;
  out.requests = static_cast<int32_t>(trace.size());
  std::vector<double> ttft, tpot;
  for (size_t i = 0; i < trace.size(); ++i) {
    const Timing& t = timing[i];
    if (!t.finished || t.generated != trace[i].max_tokens) {
      return absl::InternalError(absl::StrCat("trace request ", trace[i].id, " ended with ", t.generated, " of ",
                                              trace[i].max_tokens, " tokens"));
    }
    out.prompt_tokens += static_cast<int64_t>(trace[i].prompt_ids.size());
    out.generated_tokens += t.generated;
    out.wall_seconds = std::max(out.wall_seconds, t.last);
    ttft.push_back(1e3 * (t.first - t.arrival));
    if (t.generated >= 2) tpot.push_back(1e3 * (t.last - t.first) / (t.generated - 1));
  }
  if (out.wall_seconds > 0) {
    out.output_tokens_per_s = static_cast<double>(out.generated_tokens) / out.wall_seconds;
    out.total_tokens_per_s = static_cast<double>(out.prompt_tokens + out.generated_tokens) / out.wall_seconds;
  }
  out.ttft_p50_ms = Percentile(ttft, 50);
  out.ttft_p99_ms = Percentile(ttft, 99);
  out.tpot_p50_ms = Percentile(tpot, 50);
  out.tpot_p99_ms = Percentile(tpot, 99);
  if (st.slot_tokens > 0) {
    out.padding_fraction = static_cast<double>(st.slot_tokens - st.useful_tokens) / static_cast<double>(st.slot_tokens);
  }
  if (st.kv.prefix_query_tokens > 0) {
    out.prefix_hit_rate =
        static_cast<double>(st.kv.prefix_hit_tokens) / static_cast<double>(st.kv.prefix_query_tokens);
  }
  out.rounds = st.num_rounds;
  out.steps = st.num_steps;
  out.preemptions = st.num_preemptions;
  out.busy_seconds = st.busy_seconds;
  out.steps_per_spec = st.steps_per_spec;
  out.num_kv_blocks = blocks;
  return out;
}

}  // namespace tailor
