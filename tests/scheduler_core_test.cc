// The scheduler, driven synchronously on the fake executor: outputs against the reference,
// chunking, mixing, splitting, policies, preemption, prefix caching, starvation, refusals,
// cancellation, seeds, failures.
#include "scheduler/scheduler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fake_executor.h"

namespace tailor {
namespace {

using fake::EventCollector;
using fake::FakeExecutor;
using fake::FakeExecutorOptions;
using fake::RecordedStep;
using fake::ReferenceGreedy;
using ::testing::HasSubstr;

constexpr int32_t kVocab = 32;

std::vector<int32_t> Prompt(int32_t seed, int32_t len) {
  std::vector<int32_t> p(len);
  uint64_t x = 0x1234567ull + static_cast<uint64_t>(seed) * 0x9e3779b97f4a7c15ull;
  for (auto& t : p) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    t = static_cast<int32_t>((x >> 33) % kVocab);
  }
  return p;
}

SamplingOptions Greedy(int32_t max_tokens) {
  SamplingOptions o;
  o.temperature = 0.0f;
  o.max_tokens = max_tokens;
  return o;
}

SamplingOptions Seeded(int32_t max_tokens, uint64_t seed) {
  SamplingOptions o;
  o.temperature = 0.9f;
  o.top_k = 12;
  o.max_tokens = max_tokens;
  o.seed = seed;
  return o;
}

FakeExecutorOptions Fake(std::vector<SpecShape> shapes, std::vector<double> costs, int32_t num_blocks = 256,
                         int32_t block_size = 4) {
  FakeExecutorOptions o;
  o.shapes = std::move(shapes);
  o.costs = std::move(costs);
  o.vocab_size = kVocab;
  o.kv_block_size = block_size;
  o.num_kv_blocks = num_blocks;
  return o;
}

class Harness {
 public:
  explicit Harness(FakeExecutorOptions fake, SchedulerOptions options = {}) : executor_(std::move(fake)) {
    auto s = Scheduler::Create(executor_, std::move(options));
    EXPECT_TRUE(s.ok()) << s.status();
    scheduler_ = std::move(*s);
  }

  RequestId Add(std::vector<int32_t> prompt, SamplingOptions options) {
    const RequestId id = next_id_++;
    absl::Status s = scheduler_->Add(id, std::move(prompt), std::move(options), events_.Callback());
    EXPECT_TRUE(s.ok()) << s;
    return id;
  }

  // One round; returns its status. Checks the KV bookkeeping after it.
  absl::Status Round() {
    absl::Status s = scheduler_->Step();
    scheduler_->DeliverEvents();
    ++rounds_;
    EXPECT_TRUE(scheduler_->kv_cache().CheckInvariants().ok()) << scheduler_->kv_cache().CheckInvariants();
    return s;
  }

  void RunToCompletion(int max_rounds = 2000) {
    while (scheduler_->HasWork() && max_rounds-- > 0) {
      absl::Status s = Round();
      ASSERT_TRUE(s.ok()) << s;
    }
    ASSERT_FALSE(scheduler_->HasWork());
    EXPECT_THAT(executor_.errors(), ::testing::IsEmpty());
    EXPECT_EQ(scheduler_->stats().kv.used_blocks, 0);
  }

  std::vector<int32_t> Tokens(RequestId id) { return events_.Get(id).tokens; }
  EventCollector::Result Result(RequestId id) { return events_.Get(id); }
  FakeExecutor& executor() { return executor_; }
  Scheduler& scheduler() { return *scheduler_; }
  int rounds() const { return rounds_; }

