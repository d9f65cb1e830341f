#include "bench/planner_oracle.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace tailor::bench {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The cheapest covering specialization's seconds for a step of `shape` (inf: none covers it).
double CheapestStep(std::span<const Specialization> specs, const CostTable& costs, const StepShape& shape) {
  auto sel = SelectSpecialization(specs, costs, shape);
  return sel ? costs.Seconds(*sel, shape) : kInf;
}

}  // namespace

double SecondsPerToken(const RoundPlan& plan) {
  return plan.useful_tokens > 0 ? plan.seconds / static_cast<double>(plan.useful_tokens) : kInf;
}

OracleResult OracleRound(std::span<const Specialization> specs, const CostTable& costs,
                         std::span<const PrefillItem> prefill, std::span<const int32_t> decode_starts) {
  std::vector<int32_t> decode;  // items some specialization covers alone
  for (int32_t start : decode_starts) {
    if (CheapestStep(specs, costs, StepShape{1, 1, start + 1, start + 1}) < kInf) decode.push_back(start);
  }
  const int n = static_cast<int>(decode.size());
  const uint32_t all = (1u << n) - 1;
  // group[m]: one decode step holding the items of mask m; best[m]: the cheapest partition of m.
  std::vector<double> group(size_t{1} << n, kInf), best(size_t{1} << n, kInf);
  for (uint32_t m = 1; m <= all; ++m) {
    StepShape s{0, 1, 0, 0};
    for (int i = 0; i < n; ++i) {
      if (!(m >> i & 1)) continue;
      s.rows += 1;
      s.max_end_pos = std::max(s.max_end_pos, decode[i] + 1);
      s.attended += decode[i] + 1;
    }
    group[m] = CheapestStep(specs, costs, s);
  }
  best[0] = 0;
  for (uint32_t m = 1; m <= all; ++m) {
    const uint32_t low = m & (~m + 1);  // the group holding m's lowest item
    const uint32_t rest = m ^ low;
    for (uint32_t sub = rest;; sub = (sub - 1) & rest) {
      const double c = group[sub | low] + best[rest ^ sub];
      best[m] = std::min(best[m], c);
      if (sub == 0) break;
    }
  }
  OracleResult out;
  out.seconds_per_token = kInf;
  const auto consider = [&](double seconds, int64_t useful) {
    if (useful <= 0 || !(seconds < kInf)) return;
    const double per = seconds / static_cast<double>(useful);
    if (per < out.seconds_per_token) out = OracleResult{per, seconds, useful};
  };
  if (prefill.empty()) {
    consider(best[all], n);
    return out;
  }
  // One prefill-carrying step on specialization `spec`: the head item plus any subset of the
  // others (bounded to 16 prefill items), then any subset of decode items in its spare rows.
  const int p = std::min<int>(static_cast<int>(prefill.size()), 16);
  for (size_t spec = 0; spec < specs.size(); ++spec) {
    const SpecShape& sh = specs[spec].shape;
    for (uint32_t pm = 1; pm < (1u << p); pm += 2) {  // odd masks: the head is always in
      StepShape s{0, 0, 0, 0};
      int64_t useful = 0;
      bool fits = true;
      for (int k = 0; k < p && fits; ++k) {
        if (!(pm >> k & 1)) continue;
        const int32_t chunk = std::min({prefill[k].max_tokens, sh.seq_len, sh.ctx_len - prefill[k].start});
        if (chunk <= 0) fits = false;
        s.rows += 1;
        s.max_tokens_per_row = std::max(s.max_tokens_per_row, chunk);
        s.max_end_pos = std::max(s.max_end_pos, prefill[k].start + chunk);
        s.attended += AttendedPositions(1, chunk, prefill[k].start + chunk);
        useful += chunk;
      }
      if (!fits || s.rows > sh.batch_size) continue;
      for (uint32_t dm = 0; dm <= all; ++dm) {  // decode items riding in the spare rows
        StepShape m = s;
        for (int i = 0; i < n; ++i) {
          if (!(dm >> i & 1)) continue;
          m.rows += 1;
          m.max_end_pos = std::max(m.max_end_pos, decode[i] + 1);
          m.attended += decode[i] + 1;
        }
        m.max_tokens_per_row = std::max(m.max_tokens_per_row, 1);
        if (!Covers(sh, m)) continue;
        consider(costs.Seconds(static_cast<int32_t>(spec), m) + best[all ^ dm], useful + n);
      }
    }
  }
  return out;
}

}  // namespace tailor::bench
