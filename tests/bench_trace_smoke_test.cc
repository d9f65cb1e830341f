// The trace benchmark's pieces end to end on a small stories260K package: a generated trace
// survives JSONL, replays through the engine core under every policy with the trace's output
// lengths, and the summary's figures are consistent. Not a benchmark: nothing here is timed.
#include <fstream>
#include <string>
#include <vector>

#include "bench/trace_replay.h"
#include "engine/runtime.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/trace.h"
#include "tests/package_fixture.h"
#include "tests/test_util.h"

namespace tailor::bench {
namespace {

using ::testing::HasSubstr;

TEST(TraceGenerator, FollowsTheOptions) {
  TraceOptions o;
  o.num_requests = 400;
  o.rate = 10;
  o.prompt_len = *ParseLengthDist("uniform:5:40");
  o.output_len = *ParseLengthDist("fixed:20");
  o.shared_prefix_fraction = 0.5;
  o.num_prefixes = 2;
  o.prefix_len = 30;
  o.max_total_len = 128;
  auto trace = GenerateTrace(o);
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_EQ(trace->size(), 400u);
  int shared = 0;
  std::vector<std::vector<int32_t>> prefixes(2);
  for (size_t i = 0; i < trace->size(); ++i) {
    const TraceRequest& r = (*trace)[i];
    if (i > 0) {
      EXPECT_GE(r.arrival_s, (*trace)[i - 1].arrival_s);
    }
    EXPECT_EQ(r.max_tokens, 20);
    EXPECT_EQ(r.prompt_ids[0], 1);  // BOS
    EXPECT_LE(static_cast<int32_t>(r.prompt_ids.size()) + r.max_tokens, 128);
    for (int32_t t : r.prompt_ids) EXPECT_LT(t, 512);
    if (r.prefix_group < 0) {
      EXPECT_GE(r.prompt_ids.size(), 5u);
      EXPECT_LE(r.prompt_ids.size(), 40u);
      continue;
    }
    ++shared;
    std::vector<int32_t> p(r.prompt_ids.begin(), r.prompt_ids.begin() + 31);
    if (prefixes[r.prefix_group].empty()) prefixes[r.prefix_group] = p;
    EXPECT_EQ(p, prefixes[r.prefix_group]);
  }
  EXPECT_GT(shared, 150);
  EXPECT_LT(shared, 250);
  // Poisson at 10/s: 400 requests take about 40 s.
  EXPECT_GT(trace->back().arrival_s, 30);
  EXPECT_LT(trace->back().arrival_s, 50);
  EXPECT_FALSE(ParseLengthDist("gauss:3").ok());
  EXPECT_FALSE(ParseLengthDist("uniform:9:3").ok());
}

TEST(TraceReplay, GeneratedTraceReplaysUnderEveryPolicy) {
  CompileOptions co;
  co.compile_only = true;
  co.target = Target::kNative;  // no host compiler run: a fast fixture
  const auto dir = testing_util::TestPackage("stories_trace", "stories260K/stories260K.bin", R"({"specializations": [
      {"batch_size": "1", "seq_len": "1", "ctx_len": "128"},
      {"batch_size": "4", "seq_len": "1", "ctx_len": "256"},
      {"batch_size": "2", "seq_len": "16", "ctx_len": "256"}]})", co);
  RuntimeOptions ro;
  ro.kv_cache_mb = 2;
  auto rt = Runtime::Open(dir, ro);
  ASSERT_TRUE(rt.ok()) << rt.status();

