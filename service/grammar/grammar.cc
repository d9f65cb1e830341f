#include "service/grammar/grammar.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tailor::grammar {
namespace {

constexpr int32_t kMaxStates = 1 << 16;

// Runs `bytes` through a fresh parser; the final position (dead if a byte was rejected).
internal::Parser::Position Run(const Grammar& g, absl::string_view bytes) {
  internal::Parser parser(&g.automaton());
  internal::Parser::Position cur, next;
  parser.Start(&cur);
  for (char c : bytes) {
    if (!parser.Step(cur, static_cast<uint8_t>(c), &next)) return next;
    std::swap(cur, next);
  }
  return cur;
}

}  // namespace

bool Grammar::Matches(absl::string_view bytes) const { return Run(*this, bytes).complete; }

bool Grammar::IsPrefix(absl::string_view bytes) const { return !Run(*this, bytes).dead(); }

GrammarBuilder::Piece GrammarBuilder::Literal(absl::string_view bytes) {
  return {pool_.Literal(bytes)};
}

absl::StatusOr<GrammarBuilder::Piece> GrammarBuilder::JsonSchema(const nlohmann::ordered_json& schema) {
  auto e = internal::LowerJsonSchema(pool_, schema);
  if (!e.ok()) return e.status();
  return Piece{*e};
}

absl::StatusOr<GrammarBuilder::Piece> GrammarBuilder::JsonSchema(const nlohmann::json& schema) {
  nlohmann::ordered_json ordered;
  try {
    ordered = nlohmann::ordered_json::parse(schema.dump());
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("JSON schema: ", e.what()));
  }
  return JsonSchema(ordered);
}

GrammarBuilder::Piece GrammarBuilder::AnyJsonValue() { return {internal::LowerAnyJsonValue(pool_)}; }

GrammarBuilder::Piece GrammarBuilder::AnyJsonObject() {
  return {internal::LowerAnyJsonObject(pool_)};
}

absl::StatusOr<GrammarBuilder::Piece> GrammarBuilder::Regex(absl::string_view regex) {
  auto e = internal::LowerRegex(pool_, regex);
  if (!e.ok()) return e.status();
  return Piece{*e};
}

GrammarBuilder::Piece GrammarBuilder::Sequence(const std::vector<Piece>& pieces) {
  std::vector<int32_t> kids;
  for (const Piece& p : pieces) kids.push_back(p.expr);
  return {pool_.Seq(std::move(kids))};
}

GrammarBuilder::Piece GrammarBuilder::Choice(const std::vector<Piece>& pieces) {
  std::vector<int32_t> kids;
  for (const Piece& p : pieces) kids.push_back(p.expr);
  return {pool_.Alt(std::move(kids))};
}

GrammarBuilder::Piece GrammarBuilder::Optional(Piece piece) {
  return {pool_.Alt({piece.expr, pool_.Empty()})};
}

int32_t GrammarBuilder::Shared(Piece piece, const char* name) {
  const int32_t rule = pool_.NewRule(name);
  pool_.SetRuleBody(rule, piece.expr);
  return pool_.Call(rule);
}

GrammarBuilder::Piece GrammarBuilder::OneOrMore(Piece piece) { return Repeat(piece, 1, -1); }

GrammarBuilder::Piece GrammarBuilder::ZeroOrMore(Piece piece) { return Repeat(piece, 0, -1); }

GrammarBuilder::Piece GrammarBuilder::Repeat(Piece piece, int32_t min, int32_t max) {
  return {pool_.Repeat(Shared(piece, "repeated"), min, max)};
}

absl::StatusOr<std::shared_ptr<const Grammar>> GrammarBuilder::Build(Piece root) {
  const int32_t rule = pool_.NewRule("root");
  pool_.SetRuleBody(rule, root.expr);
  auto automaton = internal::Compile(pool_, rule, kMaxStates);
  if (!automaton.ok()) return automaton.status();
  return std::make_shared<const Grammar>(*std::move(automaton));
}

absl::StatusOr<std::shared_ptr<const Grammar>> GrammarFromJsonSchema(
    const nlohmann::ordered_json& schema) {
  GrammarBuilder b;
  auto piece = b.JsonSchema(schema);
  if (!piece.ok()) return piece.status();
  return b.Build(*piece);
}

absl::StatusOr<std::shared_ptr<const Grammar>> GrammarFromJsonSchema(const nlohmann::json& schema) {
  GrammarBuilder b;
  auto piece = b.JsonSchema(schema);
  if (!piece.ok()) return piece.status();
  return b.Build(*piece);
}

absl::StatusOr<std::shared_ptr<const Grammar>> GrammarFromJsonSchemaText(
    absl::string_view schema_text) {
  nlohmann::ordered_json schema;
  try {
    schema = nlohmann::ordered_json::parse(schema_text.begin(), schema_text.end());
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("JSON schema is not valid JSON: ", e.what()));
  }
  return GrammarFromJsonSchema(schema);
}

std::shared_ptr<const Grammar> GrammarForAnyJsonObject() {
  static const std::shared_ptr<const Grammar> kGrammar = [] {
    GrammarBuilder b;
    return *b.Build(b.AnyJsonObject());
  }();
  return kGrammar;
}

absl::StatusOr<std::shared_ptr<const Grammar>> GrammarFromRegex(absl::string_view regex) {
  GrammarBuilder b;
  auto piece = b.Regex(regex);
  if (!piece.ok()) return piece.status();
  return b.Build(*piece);
}

absl::StatusOr<std::shared_ptr<const Grammar>> GrammarFromChoices(
    const std::vector<std::string>& choices) {
  if (choices.empty()) return absl::InvalidArgumentError("guided_choice: the list of choices is empty");
  GrammarBuilder b;
  std::vector<GrammarBuilder::Piece> alts;
  for (const std::string& c : choices) alts.push_back(b.Literal(c));
  return b.Build(b.Choice(alts));
}

}  // namespace tailor::grammar
