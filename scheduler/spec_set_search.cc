#include "scheduler/spec_set_search.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tailor {
namespace {

bool IsDecode(const SpecCandidate& c) { return c.spec.shape.seq_len == 1; }

// Simulates sets of candidates, each once; thread-compatible (one caller), simulations fan out
// over `threads` worker threads that each write only their own result slots.
class Evaluator {
 public:
  Evaluator(std::span<const SpecCandidate> candidates, std::span<const TraceRequest> trace,
            const SearchOptions& options)
      : candidates_(candidates), trace_(trace), options_(options) {}

  // The results of `sets` (each sorted ascending), in order; simulates the ones not seen yet.
  absl::StatusOr<std::vector<SetResult>> Evaluate(const std::vector<std::vector<int32_t>>& sets) {
    std::vector<std::vector<int32_t>> missing;
    for (const auto& s : sets) {
      if (!memo_.contains(s) && std::find(missing.begin(), missing.end(), s) == missing.end()) missing.push_back(s);
    }
    std::vector<absl::StatusOr<SimulationResult>> results(missing.size(), absl::UnknownError("not run"));
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i = next++; i < missing.size(); i = next++) {
        const std::vector<Specialization> specs = SpecsOf(candidates_, missing[i]);
        results[i] = SimulateTrace(specs, CostsOf(candidates_, missing[i]), trace_, options_.simulation);
      }
    };
    const size_t n_threads = std::min<size_t>(std::max(1, options_.threads), missing.size());
    if (n_threads <= 1) {
      work();
    } else {
      std::vector<std::thread> pool;
      for (size_t t = 0; t < n_threads; ++t) pool.emplace_back(work);
      for (std::thread& t : pool) t.join();
    }
    for (size_t i = 0; i < missing.size(); ++i) {
      if (!results[i].ok()) return results[i].status();
      memo_.emplace(missing[i], SetResult{missing[i], std::move(*results[i])});
    }
    simulations_ += static_cast<int64_t>(missing.size());
    std::vector<SetResult> out;
    out.reserve(sets.size());
    for (const auto& s : sets) out.push_back(memo_.at(s));
    return out;
  }

  // The best of `sets` (empty: nullopt).
  absl::StatusOr<std::optional<SetResult>> Best(const std::vector<std::vector<int32_t>>& sets) {
    auto results = Evaluate(sets);
    if (!results.ok()) return results.status();
    std::optional<SetResult> best;
    for (SetResult& r : *results) {
      if (!best || BetterSet(r, *best, options_.tie_tolerance)) best = std::move(r);
    }
    return best;
  }

  int64_t simulations() const { return simulations_; }

 private:
  std::span<const SpecCandidate> candidates_;
  std::span<const TraceRequest> trace_;
  const SearchOptions& options_;
  std::map<std::vector<int32_t>, SetResult> memo_;
  int64_t simulations_ = 0;
};

std::vector<int32_t> Sorted(std::vector<int32_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

absl::Status CheckInputs(std::span<const SpecCandidate> candidates, const SearchOptions& options) {
  if (options.budget < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "budget ", options.budget, ": expected >= 2 (a decode and a prefill specialization)"));
  }
  if (candidates.empty()) return absl::InvalidArgumentError("no candidate specializations");
  return absl::OkStatus();
}

absl::Status NoSet(int32_t longest) {
  return absl::InvalidArgumentError(absl::StrCat(
      "no set of the candidates can serve the trace: it needs a decode candidate (seq_len 1), a prefill "
      "candidate (seq_len > 1) and a ctx_len of at least ",
      longest, " (its longest request)"));
}

}  // namespace

std::string CandidateName(const Specialization& spec) { return absl::StrCat(spec.Name(), "_ols", spec.ols); }

absl::StatusOr<Specialization> ParseCandidateName(absl::string_view name) {
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "candidate \"", name, "\": expected bB_sS_cC or bB_sS_cC_olsN with positive integers, e.g. b4_s1_c512_ols2"));
  };
  std::vector<absl::string_view> parts = absl::StrSplit(name, '_');
  if (parts.size() != 3 && parts.size() != 4) return bad();
  const char* prefixes[] = {"b", "s", "c", "ols"};
  int32_t values[4] = {0, 0, 0, 1};
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!absl::ConsumePrefix(&parts[i], prefixes[i])) return bad();
    if (!absl::SimpleAtoi(parts[i], &values[i]) || values[i] < 1) return bad();
  }
  if (values[1] > values[2]) {
    return absl::InvalidArgumentError(
        absl::StrCat("candidate \"", name, "\": seq_len ", values[1], " is larger than ctx_len ", values[2]));
  }
  if (values[3] > 256) return absl::InvalidArgumentError(absl::StrCat("candidate \"", name, "\": -ols above 256"));
  Specialization s;
  s.shape = SpecShape{values[0], values[1], values[2]};
  s.ols = values[3];
  return s;
}