 private:
  FakeExecutor executor_;
  std::unique_ptr<Scheduler> scheduler_;
  EventCollector events_;
  RequestId next_id_ = 1;
  int rounds_ = 0;
};

std::vector<int64_t> StepsPerSpec(Harness& h) { return h.scheduler().stats().steps_per_spec; }

TEST(SchedulerTest, OneRequestMatchesTheReference) {
  Harness h(Fake({{1, 8, 64}, {1, 1, 64}}, {1.0, 0.5}));
  const auto prompt = Prompt(1, 10);
  const RequestId id = h.Add(prompt, Greedy(12));
  h.RunToCompletion();
  EXPECT_EQ(h.Tokens(id), ReferenceGreedy(prompt, 12, kVocab));
  const auto r = h.Result(id);
  EXPECT_EQ(r.finish, FinishReason::kLength);
  EXPECT_EQ(r.num_final_events, 1);
  EXPECT_EQ(r.events.back().num_prompt_tokens, 10);
  EXPECT_EQ(r.events.back().num_generated_tokens, 12);
}

TEST(SchedulerTest, LongPromptsArePrefilledInChunks) {
  Harness h(Fake({{1, 4, 64}, {1, 1, 64}}, {1.0, 1.0}));
  const auto prompt = Prompt(2, 11);
  const RequestId id = h.Add(prompt, Greedy(3));
  h.RunToCompletion();
  EXPECT_EQ(h.Tokens(id), ReferenceGreedy(prompt, 3, kVocab));
  const auto steps = h.executor().steps();
  ASSERT_GE(steps.size(), 3u);
  const int32_t expected[3][3] = {{0, 4, 0}, {4, 4, 0}, {8, 3, 1}};  // start, tokens, logits kept
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(steps[i].rows.size(), 1u);
    EXPECT_EQ(steps[i].rows[0].start_pos, expected[i][0]);
    EXPECT_EQ(steps[i].rows[0].num_tokens, expected[i][1]);
    EXPECT_EQ(steps[i].rows[0].logits_to_keep, expected[i][2]);
  }
}

TEST(SchedulerTest, MixesAPromptChunkWithDecodeRowsWhenCheaper) {
  Harness h(Fake({{4, 8, 64}, {4, 1, 64}}, {1.0, 0.9}));
  const auto pa = Prompt(3, 5), pb = Prompt(4, 20);
  const RequestId a = h.Add(pa, Greedy(10));
  ASSERT_TRUE(h.Round().ok());  // a prefilled, first token out
  const RequestId b = h.Add(pb, Greedy(5));
  ASSERT_TRUE(h.Round().ok());
  const RecordedStep last = h.executor().steps().back();
  EXPECT_EQ(last.spec_index, 0);
  ASSERT_EQ(last.rows.size(), 2u);
  EXPECT_EQ(last.rows[0].id, b);
  EXPECT_EQ(last.rows[0].num_tokens, 8);
  EXPECT_EQ(last.rows[1].id, a);
  EXPECT_EQ(last.rows[1].num_tokens, 1);
  h.RunToCompletion();
  EXPECT_EQ(h.Tokens(a), ReferenceGreedy(pa, 10, kVocab));
  EXPECT_EQ(h.Tokens(b), ReferenceGreedy(pb, 5, kVocab));
}

// 4 long and 4 short sequences decoding together.
std::vector<int32_t> RunSplitWorkload(Harness& h, std::vector<std::vector<int32_t>>* outputs = nullptr) {
  std::vector<std::pair<RequestId, std::vector<int32_t>>> reqs;
  for (int i = 0; i < 8; ++i) {
    auto p = Prompt(10 + i, i % 2 == 0 ? 40 : 4);
    reqs.emplace_back(h.Add(p, Greedy(8)), p);
  }
  h.RunToCompletion();
  for (const auto& [id, p] : reqs) {
    EXPECT_EQ(h.Tokens(id), ReferenceGreedy(p, 8, kVocab));
    if (outputs) outputs->push_back(h.Tokens(id));
  }
  std::vector<int32_t> specs;
  for (const auto& s : h.executor().steps()) specs.push_back(s.spec_index);
  return specs;
}

TEST(SchedulerTest, SplitsDecodeRowsByCtxLenOnlyWhenTheCostTableSaysSo) {
  const std::vector<SpecShape> shapes{{8, 16, 128}, {4, 1, 32}, {4, 1, 128}, {8, 1, 128}};
  Harness split(Fake(shapes, {14.0, 1.0, 10.0, 12.0}));
  const auto split_specs = RunSplitWorkload(split);
  auto counts = StepsPerSpec(split);
  EXPECT_GT(counts[1], 0);
  EXPECT_GT(counts[2], 0);
  EXPECT_EQ(counts[3], 0);
  // Decode rounds after the prefill: a b4_c32 step for the short rows, a b4_c128 for the long.
  for (const auto& step : split.executor().steps()) {
    if (step.spec_index == 1) {
      for (const auto& row : step.rows) EXPECT_LT(row.start_pos, 32);
    }
  }
  Harness merged(Fake(shapes, {14.0, 1.0, 10.0, 10.5}));
  RunSplitWorkload(merged);
  counts = StepsPerSpec(merged);
  EXPECT_GT(counts[3], 0);
  EXPECT_EQ(counts[1], 0);  // short rows ride in prefill steps, then in the b8 decode steps
  // Deterministic: the same workload gives the same steps.
  Harness again(Fake(shapes, {14.0, 1.0, 10.0, 12.0}));
  EXPECT_EQ(RunSplitWorkload(again), split_specs);
}

