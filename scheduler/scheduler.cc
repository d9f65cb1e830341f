#include "scheduler/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"

namespace tailor {
namespace {

uint64_t MixSeed(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

int32_t CeilDiv(int64_t a, int32_t b) { return static_cast<int32_t>((a + b - 1) / b); }

}  // namespace

absl::StatusOr<AdmissionOrder> ParseAdmissionOrder(absl::string_view name) {
  if (name == "arrival") return AdmissionOrder::kArrival;
  if (name == "longest-first") return AdmissionOrder::kLongestFirst;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown admission order \"", name, "\": expected arrival or longest-first"));
}

absl::string_view AdmissionOrderName(AdmissionOrder order) {
  return order == AdmissionOrder::kLongestFirst ? "longest-first" : "arrival";
}

RequestLimits LimitsOf(const Executor& executor) {
  RequestLimits limits;
  for (const auto& s : executor.specializations()) limits.max_ctx_len = std::max(limits.max_ctx_len, s.shape.ctx_len);
  limits.vocab_size = executor.vocab_size();
  limits.kv_block_size = executor.kv_block_size();
  limits.num_kv_blocks = executor.num_kv_blocks();
  return limits;
}

absl::Status ValidateRequest(const RequestLimits& limits, std::span<const int32_t> prompt,
                             const SamplingOptions& options) {
  if (prompt.empty()) return absl::InvalidArgumentError("the prompt is empty: at least one token is needed");
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] < 0 || prompt[i] >= limits.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("prompt token ", i, " has id ", prompt[i],
                                                     ", outside the vocabulary [0, ", limits.vocab_size, ")"));
    }
  }
  if (absl::Status s = ValidateSamplingOptions(options, limits.vocab_size); !s.ok()) return s;
  const int64_t total = static_cast<int64_t>(prompt.size()) + options.max_tokens;
  if (total > limits.max_ctx_len) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the prompt (", prompt.size(), " tokens) plus max_tokens (", options.max_tokens, ") is ", total,
        " positions, more than the largest compiled ctx_len (", limits.max_ctx_len,
        "): shorten the prompt or lower max_tokens"));
  }
  const int64_t blocks = (total + limits.kv_block_size - 1) / limits.kv_block_size;
  if (blocks > limits.num_kv_blocks) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the prompt (", prompt.size(), " tokens) plus max_tokens (", options.max_tokens, ") needs ", blocks,
        " KV blocks of ", limits.kv_block_size, " positions, more than the whole KV pool (",
        limits.num_kv_blocks, " blocks)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(Executor& executor, SchedulerOptions options) {
  const auto specs = executor.specializations();
  if (specs.empty()) return absl::InvalidArgumentError("the executor has no specializations");
  if (executor.costs().models.size() != specs.size() ||
      (!executor.costs().scale.empty() && executor.costs().scale.size() != specs.size())) {
    return absl::InvalidArgumentError(absl::StrCat("the cost table has ", executor.costs().models.size(),
                                                   " entries for ", specs.size(), " specializations"));
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    const SpecShape& s = specs[i].shape;
    if (s.batch_size < 1 || s.seq_len < 1 || s.ctx_len < 1) {
      return absl::InvalidArgumentError(absl::StrCat("specialization ", i, " (", specs[i].Name(), ") has a size < 1"));
    }
    const StepCostModel& m = executor.costs().models[i];
    for (double c : {m.fixed_seconds, m.per_row_seconds, m.per_position_seconds}) {
      if (!std::isfinite(c) || c < 0) {
        return absl::InvalidArgumentError(absl::StrCat("specialization ", i, " has a cost term of ", c, " seconds"));
      }
    }
  }
  if (executor.kv_block_size() < 1 || executor.num_kv_blocks() < 1 || executor.vocab_size() < 1) {
    return absl::InvalidArgumentError(absl::StrCat("executor with kv_block_size ", executor.kv_block_size(),
                                                   ", num_kv_blocks ", executor.num_kv_blocks(), ", vocab_size ",
                                                   executor.vocab_size(), ": each must be >= 1"));
  }
  if (options.max_running < 0) {
    return absl::InvalidArgumentError(absl::StrCat("max_running ", options.max_running, ": expected >= 0"));
  }
  const RequestLimits limits = LimitsOf(executor);
  return std::unique_ptr<Scheduler>(new Scheduler(executor, std::move(options), limits));
}

