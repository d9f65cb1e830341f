#include "service/grammar/automaton.h"

#include <algorithm>
#include <array>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tailor::grammar::internal {
namespace {

int32_t AddSat(int32_t a, int32_t b) { return std::min<int64_t>(int64_t{a} + b, kInfinity); }

// Thompson NFA of one rule: states with byte-range, epsilon and call edges.
struct NfaEdge {
  enum Kind : uint8_t { kByte, kEps, kCall } kind;
  uint8_t lo = 0, hi = 0;
  int32_t rule = -1;
  int32_t to = 0;
};

class NfaBuilder {
 public:
  NfaBuilder(const ExprPool& pool, int32_t max_states) : pool_(pool), max_states_(max_states) {}

  int32_t NewState() {
    edges_.emplace_back();
    return static_cast<int32_t>(edges_.size()) - 1;
  }
  // Adds edges so that paths from `in` to `out` spell exactly the matches of expression `e`.
  absl::Status Build(int32_t e, int32_t in, int32_t out) {
    if (static_cast<int32_t>(edges_.size()) > max_states_) {
      return absl::InvalidArgumentError(
          absl::StrCat("grammar too large (more than ", max_states_, " automaton states)"));
    }
    const Expr& x = pool_.expr(e);
    switch (x.kind) {
      case ExprKind::kEmpty:
        Eps(in, out);
        return absl::OkStatus();
      case ExprKind::kBytes:
        edges_[in].push_back({NfaEdge::kByte, x.lo, x.hi, -1, out});
        return absl::OkStatus();
      case ExprKind::kCall:
        edges_[in].push_back({NfaEdge::kCall, 0, 0, x.rule, out});
        return absl::OkStatus();
      case ExprKind::kSeq: {
        int32_t cur = in;
        for (size_t i = 0; i < x.kids.size(); ++i) {
          const int32_t nxt = i + 1 == x.kids.size() ? out : NewState();
          if (auto s = Build(x.kids[i], cur, nxt); !s.ok()) return s;
          cur = nxt;
        }
        return absl::OkStatus();
      }
      case ExprKind::kAlt:
        for (int32_t kid : x.kids) {
          const int32_t a = NewState(), b = NewState();
          Eps(in, a);
          Eps(b, out);
          if (auto s = Build(kid, a, b); !s.ok()) return s;
        }
        return absl::OkStatus();
      case ExprKind::kRepeat: {
        int32_t cur = in;
        for (int32_t i = 0; i < x.min; ++i) {
          const int32_t nxt = NewState();
          if (auto s = Build(x.kids[0], cur, nxt); !s.ok()) return s;
          cur = nxt;
        }
        if (x.max < 0) {  // a loop on a fresh state
          const int32_t loop = NewState(), body_end = NewState();
          Eps(cur, loop);
          if (auto s = Build(x.kids[0], loop, body_end); !s.ok()) return s;
          Eps(body_end, loop);
          Eps(loop, out);
          return absl::OkStatus();
        }
        for (int32_t i = x.min; i < x.max; ++i) {  // optional copies, each may stop the run
          Eps(cur, out);
          const int32_t nxt = NewState();
          if (auto s = Build(x.kids[0], cur, nxt); !s.ok()) return s;
          cur = nxt;
        }
        Eps(cur, out);
        return absl::OkStatus();
      }
    }
    return absl::InternalError("unknown expression kind");
  }

  const std::vector<std::vector<NfaEdge>>& edges() const { return edges_; }

 private:
  void Eps(int32_t a, int32_t b) { edges_[a].push_back({NfaEdge::kEps, 0, 0, -1, b}); }

