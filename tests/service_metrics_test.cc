// Prometheus registry: exact exposition text, escaping, histogram buckets, registration errors,
// concurrent updates, and the server's metric set of issue 5.
#include "service/metrics.h"

#include <cmath>
#include <sstream>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tailor::service {
namespace {

using ::testing::HasSubstr;

TEST(Metrics, FormatValue) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(3), "3");
  EXPECT_EQ(FormatMetricValue(-2.5), "-2.5");
  EXPECT_EQ(FormatMetricValue(0.1), "0.1");
  EXPECT_EQ(FormatMetricValue(0.005), "0.005");
  EXPECT_EQ(FormatMetricValue(123456789), "123456789");
  EXPECT_EQ(FormatMetricValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatMetricValue(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(FormatMetricValue(std::nan("")), "NaN");
}

TEST(Metrics, EscapeLabelValue) {
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(Metrics, CounterAndGaugeExposition) {
  MetricsRegistry r;
  CounterFamily* requests = *r.AddCounter("tailor_requests_total", "Requests finished.", {"status"});
  Counter* tokens = (*r.AddCounter("tailor_prompt_tokens_total", "Prompt tokens."))->Get();
  Gauge* running = (*r.AddGauge("tailor_requests_running", "Running."))->Get();
  GaugeFamily* ratio = *r.AddGauge("tailor_spec_padding_ratio", "Padding.", {"spec"});

  EXPECT_EQ(r.Render(),
            "# HELP tailor_requests_total Requests finished.\n"
            "# TYPE tailor_requests_total counter\n"
            "# HELP tailor_prompt_tokens_total Prompt tokens.\n"
            "# TYPE tailor_prompt_tokens_total counter\n"
            "tailor_prompt_tokens_total 0\n"
            "# HELP tailor_requests_running Running.\n"
            "# TYPE tailor_requests_running gauge\n"
            "tailor_requests_running 0\n"
            "# HELP tailor_spec_padding_ratio Padding.\n"
            "# TYPE tailor_spec_padding_ratio gauge\n");

  requests->Labels({"stop"})->Increment();
  requests->Labels({"stop"})->Increment(2);
  requests->Labels({"error"})->Increment();
  requests->Labels({"error"})->Increment(-5);  // ignored
  tokens->Increment(12);
  running->Set(4);
  running->Add(-1);
  ratio->Labels({"b1_s128_c512"})->Set(0.25);
  ratio->Labels({"weird\"spec\\\n"})->Set(1);
  EXPECT_EQ(r.Render(),
            "# HELP tailor_requests_total Requests finished.\n"
            "# TYPE tailor_requests_total counter\n"
            "tailor_requests_total{status=\"error\"} 1\n"
            "tailor_requests_total{status=\"stop\"} 3\n"
            "# HELP tailor_prompt_tokens_total Prompt tokens.\n"
            "# TYPE tailor_prompt_tokens_total counter\n"
            "tailor_prompt_tokens_total 12\n"
            "# HELP tailor_requests_running Running.\n"
            "# TYPE tailor_requests_running gauge\n"
            "tailor_requests_running 3\n"
            "# HELP tailor_spec_padding_ratio Padding.\n"
            "# TYPE tailor_spec_padding_ratio gauge\n"
            "tailor_spec_padding_ratio{spec=\"b1_s128_c512\"} 0.25\n"
            "tailor_spec_padding_ratio{spec=\"weird\\\"spec\\\\\\n\"} 1\n");
  EXPECT_EQ(requests->Labels({"stop"})->value(), 3);
  EXPECT_EQ(requests->Labels({"stop"}), requests->Labels({"stop"}));  // stable pointers
}

TEST(Metrics, HistogramExposition) {
  MetricsRegistry r;
  Histogram* h = (*r.AddHistogram("tailor_time_to_first_token_seconds", "TTFT.", {0.125, 0.5, 1}))->Get();
  HistogramFamily* per_spec =
      *r.AddHistogram("tailor_spec_latency_seconds", "Step latency.", {0.01, 0.1}, {"spec"});
  h->Observe(0.0625);
  h->Observe(0.125);  // on a bound: counted in that bucket (le is inclusive)
  h->Observe(0.75);
  h->Observe(3);
  h->Observe(std::nan(""));  // ignored
  per_spec->Labels({"b4_s1_c512"})->Observe(0.02);
  EXPECT_EQ(r.Render(),
            "# HELP tailor_time_to_first_token_seconds TTFT.\n"
            "# TYPE tailor_time_to_first_token_seconds histogram\n"
            "tailor_time_to_first_token_seconds_bucket{le=\"0.125\"} 2\n"
            "tailor_time_to_first_token_seconds_bucket{le=\"0.5\"} 2\n"
            "tailor_time_to_first_token_seconds_bucket{le=\"1\"} 3\n"
            "tailor_time_to_first_token_seconds_bucket{le=\"+Inf\"} 4\n"
            "tailor_time_to_first_token_seconds_sum 3.9375\n"
            "tailor_time_to_first_token_seconds_count 4\n"
            "# HELP tailor_spec_latency_seconds Step latency.\n"
            "# TYPE tailor_spec_latency_seconds histogram\n"
            "tailor_spec_latency_seconds_bucket{spec=\"b4_s1_c512\",le=\"0.01\"} 0\n"
            "tailor_spec_latency_seconds_bucket{spec=\"b4_s1_c512\",le=\"0.1\"} 1\n"
            "tailor_spec_latency_seconds_bucket{spec=\"b4_s1_c512\",le=\"+Inf\"} 1\n"
            "tailor_spec_latency_seconds_sum{spec=\"b4_s1_c512\"} 0.02\n"
            "tailor_spec_latency_seconds_count{spec=\"b4_s1_c512\"} 1\n");
  Histogram::Snapshot s = h->Take();
  EXPECT_EQ(s.count, 4u);
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{2, 2, 3, 4}));
}

