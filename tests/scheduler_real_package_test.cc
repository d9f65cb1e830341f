// The scheduler on the real engine: a stories260K package with several decode and prefill
// specializations, so that the planner mixes prefill with decode, splits decode rows by ctx_len
// and batch size, and chunks prompts. Greedy output must not depend on what else runs: a request
// alone, among others arriving at different times, after a prefix-cache hit and after preemption
// gives the same token ids, under every policy; and it equals the float64 reference's greedy ids.
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/runtime.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "scheduler/engine_core.h"
#include "scheduler/scheduler.h"
#include "tests/fake_executor.h"  // EventCollector only
#include "tests/package_fixture.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;
using fake::EventCollector;

const std::string kShared = TAILOR_SHARED_DIR;

// Decode b1/b2/b4 at ctx 128 and 512; prefill chunks of 16 (b1 at ctx 128, b2 at 512) and 32.
constexpr char kSpecs[] = R"({"specializations": [
    {"batch_size": "1", "seq_len": "1", "ctx_len": "128"},
    {"batch_size": "1", "seq_len": "1", "ctx_len": "512"},
    {"batch_size": "2", "seq_len": "1", "ctx_len": "128"},
    {"batch_size": "2", "seq_len": "1", "ctx_len": "512"},
    {"batch_size": "4", "seq_len": "1", "ctx_len": "128"},
    {"batch_size": "4", "seq_len": "1", "ctx_len": "512"},
    {"batch_size": "1", "seq_len": "16", "ctx_len": "128"},
    {"batch_size": "2", "seq_len": "16", "ctx_len": "512"},
    {"batch_size": "1", "seq_len": "32", "ctx_len": "512"}]})";

// Seconds per step: a fixed table makes the same plans on every machine. This one is chosen to
// exercise the planner, not to be realistic: decode costs grow with ctx_len (so decode rows are
// split by ctx_len), and b2_s16_c512 is the cheapest prompt step (so a prompt chunk's spare row
// carries a decode row: mixing).
constexpr char kCosts[] = R"({
    "b1_s1_c128": 0.00017, "b1_s1_c512": 0.00053, "b2_s1_c128": 0.00033, "b2_s1_c512": 0.0011,
    "b4_s1_c128": 0.00065, "b4_s1_c512": 0.0026, "b1_s16_c128": 0.002, "b2_s16_c512": 0.0015,
    "b1_s32_c512": 0.0035})";

fs::path StoriesPackage() {
  const fs::path costs = fs::path(TAILOR_BUILD_DIR) / "test-packages" / "stories_sched_costs.json";
  fs::create_directories(costs.parent_path());
  // ctest runs each test in its own process: write aside and rename, so no reader sees half a file.
  const fs::path tmp = costs.string() + "." + std::to_string(getpid());
  std::ofstream(tmp) << kCosts;
  fs::rename(tmp, costs);
  CompileOptions o;
  o.cost_table = costs;
  // The native path runs the same programs without generated code (which engine tests check
  // against it), so the fixture compiles in about a second instead of a minute.
  o.target = Target::kNative;
  return testing_util::TestPackage("stories_sched", "stories260K/stories260K.bin", kSpecs, o);
}

// Opens the package once per process per pool size (kv_cache_mb 0: the runtime's default).
Runtime& Stories(int64_t kv_cache_mb = 4) {
  static auto* runtimes = new std::map<int64_t, std::unique_ptr<Runtime>>();
  auto& rt = (*runtimes)[kv_cache_mb];
  if (!rt) {
    RuntimeOptions o;
    o.kv_cache_mb = kv_cache_mb;
    auto opened = Runtime::Open(StoriesPackage(), o);
    EXPECT_TRUE(opened.ok()) << opened.status();
    if (opened.ok()) rt = std::move(*opened);
  }
  return *rt;
}

struct ReferenceCase {
  std::vector<int32_t> prompt, output;
};

