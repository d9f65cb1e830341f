// `tailor plan` as a user runs it: with injected costs where the best set is known, with costs
// measured (and cached) on stories260K, and on bad input (exit 2, nothing written).
#include <map>
#include <string>
#include <vector>

#include "engine/spec_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "scheduler/trace.h"
#include "tests/test_util.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using testing_util::CommandResult;
using testing_util::ReadAll;
using testing_util::TempDir;
using testing_util::WriteAll;

const std::string kStories = std::string(TAILOR_SHARED_DIR) + "/models/stories260K/stories260K.bin";

CommandResult Tailor(std::vector<std::string> args) { return testing_util::RunTailor(std::move(args)); }

// 30 requests of at most 200 positions, all at time 0 in afap mode anyway.
void WriteTrace(const fs::path& path, int32_t n = 30) {
  TraceOptions o;
  o.num_requests = n;
  o.rate = 20;
  o.max_total_len = 200;
  o.prompt_len = *ParseLengthDist("uniform:8:120");
  o.output_len = *ParseLengthDist("uniform:4:60");
  o.seed = 3;
  ASSERT_TRUE(WriteTraceJsonl(path, *GenerateTrace(o)).ok());
}

// Every decode candidate costs 1 ms a step except b8_s1_c256_ols2 (0.5 ms: it covers any decode
// step of the others for less); every prefill candidate 10 ms except b1_s32_c256_ols1 (2 ms, for
// 32 tokens). The best set, whatever the budget, is those two. The default set's shapes (ctx_len
// clamped to 256) are among the entries, so it is simulated beside.
std::string DominantCosts() {
  std::map<std::string, double> fixed = {
      {"b1_s1_c128_ols1", 1e-3},  {"b1_s1_c256_ols1", 1e-3},  {"b4_s1_c256_ols1", 1e-3},
      {"b8_s1_c256_ols2", 5e-4},  {"b4_s1_c256_ols2", 1e-3},  {"b1_s32_c256_ols1", 2e-3},
      {"b4_s16_c256_ols2", 1e-2}, {"b1_s16_c128_ols1", 1e-2}, {"b2_s64_c256_ols2", 1e-2},
  };
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, s] : fixed) j[name] = {{"fixed_seconds", s}, {"per_row_seconds", 0}, {"per_position_seconds", 0}};
  return j.dump(1);
}

class CliPlan : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteTrace(tmp_ / "trace.jsonl");
    WriteAll(tmp_ / "costs.json", DominantCosts());
  }
  std::vector<std::string> Base() const {
    return {"plan", "--model", kStories, "--trace", (tmp_ / "trace.jsonl").string(), "--out",
            (tmp_ / "specs.json").string(), "--cache-dir", (tmp_ / "cache").string()};
  }
  CommandResult Run(std::vector<std::string> extra) const {
    std::vector<std::string> args = Base();
    args.insert(args.end(), extra.begin(), extra.end());
    return Tailor(args);
  }
  TempDir tmp_;
};

