// Grammars for constrained decoding (structured outputs): JSON schema (OpenAI response_format
// json_schema and tool arguments), any JSON object (response_format json_object), regular
// expressions (vLLM guided_regex), choice lists (guided_choice), and compositions of these
// (tool-call wrappers) through GrammarBuilder.
//
// A Grammar is a context-free language over BYTES (UTF-8 is spelled out in it), compiled into
// per-rule byte automata with calls (service/grammar/automaton.h). It is immutable once built and
// safe to share across threads (hold it as shared_ptr<const Grammar>). Per-request matching
// against a token vocabulary is GrammarMatcher (grammar_matcher.h).
//
// JSON output produced under these grammars is compact but for bounded whitespace: between
// tokens at most one " " or one "\n" followed by up to 16 spaces, never leading or trailing.
// Numbers: at most 15 integer digits, 15 fraction digits and a 2-digit exponent.
//
// JSON schema support (the subset OpenAI's strict mode documents):
//   type (a name or a list of names: object, array, string, number, integer, boolean, null),
//   properties (emitted in the schema's order; a property not in `required` may be omitted),
//   required, additionalProperties (false, true or absent: either way only the declared
//   properties are generated, which is valid under all three; a schema value is unsupported;
//   an object schema with no properties and additionalProperties not false is ANY object),
//   items (one schema; absent: any values), minItems, maxItems (<= 1024), enum, const, anyOf,
//   minimum / maximum / exclusiveMinimum / exclusiveMaximum for integers (exact; integers have at
//   most 15 digits anyway, so the safe-integer bounds zod emits change nothing; on numbers they
//   are unsupported),
//   $defs / definitions with $ref ("#", "#/$defs/x", "#/definitions/x", any JSON pointer into the
//   root; recursion allowed), and description, title, default, examples, $schema, $id, $comment
//   (ignored). `{}` and `true` mean any JSON value.
// Any other keyword is InvalidArgument naming it and its location, e.g.
//   "unsupported JSON schema keyword 'pattern' at #/properties/zip".
// Keyword order: nlohmann::json sorts object keys, so GrammarFromJsonSchema(const json&) sees
// properties in alphabetical order. To keep the schema's own order pass nlohmann::ordered_json
// or the schema text (GrammarFromJsonSchemaText).
//
// Regex syntax (whole-output match; over code points, `.` is one UTF-8 character other than
// "\n"): literals, escapes (\n \t \r \f \v \0 \xHH \uHHHH \\ and escaped punctuation), `.`,
// classes [a-z0-9_] and [^...], \d \w \s \D \W \S (ASCII meanings), groups ( ), (?: ), named
// groups (?<n> ) (?P<n> ), alternation |, quantifiers * + ? {n} {n,} {n,m} (lazy forms accepted,
// same language), ^ at the start and $ at the end (ignored). Backreferences, lookaround, \b, \B
// and other (? forms are InvalidArgument naming the construct.
#ifndef TAILOR_SERVICE_GRAMMAR_GRAMMAR_H_
#define TAILOR_SERVICE_GRAMMAR_GRAMMAR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "service/grammar/automaton.h"
#include "service/grammar/expr.h"

namespace tailor::grammar {

class Grammar {
 public:
  explicit Grammar(internal::Automaton automaton) : automaton_(std::move(automaton)) {}

  // Whether `bytes` is a complete match (a slow reference check; for tests and validation).
  bool Matches(absl::string_view bytes) const;
  // Whether `bytes` can be extended to a complete match (or is one).
  bool IsPrefix(absl::string_view bytes) const;
  // Length in bytes of the shortest complete match.
  int32_t ShortestMatchBytes() const { return automaton_.dist[automaton_.rule_start[automaton_.root_rule]]; }
  int32_t num_states() const { return automaton_.num_states; }
  const internal::Automaton& automaton() const { return automaton_; }

 private:
  internal::Automaton automaton_;
};

// Builds one grammar from pieces. Pieces are handles valid only with the builder that made them;
// a piece may be used several times. Not thread-safe; the built Grammar does not refer to it.
class GrammarBuilder {
 public:
  struct Piece {
    int32_t expr = -1;
  };

  Piece Literal(absl::string_view bytes);
  // A JSON value valid under `schema` (see the supported subset above). `$ref: "#"` refers to
  // this schema's root.
  absl::StatusOr<Piece> JsonSchema(const nlohmann::ordered_json& schema);
  absl::StatusOr<Piece> JsonSchema(const nlohmann::json& schema);
  Piece AnyJsonValue();
  Piece AnyJsonObject();
  absl::StatusOr<Piece> Regex(absl::string_view regex);
  Piece Sequence(const std::vector<Piece>& pieces);
  Piece Choice(const std::vector<Piece>& pieces);  // empty: matches nothing
  Piece Optional(Piece piece);
  Piece OneOrMore(Piece piece);
  Piece ZeroOrMore(Piece piece);
  // Between `min` and `max` copies (max -1: unbounded).
  Piece Repeat(Piece piece, int32_t min, int32_t max);

  // The grammar whose language is `root`. InvalidArgument if it matches nothing, is left
  // recursive, or is too large (more than 65536 automaton states).
  absl::StatusOr<std::shared_ptr<const Grammar>> Build(Piece root);

 private:
  // `piece` as a rule call, so it is compiled once however often it is used.
  int32_t Shared(Piece piece, const char* name);
  internal::ExprPool pool_;
};

absl::StatusOr<std::shared_ptr<const Grammar>> GrammarFromJsonSchema(const nlohmann::json& schema);
absl::StatusOr<std::shared_ptr<const Grammar>> GrammarFromJsonSchema(
    const nlohmann::ordered_json& schema);
// Parses `schema_text` keeping its key order; a parse error is InvalidArgument.
absl::StatusOr<std::shared_ptr<const Grammar>> GrammarFromJsonSchemaText(absl::string_view schema_text);
// Any JSON object (response_format {"type": "json_object"}). Built once, shared.
std::shared_ptr<const Grammar> GrammarForAnyJsonObject();
absl::StatusOr<std::shared_ptr<const Grammar>> GrammarFromRegex(absl::string_view regex);
// Exactly one of `choices` (byte strings). InvalidArgument if the list is empty.
absl::StatusOr<std::shared_ptr<const Grammar>> GrammarFromChoices(const std::vector<std::string>& choices);

namespace internal {
// Lowering entry points (json_schema.cc, regex.cc); the results are expressions in `pool`.
absl::StatusOr<int32_t> LowerJsonSchema(ExprPool& pool, const nlohmann::ordered_json& schema);
int32_t LowerAnyJsonValue(ExprPool& pool);
int32_t LowerAnyJsonObject(ExprPool& pool);
absl::StatusOr<int32_t> LowerRegex(ExprPool& pool, absl::string_view regex);
}  // namespace internal

}  // namespace tailor::grammar

#endif  // TAILOR_SERVICE_GRAMMAR_GRAMMAR_H_
