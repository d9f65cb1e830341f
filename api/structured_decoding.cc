#include "api/structured_decoding.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "service/chat_tools.h"
#include "service/grammar/grammar_matcher.h"

namespace tailor {
namespace {

using service::ApiError;
using service::StructuredOutput;
using OJson = nlohmann::ordered_json;

ApiError SchemaError(const std::string& param, const absl::Status& status) {
  return ApiError::InvalidRequest(param, absl::StrCat("'", param, "' is not supported: ", status.message()));
}

// tool_choice "required" / a function: one call (or, with parallel_tool_calls, one or more) of
// the allowed functions, in the template's format.
service::ApiResult<std::shared_ptr<const grammar::Grammar>> ToolCallGrammar(const service::OpenAiRequest& request,
                                                                            service::ToolCallFormat format) {
  const service::ToolCallSyntax syntax = service::ToolCallSyntaxFor(format);
  grammar::GrammarBuilder b;
  std::vector<grammar::GrammarBuilder::Piece> calls;
  for (size_t i = 0; i < request.tools.size(); ++i) {
    const OJson& fn = request.tools[i]["function"];
    const std::string name = fn["name"].get<std::string>();
    if (request.tool_choice.mode == service::ToolChoice::Mode::kFunction && name != request.tool_choice.function) {
      continue;
    }
    OJson params = fn.contains("parameters") && fn["parameters"].is_object() ? fn["parameters"]
                                                                              : OJson{{"type", "object"}};
    OJson schema = {{"type", "object"},
                    {"properties", {{"name", {{"const", name}}}, {syntax.arguments_key, params}}},
                    {"required", OJson::array({"name", syntax.arguments_key})},
                    {"additionalProperties", false}};
    absl::StatusOr<grammar::GrammarBuilder::Piece> object = b.JsonSchema(schema);
    if (!object.ok()) return SchemaError(absl::StrCat("tools[", i, "].function.parameters"), object.status());
    calls.push_back(b.Sequence({b.Literal(syntax.prefix), *object, b.Literal(syntax.suffix)}));
  }
  grammar::GrammarBuilder::Piece call = b.Choice(calls);
  grammar::GrammarBuilder::Piece root =
      request.parallel_tool_calls ? b.Sequence({call, b.ZeroOrMore(b.Sequence({b.Literal(syntax.separator), call}))})
                                  : call;
  absl::StatusOr<std::shared_ptr<const grammar::Grammar>> g = b.Build(root);
  if (!g.ok()) return SchemaError("tools", g.status());
  return *std::move(g);
}

}  // namespace

service::ApiResult<std::shared_ptr<const grammar::Grammar>> CompileRequestGrammar(
    const service::OpenAiRequest& request, service::ToolCallFormat format) {
  const StructuredOutput& s = request.structured;
  absl::StatusOr<std::shared_ptr<const grammar::Grammar>> g;
  switch (s.kind) {
    case StructuredOutput::Kind::kNone: {
      const auto mode = request.tool_choice.mode;
      const bool forced = mode == service::ToolChoice::Mode::kRequired || mode == service::ToolChoice::Mode::kFunction;
      if (request.endpoint == service::Endpoint::kChatCompletions && forced && request.tools.is_array()) {
        return ToolCallGrammar(request, format);
      }
      return std::shared_ptr<const grammar::Grammar>();
    }
    case StructuredOutput::Kind::kJsonObject:
      return grammar::GrammarForAnyJsonObject();
    case StructuredOutput::Kind::kJsonSchema:
      g = grammar::GrammarFromJsonSchema(s.schema);
      break;
    case StructuredOutput::Kind::kRegex:
      g = grammar::GrammarFromRegex(s.regex);
      break;
    case StructuredOutput::Kind::kChoice:
      g = grammar::GrammarFromChoices(s.choices);
      break;
  }
  if (!g.ok()) return SchemaError(s.param, g.status());
  return *std::move(g);
}

std::shared_ptr<const GrammarVocabulary> BuildGrammarVocabulary(const Tokenizer& tokenizer,
                                                                std::vector<int32_t> eos_ids) {
  auto v = std::make_shared<GrammarVocabulary>();
  const int32_t n = tokenizer.vocab_size();
  std::vector<std::string> bytes(static_cast<size_t>(n));
  for (int32_t id = 0; id < n; ++id) {
    const bool eos = std::find(eos_ids.begin(), eos_ids.end(), id) != eos_ids.end();
    const PieceType type = tokenizer.Type(id);
    if (eos || tokenizer.IsSpecial(id) || type == PieceType::kControl || type == PieceType::kUnknown ||
        type == PieceType::kUnused) {
      continue;  // "": never allowed (EOS is allowed by id, not by its bytes)
    }
    bytes[id] = tokenizer.TokenText(id);
    if (!bytes[id].empty() && bytes[id][0] == ' ') {
      v->space_first.push_back(id);
      // The probe: a space and a letter, which every tokenizer decodes as such mid-text.
      if (v->space_probe < 0 && bytes[id].size() >= 2 && absl::ascii_isalpha(static_cast<unsigned char>(bytes[id][1]))) {
        v->space_probe = id;
      }
    }
  }
  v->eos_ids = eos_ids;
  v->tokens = grammar::TokenVocabulary::Build(std::move(bytes), std::move(eos_ids));
  return v;
}

bool DropsFirstSpace(const Tokenizer& tokenizer, const GrammarVocabulary& vocab, std::span<const int32_t> context) {
  if (vocab.space_probe < 0) return false;
  StreamingDetokenizer detok(tokenizer, context);
  std::string text = detok.Push(vocab.space_probe);
  text += detok.Flush();
  return text.empty() || text[0] != ' ';
}

namespace {

// What identifies a request's constraint: everything CompileRequestGrammar reads.
std::string ConstraintKey(const service::OpenAiRequest& request, service::ToolCallFormat format) {
  const StructuredOutput& s = request.structured;
  OJson key = {{"kind", static_cast<int>(s.kind)}};
  switch (s.kind) {
    case StructuredOutput::Kind::kNone:
      key["endpoint"] = static_cast<int>(request.endpoint);
      key["tools"] = request.tools;
      key["tool_choice"] = {static_cast<int>(request.tool_choice.mode), request.tool_choice.function};
      key["parallel"] = request.parallel_tool_calls;
      key["format"] = static_cast<int>(format);
      break;
    case StructuredOutput::Kind::kJsonObject:
      break;
    case StructuredOutput::Kind::kJsonSchema:
      key["schema"] = s.schema;
      break;
    case StructuredOutput::Kind::kRegex:
      key["regex"] = s.regex;
      break;
    case StructuredOutput::Kind::kChoice:
      key["choices"] = s.choices;
      break;
  }
  return key.dump(-1, ' ', false, OJson::error_handler_t::replace);
}

}  // namespace

service::ApiResult<GrammarCache::Entry> GrammarCache::Get(
    const service::OpenAiRequest& request, service::ToolCallFormat format,
    const std::function<std::shared_ptr<const GrammarVocabulary>()>& vocab) {
  const std::string key = ConstraintKey(request, format);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->first == key) {
        entries_.splice(entries_.begin(), entries_, it);
        return it->second;
      }
    }
  }
  // Compiled outside the lock: a large schema must not hold up other requests.
  auto compiled = CompileRequestGrammar(request, format);
  if (!compiled.ok()) return compiled.error();
  Entry entry;
  entry.grammar = *compiled;
  if (entry.grammar != nullptr) entry.masks = grammar::TokenMaskCache::Get(entry.grammar, vocab()->tokens);
  std::lock_guard<std::mutex> lock(mu_);
  entries_.emplace_front(key, entry);
  while (entries_.size() > capacity_) entries_.pop_back();
  return entry;
}