std::vector<ReferenceCase> ReferenceCases() {
  std::ifstream in(kShared + "/reference/stories260K_greedy.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  std::vector<ReferenceCase> cases;
  for (const auto& c : j["cases"]) {
    cases.push_back({c["prompt_ids"].get<std::vector<int32_t>>(), c["output_ids"].get<std::vector<int32_t>>()});
  }
  return cases;
}

// A prompt of `len` tokens: BOS, then the reference stories' tokens from `offset` on (real text,
// so that the model's predictions are not degenerate).
std::vector<int32_t> StoryPrompt(int32_t len, int32_t offset) {
  static const std::vector<int32_t>* text = [] {
    auto* t = new std::vector<int32_t>();
    for (const ReferenceCase& c : ReferenceCases()) {
      t->insert(t->end(), c.prompt.begin() + 1, c.prompt.end());
      t->insert(t->end(), c.output.begin(), c.output.end());
    }
    return t;
  }();
  std::vector<int32_t> p = {1};
  for (int32_t i = 0; static_cast<int32_t>(p.size()) < len; ++i) p.push_back((*text)[(offset + i) % text->size()]);
  return p;
}

SamplingOptions Greedy(int32_t max_tokens, bool ignore_eos = true) {
  SamplingOptions o;
  o.temperature = 0.0f;
  o.max_tokens = max_tokens;
  o.ignore_eos = ignore_eos;
  return o;
}

SchedulerOptions Options(const Runtime& rt, SchedulePolicy policy = SchedulePolicy::kCostModel) {
  SchedulerOptions o;
  o.policy = policy;
  o.eos_token_ids = rt.package().config.eos_ids;
  return o;
}

// Forwards to the runtime and classifies the steps of each round (see NewRound()).
class CountingExecutor final : public Executor {
 public:
  explicit CountingExecutor(Runtime& rt) : rt_(rt) {}
  std::span<const Specialization> specializations() const override { return rt_.specializations(); }
  const CostTable& costs() const override { return rt_.costs(); }
  int32_t vocab_size() const override { return rt_.vocab_size(); }
  int32_t kv_block_size() const override { return rt_.kv_block_size(); }
  int32_t num_kv_blocks() const override { return rt_.num_kv_blocks(); }

  absl::StatusOr<StepOutput> Execute(const StepPlan& plan) override {
    bool chunk = false, single = false;
    for (const StepRow& row : plan.rows) (row.tokens.size() > 1 ? chunk : single) = true;
    mixed_steps_ += chunk && single;
    if (!chunk) ++single_token_steps_in_round_;
    return rt_.Execute(plan);
  }
  // Called between rounds: counts rounds whose one-token rows were split over several steps.
  void NewRound() {
    split_rounds_ += single_token_steps_in_round_ > 1;
    single_token_steps_in_round_ = 0;
  }

  int64_t mixed_steps() const { return mixed_steps_; }    // prompt chunks beside one-token rows
  int64_t split_rounds() const { return split_rounds_; }  // rounds with >= 2 one-token steps

 private:
  Runtime& rt_;
  int64_t mixed_steps_ = 0, split_rounds_ = 0, single_token_steps_in_round_ = 0;
};

// Drives a Scheduler on the runtime synchronously, checking the KV bookkeeping after each round.
class Driver {
 public:
  Driver(Executor& executor, SchedulerOptions options, CountingExecutor* counter = nullptr) : counter_(counter) {
    auto s = Scheduler::Create(executor, std::move(options));
    EXPECT_TRUE(s.ok()) << s.status();
    scheduler_ = std::move(*s);
  }

  RequestId Add(std::vector<int32_t> prompt, SamplingOptions options) {
    const RequestId id = next_id_++;
    absl::Status s = scheduler_->Add(id, std::move(prompt), std::move(options), events_.Callback());
    EXPECT_TRUE(s.ok()) << s;
    return id;
  }

  void Rounds(int n) {
    for (int i = 0; i < n && scheduler_->HasWork(); ++i) {
      absl::Status s = scheduler_->Step();
      if (counter_ != nullptr) counter_->NewRound();
      scheduler_->DeliverEvents();
      ASSERT_TRUE(s.ok()) << s;
      absl::Status inv = scheduler_->kv_cache().CheckInvariants();
      ASSERT_TRUE(inv.ok()) << inv;
    }
  }

  void RunToCompletion() {
    Rounds(100000);
    ASSERT_FALSE(scheduler_->HasWork());
    EXPECT_EQ(scheduler_->stats().kv.used_blocks, 0);
  }

  std::vector<int32_t> Tokens(RequestId id) { return events_.Get(id).tokens; }
  EventCollector::Result Result(RequestId id) { return events_.Get(id); }
  Scheduler& scheduler() { return *scheduler_; }

 private:
  CountingExecutor* counter_;
  std::unique_ptr<Scheduler> scheduler_;
  EventCollector events_;
  RequestId next_id_ = 1;
};

struct Request {
  std::vector<int32_t> prompt;
  int32_t max_tokens = 1;
  uint64_t seed = 0;  // 0: greedy; else sampled (temperature 0.9, top-k 40) with this seed
};

SamplingOptions Sampling(const Request& r) {
  SamplingOptions o = Greedy(r.max_tokens);
  if (r.seed != 0) {
    o.temperature = 0.9f;
    o.top_k = 40;
    o.seed = r.seed;
  }
  return o;
}

// The output of `r` run alone on a fresh scheduler (empty prefix cache).
std::vector<int32_t> Alone(const Request& r) {
  Driver d(Stories(), Options(Stories()));
  const RequestId id = d.Add(r.prompt, Sampling(r));
  d.RunToCompletion();
  return d.Tokens(id);
}

int32_t NumSpecsUsed(const SchedulerStats& s) {
  return static_cast<int32_t>(std::count_if(s.steps_per_spec.begin(), s.steps_per_spec.end(),
                                            [](int64_t n) { return n > 0; }));
}

TEST(SchedulerRealPackage, PackageHasTheSpecializations) {
  Runtime& rt = Stories();
  ASSERT_EQ(rt.specializations().size(), 9u);
  EXPECT_GE(rt.num_kv_blocks(), 150);  // 4 MiB
}

TEST(SchedulerRealPackage, ReferenceStoriesAloneAndTogether) {
  const std::vector<ReferenceCase> cases = ReferenceCases();
  ASSERT_EQ(cases.size(), 4u);
  // The reference stops at EOS (BOS for llama2.c stories), as the package's eos ids do.
  Runtime& rt = Stories();
  for (const ReferenceCase& c : cases) {
    Driver d(rt, Options(rt));
    const RequestId id = d.Add(c.prompt, Greedy(static_cast<int32_t>(c.output.size()), false));
    d.RunToCompletion();
    EXPECT_EQ(d.Tokens(id), c.output);
  }
  for (SchedulePolicy policy : {SchedulePolicy::kCostModel, SchedulePolicy::kSmallestFitting,
                                SchedulePolicy::kLargest}) {
    Driver d(rt, Options(rt, policy));
    std::vector<RequestId> ids;
    for (size_t i = 0; i < cases.size(); ++i) {
      ids.push_back(d.Add(cases[i].prompt, Greedy(static_cast<int32_t>(cases[i].output.size()), false)));
      d.Rounds(static_cast<int>(3 * i));  // staggered arrivals
    }
    d.RunToCompletion();
    for (size_t i = 0; i < cases.size(); ++i) {
      EXPECT_EQ(d.Tokens(ids[i]), cases[i].output) << SchedulePolicyName(policy) << " case " << i;
    }
  }
}

// Requests of different lengths arriving at different times, under each policy: every output
// equals the request's output alone; the planner uses several specializations.
TEST(SchedulerRealPackage, BatchedOutputEqualsAloneUnderEveryPolicy) {
  // Prompts from 1 to 150 tokens (several prefill chunks), outputs from 10 to 384 (some rows
  // cross ctx 128 while others stay below it).
  const std::vector<Request> reqs = {
      {StoryPrompt(1, 0), 40},    {StoryPrompt(23, 50), 120}, {StoryPrompt(70, 100), 30},
      {StoryPrompt(9, 7), 200},   {StoryPrompt(150, 3), 60},  {StoryPrompt(40, 200), 10},
      {StoryPrompt(100, 20), 300}, {StoryPrompt(5, 300), 90},
      // Seeded sampling draws the same numbers whatever runs beside it.
      {StoryPrompt(30, 77), 80, 1234}, {StoryPrompt(64, 5), 60, 99},
      // Up to the largest ctx_len exactly, from a prompt that fills the ctx 128 specializations.
      {StoryPrompt(128, 41), 384},
  };
  std::vector<std::vector<int32_t>> alone;
  for (const Request& r : reqs) {
    alone.push_back(Alone(r));
    ASSERT_EQ(static_cast<int32_t>(alone.back().size()), r.max_tokens);
  }
  Runtime& rt = Stories();
  for (SchedulePolicy policy : {SchedulePolicy::kCostModel, SchedulePolicy::kSmallestFitting,
                                SchedulePolicy::kLargest}) {
    SCOPED_TRACE(SchedulePolicyName(policy));
    CountingExecutor counter(rt);
    Driver d(counter, Options(rt, policy), &counter);
    std::vector<RequestId> ids;
    // Three at once, a few rounds, two more, more rounds, the rest.
    for (size_t i = 0; i < 3; ++i) ids.push_back(d.Add(reqs[i].prompt, Sampling(reqs[i])));
    d.Rounds(4);
    for (size_t i = 3; i < 5; ++i) ids.push_back(d.Add(reqs[i].prompt, Sampling(reqs[i])));
    d.Rounds(25);
    for (size_t i = 5; i < reqs.size(); ++i) ids.push_back(d.Add(reqs[i].prompt, Sampling(reqs[i])));
    d.RunToCompletion();
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ(d.Tokens(ids[i]), alone[i]) << "request " << i;
      EXPECT_EQ(d.Result(ids[i]).finish, FinishReason::kLength);
    }
    const SchedulerStats s = d.scheduler().stats();
    EXPECT_EQ(s.num_preemptions, 0);
    EXPECT_GE(NumSpecsUsed(s), 3) << "the planner should use prefill and decode specializations";
    EXPECT_GE(s.slot_tokens, s.useful_tokens);
    if (policy == SchedulePolicy::kCostModel) {
      // With this cost table the planner puts prompt chunks and decode rows in one step, and
      // splits decode rows (by ctx_len or batch size) over several steps of one round.
      EXPECT_GE(NumSpecsUsed(s), 4);
      EXPECT_GT(counter.mixed_steps(), 0);
      EXPECT_GT(counter.split_rounds(), 0);
    } else {
      EXPECT_EQ(counter.mixed_steps(), 0) << "the packing policies never mix";
    }
  }
}