TEST_F(CliPlan, InjectedCostsFindTheDominantSet) {
  CommandResult r = Run({"--costs", (tmp_ / "costs.json").string(), "--ctx-max", "256"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto specs = LoadSpecConfig(tmp_ / "specs.json", 512);
  ASSERT_TRUE(specs.ok()) << specs.status() << "\n" << ReadAll(tmp_ / "specs.json");
  ASSERT_EQ(specs->size(), 2u) << r.out;
  EXPECT_EQ((*specs)[0].shape, (SpecShape{8, 1, 256}));
  EXPECT_EQ((*specs)[0].ols, 2);
  EXPECT_EQ((*specs)[1].shape, (SpecShape{1, 32, 256}));
  EXPECT_EQ((*specs)[1].ols, 1);
  EXPECT_THAT(ReadAll(tmp_ / "specs.json"), HasSubstr("\"compile_opts\": \"-ols=2\""));
  // The table: both sets, every figure, and what happened to the default set's ctx_len 512.
  EXPECT_THAT(r.out, AllOf(HasSubstr("out_tok/s"), HasSubstr("tot_tok/s"), HasSubstr("padding"),
                           HasSubstr("ttft_p50ms"), HasSubstr("ttft_p99ms"), HasSubstr("tpot_p50ms"),
                           HasSubstr("tpot_p99ms"), HasSubstr("injected from")));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("\nplanned +2 +[0-9.]+ +[0-9.]+ +[0-9.]+%"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("\ndefault +6 +[0-9.]+ +[0-9.]+ +[0-9.]+%"));
  EXPECT_THAT(r.out, AllOf(HasSubstr("b1_s1_c512_ols1 clamped to ctx_len 256"), HasSubstr("planned / default: ")));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("\n  b8_s1_c256 +-ols=2 "));
  // The planned set is at least as fast as the default (it could have chosen it).
  const size_t at = r.out.find("planned / default: ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_GE(std::stod(r.out.substr(at + 19)), 1.0);
  // The written file compiles.
  CommandResult c = Tailor({"compile", "--model", kStories, "--specializations", (tmp_ / "specs.json").string(),
                            "--out", (tmp_ / "pkg").string(), "--target", "native", "--compile-only"});
  EXPECT_EQ(c.exit_code, 0) << c.err;
}

TEST_F(CliPlan, BudgetAndRealtimeMode) {
  // A budget of exactly 2 and realtime arrivals: still the dominant pair.
  CommandResult r = Run({"--costs", (tmp_ / "costs.json").string(), "--budget", "2", "--mode", "realtime",
                         "--ctx-max", "256", "--kv-cache-mb", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto specs = LoadSpecConfig(tmp_ / "specs.json", 512);
  ASSERT_TRUE(specs.ok());
  EXPECT_EQ(specs->size(), 2u);
  EXPECT_THAT(r.out, AllOf(HasSubstr("realtime"), HasSubstr("KV pool: 1 MiB")));
}

TEST_F(CliPlan, MeasuresOnceThenUsesTheCache) {
  WriteAll(tmp_ / "base.json", R"({"specializations": [{"batch_size": "1", "seq_len": "1", "ctx_len": "512"},
      {"batch_size": "1", "seq_len": "16", "ctx_len": "256"}]})");
  const std::vector<std::string> extra = {"--candidates", "b1_s1_c256_ols1,b2_s1_c256_ols1,b1_s32_c256_ols1,b1_s1_c128_ols1",
                                          "--baseline", (tmp_ / "base.json").string(), "--repeats", "1",
                                          "--ctx-max", "256"};
  CommandResult first = Run(extra);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  // 4 candidates and the baseline's 2 shapes (b1_s1_c512 clamped to b1_s1_c256: one of them).
  EXPECT_THAT(first.err, HasSubstr("measuring 5 candidates"));
  EXPECT_THAT(first.out, ::testing::ContainsRegex("0 cached, 5 measured now in [0-9.]+ s, 0 from a larger ctx_len"));
  EXPECT_THAT(first.out, ::testing::ContainsRegex("\nbaseline +2 "));
  EXPECT_THAT(first.out, HasSubstr("b1_s1_c512_ols1 clamped to ctx_len 256"));
  bool cache_file = false;
  for (const auto& e : fs::directory_iterator(tmp_ / "cache")) {
    cache_file |= e.path().filename().string().rfind("plan-costs-", 0) == 0;
  }
  EXPECT_TRUE(cache_file);
  const std::string specs = ReadAll(tmp_ / "specs.json");
  CommandResult second = Run(extra);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_THAT(second.err, Not(HasSubstr("measuring")));
  EXPECT_THAT(second.out, ::testing::ContainsRegex("5 cached, 0 measured now in [0-9.]+ s, 0 from a larger ctx_len"));
  EXPECT_EQ(ReadAll(tmp_ / "specs.json"), specs);  // the same costs, the same choice
  // Sharing costs across ctx_len, in another cache: b1_s1_c128 takes b1_s1_c256's.
  std::vector<std::string> args = Base();
  args.resize(7);  // without --cache-dir
  args.insert(args.end(), extra.begin(), extra.end());
  args.insert(args.end(), {"--share-ctx-costs", "--cache-dir", (tmp_ / "cache2").string()});
  CommandResult third = Tailor(args);
  ASSERT_EQ(third.exit_code, 0) << third.err;
  EXPECT_THAT(third.err, HasSubstr("measuring 4 candidates"));
  EXPECT_THAT(third.out, ::testing::ContainsRegex("0 cached, 4 measured now in [0-9.]+ s, 1 from a larger ctx_len"));
}

struct BadCase {
  std::string name;
  std::vector<std::string> args;  // after the base arguments (or replacing the trace)
  std::string trace;              // non-empty: the trace file's contents
  std::string expected;
};

TEST_F(CliPlan, BadInputIsRefusedAndNothingIsWritten) {
  const std::string costs = (tmp_ / "costs.json").string();
  WriteAll(tmp_ / "decode_only.json", R"({"specializations": [{"batch_size": "1", "seq_len": "1", "ctx_len": "256"}]})");
  const std::string decode_only = (tmp_ / "decode_only.json").string();
  const std::vector<BadCase> cases = {
      {"budget", {"--costs", costs, "--budget", "1"}, "", "--budget 1: expected 2 to 64"},
      {"ctx_max", {"--costs", costs, "--ctx-max", "64"}, "", "more than --ctx-max 64"},
      {"ctx_beyond_model", {"--costs", costs, "--ctx-max", "4096"}, "", "beyond the model's 512 positions"},
      {"mode", {"--costs", costs, "--mode", "fast"}, "", "--mode: 'fast' (expected afap or realtime)"},
      {"malformed_line", {"--costs", costs}, "{\"arrival_s\": 0, \"prompt_ids\": [1, 2], \"max_tokens\": 3}\n{oops\n",
       "line 2: not a JSON object"},
      {"missing_field", {"--costs", costs}, "{\"arrival_s\": 0, \"prompt_ids\": [1, 2]}\n",
       "\"max_tokens\" must be an integer >= 1"},
      {"empty", {"--costs", costs}, "\n", "has no requests"},
      {"id", {"--costs", costs}, "{\"id\": \"a\", \"arrival_s\": 0, \"prompt_ids\": [1], \"max_tokens\": 3}\n",
       "line 1: \"id\" must be an integer"},
      {"vocab", {"--costs", costs}, "{\"id\": 7, \"arrival_s\": 0, \"prompt_ids\": [1, 600], \"max_tokens\": 3}\n",
       "request 7 has token id 600 at prompt position 1, outside the model's vocabulary [0, 512)"},
      {"too_long_for_model", {"--costs", costs},
       "{\"id\": 4, \"arrival_s\": 0, \"prompt_ids\": [1, 2], \"max_tokens\": 600}\n",
       "request 4 needs 602 positions (prompt 2 + max_tokens 600), more than the model's 512 positions"},
      {"no_cost", {"--costs", costs, "--candidates", "b1_s1_c256_ols1,b1_s64_c256_ols1"}, "",
       "has no cost for candidate b1_s64_c256_ols1"},
      {"no_prefill", {"--costs", costs, "--candidates", "b1_s1_c256_ols1,b8_s1_c256_ols2", "--baseline", decode_only}, "",
       "the candidates cannot serve the trace"},
      {"bad_candidate", {"--costs", costs, "--candidates", "b1_x1_c256"}, "", "candidate \"b1_x1_c256\": expected"},
      {"bad_costs", {"--costs", (tmp_ / "trace.jsonl").string()}, "", "--costs"},
  };
  for (const BadCase& c : cases) {
    fs::remove(tmp_ / "specs.json");
    if (!c.trace.empty()) {
      WriteAll(tmp_ / "bad.jsonl", c.trace);
    }
    std::vector<std::string> args = Base();
    if (!c.trace.empty()) args[4] = (tmp_ / "bad.jsonl").string();
    args.insert(args.end(), c.args.begin(), c.args.end());
    CommandResult r = Tailor(args);
    EXPECT_EQ(r.exit_code, 2) << c.name << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.expected)) << c.name;
    EXPECT_FALSE(fs::exists(tmp_ / "specs.json")) << c.name;
  }
  // A trace that is not there, and no trace at all.
  std::vector<std::string> args = Base();
  args[4] = (tmp_ / "missing.jsonl").string();
  CommandResult missing = Tailor(args);
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("cannot read the trace " + (tmp_ / "missing.jsonl").string()));
  CommandResult no_trace = Tailor({"plan", "--model", kStories, "--out", (tmp_ / "specs.json").string()});
  EXPECT_EQ(no_trace.exit_code, 2);
  EXPECT_THAT(no_trace.err, HasSubstr("plan needs --trace"));
  EXPECT_FALSE(fs::exists(tmp_ / "specs.json"));
}

TEST(CliPlanHelp, ListedAndDocumented) {
  CommandResult top = Tailor({"--help"});
  EXPECT_THAT(top.out, HasSubstr("plan       propose a specialization set"));
  CommandResult help = Tailor({"plan", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, AllOf(HasSubstr("--budget"), HasSubstr("--costs"), HasSubstr("--candidates"),
                              HasSubstr("--cache-dir"), HasSubstr("--ctx-max"), HasSubstr("--kv-cache-mb")));
}

}  // namespace
}  // namespace tailor