TEST(SchedulerTest, PoliciesChooseDifferentlyAndProduceTheSameTokens) {
  const std::vector<SpecShape> shapes{{8, 16, 128}, {4, 1, 32}, {4, 1, 128}, {8, 1, 128}};
  const std::vector<double> costs{14.0, 1.0, 10.0, 12.0};
  std::map<SchedulePolicy, std::vector<int64_t>> counts;
  std::map<SchedulePolicy, std::vector<std::vector<int32_t>>> outputs;
  for (SchedulePolicy p : {SchedulePolicy::kCostModel, SchedulePolicy::kSmallestFitting, SchedulePolicy::kLargest}) {
    SchedulerOptions o;
    o.policy = p;
    Harness h(Fake(shapes, costs), o);
    RunSplitWorkload(h, &outputs[p]);
    counts[p] = StepsPerSpec(h);
  }
  EXPECT_EQ(outputs[SchedulePolicy::kCostModel], outputs[SchedulePolicy::kSmallestFitting]);
  EXPECT_EQ(outputs[SchedulePolicy::kCostModel], outputs[SchedulePolicy::kLargest]);
  // Largest: one static shape, the b8_s16_c128 that covers everything.
  const auto& largest = counts[SchedulePolicy::kLargest];
  EXPECT_GT(largest[0], 0);
  EXPECT_EQ(largest[1] + largest[2] + largest[3], 0);
  // Smallest fitting: the 8 decode rows packed into b8_s1_c128 (8 rows fit), not split.
  const auto& smallest = counts[SchedulePolicy::kSmallestFitting];
  EXPECT_GT(smallest[3], 0);
  // Cost model: splits into b4_c32 + b4_c128.
  const auto& cost = counts[SchedulePolicy::kCostModel];
  EXPECT_GT(cost[1], 0);
  EXPECT_EQ(cost[3], 0);
}

TEST(SchedulerTest, PreemptedRequestsResumeWithIdenticalOutput) {
  const std::vector<SpecShape> shapes{{4, 8, 64}, {4, 1, 64}};
  const std::vector<double> costs{1.0, 0.5};
  auto workload = [&](Harness& h) {
    std::vector<RequestId> ids;
    for (int i = 0; i < 4; ++i) {
      ids.push_back(h.Add(Prompt(20 + i, 8), i % 2 == 0 ? Greedy(16) : Seeded(16, 100 + i)));
    }
    h.RunToCompletion();
    std::vector<std::vector<int32_t>> out;
    for (RequestId id : ids) {
      EXPECT_EQ(h.Result(id).finish, FinishReason::kLength);
      out.push_back(h.Tokens(id));
    }
    return out;
  };
  Harness roomy(Fake(shapes, costs, 256));
  const auto expected = workload(roomy);
  EXPECT_EQ(roomy.scheduler().stats().num_preemptions, 0);
  EXPECT_EQ(expected[0], ReferenceGreedy(Prompt(20, 8), 16, kVocab));
  for (bool caching : {true, false}) {
    SchedulerOptions o;
    o.enable_prefix_caching = caching;
    Harness tight(Fake(shapes, costs, 12), o);  // 48 positions for 4 x 24
    EXPECT_EQ(workload(tight), expected) << "prefix caching " << caching;
    EXPECT_GT(tight.scheduler().stats().num_preemptions, 0);
  }
}

