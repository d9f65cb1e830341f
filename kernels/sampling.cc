#include "kernels/sampling.h"

#include <algorithm>
#include <cmath>

namespace tailor {
namespace {

uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) s = SplitMix64(seed);
}

uint64_t Rng::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

double Rng::Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

int32_t Argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

int32_t SampleToken(std::span<const float> logits, const SamplingParams& params, Rng& rng,
                    std::vector<std::pair<float, int32_t>>& scratch) {
  if (params.temperature <= 0.0f || logits.empty()) return Argmax(logits);
  // Candidates sorted by logit (descending, lower id first on ties): a total order, so the
  // result does not depend on the sort algorithm.
  scratch.clear();
  for (size_t i = 0; i < logits.size(); ++i) {
    if (!std::isnan(logits[i]) && logits[i] != -INFINITY) {
      scratch.emplace_back(logits[i], static_cast<int32_t>(i));
    }
  }
  if (scratch.empty()) return Argmax(logits);
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  };
  size_t keep = scratch.size();
  if (params.top_k > 0 && static_cast<size_t>(params.top_k) < keep) {
    keep = static_cast<size_t>(params.top_k);
    std::partial_sort(scratch.begin(), scratch.begin() + keep, scratch.end(), by_logit);
    scratch.resize(keep);
  } else {
    std::sort(scratch.begin(), scratch.end(), by_logit);
  }
  // Softmax at temperature, in double.
  const double max_logit = scratch[0].first;
  std::vector<double> probs(keep);
  double sum = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    probs[i] = std::exp((scratch[i].first - max_logit) / params.temperature);
    sum += probs[i];
  }
  for (double& p : probs) p /= sum;
  // min-p relative to the most likely token, then nucleus.
  if (params.min_p > 0.0f) {
    size_t n = 1;
    while (n < keep && probs[n] >= params.min_p * probs[0]) ++n;
    keep = n;
  }
  if (params.top_p < 1.0f) {
    double mass = 0.0;
    size_t n = 0;
    while (n < keep) {
      mass += probs[n++];
      if (mass >= params.top_p) break;
    }
    keep = std::max<size_t>(n, 1);
  }
  double total = 0.0;
  for (size_t i = 0; i < keep; ++i) total += probs[i];
  double u = rng.Uniform() * total;
  for (size_t i = 0; i < keep; ++i) {
    u -= probs[i];
    if (u < 0.0) return scratch[i].second;
  }
  return scratch[keep - 1].second;
}

}  // namespace tailor
