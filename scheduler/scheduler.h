// The synchronous heart of the engine core: requests, continuous batching, KV-cache bookkeeping,
// preemption and sampling, one round at a time. EngineCore (engine_core.h) runs it on a thread;
// tests may drive it directly and deterministically.
//
// A round (Step()):
//  1. every running sequence gets KV blocks for its next token, oldest (by submission) first;
//     when the pool runs out, the newest running sequence is preempted by recompute: its blocks
//     are freed and it goes back to the waiting queue with prompt + generated tokens, keeping its
//     sampler (and Rng state), so it resumes later with identical output;
//  2. if nothing was preempted, waiting requests are admitted strictly in priority order (never
//     skipping the head) while fewer than max_running run and the pool holds blocks for their
//     first token after the cached prefix. Priority is submission order (AdmissionOrder::
//     kArrival: no starvation), or the most rounds first (kLongestFirst, below);
//  3. PlanRound (step_planner.h) splits the work into steps and picks each step's specialization;
//     prefill chunks are capped by the blocks left;
//  4. the steps run on the executor; rows that end their known tokens are sampled, and the
//     tokens are reported through the requests' callbacks (queued: see DeliverEvents()).
//
// Not thread-safe: one thread owns a Scheduler (and its Executor), except ValidateRequest().
#ifndef TAILOR_SCHEDULER_SCHEDULER_H_
#define TAILOR_SCHEDULER_SCHEDULER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/executor.h"
#include "scheduler/cost_learner.h"
#include "scheduler/kv_cache_manager.h"
#include "scheduler/request.h"
#include "scheduler/sampler.h"
#include "scheduler/step_planner.h"

namespace tailor {

// What one executed step looked like, for per-specialization observability (metrics).
struct StepObservation {
  int32_t spec_index = 0;    // index into the executor's specializations()
  int32_t rows_used = 0;     // rows of the step (<= batch_size)
  int64_t valid_tokens = 0;  // tokens carried by the rows (the rest of the slots is padding)
  int64_t slot_tokens = 0;   // batch_size * seq_len of the specialization
  double wall_seconds = 0;   // measured wall time of Executor::Execute
  bool ok = true;            // false when the step failed
  // The specialization's full step (every row ending at ctx_len) as the cost table models it,
  // and as the planner now charges it (times the learned correction; = modeled without
  // learning).
  double modeled_full_seconds = 0;
  double measured_full_seconds = 0;
};
// Called on the thread that drives the Scheduler (the engine's loop thread), right after each
// step's Execute(); must be quick and must not call back into the Scheduler.
using StepObserver = std::function<void(const StepObservation&)>;

// The order in which waiting requests are admitted, and running ones keep their KV blocks (the
// last in this order is preempted first, the first prefills first).
//  - kArrival: submission order. What a server must do: a request waits only for older ones.
//  - kLongestFirst: the most rounds first (ceil(prompt / the largest seq_len) + max_tokens; ties
//    in submission order). For offline work whose lengths are known up front (tailor batch, a
//    replayed trace): the longest requests start first instead of decoding alone at the end, at
//    small batch sizes, once the queue is empty (longest-processing-time-first, the classic
//    makespan rule). A short request may wait behind every longer one submitted before it runs.
enum class AdmissionOrder { kArrival, kLongestFirst };

// Accepts "arrival" and "longest-first".
absl::StatusOr<AdmissionOrder> ParseAdmissionOrder(absl::string_view name);
absl::string_view AdmissionOrderName(AdmissionOrder order);

struct SchedulerOptions {
  SchedulePolicy policy = SchedulePolicy::kCostModel;
  AdmissionOrder admission = AdmissionOrder::kArrival;
  // Most sequences running at once; 0: the largest batch_size among the specializations.
  int32_t max_running = 0;
  bool enable_prefix_caching = true;
  std::vector<int32_t> eos_token_ids;  // the model's end-of-sequence ids
  uint64_t seed = 0;  // requests without a seed use a seed derived from this and their id
  KvCacheManager::BlockHashFn block_hash;  // empty: built-in (tests inject collisions)
  // The scheduler's own seconds per step (planning, sampling, bookkeeping), charged to every
  // planned step so the cost model does not split work into steps whose savings this eats.
  // >= 0: that fixed value (0 keeps plans a function of the cost table alone, for tests);
  // < 0: measured as the loop runs (a moving average of round time outside the executor).
  double step_overhead_seconds = 0.0;
  StepObserver step_observer;  // empty: none
  // Correct the executor's cost table from the step times observed (cost_learner.h). Off: plans
  // are a function of the table alone (deterministic tests, injected costs).
  bool learn_costs = false;
  CostLearnerOptions cost_learning;
};

// The limits a request is checked against, from the executor (immutable).
struct RequestLimits {
  int32_t max_ctx_len = 0;  // largest ctx_len among the specializations
  int32_t vocab_size = 0;
  int32_t kv_block_size = 1;
  int32_t num_kv_blocks = 0;
};
RequestLimits LimitsOf(const Executor& executor);

// InvalidArgument, naming the parameter and both numbers, for a request that can never run:
// an empty prompt, token ids outside the vocabulary, bad sampling options, prompt + max_tokens
// beyond the largest ctx_len, or more KV blocks than the whole pool.
absl::Status ValidateRequest(const RequestLimits& limits, std::span<const int32_t> prompt,
                             const SamplingOptions& options);

struct SchedulerStats {
  KvCacheStats kv;
  int32_t num_running = 0;
  int32_t num_waiting = 0;
  int64_t num_rounds = 0;
  int64_t num_steps = 0;
  int64_t num_preemptions = 0;
  int64_t num_finished = 0;
  int64_t prompt_tokens_computed = 0;     // KV written at prompt positions (recompute included)
  int64_t generated_tokens_computed = 0;  // KV written at generated positions (recompute included)
  int64_t useful_tokens = 0;              // the sum of the two
  int64_t generated_tokens = 0;           // tokens sampled and reported
  int64_t slot_tokens = 0;     // sum over steps of batch_size * seq_len (padded work)
  double busy_seconds = 0.0;   // sum of the cost table's seconds of the steps run
  std::vector<int64_t> steps_per_spec;  // indexed like the executor's specializations
  std::vector<double> cost_factor;      // learned measured / modeled, per specialization (1: none)
};

class Scheduler {
 public:
  // `executor` must outlive the Scheduler.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(Executor& executor, SchedulerOptions options);