  const ExprPool& pool_;
  const int32_t max_states_;
  std::vector<std::vector<NfaEdge>> edges_;
};

// Epsilon closure of `set`, sorted and unique.
std::vector<int32_t> EpsClosure(const std::vector<std::vector<NfaEdge>>& edges,
                                std::vector<int32_t> set) {
  std::vector<uint8_t> seen(edges.size(), 0);
  std::vector<int32_t> stack;
  for (int32_t s : set) {
    if (!seen[s]) {
      seen[s] = 1;
      stack.push_back(s);
    }
  }
  set.clear();
  while (!stack.empty()) {
    const int32_t s = stack.back();
    stack.pop_back();
    set.push_back(s);
    for (const NfaEdge& e : edges[s]) {
      if (e.kind == NfaEdge::kEps && !seen[e.to]) {
        seen[e.to] = 1;
        stack.push_back(e.to);
      }
    }
  }
  std::sort(set.begin(), set.end());
  return set;
}

// One rule's DFA before global numbering: byte table, calls, accepting flags.
struct RuleDfa {
  std::vector<std::array<int32_t, 256>> next;
  std::vector<std::vector<std::pair<int32_t, int32_t>>> calls;  // (callee, local target)
  std::vector<uint8_t> accepting;
};

absl::StatusOr<RuleDfa> Determinize(const std::vector<std::vector<NfaEdge>>& edges, int32_t start,
                                    int32_t final_state, int32_t max_states) {
  RuleDfa dfa;
  std::map<std::vector<int32_t>, int32_t> ids;
  std::vector<std::vector<int32_t>> sets;
  auto id_of = [&](std::vector<int32_t> set) -> int32_t {
    auto [it, inserted] = ids.emplace(std::move(set), static_cast<int32_t>(sets.size()));
    if (inserted) sets.push_back(it->first);
    return it->second;
  };
  id_of(EpsClosure(edges, {start}));
  for (size_t d = 0; d < sets.size(); ++d) {
    if (static_cast<int32_t>(sets.size()) > max_states) {
      return absl::InvalidArgumentError(
          absl::StrCat("grammar too large (more than ", max_states, " automaton states)"));
    }
    const std::vector<int32_t> set = sets[d];
    std::array<int32_t, 256> row;
    row.fill(-1);
    std::vector<const NfaEdge*> byte_edges;
    std::map<int32_t, std::vector<int32_t>> call_targets;
    bool accepting = false;
    for (int32_t s : set) {
      if (s == final_state) accepting = true;
      for (const NfaEdge& e : edges[s]) {
        if (e.kind == NfaEdge::kByte) byte_edges.push_back(&e);
        if (e.kind == NfaEdge::kCall) call_targets[e.rule].push_back(e.to);
      }
    }
    std::vector<int32_t> prev_raw;
    int32_t prev_id = -1;
    for (int b = 0; b < 256; ++b) {
      std::vector<int32_t> raw;
      for (const NfaEdge* e : byte_edges) {
        if (e->lo <= b && b <= e->hi) raw.push_back(e->to);
      }
      if (raw.empty()) continue;
      std::sort(raw.begin(), raw.end());
      if (raw != prev_raw) {
        prev_id = id_of(EpsClosure(edges, raw));
        prev_raw = std::move(raw);
      }
      row[b] = prev_id;
    }
    std::vector<std::pair<int32_t, int32_t>> calls;
    for (auto& [rule, targets] : call_targets) {
      calls.push_back({rule, id_of(EpsClosure(edges, targets))});
    }
    dfa.next.push_back(row);
    dfa.calls.push_back(std::move(calls));
    dfa.accepting.push_back(accepting);
  }
  return dfa;
}

// Fewest bytes from each state of rule `r` to its accepting states, given callee minimum
// lengths `min_len`. States of rule r are [begin, end).
void RuleDistances(Automaton& a, int32_t begin, int32_t end, const std::vector<int32_t>& min_len,
                   const std::vector<std::vector<int32_t>>& byte_targets) {
  for (int32_t s = begin; s < end; ++s) a.dist[s] = a.accepting[s] ? 0 : kInfinity;
  for (bool changed = true; changed;) {
    changed = false;
    for (int32_t s = begin; s < end; ++s) {
      int32_t d = a.dist[s];
      for (int32_t t : byte_targets[s]) d = std::min(d, AddSat(1, a.dist[t]));
      for (int32_t c = a.call_begin[s]; c < a.call_begin[s + 1]; ++c) {
        d = std::min(d, AddSat(min_len[a.calls[c].first], a.dist[a.calls[c].second]));
      }
      if (d < a.dist[s]) {
        a.dist[s] = d;
        changed = true;
      }
    }
  }
}

}  // namespace