Scheduler::Scheduler(Executor& executor, SchedulerOptions options, RequestLimits limits)
    : executor_(executor),
      options_(std::move(options)),
      limits_(limits),
      kv_(limits.num_kv_blocks, limits.kv_block_size,
          KvCacheManager::Options{options_.enable_prefix_caching, options_.block_hash}),
      learner_(executor.specializations().size(), options_.cost_learning) {
  int32_t max_batch = 1;
  for (const auto& s : executor.specializations()) {
    max_batch = std::max(max_batch, s.shape.batch_size);
    max_seq_len_ = std::max(max_seq_len_, s.shape.seq_len);
  }
  max_running_ = options_.max_running > 0 ? options_.max_running : max_batch;
  stats_.steps_per_spec.assign(executor.specializations().size(), 0);
  costs_ = executor.costs();
  costs_.step_overhead_seconds = std::max(0.0, options_.step_overhead_seconds);
  if (options_.learn_costs) costs_.scale.assign(executor.specializations().size(), 1.0);
}

absl::Status Scheduler::Add(RequestId id, std::vector<int32_t> prompt, SamplingOptions options,
                            TokenCallback callback) {
  if (seqs_.contains(id)) return absl::AlreadyExistsError(absl::StrCat("request id ", id, " is already live"));
  if (absl::Status s = ValidateRequest(limits_, prompt, options); !s.ok()) return s;
  auto seq = std::make_unique<Sequence>();
  seq->id = id;
  seq->order = next_order_++;
  seq->prompt_len = static_cast<int32_t>(prompt.size());
  if (options_.admission == AdmissionOrder::kLongestFirst) {
    seq->priority = -(int64_t{CeilDiv(seq->prompt_len, max_seq_len_)} + options.max_tokens);
  }
  seq->tokens = std::move(prompt);
  seq->tokens.reserve(seq->tokens.size() + options.max_tokens);
  seq->sampler = std::make_unique<RequestSampler>(std::move(options), MixSeed(options_.seed ^ MixSeed(id)),
                                                  options_.eos_token_ids);
  seq->callback = std::make_shared<const TokenCallback>(std::move(callback));
  Sequence* raw = seq.get();
  seqs_.emplace(id, std::move(seq));
  InsertByOrder(waiting_, raw);
  if (raw->sampler->options().max_tokens == 0 && raw->sampler->options().prompt_logprobs < 0) {
    // Nothing to generate and nothing to score: done without computing anything.
    TokenEvent event;
    event.finish = FinishReason::kLength;
    Finish(raw, std::move(event));
  }
  return absl::OkStatus();
}

void Scheduler::InsertByOrder(std::vector<Sequence*>& list, Sequence* seq) {
  auto pos = std::upper_bound(list.begin(), list.end(), seq,
                              [](const Sequence* a, const Sequence* b) {
                                return a->priority != b->priority ? a->priority < b->priority : a->order < b->order;
                              });
  list.insert(pos, seq);
}

void Scheduler::Preempt(Sequence* seq) {
  kv_.Free(seq->id);
  seq->num_computed = 0;
  seq->running = false;
  running_.erase(std::find(running_.begin(), running_.end(), seq));
  InsertByOrder(waiting_, seq);
  ++stats_.num_preemptions;
  preempted_this_round_ = true;
}

void Scheduler::Finish(Sequence* seq, TokenEvent event) {
  event.id = seq->id;
  event.num_prompt_tokens = seq->prompt_len;
  event.num_generated_tokens = seq->num_generated();
  event.num_cached_prompt_tokens = std::max(0, seq->num_cached_prompt_tokens);
  if (!seq->first_event_sent) event.prompt_logprobs = std::move(seq->prompt_logprobs);
  kv_.Free(seq->id);
  auto& list = seq->running ? running_ : waiting_;
  auto it = std::find(list.begin(), list.end(), seq);
  if (it != list.end()) list.erase(it);
  events_.push_back(PendingEvent{seq->callback, std::move(event)});
  ++stats_.num_finished;
  seqs_.erase(seq->id);  // destroys *seq
}