TEST(SchedulerTest, PrefixCacheHitsGiveTheSameOutput) {
  Harness h(Fake({{2, 8, 64}, {2, 1, 64}}, {1.0, 0.5}));
  const auto p = Prompt(30, 16);
  const RequestId a = h.Add(p, Greedy(4));
  h.RunToCompletion();
  h.executor().ClearSteps();
  const RequestId c = h.Add(p, Greedy(4));  // the same prompt: 3 of 4 blocks cached
  h.RunToCompletion();
  EXPECT_EQ(h.Tokens(c), h.Tokens(a));
  EXPECT_EQ(h.Tokens(a), ReferenceGreedy(p, 4, kVocab));
  EXPECT_EQ(h.Result(c).events.back().num_cached_prompt_tokens, 12);
  const auto steps = h.executor().steps();
  ASSERT_FALSE(steps.empty());
  EXPECT_EQ(steps[0].rows[0].start_pos, 12);
  EXPECT_EQ(steps[0].rows[0].num_tokens, 4);
  EXPECT_EQ(h.scheduler().stats().kv.prefix_hit_tokens, 12);
  // A shared first half, then something else.
  auto q = p;
  for (int i = 8; i < 16; ++i) q[i] = (q[i] + 1) % kVocab;
  const RequestId b = h.Add(q, Greedy(4));
  h.RunToCompletion();
  EXPECT_EQ(h.Tokens(b), ReferenceGreedy(q, 4, kVocab));
  EXPECT_EQ(h.scheduler().stats().kv.prefix_hit_tokens, 20);
}

TEST(SchedulerTest, ConcurrentRequestsWithACommonPrefixShareBlocks) {
  Harness h(Fake({{4, 8, 128}, {4, 1, 128}}, {1.0, 0.5}));
  const auto common = Prompt(40, 12);
  std::vector<std::pair<RequestId, std::vector<int32_t>>> reqs;
  for (int wave = 0; wave < 2; ++wave) {
    for (int i = 0; i < 3; ++i) {
      auto p = common;
      auto tail = Prompt(50 + wave * 3 + i, 3 + i);
      p.insert(p.end(), tail.begin(), tail.end());
      reqs.emplace_back(h.Add(p, Greedy(6)), p);
    }
    ASSERT_TRUE(h.Round().ok());
    ASSERT_TRUE(h.Round().ok());
  }
  h.RunToCompletion();
  for (const auto& [id, p] : reqs) EXPECT_EQ(h.Tokens(id), ReferenceGreedy(p, 6, kVocab));
  EXPECT_GE(h.scheduler().stats().kv.prefix_hit_tokens, 3 * 12);  // the second wave at least
}

TEST(SchedulerTest, WaitingRequestsAreAdmittedInOrderWithoutStarvation) {
  SchedulerOptions o;
  o.max_running = 2;
  Harness h(Fake({{2, 8, 64}, {2, 1, 64}}, {1.0, 0.5}), o);
  h.Add(Prompt(60, 4), Greedy(20));
  h.Add(Prompt(61, 4), Greedy(20));
  const RequestId c = h.Add(Prompt(62, 4), Greedy(4));
  std::vector<RequestId> later;
  int c_first_round = -1;
  for (int round = 0; round < 40 && h.scheduler().HasWork(); ++round) {
    later.push_back(h.Add(Prompt(70 + round, 4), Greedy(2)));  // a steady stream of short ones
    ASSERT_TRUE(h.Round().ok());
    if (c_first_round < 0 && !h.Tokens(c).empty()) c_first_round = round;
  }
  h.RunToCompletion();
  // c waits only for a running request to finish (20 tokens), never for later arrivals.
  ASSERT_GE(c_first_round, 0);
  EXPECT_LE(c_first_round, 22);
  const auto steps = h.executor().steps();
  auto first_step = [&](RequestId id) {
    for (size_t i = 0; i < steps.size(); ++i) {
      for (const auto& r : steps[i].rows) {
        if (r.id == id) return i;
      }
    }
    return steps.size();
  };
  const size_t c_step = first_step(c);
  for (RequestId d : later) EXPECT_GE(first_step(d), c_step);
  for (size_t i = 1; i < later.size(); ++i) EXPECT_LE(first_step(later[i - 1]), first_step(later[i]));
}

// The requests in the order of their first step.
std::vector<RequestId> FirstRunOrder(Harness& h) {
  std::vector<RequestId> order;
  for (const auto& step : h.executor().steps()) {
    for (const auto& r : step.rows) {
      if (std::find(order.begin(), order.end(), r.id) == order.end()) order.push_back(r.id);
    }
  }
  return order;
}