int32_t LongestRequest(std::span<const TraceRequest> trace) {
  int64_t longest = 0;
  for (const TraceRequest& r : trace) {
    longest = std::max<int64_t>(longest, static_cast<int64_t>(r.prompt_ids.size()) + r.max_tokens);
  }
  return static_cast<int32_t>(std::min<int64_t>(longest, INT32_MAX));
}

bool CanServe(std::span<const SpecCandidate> candidates, std::span<const int32_t> members, int32_t longest) {
  bool decode = false, prefill = false;
  int32_t ctx = 0;
  for (int32_t m : members) {
    const SpecShape& s = candidates[m].spec.shape;
    (s.seq_len == 1 ? decode : prefill) = true;
    ctx = std::max(ctx, s.ctx_len);
  }
  return decode && prefill && ctx >= longest;
}

bool DistinctShapes(std::span<const SpecCandidate> candidates, std::span<const int32_t> members) {
  for (size_t i = 0; i < members.size(); ++i) {
    for (size_t j = i + 1; j < members.size(); ++j) {
      if (candidates[members[i]].spec.shape == candidates[members[j]].spec.shape) return false;
    }
  }
  return true;
}

bool BetterSet(const SetResult& a, const SetResult& b, double tie_tolerance) {
  const double ta = a.simulation.total_tokens_per_s, tb = b.simulation.total_tokens_per_s;
  if (std::fabs(ta - tb) > tie_tolerance * std::max(ta, tb)) return ta > tb;
  if (a.simulation.tpot_p99_ms != b.simulation.tpot_p99_ms) return a.simulation.tpot_p99_ms < b.simulation.tpot_p99_ms;
  if (ta != tb) return ta > tb;
  if (a.members.size() != b.members.size()) return a.members.size() < b.members.size();
  return a.members < b.members;
}

std::vector<Specialization> SpecsOf(std::span<const SpecCandidate> candidates, std::span<const int32_t> members) {
  std::vector<Specialization> specs;
  for (int32_t m : members) specs.push_back(candidates[m].spec);
  return specs;
}

CostTable CostsOf(std::span<const SpecCandidate> candidates, std::span<const int32_t> members) {
  CostTable t;
  for (int32_t m : members) t.models.push_back(candidates[m].cost);
  return t;
}