void Scheduler::Emit(Sequence* seq, TokenEvent event) {
  if (!seq->first_event_sent) {
    event.prompt_logprobs = std::move(seq->prompt_logprobs);
    seq->prompt_logprobs.clear();
    seq->first_event_sent = true;
  }
  events_.push_back(PendingEvent{seq->callback, std::move(event)});
}

bool Scheduler::Cancel(RequestId id, FinishReason reason) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return false;
  TokenEvent event;
  event.finish = reason;
  Finish(it->second.get(), std::move(event));
  return true;
}

void Scheduler::CancelAll(FinishReason reason) {
  std::vector<RequestId> ids;
  for (Sequence* s : running_) ids.push_back(s->id);
  for (Sequence* s : waiting_) ids.push_back(s->id);
  for (RequestId id : ids) Cancel(id, reason);
}

void Scheduler::Admit() {
  while (!waiting_.empty() && static_cast<int32_t>(running_.size()) < max_running_) {
    Sequence* seq = waiting_.front();
    // A prompt still to be scored is computed from its start: cached blocks have no logits.
    const PrefixMatch match = seq->NeedsPromptLogits() ? PrefixMatch{} : kv_.FindCachedPrefix(seq->tokens);
    // Blocks for the cached prefix plus the first token to compute; strictly in priority order.
    if (!kv_.Allocate(seq->id, match.num_tokens + 1, &match)) break;
    seq->num_computed = match.num_tokens;
    if (seq->num_cached_prompt_tokens < 0) seq->num_cached_prompt_tokens = std::min(match.num_tokens, seq->prompt_len);
    seq->running = true;
    waiting_.erase(waiting_.begin());
    InsertByOrder(running_, seq);
  }
}

absl::Status Scheduler::Step() {
  if (!HasWork()) return absl::OkStatus();
  ++stats_.num_rounds;
  preempted_this_round_ = false;
  const auto round_start = std::chrono::steady_clock::now();
  // 1. Room for every running sequence's next token, first in priority order first; preempt the
  //    last if not.
  for (size_t i = 0; i < running_.size(); ++i) {
    Sequence* seq = running_[i];
    while (!kv_.Allocate(seq->id, seq->num_computed + 1)) {
      Sequence* victim = running_.back();
      Preempt(victim);
      if (victim == seq) break;  // it was the newest: i now ends the loop
    }
  }
  // 2. Admission, in priority order.
  if (!preempted_this_round_) Admit();
  // 3. The work: decode items (one token to go) and prefill items (chunks capped by free blocks).
  const int32_t B = limits_.kv_block_size;
  std::vector<Sequence*> prefill_seqs, decode_seqs;
  std::vector<PrefillItem> prefill;
  std::vector<int32_t> decode_starts;
  int64_t avail = kv_.NumAvailableBlocks();
  for (Sequence* seq : running_) {
    if (seq->remaining() == 1) {
      decode_seqs.push_back(seq);
      decode_starts.push_back(seq->num_computed);
      continue;
    }
    const int32_t have = static_cast<int32_t>(kv_.BlockTable(seq->id).size());
    const int64_t coverable = int64_t{have} * B + avail * B - seq->num_computed;
    int32_t cap = static_cast<int32_t>(std::min<int64_t>({seq->remaining(), max_seq_len_, coverable}));
    if (seq->NeedsPromptLogits()) {
      // The chunk ends after the next prompt token to take logits of (num_computed never passes
      // it: the chunk that reaches it scores the token after it).
      cap = std::max(1, std::min<int32_t>(cap, static_cast<int32_t>(seq->prompt_logprobs.size()) + 1 - seq->num_computed));
    }
    avail -= std::max(0, CeilDiv(int64_t{seq->num_computed} + cap, B) - have);
    prefill_seqs.push_back(seq);
    prefill.push_back(PrefillItem{seq->num_computed, cap});
  }
  // 4. Steps and specializations.
  if (options_.learn_costs) {
    learner_.Age(std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count());
    for (size_t i = 0; i < costs_.scale.size(); ++i) costs_.scale[i] = learner_.Factor(static_cast<int32_t>(i));
  }
  const RoundPlan plan = PlanRound(executor_.specializations(), costs_, options_.policy, prefill, decode_starts);
  for (const PlannedStep& step : plan.steps) {
    for (const PlannedRow& row : step.rows) {
      if (row.decode) continue;
      const Sequence* seq = prefill_seqs[row.index];
      if (!kv_.Allocate(seq->id, seq->num_computed + row.tokens)) {
        return absl::InternalError(absl::StrCat("request ", seq->id, ": no KV blocks for a planned chunk of ",
                                                row.tokens, " tokens"));
      }
    }
  }
  // 5. Run them.
  absl::Status status;
  executor_seconds_ = 0.0;
  for (const PlannedStep& step : plan.steps) {
    absl::Status s = RunStep(step, prefill_seqs, decode_seqs);
    if (!s.ok() && status.ok()) status = s;
  }
  if (options_.step_overhead_seconds < 0 && !plan.steps.empty()) {
    const double round = std::chrono::duration<double>(std::chrono::steady_clock::now() - round_start).count();
    const double sample = std::max(0.0, round - executor_seconds_) / static_cast<double>(plan.steps.size());
    costs_.step_overhead_seconds = costs_.step_overhead_seconds == 0.0
                                       ? sample
                                       : 0.9 * costs_.step_overhead_seconds + 0.1 * sample;
  }
  return status;
}

