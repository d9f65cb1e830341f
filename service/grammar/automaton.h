// Internal to service/grammar: the compiled form of a grammar, and the byte-level pushdown
// recognizer that runs it.
//
// Each rule of an ExprPool becomes a deterministic automaton over bytes whose states may also
// "call" other rules (an edge labelled with a callee, taken when the callee has matched some
// bytes and then returns). All rules' states share one numbering. A byte may be matched both by
// a state's own byte edge and by the first byte of a callee, so a parse position is a SET of
// stacks (frames below). Stacks are stored as a tree of interned nodes (Parser), so positions
// are small vectors of (state, parent node) pairs that compare and hash cheaply.
#ifndef TAILOR_SERVICE_GRAMMAR_AUTOMATON_H_
#define TAILOR_SERVICE_GRAMMAR_AUTOMATON_H_

#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "service/grammar/expr.h"

namespace tailor::grammar::internal {

inline constexpr int32_t kInfinity = std::numeric_limits<int32_t>::max() / 4;

struct Automaton {
  int32_t num_states = 0;
  std::vector<int32_t> next;        // [num_states * 256]: target of byte b from state s, or -1
  std::vector<uint8_t> accepting;   // [num_states]: the state's rule may return (or finish) here
  std::vector<uint8_t> has_bytes;   // [num_states]: some byte edge leaves the state
  std::vector<int32_t> call_begin;  // [num_states + 1]: the state's calls are calls[begin, end)
  std::vector<std::pair<int32_t, int32_t>> calls;  // (callee rule, return state)
  std::vector<int32_t> rule_start;  // [num_rules]: start state
  std::vector<int32_t> dist;        // [num_states]: fewest bytes from here to `accepting`
  int32_t root_rule = 0;
};

// Compiles every rule of `pool` (all must have bodies) with `root_rule` as the start symbol.
// Removes states and calls that cannot lead to a complete match. Errors: InvalidArgument when the
// root matches nothing, when a rule calls itself before consuming any byte (left recursion), or
// when the automaton exceeds `max_states` states.
absl::StatusOr<Automaton> Compile(const ExprPool& pool, int32_t root_rule, int32_t max_states);

// A byte-level recognizer over one Automaton (which must outlive it). Keeps the interned stack
// nodes it has seen, so positions from one Parser may be compared by value. Not thread-safe.
class Parser {
 public:
  struct Frame {
    int32_t state;   // a state with byte edges (the frame waits for a byte)
    int32_t parent;  // stack node to return into when the state's rule accepts; -1 = root
    bool operator==(const Frame& o) const { return state == o.state && parent == o.parent; }
  };
  struct Position {
    std::vector<Frame> frames;  // distinct; order is not meaningful
    bool complete = false;      // the bytes so far are a complete match
    bool dead() const { return frames.empty() && !complete; }
  };

  explicit Parser(const Automaton* automaton);

  // The position before any byte.
  void Start(Position* out);
  // `out` = the position after byte `b` from `in` (out must not alias in). Returns !out->dead().
  // Inline fast path: one stack and a byte step to a state that neither calls nor accepts (the
  // common case inside strings and literals during trie walks).
  bool Step(const Position& in, uint8_t b, Position* out) {
    out->frames.clear();
    out->complete = false;
    if (in.frames.size() == 1) {
      const Frame f = in.frames[0];
      const int32_t t = a_->next[f.state * 256 + b];
      if (t < 0) return false;
      if (!a_->accepting[t] && a_->call_begin[t] == a_->call_begin[t + 1]) {
        out->frames.push_back({t, f.parent});  // has_bytes[t]: states that cannot finish are pruned
        return true;
      }
    }
    return StepSlow(in, b, out);
  }
  // Fewest bytes that complete a match from `p`: 0 if complete, kInfinity if dead.
  int32_t Completion(const Position& p) const {
    if (p.complete) return 0;
    int32_t best = kInfinity;
    for (const Frame& f : p.frames) {
      const int64_t c = int64_t{a_->dist[f.state]} + (f.parent < 0 ? 0 : node_completion_[f.parent]);
      if (c < best) best = static_cast<int32_t>(c);
    }
    return best;
  }
  // Fewest bytes that finish stack node `node` and its parents (0 for the root, -1).
  int32_t NodeCompletion(int32_t node) const { return node < 0 ? 0 : node_completion_[node]; }
  // Stack nodes interned so far (grows with new nesting; memory is 12 bytes + index per node).
  int32_t num_nodes() const { return static_cast<int32_t>(nodes_.size()); }

 private:
  bool StepSlow(const Position& in, uint8_t b, Position* out);
  int32_t Intern(int32_t state, int32_t parent);
  void Closure(int32_t state, int32_t parent, Position* out);

  const Automaton* a_;
  std::vector<Frame> nodes_;           // node id -> (return state, parent node)
  std::vector<int32_t> node_completion_;  // node id -> fewest bytes to finish it and its parents
  absl::flat_hash_map<uint64_t, int32_t> index_;
  std::vector<Frame> visited_;         // scratch for Closure within one Step
};

}  // namespace tailor::grammar::internal

#endif  // TAILOR_SERVICE_GRAMMAR_AUTOMATON_H_
