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

namespace {

// Candidates sorted by logit (descending, lower id first on ties): a total order, so the result
// does not depend on the sort algorithm.
// (A function object, so that the sorts inline it.)
struct ByLogit {
  bool operator()(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) const {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  }
};

// Sorts `c` lazily: the first `sorted` entries are the largest, in ByLogit order; Extend(i)
// makes sure entry i is in place, sorting the next chunk (4x the sorted prefix) when needed.
// Sampling usually stops within the first few candidates, so most of a large vocabulary is
// never sorted.
class LazySorted {
 public:
  explicit LazySorted(std::vector<std::pair<float, int32_t>>& c) : c_(c) {}
  void Extend(size_t i) {
    if (i < sorted_) return;
    const size_t end = std::min(c_.size(), std::max({i + 1, sorted_ * 4, size_t{64}}));
    const auto first = c_.begin() + static_cast<std::ptrdiff_t>(sorted_);
    const auto last = c_.begin() + static_cast<std::ptrdiff_t>(end);
    if (sorted_ == 0) {
      // The first, small chunk: a heap of 64 over one pass (most candidates fail its top).
      std::partial_sort(first, last, c_.end(), ByLogit());
    } else {
      // Later chunks (a flat distribution): selection then a sort of the chunk, linear in what
      // is left, so a long walk costs about one full sort rather than a heap per chunk.
      if (last != c_.end()) std::nth_element(first, last - 1, c_.end(), ByLogit());
      std::sort(first, last, ByLogit());
    }
    sorted_ = end;
  }

 private:
  std::vector<std::pair<float, int32_t>>& c_;
  size_t sorted_ = 0;
};

}  // namespace

int32_t SampleToken(std::span<const float> logits, const SamplingParams& params, Rng& rng,
                    std::vector<std::pair<float, int32_t>>& scratch) {
  if (params.temperature <= 0.0f || logits.empty()) return Argmax(logits);
  scratch.clear();
  float max_logit = -INFINITY;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (!std::isnan(logits[i]) && logits[i] != -INFINITY) {
      scratch.emplace_back(logits[i], static_cast<int32_t>(i));
      max_logit = std::max(max_logit, logits[i]);
    }
  }
  if (scratch.empty()) return Argmax(logits);
  // top-k: the k largest, sorted (k is small).
  if (params.top_k > 0 && static_cast<size_t>(params.top_k) < scratch.size()) {
    const auto k = static_cast<std::ptrdiff_t>(params.top_k);
    std::partial_sort(scratch.begin(), scratch.begin() + k, scratch.end(), ByLogit());
    scratch.resize(static_cast<size_t>(k));
  }
  // Unnormalized softmax weights at temperature, in double: w = exp((logit - max) / T), 1 for
  // the most likely token. min-p keeps w >= min_p (relative to the most likely).
  const double max = max_logit;
  auto weight = [&](float logit) { return std::exp((static_cast<double>(logit) - max) / params.temperature); };
  if (params.min_p > 0.0f) {
    const double min_p = params.min_p;
    scratch.erase(std::remove_if(scratch.begin(), scratch.end(), [&](const auto& c) { return weight(c.first) < min_p; }),
                  scratch.end());
  }
  double total = 0.0;
  for (const auto& c : scratch) total += weight(c.first);
  if (params.top_p >= 1.0f) {
    // No nucleus: the inverse CDF over the candidates in the order they are in (by id; by logit
    // after top-k). Any fixed order draws from the same distribution, and this one needs no sort.
    double u = rng.Uniform() * total;
    for (const auto& c : scratch) {
      u -= weight(c.first);
      if (u < 0.0) return c.second;
    }
    return scratch.back().second;
  }
  LazySorted order(scratch);
  size_t keep = scratch.size();
  {
    // Nucleus: the most likely candidates until their mass reaches top_p.
    const double target = static_cast<double>(params.top_p) * total;
    double mass = 0.0;
    size_t n = 0;
    while (n < keep) {
      order.Extend(n);
      mass += weight(scratch[n++].first);
      if (mass >= target) break;
    }
    keep = std::max<size_t>(n, 1);
    total = mass;
  }
  double u = rng.Uniform() * total;
  for (size_t i = 0; i < keep; ++i) {
    order.Extend(i);
    u -= weight(scratch[i].first);
    if (u < 0.0) return scratch[i].second;
  }
  order.Extend(keep - 1);
  return scratch[keep - 1].second;
}

}  // namespace tailor