  TraceOptions o;
  o.num_requests = 16;
  o.rate = 2000;  // fast arrivals: the replay takes milliseconds, not seconds
  o.prompt_len = *ParseLengthDist("uniform:2:60");
  o.output_len = *ParseLengthDist("uniform:1:40");
  o.shared_prefix_fraction = 0.5;
  o.num_prefixes = 1;
  o.prefix_len = 40;
  o.max_total_len = 256;
  auto generated = GenerateTrace(o);
  ASSERT_TRUE(generated.ok()) << generated.status();
  testing_util::TempDir tmp;
  ASSERT_TRUE(WriteTraceJsonl(tmp / "trace.jsonl", *generated).ok());
  auto trace = ReadTraceJsonl(tmp / "trace.jsonl");
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_EQ(trace->size(), generated->size());
  for (size_t i = 0; i < trace->size(); ++i) {
    EXPECT_EQ((*trace)[i].prompt_ids, (*generated)[i].prompt_ids);
    EXPECT_EQ((*trace)[i].max_tokens, (*generated)[i].max_tokens);
  }
  int64_t want_tokens = 0;
  for (const TraceRequest& r : *trace) want_tokens += r.max_tokens;

  std::vector<ReplaySummary> summaries;
  for (SchedulePolicy policy : {SchedulePolicy::kCostModel, SchedulePolicy::kSmallestFitting,
                                SchedulePolicy::kLargest}) {
    ReplayOptions ro2;
    ro2.policy = policy;
    ro2.realtime = policy != SchedulePolicy::kLargest;  // both modes
    ro2.eos_token_ids = (*rt)->package().config.eos_ids;
    auto result = ReplayTrace(**rt, *trace, ro2);
    ASSERT_TRUE(result.ok()) << result.status();
    for (size_t i = 0; i < trace->size(); ++i) {
      const RequestTiming& t = result->requests[i];
      EXPECT_TRUE(t.ok);
      EXPECT_EQ(t.generated, (*trace)[i].max_tokens) << "ignore_eos keeps the trace's lengths";
      EXPECT_GE(t.first_token_s, t.submit_s);
      EXPECT_GE(t.last_token_s, t.first_token_s);
    }
    EXPECT_EQ(result->stats.kv.used_blocks, 0);
    summaries.push_back(Summarize(*result, policy, **rt));
    const ReplaySummary& s = summaries.back();
    EXPECT_EQ(s.generated_tokens, want_tokens);
    EXPECT_EQ(s.failed, 0);
    EXPECT_GT(s.output_tokens_per_s, 0);
    EXPECT_GE(s.padding_fraction, 0);
    EXPECT_LT(s.padding_fraction, 1);
    EXPECT_GT(s.prefix_hit_rate, 0) << "half the requests share a 40-token prefix";
    EXPECT_LE(s.ttft_p50_ms, s.ttft_p99_ms);
    int64_t steps = 0;
    for (const auto& [name, n] : s.steps_per_spec) steps += n;
    EXPECT_EQ(steps, s.steps);
  }
  // Longest-first admission (trace_bench --admission longest-first) runs the same work.
  ReplayOptions lf;
  lf.realtime = false;
  lf.admission = AdmissionOrder::kLongestFirst;
  auto longest = ReplayTrace(**rt, *trace, lf);
  ASSERT_TRUE(longest.ok()) << longest.status();
  for (size_t i = 0; i < trace->size(); ++i) {
    EXPECT_TRUE(longest->requests[i].ok);
    EXPECT_EQ(longest->requests[i].generated, (*trace)[i].max_tokens);
  }
  EXPECT_EQ(longest->stats.kv.used_blocks, 0);
  const std::string table = SummaryTable(summaries);
  EXPECT_THAT(table, HasSubstr("cost-model"));
  EXPECT_THAT(table, HasSubstr("b2_s16_c256"));
  const nlohmann::json j = SummaryJson(summaries[0]);
  EXPECT_TRUE(j.contains("ttft_ms") && j.contains("steps_per_specialization") && j.contains("padding_fraction"));

  // A request the package cannot run is named.
  std::vector<TraceRequest> bad = {(*trace)[0]};
  bad[0].max_tokens = 1000;
  auto refused = ReplayTrace(**rt, bad, ReplayOptions{});
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("trace request"));
}

}  // namespace
}  // namespace tailor::bench
