// Internal to service/grammar: the expression form every grammar source (JSON schema, regex,
// choices, builder) is lowered to before compilation into byte automata (automaton.h).
//
// An ExprPool is a set of rules (nonterminals); each rule's body is a regular expression over
// bytes whose atoms may also be calls of rules, so the whole is a context-free grammar (recursion
// through calls, e.g. recursive JSON-schema $ref). Expressions are nodes in the pool, named by
// index; they are immutable once made and may be shared by several parents (a DAG).
//
// Not thread-safe; owned by one GrammarBuilder.
#ifndef TAILOR_SERVICE_GRAMMAR_EXPR_H_
#define TAILOR_SERVICE_GRAMMAR_EXPR_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace tailor::grammar::internal {

enum class ExprKind : uint8_t { kEmpty, kBytes, kSeq, kAlt, kRepeat, kCall };

struct Expr {
  ExprKind kind = ExprKind::kEmpty;
  uint8_t lo = 0;            // kBytes: inclusive byte range [lo, hi]
  uint8_t hi = 0;
  int32_t min = 0;           // kRepeat: at least `min` copies
  int32_t max = 0;           // kRepeat: at most `max` copies; -1 = unbounded
  int32_t rule = -1;         // kCall: the rule called
  std::vector<int32_t> kids; // kSeq/kAlt: operands in order; kRepeat: the one operand
};

// Inclusive code point range.
using CodepointRange = std::pair<uint32_t, uint32_t>;

class ExprPool {
 public:
  int32_t Empty();
  int32_t Bytes(uint8_t lo, uint8_t hi);
  int32_t Literal(absl::string_view bytes);  // the exact bytes; Empty() for ""
  int32_t Seq(std::vector<int32_t> kids);
  int32_t Alt(std::vector<int32_t> kids);
  int32_t Repeat(int32_t kid, int32_t min, int32_t max);
  int32_t Call(int32_t rule);
  // Any one UTF-8 encoded code point in the union of `ranges` (surrogates D800-DFFF and values
  // above 10FFFF are never matched). Ranges may overlap and come in any order.
  int32_t Codepoints(std::vector<CodepointRange> ranges);

  // A new rule with no body yet (a forward declaration, so bodies may call it recursively).
  int32_t NewRule(std::string name);
  void SetRuleBody(int32_t rule, int32_t expr) { rule_body_[rule] = expr; }

  const Expr& expr(int32_t id) const { return exprs_[id]; }
  int32_t num_rules() const { return static_cast<int32_t>(rule_body_.size()); }
  int32_t rule_body(int32_t rule) const { return rule_body_[rule]; }
  const std::string& rule_name(int32_t rule) const { return rule_names_[rule]; }

  // Memo slots for shared JSON rules (json_schema.cc), -1 until made.
  int32_t json_value_rule = -1;
  int32_t json_object_rule = -1;

 private:
  int32_t Add(Expr e);
  std::vector<Expr> exprs_;
  std::vector<int32_t> rule_body_;  // expr id per rule; -1 = not yet defined
  std::vector<std::string> rule_names_;
};

}  // namespace tailor::grammar::internal

#endif  // TAILOR_SERVICE_GRAMMAR_EXPR_H_