absl::StatusOr<Automaton> Compile(const ExprPool& pool, int32_t root_rule, int32_t max_states) {
  const int32_t num_rules = pool.num_rules();
  Automaton a;
  a.root_rule = root_rule;
  a.rule_start.resize(num_rules);
  std::vector<int32_t> rule_begin(num_rules + 1, 0);
  std::vector<std::vector<std::pair<int32_t, int32_t>>> calls;
  for (int32_t r = 0; r < num_rules; ++r) {
    if (pool.rule_body(r) < 0) {
      return absl::InternalError(absl::StrCat("grammar rule '", pool.rule_name(r), "' has no body"));
    }
    NfaBuilder nfa(pool, 4 * max_states);
    const int32_t in = nfa.NewState(), out = nfa.NewState();
    if (auto s = nfa.Build(pool.rule_body(r), in, out); !s.ok()) return s;
    auto dfa = Determinize(nfa.edges(), in, out, max_states - a.num_states);
    if (!dfa.ok()) return dfa.status();
    const int32_t base = a.num_states;
    rule_begin[r] = base;
    a.rule_start[r] = base;
    const int32_t n = static_cast<int32_t>(dfa->next.size());
    a.num_states += n;
    for (int32_t s = 0; s < n; ++s) {
      for (int b = 0; b < 256; ++b) {
        const int32_t t = dfa->next[s][b];
        a.next.push_back(t < 0 ? -1 : t + base);
      }
      a.accepting.push_back(dfa->accepting[s]);
      std::vector<std::pair<int32_t, int32_t>> c = dfa->calls[s];
      for (auto& [callee, target] : c) target += base;
      calls.push_back(std::move(c));
    }
  }
  rule_begin[num_rules] = a.num_states;
  a.call_begin.push_back(0);
  for (const auto& c : calls) {
    a.calls.insert(a.calls.end(), c.begin(), c.end());
    a.call_begin.push_back(static_cast<int32_t>(a.calls.size()));
  }
  std::vector<std::vector<int32_t>> byte_targets(a.num_states);
  for (int32_t s = 0; s < a.num_states; ++s) {
    for (int b = 0; b < 256; ++b) {
      const int32_t t = a.next[s * 256 + b];
      if (t >= 0 && (byte_targets[s].empty() || byte_targets[s].back() != t)) {
        byte_targets[s].push_back(t);
      }
    }
    std::sort(byte_targets[s].begin(), byte_targets[s].end());
    byte_targets[s].erase(std::unique(byte_targets[s].begin(), byte_targets[s].end()),
                          byte_targets[s].end());
  }
  // Minimum match length of every rule: a fixpoint from "infinite" downwards.
  a.dist.assign(a.num_states, kInfinity);
  std::vector<int32_t> min_len(num_rules, kInfinity);
  for (bool changed = true; changed;) {
    changed = false;
    for (int32_t r = 0; r < num_rules; ++r) {
      RuleDistances(a, rule_begin[r], rule_begin[r + 1], min_len, byte_targets);
      if (a.dist[a.rule_start[r]] < min_len[r]) {
        min_len[r] = a.dist[a.rule_start[r]];
        changed = true;
      }
    }
  }
  if (min_len[root_rule] >= kInfinity) {
    return absl::InvalidArgumentError("grammar matches no output (e.g. a schema that requires itself "
                                      "with no way to stop)");
  }
  // Prune edges into states that cannot finish, and calls of rules that match nothing.
  std::vector<std::pair<int32_t, int32_t>> kept_calls;
  std::vector<int32_t> kept_begin = {0};
  a.has_bytes.assign(a.num_states, 0);
  for (int32_t s = 0; s < a.num_states; ++s) {
    for (int b = 0; b < 256; ++b) {
      int32_t& t = a.next[s * 256 + b];
      if (t >= 0 && a.dist[t] >= kInfinity) t = -1;
      if (t >= 0) a.has_bytes[s] = 1;
    }
    for (int32_t c = a.call_begin[s]; c < a.call_begin[s + 1]; ++c) {
      const auto [callee, ret] = a.calls[c];
      if (min_len[callee] < kInfinity && a.dist[ret] < kInfinity) kept_calls.push_back(a.calls[c]);
    }
    kept_begin.push_back(static_cast<int32_t>(kept_calls.size()));
  }
  a.calls = std::move(kept_calls);
  a.call_begin = std::move(kept_begin);
  // Left recursion: a rule that can reach a call of itself without consuming a byte would make
  // the recognizer push frames forever.
  std::vector<std::vector<int32_t>> left_calls(num_rules);
  for (int32_t r = 0; r < num_rules; ++r) {
    std::vector<uint8_t> seen(rule_begin[r + 1] - rule_begin[r], 0);
    std::vector<int32_t> stack = {a.rule_start[r]};
    seen[a.rule_start[r] - rule_begin[r]] = 1;
    while (!stack.empty()) {
      const int32_t s = stack.back();
      stack.pop_back();
      for (int32_t c = a.call_begin[s]; c < a.call_begin[s + 1]; ++c) {
        const auto [callee, ret] = a.calls[c];
        left_calls[r].push_back(callee);
        if (min_len[callee] == 0 && !seen[ret - rule_begin[r]]) {
          seen[ret - rule_begin[r]] = 1;
          stack.push_back(ret);
        }
      }
    }
  }
  std::vector<uint8_t> color(num_rules, 0);  // 0 new, 1 on the DFS path, 2 done
  for (int32_t r0 = 0; r0 < num_rules; ++r0) {
    if (color[r0]) continue;
    std::vector<std::pair<int32_t, size_t>> path = {{r0, 0}};
    color[r0] = 1;
    while (!path.empty()) {
      auto& [r, i] = path.back();
      if (i == left_calls[r].size()) {
        color[r] = 2;
        path.pop_back();
        continue;
      }
      const int32_t c = left_calls[r][i++];
      if (color[c] == 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "left-recursive grammar: '", pool.rule_name(c),
            "' can refer to itself before any output (e.g. a $ref cycle through anyOf)"));
      }
      if (color[c] == 0) {
        color[c] = 1;
        path.push_back({c, 0});
      }
    }
  }
  return a;
}