// Longest-first: the most rounds (ceil(prompt / largest seq_len) + max_tokens) run first, ties in
// submission order; the outputs are the reference's whatever the order.
TEST(SchedulerTest, LongestFirstAdmitsTheMostRoundsFirst) {
  SchedulerOptions o;
  o.max_running = 1;
  o.admission = AdmissionOrder::kLongestFirst;
  Harness h(Fake({{1, 8, 64}, {1, 1, 64}}, {1.0, 0.5}), o);
  std::vector<std::pair<RequestId, std::vector<int32_t>>> reqs;
  auto add = [&](int32_t seed, int32_t prompt_len, int32_t max_tokens) {
    reqs.push_back({h.Add(Prompt(seed, prompt_len), Greedy(max_tokens)), Prompt(seed, prompt_len)});
    return reqs.back().first;
  };
  const RequestId a = add(80, 4, 3);   // 1 + 3 rounds
  const RequestId b = add(81, 4, 9);   // 1 + 9
  const RequestId c = add(82, 20, 4);  // 3 + 4
  const RequestId d = add(83, 4, 6);   // 1 + 6: ties with c, submitted after it
  const RequestId e = add(84, 4, 9);   // 1 + 9: ties with b
  h.RunToCompletion();
  EXPECT_EQ(FirstRunOrder(h), (std::vector<RequestId>{b, e, c, d, a}));
  for (const auto& [id, p] : reqs) {
    const int32_t n = id == a ? 3 : id == c ? 4 : id == d ? 6 : 9;
    EXPECT_EQ(h.Tokens(id), ReferenceGreedy(p, n, kVocab)) << id;
  }
}

// Under arrival order the same requests run in submission order.
TEST(SchedulerTest, ArrivalOrderIsSubmissionOrder) {
  SchedulerOptions o;
  o.max_running = 1;
  Harness h(Fake({{1, 8, 64}, {1, 1, 64}}, {1.0, 0.5}), o);
  std::vector<RequestId> ids;
  for (int32_t max_tokens : {3, 9, 4, 6}) ids.push_back(h.Add(Prompt(90 + max_tokens, 4), Greedy(max_tokens)));
  h.RunToCompletion();
  EXPECT_EQ(FirstRunOrder(h), ids);
}