TEST(SchedulerRealPackage, PrefixCacheHitGivesTheSameOutput) {
  Runtime& rt = Stories();
  const std::vector<int32_t> prefix = StoryPrompt(56, 11);  // 3 full blocks of 16 and 8 more
  auto with_suffix = [&](int32_t len, int32_t offset) {
    std::vector<int32_t> p = prefix;
    const std::vector<int32_t> s = StoryPrompt(len + 1, offset);
    p.insert(p.end(), s.begin() + 1, s.end());
    return p;
  };
  const std::vector<int32_t> three_blocks(prefix.begin(), prefix.begin() + 48);
  // The same prompt twice in one round computes the same blocks twice: one copy is kept.
  const std::vector<Request> reqs = {{with_suffix(10, 400), 50}, {with_suffix(30, 500), 40},
                                     {with_suffix(3, 600), 70},  {prefix, 20},
                                     {three_blocks, 30},         {with_suffix(40, 700), 25},
                                     {with_suffix(40, 700), 25}};
  std::vector<std::vector<int32_t>> alone;
  for (const Request& r : reqs) alone.push_back(Alone(r));

  Driver d(rt, Options(rt));
  std::vector<RequestId> ids;
  ids.push_back(d.Add(reqs[0].prompt, Sampling(reqs[0])));
  d.Rounds(8);  // its prompt is computed and cached; it is decoding
  ASSERT_FALSE(d.Tokens(ids[0]).empty());
  for (size_t i = 1; i < reqs.size(); ++i) ids.push_back(d.Add(reqs[i].prompt, Sampling(reqs[i])));
  d.RunToCompletion();
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(d.Tokens(ids[i]), alone[i]) << "request " << i;
  EXPECT_EQ(d.Result(ids[0]).events.back().num_cached_prompt_tokens, 0);
  for (size_t i = 1; i < reqs.size(); ++i) {
    // Whole blocks, never a prompt's last token: 32 of the 48-token prompt. (More when a request
    // waited for a slot while another with its whole prompt computed its blocks.)
    const int32_t cached = d.Result(ids[i]).events.back().num_cached_prompt_tokens;
    if (i == 4) {
      EXPECT_EQ(cached, 32);
    } else {
      EXPECT_GE(cached, 48) << "request " << i;
      EXPECT_EQ(cached % 16, 0) << "request " << i;
    }
  }
  const SchedulerStats s = d.scheduler().stats();
  EXPECT_GE(s.kv.prefix_hit_tokens, 5 * 48 + 32);
  // The cached tokens were not computed again.
  int64_t prompt_tokens = 0;
  for (const Request& r : reqs) prompt_tokens += static_cast<int64_t>(r.prompt.size());
  EXPECT_EQ(s.prompt_tokens_computed, prompt_tokens - s.kv.prefix_hit_tokens);

  // After they finished, the same prompt again hits blocks that no request references.
  const RequestId again = d.Add(reqs[1].prompt, Sampling(reqs[1]));
  d.RunToCompletion();
  EXPECT_EQ(d.Tokens(again), alone[1]);
  EXPECT_GE(d.Result(again).events.back().num_cached_prompt_tokens, 48);
}