TEST(Metrics, HelpIsEscaped) {
  MetricsRegistry r;
  ASSERT_TRUE(r.AddGauge("g", "line one\nback\\slash \"quoted\"").ok());
  EXPECT_EQ(r.Render(), "# HELP g line one\\nback\\\\slash \"quoted\"\n# TYPE g gauge\ng 0\n");
}

TEST(Metrics, MultipleLabelsAreSortedAndOrdered) {
  MetricsRegistry r;
  CounterFamily* f = *r.AddCounter("c_total", "C.", {"b", "a"});
  f->Labels({"2", "x"})->Increment();
  f->Labels({"1", "y"})->Increment(4);
  EXPECT_EQ(r.Render(),
            "# HELP c_total C.\n# TYPE c_total counter\n"
            "c_total{b=\"1\",a=\"y\"} 4\n"
            "c_total{b=\"2\",a=\"x\"} 1\n");
}

TEST(Metrics, WrongLabelCountIsNotExported) {
  MetricsRegistry r;
  CounterFamily* f = *r.AddCounter("c_total", "C.", {"status"});
  Counter* detached = f->Labels({"a", "b"});
  ASSERT_NE(detached, nullptr);
  detached->Increment();
  EXPECT_EQ(f->Labels({}), detached);
  EXPECT_EQ(r.Render(), "# HELP c_total C.\n# TYPE c_total counter\n");
}

TEST(Metrics, RegistrationErrors) {
  MetricsRegistry r;
  ASSERT_TRUE(r.AddCounter("ok_total", "x").ok());
  EXPECT_FALSE(r.AddCounter("ok_total", "again").ok());
  EXPECT_FALSE(r.AddGauge("ok_total", "again as gauge").ok());
  EXPECT_FALSE(r.AddCounter("", "x").ok());
  EXPECT_FALSE(r.AddCounter("1abc", "x").ok());
  EXPECT_FALSE(r.AddCounter("a-b", "x").ok());
  EXPECT_FALSE(r.AddCounter("a", "x", {"bad-label"}).ok());
  EXPECT_FALSE(r.AddCounter("b", "x", {"__reserved"}).ok());
  EXPECT_FALSE(r.AddCounter("c", "x", {"l", "l"}).ok());
  EXPECT_FALSE(r.AddHistogram("h1", "x", {}).ok());
  EXPECT_FALSE(r.AddHistogram("h2", "x", {1, 1}).ok());
  EXPECT_FALSE(r.AddHistogram("h3", "x", {2, 1}).ok());
  EXPECT_FALSE(r.AddHistogram("h4", "x", {1, 1.0 / 0.0}).ok());
  auto le = r.AddHistogram("h5", "x", {1}, {"le"});
  ASSERT_FALSE(le.ok());
  EXPECT_THAT(std::string(le.status().message()), HasSubstr("'le' is reserved"));
  EXPECT_TRUE(r.AddGauge("name:with_colon", "x").ok());
}

TEST(Metrics, ConcurrentUpdatesAreExact) {
  MetricsRegistry r;
  CounterFamily* c = *r.AddCounter("c_total", "C.", {"t"});
  Histogram* h = (*r.AddHistogram("h", "H.", {0.5}))->Get();
  Gauge* g = (*r.AddGauge("g", "G."))->Get();
  constexpr int kThreads = 8;
  constexpr int kIters = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kIters; ++i) {
        c->Labels({t % 2 == 0 ? "even" : "odd"})->Increment();
        h->Observe(i % 2 == 0 ? 0.25 : 1.0);
        g->Add(1);
        if (i % 1000 == 0) (void)r.Render();  // scrapes while updating
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(c->Labels({"even"})->value(), kThreads / 2 * kIters);
  EXPECT_EQ(c->Labels({"odd"})->value(), kThreads / 2 * kIters);
  EXPECT_EQ(g->value(), kThreads * kIters);
  Histogram::Snapshot s = h->Take();
  EXPECT_EQ(s.count, static_cast<uint64_t>(kThreads * kIters));
  EXPECT_EQ(s.cumulative[0], static_cast<uint64_t>(kThreads * kIters / 2));
  EXPECT_DOUBLE_EQ(s.sum, kThreads * kIters / 2 * 1.25);
}