TEST(SchedulerTest, RefusesRequestsThatCanNeverRun) {
  Harness h(Fake({{2, 8, 64}, {2, 1, 64}}, {1.0, 0.5}, 12, 4));
  absl::Status s = h.scheduler().Add(1, Prompt(1, 60), Greedy(10), nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("60 tokens"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("max_tokens (10)"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("ctx_len (64)"));
  s = h.scheduler().Add(2, Prompt(1, 40), Greedy(10), nullptr);  // 50 positions = 13 blocks > 12
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("13 KV blocks"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("12 blocks"));
  s = h.scheduler().Add(3, {}, Greedy(1), nullptr);
  EXPECT_THAT(std::string(s.message()), HasSubstr("empty"));
  s = h.scheduler().Add(4, {1, kVocab}, Greedy(1), nullptr);
  EXPECT_THAT(std::string(s.message()), HasSubstr("vocabulary"));
  EXPECT_FALSE(h.scheduler().HasWork());
  EXPECT_TRUE(h.scheduler().Add(5, Prompt(1, 38), Greedy(10), nullptr).ok());  // 48 positions fit
}

TEST(SchedulerTest, CancellationFreesEveryBlock) {
  SchedulerOptions o;
  o.max_running = 2;
  Harness h(Fake({{2, 8, 64}, {2, 1, 64}}, {1.0, 0.5}), o);
  std::vector<RequestId> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(h.Add(Prompt(80 + i, 10), Greedy(30)));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(h.Round().ok());
  EXPECT_GT(h.scheduler().stats().kv.used_blocks, 0);
  EXPECT_EQ(h.scheduler().stats().num_waiting, 2);
  for (RequestId id : ids) EXPECT_TRUE(h.scheduler().Cancel(id));
  EXPECT_FALSE(h.scheduler().Cancel(ids[0]));  // already gone
  h.scheduler().DeliverEvents();
  EXPECT_EQ(h.scheduler().stats().kv.used_blocks, 0);
  EXPECT_FALSE(h.scheduler().HasWork());
  for (RequestId id : ids) {
    const auto r = h.Result(id);
    EXPECT_EQ(r.finish, FinishReason::kCancelled);
    EXPECT_EQ(r.num_final_events, 1);
  }
  EXPECT_TRUE(h.scheduler().kv_cache().CheckInvariants().ok());
}

TEST(SchedulerTest, ASeededRequestIgnoresWhatElseIsBatched) {
  const std::vector<SpecShape> shapes{{4, 8, 128}, {4, 1, 128}, {1, 1, 128}};
  const auto px = Prompt(90, 6);
  Harness alone(Fake(shapes, {1.0, 0.6, 0.3}));
  const RequestId x1 = alone.Add(px, Seeded(12, 42));
  alone.RunToCompletion();
  Harness busy(Fake(shapes, {1.0, 0.6, 0.3}));
  busy.Add(Prompt(91, 17), Seeded(20, 7));
  SamplingOptions unseeded;
  unseeded.max_tokens = 9;
  busy.Add(Prompt(92, 3), unseeded);
  ASSERT_TRUE(busy.Round().ok());
  const RequestId x2 = busy.Add(px, Seeded(12, 42));
  ASSERT_TRUE(busy.Round().ok());
  busy.Add(Prompt(93, 30), Seeded(5, 8));
  busy.RunToCompletion();
  EXPECT_EQ(busy.Tokens(x2), alone.Tokens(x1));
  EXPECT_EQ(busy.Tokens(x2).size(), 12u);
}

TEST(SchedulerTest, EosStopsUnlessIgnored) {
  const auto p = Prompt(95, 5);
  const auto ref = ReferenceGreedy(p, 10, kVocab);
  const int32_t eos = ref[3];
  const size_t stop_at = std::find(ref.begin(), ref.end(), eos) - ref.begin();
  SchedulerOptions o;
  o.eos_token_ids = {eos};
  Harness h(Fake({{1, 8, 64}, {1, 1, 64}}, {1.0, 0.5}), o);
  const RequestId a = h.Add(p, Greedy(10));
  auto ignore = Greedy(10);
  ignore.ignore_eos = true;
  ignore.logprobs = 3;
  const RequestId b = h.Add(p, ignore);
  h.RunToCompletion();
  EXPECT_EQ(h.Tokens(a), std::vector<int32_t>(ref.begin(), ref.begin() + stop_at + 1));
  EXPECT_EQ(h.Result(a).finish, FinishReason::kStop);
  EXPECT_EQ(h.Tokens(b), ref);
  EXPECT_EQ(h.Result(b).finish, FinishReason::kLength);
  for (const auto& e : h.Result(b).events) {
    ASSERT_TRUE(e.logprob.has_value());
    ASSERT_EQ(e.top_logprobs.size(), 3u);
    EXPECT_EQ(e.top_logprobs[0].token, e.token);  // greedy: the most likely one
    EXPECT_FLOAT_EQ(*e.logprob, e.top_logprobs[0].logprob);
  }
}

TEST(SchedulerTest, AnExecutorFailureFailsTheRequestsOfThatStepOnly) {
  FakeExecutorOptions f = Fake({{1, 8, 64}, {1, 1, 64}}, {1.0, 0.5});
  f.fail_step = 2;
  SchedulerOptions o;
  o.max_running = 1;
  Harness h(f, o);
  const RequestId a = h.Add(Prompt(96, 5), Greedy(4));
  const RequestId b = h.Add(Prompt(97, 5), Greedy(4));
  bool failed = false;
  for (int i = 0; i < 100 && h.scheduler().HasWork(); ++i) failed |= !h.Round().ok();
  EXPECT_TRUE(failed);
  EXPECT_EQ(h.Result(a).finish, FinishReason::kError);
  EXPECT_THAT(std::string(h.Result(a).events.back().status.message()), HasSubstr("injected failure"));
  EXPECT_EQ(h.Result(b).finish, FinishReason::kLength);
  EXPECT_EQ(h.Tokens(b), ReferenceGreedy(Prompt(97, 5), 4, kVocab));
  EXPECT_EQ(h.scheduler().stats().kv.used_blocks, 0);
}

// Random arrivals, shared prefixes, cancellations and tight pools under every policy and several
// cost tables: every plan valid, every output the reference (or a prefix of it when cancelled).
TEST(SchedulerTest, RandomWorkloadsStayCorrect) {
  const std::vector<SpecShape> shapes{{4, 8, 64}, {2, 16, 128}, {4, 1, 32}, {8, 1, 128}, {1, 1, 128}};
  uint64_t x = 12345;
  auto rnd = [&](int n) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int>((x >> 33) % static_cast<uint64_t>(n));
  };
  int64_t total_preemptions = 0, total_hits = 0;
  size_t total_requests = 0;
  for (int trial = 0; trial < 12; ++trial) {
    std::vector<double> costs;
    for (size_t i = 0; i < shapes.size(); ++i) costs.push_back(0.5 + rnd(100) / 10.0);
    SchedulerOptions o;
    o.policy = static_cast<SchedulePolicy>(trial % 3);
    o.admission = (trial / 3) % 2 == 1 ? AdmissionOrder::kLongestFirst : AdmissionOrder::kArrival;
    o.enable_prefix_caching = trial % 4 != 3;
    o.max_running = 2 + rnd(8);
    const int32_t blocks = trial % 2 == 0 ? 40 : 400;
    Harness h(Fake(shapes, costs, blocks, 4), o);
    const auto common = Prompt(500 + trial, 16);
    std::vector<std::pair<RequestId, std::vector<int32_t>>> reqs;
    std::map<RequestId, int> cancel_at;
    for (int round = 0; round < 300 && (round < 60 || h.scheduler().HasWork()); ++round) {
      if (round < 60 && rnd(3) == 0) {
        std::vector<int32_t> p = rnd(2) == 0 ? std::vector<int32_t>(common.begin(), common.begin() + 4 * (1 + rnd(4)))
                                             : std::vector<int32_t>{};
        auto tail = Prompt(1000 * trial + round, 1 + rnd(40));
        p.insert(p.end(), tail.begin(), tail.end());
        const RequestId id = h.Add(p, Greedy(1 + rnd(30)));
        reqs.emplace_back(id, p);
        if (rnd(5) == 0) cancel_at[id] = round + rnd(20);
      }
      for (const auto& [id, when] : cancel_at) {
        if (when == round) h.scheduler().Cancel(id);
      }
      h.scheduler().DeliverEvents();
      if (h.scheduler().HasWork()) {
        absl::Status s = h.Round();
        ASSERT_TRUE(s.ok()) << s;
      }
    }
    h.RunToCompletion();
    const SchedulerStats stats = h.scheduler().stats();
    total_preemptions += stats.num_preemptions;
    total_hits += stats.kv.prefix_hit_tokens;
    total_requests += reqs.size();
    for (const auto& [id, p] : reqs) {
      const auto r = h.Result(id);
      ASSERT_EQ(r.num_final_events, 1) << "trial " << trial << " request " << id;
      const auto ref = ReferenceGreedy(p, static_cast<int32_t>(r.tokens.size()), kVocab);
      EXPECT_EQ(r.tokens, ref) << "trial " << trial << " request " << id;
      if (r.finish != FinishReason::kCancelled) {
        EXPECT_EQ(r.finish, FinishReason::kLength);
      }
    }
  }
  // The workloads did exercise what they are meant to.
  EXPECT_GT(total_requests, 100u);
  EXPECT_GT(total_preemptions, 0);
  EXPECT_GT(total_hits, 0);
  std::printf("random workloads: %zu requests, %ld preemptions, %ld prefix-hit tokens\n", total_requests,
              static_cast<long>(total_preemptions), static_cast<long>(total_hits));
}

// log_softmax(ReferenceLogits(history))[token], as the scheduler should score prompt tokens.
double ReferenceLogprob(std::span<const int32_t> history, int32_t token) {
  const std::vector<float> l = FakeExecutor::ReferenceLogits(history, kVocab);
  double max = l[0], sum = 0.0;
  for (float x : l) max = std::max<double>(max, x);
  for (float x : l) sum += std::exp(static_cast<double>(x) - max);
  return static_cast<double>(l[token]) - max - std::log(sum);
}

void ExpectPromptScores(const std::vector<PromptTokenLogprob>& got, const std::vector<int32_t>& prompt, int32_t k) {
  ASSERT_EQ(got.size(), prompt.size() - 1);
  for (size_t i = 0; i + 1 < prompt.size(); ++i) {
    const std::span<const int32_t> history(prompt.data(), i + 1);
    EXPECT_EQ(got[i].token, prompt[i + 1]) << i;
    EXPECT_NEAR(got[i].logprob, ReferenceLogprob(history, prompt[i + 1]), 1e-5) << i;
    ASSERT_EQ(got[i].top_logprobs.size(), static_cast<size_t>(k)) << i;
    for (int32_t j = 0; j < k; ++j) {
      const TokenLogprob& t = got[i].top_logprobs[j];
      EXPECT_NEAR(t.logprob, ReferenceLogprob(history, t.token), 1e-5);
      if (j > 0) {
        EXPECT_GE(got[i].top_logprobs[j - 1].logprob, t.logprob);
      }
    }
  }
}

SamplingOptions Scored(int32_t max_tokens, int32_t k) {
  SamplingOptions o = Greedy(max_tokens);
  o.prompt_logprobs = k;
  return o;
}

TEST(SchedulerTest, PromptLogprobsScoreEveryPromptTokenAndKeepTheOutput) {
  // Long prefill chunks, a shared prefix already cached and another request batched alongside:
  // the scored request still gets logits after every prompt token, and the same greedy output.
  Harness h(Fake({{2, 8, 64}, {2, 1, 64}}, {1.0, 0.5}));
  const auto p = Prompt(60, 14);
  const RequestId warm = h.Add(p, Greedy(2));
  h.RunToCompletion();
  const RequestId scored = h.Add(p, Scored(3, 4));
  const RequestId other = h.Add(Prompt(61, 9), Greedy(5));
  h.RunToCompletion();
  const auto r = h.Result(scored);
  EXPECT_EQ(r.tokens, ReferenceGreedy(p, 3, kVocab));
  ASSERT_FALSE(r.events.empty());
  ExpectPromptScores(r.events.front().prompt_logprobs, p, 4);
  for (size_t i = 1; i < r.events.size(); ++i) EXPECT_TRUE(r.events[i].prompt_logprobs.empty());
  EXPECT_EQ(r.events.back().num_cached_prompt_tokens, 0);
  EXPECT_EQ(h.Tokens(other), ReferenceGreedy(Prompt(61, 9), 5, kVocab));
  EXPECT_EQ(h.Tokens(warm), ReferenceGreedy(p, 2, kVocab));
}

TEST(SchedulerTest, MaxTokensZeroScoresThePromptAndGeneratesNothing) {
  Harness h(Fake({{4, 8, 64}, {4, 1, 64}}, {1.0, 0.5}));
  const auto p = Prompt(62, 11);
  const RequestId scored = h.Add(p, Scored(0, 0));
  h.RunToCompletion();
  const auto r = h.Result(scored);
  EXPECT_TRUE(r.tokens.empty());
  EXPECT_EQ(r.finish, FinishReason::kLength);
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].num_generated_tokens, 0);
  ExpectPromptScores(r.events[0].prompt_logprobs, p, 0);
  // Nothing to score either: finished without a step.
  h.executor().ClearSteps();
  const RequestId idle = h.Add(p, Greedy(0));
  EXPECT_FALSE(h.scheduler().HasWork());
  h.scheduler().DeliverEvents();
  EXPECT_EQ(h.Result(idle).finish, FinishReason::kLength);
  EXPECT_TRUE(h.executor().steps().empty());
}

TEST(SchedulerTest, PromptScoresSurvivePreemption) {
  const std::vector<SpecShape> shapes{{4, 8, 64}, {4, 1, 64}};
  Harness tight(Fake(shapes, {1.0, 0.5}, 12));  // 48 positions for 4 x 24
  std::vector<RequestId> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(tight.Add(Prompt(70 + i, 8), Scored(16, 2)));
  tight.RunToCompletion();
  EXPECT_GT(tight.scheduler().stats().num_preemptions, 0);
  for (int i = 0; i < 4; ++i) {
    const auto r = tight.Result(ids[i]);
    EXPECT_EQ(r.tokens, ReferenceGreedy(Prompt(70 + i, 8), 16, kVocab)) << i;
    ExpectPromptScores(r.events.front().prompt_logprobs, Prompt(70 + i, 8), 2);
  }
}

}  // namespace
}  // namespace tailor