// A 1 MiB pool (about 50 blocks of 16 positions) cannot hold four long requests at once:
// sequences are preempted and recomputed, and still give their outputs alone.
TEST(SchedulerRealPackage, PreemptionGivesTheSameOutput) {
  Runtime& small = Stories(/*kv_cache_mb=*/1);
  ASSERT_LE(small.num_kv_blocks(), 64);
  const std::vector<Request> reqs = {{StoryPrompt(40, 0), 250}, {StoryPrompt(60, 90), 220},
                                     {StoryPrompt(25, 180), 300}, {StoryPrompt(80, 270), 200},
                                     {StoryPrompt(12, 33), 150},  {StoryPrompt(33, 333), 180}};
  std::vector<std::vector<int32_t>> alone;
  for (const Request& r : reqs) alone.push_back(Alone(r));
  for (bool prefix_caching : {true, false}) {
    SCOPED_TRACE(prefix_caching ? "prefix caching" : "no prefix caching");
    SchedulerOptions o = Options(small);
    o.enable_prefix_caching = prefix_caching;
    Driver d(small, o);
    std::vector<RequestId> ids;
    for (size_t i = 0; i < 4; ++i) ids.push_back(d.Add(reqs[i].prompt, Sampling(reqs[i])));
    d.Rounds(60);
    for (size_t i = 4; i < reqs.size(); ++i) ids.push_back(d.Add(reqs[i].prompt, Sampling(reqs[i])));
    d.RunToCompletion();
    for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(d.Tokens(ids[i]), alone[i]) << "request " << i;
    const SchedulerStats s = d.scheduler().stats();
    EXPECT_GT(s.num_preemptions, 0);
    EXPECT_EQ(s.generated_tokens, 250 + 220 + 300 + 200 + 150 + 180);
    // Recompute: more KV written than the requests' own positions.
    EXPECT_GT(s.useful_tokens, s.generated_tokens);
  }
}