absl::StatusOr<SetResult> SearchSpecSet(std::span<const SpecCandidate> candidates,
                                        std::span<const TraceRequest> trace, const SearchOptions& options,
                                        SearchStats* stats) {
  if (absl::Status s = CheckInputs(candidates, options); !s.ok()) return s;
  const int32_t n = static_cast<int32_t>(candidates.size());
  const int32_t longest = LongestRequest(trace);
  Evaluator eval(candidates, trace, options);
  std::vector<int32_t> decode, prefill;
  for (int32_t i = 0; i < n; ++i) (IsDecode(candidates[i]) ? decode : prefill).push_back(i);

  // 1. The seed pair by coordinate descent: the best decode candidate with a fixed prefill one,
  //    then the best prefill candidate with that, and so on until neither changes. Started from
  //    the prefill candidate with the largest ctx_len (ties: the first), which pairs with any
  //    decode candidate when one can serve at all.
  std::optional<int32_t> p0;
  for (int32_t p : prefill) {
    if (!p0 || candidates[p].spec.shape.ctx_len > candidates[*p0].spec.shape.ctx_len) p0 = p;
  }
  if (!p0 || decode.empty()) return NoSet(longest);
  std::optional<SetResult> current;
  int32_t d_best = -1, p_best = *p0;
  for (int round = 0; round < 8; ++round) {
    std::vector<std::vector<int32_t>> sets;
    for (int32_t d : decode) {
      if (CanServe(candidates, std::vector<int32_t>{d, p_best}, longest)) sets.push_back(Sorted({d, p_best}));
    }
    auto best = eval.Best(sets);
    if (!best.ok()) return best.status();
    if (!*best) break;
    const int32_t d_new = IsDecode(candidates[(*best)->members[0]]) ? (*best)->members[0] : (*best)->members[1];
    sets.clear();
    for (int32_t p : prefill) {
      if (CanServe(candidates, std::vector<int32_t>{d_new, p}, longest)) sets.push_back(Sorted({d_new, p}));
    }
    best = eval.Best(sets);
    if (!best.ok()) return best.status();
    const int32_t p_new = IsDecode(candidates[(*best)->members[0]]) ? (*best)->members[1] : (*best)->members[0];
    current = **best;
    if (d_new == d_best && p_new == p_best) break;
    d_best = d_new;
    p_best = p_new;
  }
  if (!current) return NoSet(longest);

  // 2. Forward selection: add the candidate that improves the set most, while one does.
  while (static_cast<int32_t>(current->members.size()) < options.budget) {
    std::vector<std::vector<int32_t>> sets;
    for (int32_t c = 0; c < n; ++c) {
      if (std::find(current->members.begin(), current->members.end(), c) != current->members.end()) continue;
      std::vector<int32_t> s = current->members;
      s.push_back(c);
      if (DistinctShapes(candidates, s)) sets.push_back(Sorted(std::move(s)));
    }
    auto best = eval.Best(sets);
    if (!best.ok()) return best.status();
    if (!*best || !BetterSet(**best, *current, options.tie_tolerance)) break;
    current = **best;
  }

  // 3. Local search: the best of every swap, removal and addition, while it improves.
  SearchStats local;
  for (; local.passes < options.max_passes; ++local.passes) {
    std::vector<std::vector<int32_t>> sets;
    const std::vector<int32_t>& m = current->members;
    auto add_if_servable = [&](std::vector<int32_t> s) {
      if (CanServe(candidates, s, longest) && DistinctShapes(candidates, s)) sets.push_back(Sorted(std::move(s)));
    };
    for (size_t k = 0; k < m.size(); ++k) {
      std::vector<int32_t> without = m;
      without.erase(without.begin() + static_cast<std::ptrdiff_t>(k));
      if (without.size() >= 2) add_if_servable(without);
      for (int32_t c = 0; c < n; ++c) {
        if (std::find(m.begin(), m.end(), c) != m.end()) continue;
        std::vector<int32_t> swapped = without;
        swapped.push_back(c);
        add_if_servable(std::move(swapped));
      }
    }
    if (static_cast<int32_t>(m.size()) < options.budget) {
      for (int32_t c = 0; c < n; ++c) {
        if (std::find(m.begin(), m.end(), c) != m.end()) continue;
        std::vector<int32_t> s = m;
        s.push_back(c);
        add_if_servable(std::move(s));
      }
    }
    auto best = eval.Best(sets);
    if (!best.ok()) return best.status();
    if (!*best || !BetterSet(**best, *current, options.tie_tolerance)) break;
    current = **best;
  }
  if (stats != nullptr) {
    stats->simulations = eval.simulations();
    stats->passes = local.passes;
  }
  return *current;
}

absl::StatusOr<SetResult> ExhaustiveSpecSet(std::span<const SpecCandidate> candidates,
                                            std::span<const TraceRequest> trace, const SearchOptions& options,
                                            SearchStats* stats) {
  if (absl::Status s = CheckInputs(candidates, options); !s.ok()) return s;
  const int32_t n = static_cast<int32_t>(candidates.size());
  const int32_t longest = LongestRequest(trace);
  std::vector<std::vector<int32_t>> sets;
  // Every subset of sizes 2..budget, by increasing index combinations.
  for (int32_t size = 2; size <= std::min(options.budget, n); ++size) {
    std::vector<int32_t> idx(size);
    for (int32_t i = 0; i < size; ++i) idx[i] = i;
    while (true) {
      if (CanServe(candidates, idx, longest) && DistinctShapes(candidates, idx)) sets.push_back(idx);
      int32_t i = size - 1;
      while (i >= 0 && idx[i] == n - size + i) --i;
      if (i < 0) break;
      ++idx[i];
      for (int32_t j = i + 1; j < size; ++j) idx[j] = idx[j - 1] + 1;
    }
  }
  Evaluator eval(candidates, trace, options);
  auto best = eval.Best(sets);
  if (!best.ok()) return best.status();
  if (!*best) return NoSet(longest);
  if (stats != nullptr) stats->simulations = eval.simulations();
  return **best;
}

}  // namespace tailor