TEST(Metrics, ServerMetricsHasEveryIssueName) {
  std::unique_ptr<ServerMetrics> m = ServerMetrics::Create();
  m->RecordRequest("stop");
  m->RecordRequest("length");
  m->RecordRequest("stop");
  m->AddPromptTokens(10);
  m->AddGenerationTokens(5);
  m->ObserveTimeToFirstToken(0.03);
  m->ObserveTimePerOutputToken(0.02);
  m->SetRequestsRunning(2);
  m->SetRequestsWaiting(1);
  m->SetKvBlocksUsed(7);
  m->SetKvBlocksCached(3);
  m->SetKvCacheUsage(7, 28);
  m->SetCacheConfig(16, 28);
  m->AddPrefixCacheHitTokens(16);
  m->RecordSpecExecution("b4_s1_c512", 3, 4, 0.001953125);   // 1 of 4 slots padded
  m->RecordSpecExecution("b4_s1_c512", 4, 4, 0.00390625);   // none padded -> 1/8 overall
  m->RecordSpecExecution("b1_s128_c512", 128, 128, 0.05);
  m->SetSpecCost("b4_s1_c512", 0.0078125, 0.015625);
  const std::string text = m->Render();
  for (const char* line : {
           "# TYPE tailor_requests_total counter",
           "tailor_requests_total{status=\"length\"} 1",
           "tailor_requests_total{status=\"stop\"} 2",
           "tailor_prompt_tokens_total 10",
           "tailor_generation_tokens_total 5",
           "# TYPE tailor_time_to_first_token_seconds histogram",
           "tailor_time_to_first_token_seconds_bucket{le=\"0.04\"} 1",
           "tailor_time_to_first_token_seconds_bucket{le=\"0.02\"} 0",
           "tailor_time_to_first_token_seconds_count 1",
           "# TYPE tailor_time_per_output_token_seconds histogram",
           "tailor_time_per_output_token_seconds_count 1",
           "# TYPE tailor_requests_running gauge",
           "tailor_requests_running 2",
           "tailor_requests_waiting 1",
           "tailor_kv_blocks_used 7",
           "tailor_kv_blocks_cached 3",
           "# TYPE tailor_kv_cache_usage_ratio gauge",
           "tailor_kv_cache_usage_ratio 0.25",
           "tailor_cache_config_info{block_size=\"16\",num_blocks=\"28\"} 1",
           "# TYPE tailor_prefix_cache_hit_tokens_total counter",
           "tailor_prefix_cache_hit_tokens_total 16",
           "tailor_spec_executions_total{spec=\"b1_s128_c512\"} 1",
           "tailor_spec_executions_total{spec=\"b4_s1_c512\"} 2",
           "# TYPE tailor_spec_padding_ratio gauge",
           "tailor_spec_padding_ratio{spec=\"b4_s1_c512\"} 0.125",
           "tailor_spec_padding_ratio{spec=\"b1_s128_c512\"} 0",
           "# TYPE tailor_spec_latency_seconds histogram",
           "tailor_spec_latency_seconds_bucket{spec=\"b4_s1_c512\",le=\"0.0025\"} 1",
           "tailor_spec_latency_seconds_bucket{spec=\"b4_s1_c512\",le=\"+Inf\"} 2",
           "tailor_spec_latency_seconds_sum{spec=\"b4_s1_c512\"} 0.005859375",
           "tailor_spec_latency_seconds_count{spec=\"b1_s128_c512\"} 1",
           "# TYPE tailor_spec_cost_seconds gauge",
           "tailor_spec_cost_seconds{spec=\"b4_s1_c512\",source=\"modeled\"} 0.0078125",
           "tailor_spec_cost_seconds{spec=\"b4_s1_c512\",source=\"measured\"} 0.015625",
       }) {
    EXPECT_THAT(text, HasSubstr(std::string(line) + "\n")) << line;
  }
  // Every sample line names a tailor_ metric; every family has HELP and TYPE.
  std::istringstream lines(text);
  std::string line;
  int help = 0, type = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      ++help;
    } else if (line.rfind("# TYPE ", 0) == 0) {
      ++type;
    } else {
      EXPECT_EQ(line.rfind("tailor_", 0), 0u) << line;
    }
  }
  EXPECT_EQ(help, 16);
  EXPECT_EQ(type, 16);
}

TEST(Metrics, DefaultBucketsAreIncreasing) {
  for (const auto& b : {TimeToFirstTokenBuckets(), TimePerOutputTokenBuckets(), StepLatencyBuckets()}) {
    ASSERT_FALSE(b.empty());
    for (size_t i = 1; i < b.size(); ++i) EXPECT_LT(b[i - 1], b[i]);
  }
}

}  // namespace
}  // namespace tailor::service