// Cancelling requests in every state (waiting, mid-prompt, decoding) frees every block.
TEST(SchedulerRealPackage, CancellationFreesEveryBlock) {
  Runtime& rt = Stories();
  SchedulerOptions o = Options(rt);
  o.max_running = 3;
  Driver d(rt, o);
  std::vector<RequestId> ids;
  ids.push_back(d.Add(StoryPrompt(20, 0), Greedy(200)));    // decoding soon
  ids.push_back(d.Add(StoryPrompt(200, 10), Greedy(100)));  // a long prompt: several prefill rounds
  ids.push_back(d.Add(StoryPrompt(33, 20), Greedy(200)));
  ids.push_back(d.Add(StoryPrompt(60, 30), Greedy(100)));   // waiting (max_running 3)
  for (int i = 0; i < 20 && d.Tokens(ids[0]).empty(); ++i) d.Rounds(1);
  const SchedulerStats mid = d.scheduler().stats();
  ASSERT_EQ(mid.num_running, 3);
  ASSERT_EQ(mid.num_waiting, 1);
  ASSERT_GT(mid.kv.used_blocks, 0);
  ASSERT_FALSE(d.Tokens(ids[0]).empty());
  ASSERT_TRUE(d.Tokens(ids[1]).empty()) << "still in its prompt";
  EXPECT_TRUE(d.scheduler().Cancel(ids[3]));  // waiting
  EXPECT_TRUE(d.scheduler().Cancel(ids[1]));  // mid-prompt
  d.Rounds(2);
  EXPECT_TRUE(d.scheduler().Cancel(ids[0]));  // decoding
  EXPECT_TRUE(d.scheduler().Cancel(ids[2]));
  d.scheduler().DeliverEvents();
  EXPECT_FALSE(d.scheduler().HasWork());
  EXPECT_EQ(d.scheduler().stats().kv.used_blocks, 0);
  EXPECT_TRUE(d.scheduler().kv_cache().CheckInvariants().ok());
  for (RequestId id : ids) EXPECT_EQ(d.Result(id).finish, FinishReason::kCancelled);
}

