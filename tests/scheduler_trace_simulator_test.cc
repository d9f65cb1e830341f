// The trace simulator on cases whose virtual times can be worked out by hand.
#include "scheduler/trace_simulator.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tailor {
namespace {

using ::testing::HasSubstr;

Specialization Spec(int32_t b, int32_t s, int32_t c) { return Specialization{SpecShape{b, s, c}, 1}; }

TraceRequest Request(int64_t id, int32_t prompt_len, int32_t max_tokens, double arrival = 0.0) {
  TraceRequest r;
  r.id = id;
  r.arrival_s = arrival;
  for (int32_t i = 0; i < prompt_len; ++i) r.prompt_ids.push_back(3 + (static_cast<int32_t>(id) * 7 + i) % 60);
  r.max_tokens = max_tokens;
  return r;
}

SimulationOptions NoOverhead() {
  SimulationOptions o;
  o.step_overhead_seconds = 0;
  o.kv_block_size = 4;
  return o;
}

// One request: an 8-token prompt in one prefill step (4 ms), then 3 decode steps of 1 ms. The
// first token comes with the prompt's step.
TEST(TraceSimulator, OneRequestKnownTimes) {
  const std::vector<Specialization> specs = {Spec(1, 1, 64), Spec(1, 8, 64)};
  const CostTable costs = CostTable::Fixed({1e-3, 4e-3});
  const std::vector<TraceRequest> trace = {Request(0, 8, 4)};
  auto r = SimulateTrace(specs, costs, trace, NoOverhead());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_DOUBLE_EQ(r->wall_seconds, 7e-3);
  EXPECT_DOUBLE_EQ(r->ttft_p50_ms, 4.0);
  EXPECT_DOUBLE_EQ(r->ttft_p99_ms, 4.0);
  EXPECT_NEAR(r->tpot_p50_ms, 1.0, 1e-9);
  EXPECT_EQ(r->prompt_tokens, 8);
  EXPECT_EQ(r->generated_tokens, 4);
  EXPECT_NEAR(r->output_tokens_per_s, 4 / 7e-3, 1e-6);
  EXPECT_NEAR(r->total_tokens_per_s, 12 / 7e-3, 1e-6);
  EXPECT_EQ(r->steps, 4);
  EXPECT_EQ(r->steps_per_spec, (std::vector<int64_t>{3, 1}));
  EXPECT_DOUBLE_EQ(r->padding_fraction, 0.0);
  EXPECT_DOUBLE_EQ(r->busy_seconds, 7e-3);
  // The default pool: the largest full batch, ceil(64 / 4) blocks.
  EXPECT_EQ(r->num_kv_blocks, 16);
}

// The step overhead is added to every step; the position term grows with the decode positions.
TEST(TraceSimulator, OverheadAndPositionTerms) {
  const std::vector<Specialization> specs = {Spec(1, 1, 64), Spec(1, 8, 64)};
  CostTable costs;
  costs.models = {StepCostModel{1e-3, 0, 1e-5}, StepCostModel{4e-3, 0, 0}};
  const std::vector<TraceRequest> trace = {Request(0, 8, 4)};
  SimulationOptions o = NoOverhead();
  o.step_overhead_seconds = 50e-6;
  auto r = SimulateTrace(specs, costs, trace, o);
  ASSERT_TRUE(r.ok()) << r.status();
  // Prefill: 4 ms; decode at positions 8, 9, 10 reads 9, 10, 11 positions.
  const double expected = 4e-3 + 3 * 1e-3 + (9 + 10 + 11) * 1e-5 + 4 * 50e-6;
  EXPECT_NEAR(r->wall_seconds, expected, 1e-12);
  EXPECT_NEAR(r->ttft_p50_ms, 1e3 * (4e-3 + 50e-6), 1e-9);
  EXPECT_NEAR(r->busy_seconds, expected - 4 * 50e-6, 1e-12);
}

// Two requests, a decode batch of 2 and a prefill batch of 1: the prompts go one per round, the
// second with the first one's decode beside it, then both decode in one step.
TEST(TraceSimulator, BatchingAndPadding) {
  const std::vector<Specialization> specs = {Spec(2, 1, 64), Spec(1, 4, 64)};
  const CostTable costs = CostTable::Fixed({1e-3, 1.2e-3});
  const std::vector<TraceRequest> trace = {Request(0, 4, 3), Request(1, 4, 2)};
  auto r = SimulateTrace(specs, costs, trace, NoOverhead());
  ASSERT_TRUE(r.ok()) << r.status();
  // Round 1: the prompt of request 0 (1.2 ms; its first token). Round 2: the prompt of request 1
  // (1.2 ms) and a decode step of request 0 (1 ms). Round 3: both decode in one step (1 ms):
  // request 0 has its 3 tokens, request 1 its 2.
  EXPECT_EQ(r->steps_per_spec, (std::vector<int64_t>{2, 2}));
  EXPECT_NEAR(r->wall_seconds, 4.4e-3, 1e-12);
  EXPECT_NEAR(r->ttft_p50_ms, 1.2, 1e-9);  // nearest rank of {1.2, 3.4}
  EXPECT_NEAR(r->ttft_p99_ms, 3.4, 1e-9);
  // Slots: 2 prefill steps of 4 + 2 decode steps of 2 = 12; useful: 8 prompt + 3 decode.
  EXPECT_NEAR(r->padding_fraction, 1.0 / 12.0, 1e-12);
}

// Realtime: a request arriving at 1 s finds an idle engine: the clock jumps to its arrival, and
// its TTFT counts from there.
TEST(TraceSimulator, RealtimeArrivals) {
  const std::vector<Specialization> specs = {Spec(1, 1, 64), Spec(1, 8, 64)};
  const CostTable costs = CostTable::Fixed({1e-3, 4e-3});
  const std::vector<TraceRequest> trace = {Request(0, 8, 2, 0.0), Request(1, 8, 2, 1.0)};
  SimulationOptions o = NoOverhead();
  o.realtime = true;
  auto r = SimulateTrace(specs, costs, trace, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NEAR(r->wall_seconds, 1.0 + 5e-3, 1e-12);
  EXPECT_NEAR(r->ttft_p99_ms, 4.0, 1e-9);
  // The same trace as fast as possible: request 1 waits for nothing but the engine.
  o.realtime = false;
  auto afap = SimulateTrace(specs, costs, trace, o);
  ASSERT_TRUE(afap.ok());
  EXPECT_LT(afap->wall_seconds, 0.02);
}

// As fast as possible with two slots and one long request submitted last: in arrival order it
// decodes alone at the end; longest first, the short ones run beside it.
TEST(TraceSimulator, LongestFirstShortensTheTail) {
  const std::vector<Specialization> specs = {Spec(2, 1, 64), Spec(2, 4, 64)};
  const CostTable costs = CostTable::Fixed({1e-3, 1e-3});
  const std::vector<TraceRequest> trace = {Request(0, 4, 3), Request(1, 4, 3), Request(2, 4, 3),
                                           Request(3, 4, 3), Request(4, 4, 12)};
  auto arrival = SimulateTrace(specs, costs, trace, NoOverhead());
  SimulationOptions o = NoOverhead();
  o.admission = AdmissionOrder::kLongestFirst;
  auto longest = SimulateTrace(specs, costs, trace, o);
  ASSERT_TRUE(arrival.ok()) << arrival.status();
  ASSERT_TRUE(longest.ok()) << longest.status();
  EXPECT_EQ(longest->generated_tokens, arrival->generated_tokens);
  // Longest first: request 4 runs from the first round (12 tokens: its prompt step and 11
  // decode steps), the four short ones two by two beside it in the other slot.
  EXPECT_LE(longest->wall_seconds, 13e-3 + 1e-12);
  // Arrival order: the short ones two at a time first, then request 4 alone for most of its
  // steps.
  EXPECT_GE(arrival->wall_seconds, 16e-3 - 1e-12);
}

// A shared prefix is served from the prefix cache the second time.
TEST(TraceSimulator, PrefixCaching) {
  // The 4 prompt tokens left after a hit are cheaper token by token than in a 16-token step.
  const std::vector<Specialization> specs = {Spec(1, 1, 64), Spec(1, 16, 64)};
  const CostTable costs = CostTable::Fixed({1e-3, 8e-3});
  std::vector<TraceRequest> trace = {Request(0, 16, 2), Request(0, 16, 2)};
  trace[1].id = 1;
  auto r = SimulateTrace(specs, costs, trace, NoOverhead());
  ASSERT_TRUE(r.ok()) << r.status();
  // One request runs at a time (batch 1): the second finds 12 of its 16 prompt tokens cached
  // (whole blocks, never the last token).
  EXPECT_NEAR(r->prefix_hit_rate, 12.0 / 32.0, 1e-12);
  SimulationOptions o = NoOverhead();
  o.enable_prefix_caching = false;
  auto off = SimulateTrace(specs, costs, trace, o);
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off->prefix_hit_rate, 0.0);
  EXPECT_GT(off->wall_seconds, r->wall_seconds);
}

TEST(TraceSimulator, DeterministicOnAGeneratedTrace) {
  TraceOptions t;
  t.num_requests = 40;
  t.rate = 20;
  t.max_total_len = 128;
  t.prompt_len = *ParseLengthDist("uniform:4:60");
  t.output_len = *ParseLengthDist("uniform:1:40");
  t.shared_prefix_fraction = 0.3;
  t.prefix_len = 16;
  auto trace = GenerateTrace(t);
  ASSERT_TRUE(trace.ok());
  const std::vector<Specialization> specs = {Spec(1, 1, 128), Spec(4, 1, 128), Spec(8, 1, 128), Spec(2, 16, 128)};
  CostTable costs;
  costs.models = {StepCostModel{1e-3, 1e-5, 1e-7}, StepCostModel{1.5e-3, 1e-5, 1e-7},
                  StepCostModel{2.2e-3, 1e-5, 1e-7}, StepCostModel{6e-3, 1e-5, 1e-7}};
  for (bool realtime : {false, true}) {
    SimulationOptions o;
    o.realtime = realtime;
    auto a = SimulateTrace(specs, costs, *trace, o);
    auto b = SimulateTrace(specs, costs, *trace, o);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(a->wall_seconds, b->wall_seconds);
    EXPECT_EQ(a->steps_per_spec, b->steps_per_spec);
    EXPECT_EQ(a->tpot_p99_ms, b->tpot_p99_ms);
    int64_t out = 0;
    for (const TraceRequest& r : *trace) out += r.max_tokens;
    EXPECT_EQ(a->generated_tokens, out);
    if (!realtime) {
      EXPECT_GT(a->steps_per_spec[2], 0);  // a full queue uses the batch of 8
    }
  }
}

TEST(TraceSimulator, RefusesWhatCannotRun) {
  const std::vector<Specialization> specs = {Spec(1, 1, 32), Spec(1, 8, 32)};
  const CostTable costs = CostTable::Fixed({1e-3, 4e-3});
  std::vector<TraceRequest> trace = {Request(0, 8, 4), Request(17, 30, 8)};
  auto r = SimulateTrace(specs, costs, trace, NoOverhead());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), AllOf(HasSubstr("trace request 17"), HasSubstr("ctx_len (32)")));
  // A token id outside the vocabulary given.
  SimulationOptions o = NoOverhead();
  o.vocab_size = 10;
  auto v = SimulateTrace(specs, costs, std::vector<TraceRequest>{Request(0, 8, 4)}, o);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().message(), HasSubstr("outside the vocabulary"));
  // A cost table of another length.
  auto c = SimulateTrace(specs, CostTable::Fixed({1e-3}), std::vector<TraceRequest>{Request(0, 8, 4)}, o);
  EXPECT_FALSE(c.ok());
}

}  // namespace
}  // namespace tailor
