// Per-request sampling: penalties, logit bias through the processor hook, logprobs, stop
// conditions, seeds, validation.
#include "scheduler/sampler.h"

#include <cmath>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tailor {
namespace {

using ::testing::HasSubstr;

SamplingOptions Greedy() {
  SamplingOptions o;
  o.temperature = 0.0f;
  return o;
}

TEST(SamplerTest, GreedyTakesTheLargestLogit) {
  RequestSampler s(Greedy(), 1, {});
  std::vector<float> logits{0.1f, 3.0f, 2.0f, 3.0f};
  EXPECT_EQ(s.Sample(logits, {}, {}).token, 1);  // lowest id on ties
}

TEST(SamplerTest, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  SamplingOptions o = Greedy();
  o.repetition_penalty = 2.0f;
  RequestSampler s(o, 1, {});
  std::vector<float> logits{4.0f, -1.0f, 3.0f, 0.5f};
  const std::vector<int32_t> prompt{0}, generated{1};
  EXPECT_EQ(s.Sample(logits, prompt, generated).token, 2);
  EXPECT_FLOAT_EQ(logits[0], 2.0f);
  EXPECT_FLOAT_EQ(logits[1], -2.0f);
  EXPECT_FLOAT_EQ(logits[2], 3.0f);
}

TEST(SamplerTest, PresenceAndFrequencyPenaltiesCountGeneratedTokensOnly) {
  SamplingOptions o = Greedy();
  o.presence_penalty = 0.5f;
  o.frequency_penalty = 0.25f;
  RequestSampler s(o, 1, {});
  std::vector<float> logits{1.0f, 1.0f, 1.0f, 1.0f};
  const std::vector<int32_t> prompt{3, 3}, generated{0, 0, 1};
  s.Sample(logits, prompt, generated);
  EXPECT_FLOAT_EQ(logits[0], 1.0f - 0.5f - 0.5f);
  EXPECT_FLOAT_EQ(logits[1], 1.0f - 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(logits[2], 1.0f);
  EXPECT_FLOAT_EQ(logits[3], 1.0f);  // in the prompt only
}

TEST(SamplerTest, LogitBiasAndUserProcessorsRunInOrder) {
  SamplingOptions o = Greedy();
  o.logit_bias = {{2, 10.0f}, {0, -100.0f}};
  std::vector<int32_t> seen_generated;
  o.logits_processors.push_back([&](std::span<const int32_t> prompt, std::span<const int32_t> generated,
                                    std::span<float> logits) {
    EXPECT_EQ(prompt.size(), 2u);
    seen_generated.assign(generated.begin(), generated.end());
    EXPECT_FLOAT_EQ(logits[2], 10.5f);  // the bias ran first
    logits[3] = 100.0f;
  });
  RequestSampler s(o, 1, {});
  std::vector<float> logits{5.0f, 1.0f, 0.5f, 0.0f};
  const std::vector<int32_t> prompt{1, 2}, generated{7};
  EXPECT_EQ(s.Sample(logits, prompt, generated).token, 3);
  EXPECT_EQ(seen_generated, std::vector<int32_t>{7});
  EXPECT_FLOAT_EQ(logits[0], -95.0f);
}

TEST(SamplerTest, LogprobsOfTheChosenTokenAndTopAlternatives) {
  SamplingOptions o = Greedy();
  o.logprobs = 2;
  RequestSampler s(o, 1, {});
  std::vector<float> logits{1.0f, 3.0f, 2.0f};
  const SampledToken t = s.Sample(logits, {}, {});
  const double lse = std::log(std::exp(1.0) + std::exp(3.0) + std::exp(2.0));
  ASSERT_TRUE(t.logprob.has_value());
  EXPECT_NEAR(*t.logprob, 3.0 - lse, 1e-6);
  ASSERT_EQ(t.top_logprobs.size(), 2u);
  EXPECT_EQ(t.top_logprobs[0].token, 1);
  EXPECT_EQ(t.top_logprobs[1].token, 2);
  EXPECT_NEAR(t.top_logprobs[1].logprob, 2.0 - lse, 1e-6);
  // Off by default.
  RequestSampler plain(Greedy(), 1, {});
  std::vector<float> again{1.0f, 3.0f, 2.0f};
  EXPECT_FALSE(plain.Sample(again, {}, {}).logprob.has_value());
}

TEST(SamplerTest, StopConditions) {
  SamplingOptions o;
  o.max_tokens = 3;
  o.stop_token_ids = {9};
  RequestSampler s(o, 1, {2});
  EXPECT_EQ(s.CheckFinish(5, 1), FinishReason::kNone);
  EXPECT_EQ(s.CheckFinish(2, 1), FinishReason::kStop);  // EOS
  EXPECT_EQ(s.CheckFinish(9, 1), FinishReason::kStop);  // stop token
  EXPECT_EQ(s.CheckFinish(5, 3), FinishReason::kLength);
  o.ignore_eos = true;
  RequestSampler bench(o, 1, {2});
  EXPECT_EQ(bench.CheckFinish(2, 1), FinishReason::kNone);
  EXPECT_EQ(bench.CheckFinish(9, 1), FinishReason::kStop);  // stop tokens still stop
}

TEST(SamplerTest, TheSameSeedGivesTheSameTokens) {
  SamplingOptions o;
  o.temperature = 1.0f;
  o.seed = 1234;
  RequestSampler a(o, 1, {}), b(o, 999, {});  // the fallback seed is unused with a seed
  o.seed = 4321;
  RequestSampler c(o, 1, {});
  std::vector<int32_t> ta, tb, tc;
  for (int i = 0; i < 64; ++i) {
    std::vector<float> logits(16, 0.0f);
    std::vector<float> l1 = logits, l2 = logits, l3 = logits;
    ta.push_back(a.Sample(l1, {}, {}).token);
    tb.push_back(b.Sample(l2, {}, {}).token);
    tc.push_back(c.Sample(l3, {}, {}).token);
  }
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tc);
}

TEST(SamplerTest, ValidationNamesTheField) {
  auto check = [](auto mutate, const char* field) {
    SamplingOptions o;
    mutate(o);
    absl::Status s = ValidateSamplingOptions(o, 32);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_THAT(std::string(s.message()), HasSubstr(field));
  };
  check([](SamplingOptions& o) { o.temperature = -1; }, "temperature");
  check([](SamplingOptions& o) { o.top_p = 0; }, "top_p");
  check([](SamplingOptions& o) { o.top_k = -2; }, "top_k");
  check([](SamplingOptions& o) { o.min_p = 2; }, "min_p");
  check([](SamplingOptions& o) { o.repetition_penalty = 0; }, "repetition_penalty");
  check([](SamplingOptions& o) { o.max_tokens = -1; }, "max_tokens");
  check([](SamplingOptions& o) { o.prompt_logprobs = -2; }, "prompt_logprobs");
  check([](SamplingOptions& o) { o.logprobs = -5; }, "logprobs");
  check([](SamplingOptions& o) { o.logit_bias = {{32, 1.0f}}; }, "logit_bias");
  check([](SamplingOptions& o) { o.stop_token_ids = {-1}; }, "stop_token_ids");
  EXPECT_TRUE(ValidateSamplingOptions(SamplingOptions{}, 32).ok());
}

}  // namespace
}  // namespace tailor