// The threaded engine core on the runtime: reference stories submitted together; requests
// cancelled from another thread free every block.
TEST(SchedulerRealPackage, EngineCoreReferenceAndCancellation) {
  Runtime& rt = Stories();
  const std::vector<ReferenceCase> cases = ReferenceCases();
  {
    EngineOptions eo;
    eo.scheduler = Options(rt);
    auto core = EngineCore::Start(rt, eo);
    ASSERT_TRUE(core.ok()) << core.status();
    EventCollector events;
    std::vector<RequestId> ids;
    for (const ReferenceCase& c : cases) {
      auto id = (*core)->Submit(c.prompt, Greedy(static_cast<int32_t>(c.output.size()), false), events.Callback());
      ASSERT_TRUE(id.ok()) << id.status();
      ids.push_back(*id);
    }
    events.WaitFinished(cases.size());
    for (size_t i = 0; i < cases.size(); ++i) EXPECT_EQ(events.Get(ids[i]).tokens, cases[i].output) << i;
    EXPECT_EQ((*core)->stats().kv.used_blocks, 0);
  }
  {
    EngineOptions eo;
    eo.scheduler = Options(rt);
    auto core = EngineCore::Start(rt, eo);
    ASSERT_TRUE(core.ok()) << core.status();
    EventCollector events;
    std::vector<RequestId> ids;
    for (int32_t i = 0; i < 7; ++i) {
      auto id = (*core)->Submit(StoryPrompt(10 + 25 * i, 40 * i), Greedy(300), events.Callback());
      ASSERT_TRUE(id.ok()) << id.status();
      ids.push_back(*id);
    }
    events.WaitTokens(ids[0], 5);
    for (RequestId id : ids) (*core)->Cancel(id);
    events.WaitFinished(ids.size());
    for (RequestId id : ids) {
      EXPECT_EQ(events.Get(id).finish, FinishReason::kCancelled);
      EXPECT_EQ(events.Get(id).num_final_events, 1);
    }
    const SchedulerStats s = (*core)->stats();
    EXPECT_EQ(s.kv.used_blocks, 0);
    EXPECT_EQ(s.num_running + s.num_waiting, 0);
  }
}

}  // namespace
}  // namespace tailor