Parser::Parser(const Automaton* automaton) : a_(automaton) {}

int32_t Parser::Intern(int32_t state, int32_t parent) {
  const uint64_t key = (uint64_t{static_cast<uint32_t>(state)} << 32) |
                       static_cast<uint32_t>(parent + 1);
  auto [it, inserted] = index_.try_emplace(key, static_cast<int32_t>(nodes_.size()));
  if (inserted) {
    nodes_.push_back({state, parent});
    node_completion_.push_back(
        AddSat(a_->dist[state], parent < 0 ? 0 : node_completion_[parent]));
  }
  return it->second;
}

void Parser::Closure(int32_t state, int32_t parent, Position* out) {
  const Frame f{state, parent};
  for (const Frame& v : visited_) {
    if (v == f) return;
  }
  visited_.push_back(f);
  if (a_->has_bytes[state]) out->frames.push_back(f);
  for (int32_t c = a_->call_begin[state]; c < a_->call_begin[state + 1]; ++c) {
    const auto [callee, ret] = a_->calls[c];
    Closure(a_->rule_start[callee], Intern(ret, parent), out);
  }
  if (a_->accepting[state]) {
    if (parent < 0) {
      out->complete = true;
    } else {
      const Frame up = nodes_[parent];
      Closure(up.state, up.parent, out);
    }
  }
}

void Parser::Start(Position* out) {
  out->frames.clear();
  out->complete = false;
  visited_.clear();
  Closure(a_->rule_start[a_->root_rule], -1, out);
}

bool Parser::StepSlow(const Position& in, uint8_t b, Position* out) {
  visited_.clear();
  for (const Frame& f : in.frames) {
    const int32_t t = a_->next[f.state * 256 + b];
    if (t >= 0) Closure(t, f.parent, out);
  }
  return !out->dead();
}

}  // namespace tailor::grammar::internal