  const RequestLimits& limits() const { return limits_; }

  // Queues a request under a fresh, caller-chosen `id`. Validates it (ValidateRequest).
  absl::Status Add(RequestId id, std::vector<int32_t> prompt, SamplingOptions options, TokenCallback callback);
  // Ends a live request with `reason` (one last event, no token) and frees its blocks.
  // False if `id` is not live.
  bool Cancel(RequestId id, FinishReason reason = FinishReason::kCancelled);
  void CancelAll(FinishReason reason);

  bool HasWork() const { return !running_.empty() || !waiting_.empty(); }
  // Runs one round. An executor error fails the requests of that step (kError) and is returned
  // after the round completes.
  absl::Status Step();
  // Calls the callbacks of the events queued since the last call, in order. Separate from
  // Step() so that an owner can publish state (e.g. statistics) before clients hear of it.
  void DeliverEvents();

  SchedulerStats stats() const;
  const KvCacheManager& kv_cache() const { return kv_; }

 private:
  struct Sequence {
    RequestId id = 0;
    uint64_t order = 0;  // submission order: lower = older
    // Lower runs first; ties by `order` (AdmissionOrder). 0 under kArrival.
    int64_t priority = 0;
    std::vector<int32_t> tokens;  // prompt + generated
    int32_t prompt_len = 0;
    int32_t num_computed = 0;  // leading tokens whose KV is written
    int32_t num_cached_prompt_tokens = -1;  // at first admission
    bool running = false;
    std::unique_ptr<RequestSampler> sampler;
    std::shared_ptr<const TokenCallback> callback;
    // Scores of prompt tokens 1..size() (prompt_logprobs requests); kept across preemption.
    std::vector<PromptTokenLogprob> prompt_logprobs;
    bool first_event_sent = false;  // prompt_logprobs ride on the first event
    // Whether logits after prompt token prompt_logprobs.size() are still to be taken: such a
    // sequence is computed in chunks that end there (one token per step).
    bool NeedsPromptLogits() const {
      return sampler->options().prompt_logprobs >= 0 &&
             static_cast<int32_t>(prompt_logprobs.size()) + 1 < prompt_len;
    }
    int32_t num_generated() const { return static_cast<int32_t>(tokens.size()) - prompt_len; }
    int32_t remaining() const { return static_cast<int32_t>(tokens.size()) - num_computed; }
  };
  struct PendingEvent {
    std::shared_ptr<const TokenCallback> callback;
    TokenEvent event;
  };

  Scheduler(Executor& executor, SchedulerOptions options, RequestLimits limits);

  void InsertByOrder(std::vector<Sequence*>& list, Sequence* seq);
  void Preempt(Sequence* seq);
  // Removes `seq` (finished), frees its blocks, and queues its last event.
  void Finish(Sequence* seq, TokenEvent event);
  // Queues a non-final event of `seq` (attaching its prompt log-probabilities to the first).
  void Emit(Sequence* seq, TokenEvent event);
  void Admit();
  absl::Status RunStep(const PlannedStep& step, std::span<Sequence* const> prefill,
                       std::span<Sequence* const> decode);

  Executor& executor_;
  const SchedulerOptions options_;
  const RequestLimits limits_;
  int32_t max_running_ = 1;
  int32_t max_seq_len_ = 1;
  KvCacheManager kv_;
  absl::flat_hash_map<RequestId, std::unique_ptr<Sequence>> seqs_;
  std::vector<Sequence*> running_;  // by (priority, submission order)
  std::vector<Sequence*> waiting_;  // the same (preempted ones go back in place)
  uint64_t next_order_ = 0;
  bool preempted_this_round_ = false;
  std::vector<PendingEvent> events_;
  std::vector<float> logits_;  // scratch row
  std::vector<std::pair<float, int32_t>> logprob_scratch_;
  CostTable costs_;  // the executor's, plus the step overhead in use and the learned scale
  CostLearner learner_;
  double executor_seconds_ = 0.0;  // wall time inside Execute() this round
  SchedulerStats stats_;
};

}  // namespace tailor

#endif  // TAILOR_SCHEDULER_SCHEDULER_H_