absl::Status Scheduler::RunStep(const PlannedStep& step, std::span<Sequence* const> prefill,
                                std::span<Sequence* const> decode) {
  StepPlan plan;
  plan.spec_index = step.spec_index;
  std::vector<Sequence*> seqs;
  for (const PlannedRow& row : step.rows) {
    Sequence* seq = row.decode ? decode[row.index] : prefill[row.index];
    const int32_t start = seq->num_computed;
    const bool last = start + row.tokens == static_cast<int32_t>(seq->tokens.size());
    const bool scores_prompt =
        seq->NeedsPromptLogits() && start + row.tokens == static_cast<int32_t>(seq->prompt_logprobs.size()) + 1;
    plan.rows.push_back(StepRow{seq->id, std::span<const int32_t>(seq->tokens).subspan(start, row.tokens), start,
                                kv_.BlockTable(seq->id), last || scores_prompt ? 1 : 0});
    seqs.push_back(seq);
  }
  const SpecShape& shape = executor_.specializations()[step.spec_index].shape;
  StepShape load;
  for (const StepRow& row : plan.rows) {
    const int32_t n = static_cast<int32_t>(row.tokens.size());
    load.rows += 1;
    load.max_tokens_per_row = std::max(load.max_tokens_per_row, n);
    load.max_end_pos = std::max(load.max_end_pos, row.start_pos + n);
    load.attended += AttendedPositions(1, n, row.start_pos + n);
  }
  const double modeled = executor_.costs().Modeled(step.spec_index, load);
  ++stats_.num_steps;
  ++stats_.steps_per_spec[step.spec_index];
  stats_.slot_tokens += int64_t{shape.batch_size} * shape.seq_len;
  stats_.busy_seconds += modeled;
  const auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<StepOutput> out = executor_.Execute(plan);
  const auto t1 = std::chrono::steady_clock::now();
  const double wall = std::chrono::duration<double>(t1 - t0).count();
  executor_seconds_ += wall;
  if (options_.learn_costs && out.ok()) {
    const double now = std::chrono::duration<double>(t1.time_since_epoch()).count();
    learner_.Observe(step.spec_index, modeled, wall, now);
    for (size_t i = 0; i < costs_.scale.size(); ++i) costs_.scale[i] = learner_.Factor(static_cast<int32_t>(i));
  }
  if (options_.step_observer) {
    StepObservation o;
    o.spec_index = step.spec_index;
    o.rows_used = static_cast<int32_t>(plan.rows.size());
    for (const StepRow& row : plan.rows) o.valid_tokens += static_cast<int64_t>(row.tokens.size());
    o.slot_tokens = int64_t{shape.batch_size} * shape.seq_len;
    o.wall_seconds = wall;
    o.ok = out.ok();
    o.modeled_full_seconds = executor_.costs().FullStep(step.spec_index, shape);
    o.measured_full_seconds =
        o.modeled_full_seconds * (costs_.scale.empty() ? 1.0 : costs_.scale[step.spec_index]);
    options_.step_observer(o);
  }
  if (out.ok() && out->logits.size() != plan.rows.size()) {
    out = absl::InternalError(absl::StrCat("the executor returned logits for ", out->logits.size(), " rows of ",
                                           plan.rows.size()));
  }
  if (!out.ok()) {
    const absl::Status error = absl::Status(
        out.status().code(), absl::StrCat("step on specialization ", step.spec_index, " (",
                                          executor_.specializations()[step.spec_index].Name(),
                                          ") failed: ", out.status().message()));
    for (Sequence* seq : seqs) {
      TokenEvent event;
      event.finish = FinishReason::kError;
      event.status = error;
      Finish(seq, std::move(event));
    }
    return error;
  }
  const size_t vocab = static_cast<size_t>(limits_.vocab_size);
  for (size_t r = 0; r < seqs.size(); ++r) {
    Sequence* seq = seqs[r];
    const int32_t start = seq->num_computed;
    const int32_t n = static_cast<int32_t>(plan.rows[r].tokens.size());
    const int32_t in_prompt = std::clamp(seq->prompt_len - start, 0, n);
    stats_.prompt_tokens_computed += in_prompt;
    stats_.generated_tokens_computed += n - in_prompt;
    stats_.useful_tokens += n;
    seq->num_computed += n;
    kv_.Commit(seq->id, seq->tokens, seq->num_computed);
    if (plan.rows[r].logits_to_keep == 0) continue;
    if (out->logits[r].size() < vocab) {
      TokenEvent event;
      event.finish = FinishReason::kError;
      event.status = absl::InternalError(absl::StrCat("the executor returned ", out->logits[r].size(),
                                                      " logits for a vocabulary of ", vocab));
      Finish(seq, std::move(event));
      continue;
    }
    // The last `vocab` floats: the logits after the row's last token.
    logits_.assign(out->logits[r].end() - vocab, out->logits[r].end());
    if (seq->num_computed < static_cast<int32_t>(seq->tokens.size())) {
      // A prompt-scoring chunk: the raw logits score the next prompt token.
      const int32_t next = seq->tokens[seq->num_computed];
      LogprobsResult lp = ComputeLogprobs(logits_, next, seq->sampler->options().prompt_logprobs, logprob_scratch_);
      seq->prompt_logprobs.push_back(PromptTokenLogprob{next, lp.logprob, std::move(lp.top)});
      continue;
    }
    if (seq->sampler->options().max_tokens == 0) {
      TokenEvent event;
      event.finish = FinishReason::kLength;
      Finish(seq, std::move(event));
      continue;
    }
    const std::span<const int32_t> all(seq->tokens);
    SampledToken sampled =
        seq->sampler->Sample(logits_, all.first(seq->prompt_len), all.subspan(seq->prompt_len));
    seq->tokens.push_back(sampled.token);
    ++stats_.generated_tokens;
    TokenEvent event;
    event.id = seq->id;
    event.token = sampled.token;
    event.index = seq->num_generated() - 1;
    event.logprob = sampled.logprob;
    event.top_logprobs = std::move(sampled.top_logprobs);
    event.finish = seq->sampler->CheckFinish(sampled.token, seq->num_generated());
    if (event.finish != FinishReason::kNone) {
      Finish(seq, std::move(event));
    } else {
      Emit(seq, std::move(event));
    }
  }
  return absl::OkStatus();
}

void Scheduler::DeliverEvents() {
  // Callbacks may call back into the owner (e.g. queue a cancel); events they cause are delivered
  // by this same call.
  while (!events_.empty()) {
    std::vector<PendingEvent> batch;
    batch.swap(events_);
    for (const PendingEvent& e : batch) {
      if (*e.callback) (*e.callback)(e.event);
    }
  }
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats s = stats_;
  s.kv = kv_.stats();
  s.num_running = static_cast<int32_t>(running_.size());
  s.num_waiting = static_cast<int32_t>(waiting_.size());
  s.cost_factor.assign(executor_.specializations().size(), 1.0);
  for (size_t i = 0; i < costs_.scale.size(); ++i) s.cost_factor[i] = costs_.scale[i];
  return s;
}

}  // namespace tailor