size_t GrammarCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

LogitsProcessor MakeGrammarProcessor(std::shared_ptr<const grammar::Grammar> g,
                                     std::shared_ptr<const GrammarVocabulary> vocab, int32_t max_tokens,
                                     bool drop_first_space, std::shared_ptr<grammar::TokenMaskCache> masks) {
  struct State {
    grammar::GrammarMatcher matcher;
    std::shared_ptr<const GrammarVocabulary> vocab;
    size_t consumed = 0;  // generated tokens the matcher has accepted
    bool broken = false;  // a token the grammar rejected was generated (cannot happen under the mask)
  };
  auto state = std::make_shared<State>(State{
      masks != nullptr ? grammar::GrammarMatcher(std::move(g), vocab->tokens, std::move(masks))
                       : grammar::GrammarMatcher(std::move(g), vocab->tokens),
      vocab, 0, false});
  return [state, max_tokens, drop_first_space](std::span<const int32_t>, std::span<const int32_t> generated,
                                               std::span<float> logits) {
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();
    for (; state->consumed < generated.size(); ++state->consumed) {
      if (!state->broken && !state->matcher.Accept(generated[state->consumed]).ok()) state->broken = true;
    }
    if (state->broken || !state->matcher.CanContinue()) {
      // Complete and nothing may follow (or lost): end the choice with EOS.
      std::vector<float> eos;
      for (int32_t id : state->vocab->eos_ids) {
        eos.push_back(id < static_cast<int32_t>(logits.size()) ? logits[id] : 0.0f);
      }
      std::fill(logits.begin(), logits.end(), kNegInf);
      for (size_t i = 0; i < eos.size(); ++i) {
        const int32_t id = state->vocab->eos_ids[i];
        if (id < static_cast<int32_t>(logits.size())) logits[id] = std::isfinite(eos[i]) ? eos[i] : 0.0f;
      }
      return;
    }
    const int32_t remaining = std::max<int32_t>(1, max_tokens - static_cast<int32_t>(generated.size()));
    state->matcher.ApplyMask(logits, remaining);
    if (generated.empty() && drop_first_space) {
      std::vector<float> saved = std::vector<float>(logits.begin(), logits.end());
      for (int32_t id : state->vocab->space_first) {
        if (id < static_cast<int32_t>(logits.size())) logits[id] = kNegInf;
      }
      // Keep the grammar's mask if only space-led tokens were allowed (the output then cannot
      // match what the client sees whatever is chosen; better a valid grammar walk).
      if (std::none_of(logits.begin(), logits.end(), [](float x) { return std::isfinite(x); })) {
        std::copy(saved.begin(), saved.end(), logits.begin());
      }
    }
  };
}

}  // namespace tailor
