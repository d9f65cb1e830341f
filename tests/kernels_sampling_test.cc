// SampleToken against a slow reference: whole-list sorts, then top-k, min-p, top-p and one
// uniform draw as the sampling parameters are documented. The fast version sorts lazily (only
// for top-k and top-p); for the same draw it must pick the same token (up to floating-point
// ties at a boundary, which random draws never hit).
#include "kernels/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace tailor {
namespace {

int32_t ReferenceSample(const std::vector<float>& logits, const SamplingParams& p, double uniform) {
  // Candidates by id; top-k keeps the k largest by logit (sorted); min-p drops (in place) those
  // below min_p times the most likely; top-p sorts and keeps the most likely up to its mass.
  // The draw is the inverse CDF over the candidates in the order they are then in.
  std::vector<std::pair<float, int32_t>> c;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (!std::isnan(logits[i]) && logits[i] != -INFINITY) c.emplace_back(logits[i], static_cast<int32_t>(i));
  }
  auto by_logit = [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; };
  float max = c[0].first;
  for (const auto& x : c) max = std::max(max, x.first);
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < c.size()) {
    std::sort(c.begin(), c.end(), by_logit);
    c.resize(static_cast<size_t>(p.top_k));
  }
  auto prob = [&](float logit) { return std::exp((static_cast<double>(logit) - max) / p.temperature); };
  if (p.min_p > 0.0f) {
    std::vector<std::pair<float, int32_t>> kept;
    for (const auto& x : c) {
      if (prob(x.first) >= p.min_p) kept.push_back(x);
    }
    c = kept;
  }
  double total = 0.0;
  for (const auto& x : c) total += prob(x.first);
  if (p.top_p < 1.0f) {
    std::sort(c.begin(), c.end(), by_logit);
    double mass = 0.0;
    size_t n = 0;
    while (n < c.size()) {
      mass += prob(c[n++].first);
      if (mass >= p.top_p * total) break;
    }
    c.resize(std::max<size_t>(n, 1));
    total = mass;
  }
  double u = uniform * total;
  for (const auto& x : c) {
    u -= prob(x.first);
    if (u < 0.0) return x.second;
  }
  return c.back().second;
}

TEST(Sampling, SameTokenAsTheReferenceForTheSameDraw) {
  std::mt19937_64 gen(7);
  int mismatches = 0, cases = 0;
  for (int32_t vocab : {2, 17, 512, 5000}) {
    for (int trial = 0; trial < 300; ++trial) {
      std::vector<float> logits(static_cast<size_t>(vocab));
      std::normal_distribution<float> noise(0.0f, trial % 3 == 0 ? 0.5f : 4.0f);
      for (float& x : logits) x = noise(gen);
      if (trial % 5 == 0) {  // ties, masked tokens (as grammars mask) and a NaN
        for (size_t i = 0; i < logits.size(); i += 3) logits[i] = -INFINITY;
        logits[logits.size() - 1] = logits[0] == -INFINITY ? 1.0f : logits[0];
        if (vocab > 2) logits[1] = NAN;
      }
      SamplingParams p;
      p.temperature = std::vector<float>{0.3f, 0.7f, 1.0f, 1.5f}[trial % 4];
      p.top_k = trial % 7 == 0 ? 5 : 0;
      p.top_p = trial % 3 == 1 ? 0.9f : 1.0f;
      p.min_p = trial % 4 == 2 ? 0.05f : 0.0f;
      const uint64_t seed = gen();
      Rng rng(seed), probe(seed);
      std::vector<std::pair<float, int32_t>> scratch;
      const int32_t got = SampleToken(logits, p, rng, scratch);
      const int32_t want = ReferenceSample(logits, p, probe.Uniform());
      ++cases;
      if (got != want) ++mismatches;
      EXPECT_FALSE(std::isnan(logits[got]) || logits[got] == -INFINITY) << "sampled a masked token";
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << cases;
}

TEST(Sampling, FrequenciesFollowTheDistribution) {
  // 4 tokens with probabilities 0.5, 0.25, 0.125, 0.125 at temperature 1.
  const std::vector<float> logits = {std::log(4.0f), std::log(2.0f), 0.0f, 0.0f};
  SamplingParams p;
  Rng rng(11);
  std::vector<std::pair<float, int32_t>> scratch;
  std::map<int32_t, int> counts;
  constexpr int kDraws = 40000;
  for (int i = 0; i < kDraws; ++i) ++counts[SampleToken(logits, p, rng, scratch)];
  const double expected[] = {0.5, 0.25, 0.125, 0.125};
  for (int32_t t = 0; t < 4; ++t) {
    EXPECT_NEAR(counts[t] / static_cast<double>(kDraws), expected[t], 0.01) << t;
  }
  // top_p 0.6 keeps the first two (0.5 < 0.6 <= 0.75): renormalized 2/3, 1/3.
  p.top_p = 0.6f;
  counts.clear();
  for (int i = 0; i < kDraws; ++i) ++counts[SampleToken(logits, p, rng, scratch)];
  EXPECT_NEAR(counts[0] / static_cast<double>(kDraws), 2.0 / 3.0, 0.01);
  EXPECT_EQ(counts[2] + counts[3], 0);
}

}  // namespace
}  // namespace tailor
