// SampleToken against a slow reference: the whole candidate list sorted, normalized
// probabilities, then top-k, min-p, top-p and one uniform draw, as the sampling parameters are
// documented. The fast version sorts lazily and never normalizes; for the same draw it must pick
// the same token (up to floating-point ties at a boundary, which random draws never hit).
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
  std::vector<std::pair<float, int32_t>> c;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (!std::isnan(logits[i]) && logits[i] != -INFINITY) c.emplace_back(logits[i], static_cast<int32_t>(i));
  }
  std::sort(c.begin(), c.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < c.size()) c.resize(static_cast<size_t>(p.top_k));
  std::vector<double> probs;
  double sum = 0.0;
  for (const auto& x : c) {
    probs.push_back(std::exp((static_cast<double>(x.first) - c[0].first) / p.temperature));
    sum += probs.back();
  }
  for (double& q : probs) q /= sum;
  size_t keep = c.size();
  if (p.min_p > 0.0f) {
    size_t n = 1;
    while (n < keep && probs[n] >= p.min_p * probs[0]) ++n;
    keep = n;
  }
  if (p.top_p < 1.0f) {
    double kept = 0.0;
    for (size_t i = 0; i < keep; ++i) kept += probs[i];
    double mass = 0.0;
    size_t n = 0;
    while (n < keep) {
      mass += probs[n++];
      if (mass >= p.top_p * kept) break;
    }
    keep = std::max<size_t>(n, 1);
  }
  double total = 0.0;
  for (size_t i = 0; i < keep; ++i) total += probs[i];
  double u = uniform * total;
  for (size_t i = 0; i < keep; ++i) {
    u -= probs[i];
    if (u < 0.0) return c[i].second;
  }
  return c[keep - 1].second;
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
