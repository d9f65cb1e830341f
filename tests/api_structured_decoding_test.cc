// The session's grammar pieces without a server: the vocabulary from a real tokenizer (tok512),
// the dropped first space of SentencePiece detected per context, and the logits processor driving
// a simulated decode (random logits that favour space-led tokens) whose detokenized text, what a
// client receives, must match the grammar exactly and end with a forced EOS.
#include "api/structured_decoding.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tokenizer/tokenizer.h"

namespace tailor {
namespace {

std::unique_ptr<Tokenizer> Tok512() {
  auto tok = Tokenizer::Load(std::string(TAILOR_SHARED_DIR) + "/models/stories260K/tok512.model", 512);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? *std::move(tok) : nullptr;
}

// Decodes greedily over random logits under `processor`; returns the streamed text, or
// "<no eos>" when max_tokens passed without EOS.
std::string Decode(const Tokenizer& tok, const GrammarVocabulary& vocab, const std::vector<int32_t>& context,
                   LogitsProcessor processor, int32_t max_tokens, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 2.0f);
  StreamingDetokenizer detok(tok, context);
  std::vector<int32_t> generated;
  std::string text;
  for (int32_t step = 0; step < max_tokens; ++step) {
    std::vector<float> logits(static_cast<size_t>(tok.vocab_size()));
    for (float& x : logits) x = noise(rng);
    for (int32_t id : vocab.space_first) logits[id] += 6.0f;  // the model loves a leading space
    processor(context, generated, logits);
    const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (!std::isfinite(logits[next])) return "<all masked>";
    if (next == tok.eos_id()) return text + detok.Flush();
    generated.push_back(next);
    text += detok.Push(next);
  }
  return "<no eos>";
}

TEST(StructuredDecoding, FirstSpaceDroppedOnlyAfterAnEmptyContext) {
  auto tok = Tok512();
  ASSERT_NE(tok, nullptr);
  auto vocab = BuildGrammarVocabulary(*tok, {tok->eos_id()});
  ASSERT_GE(vocab->space_probe, 0);
  EXPECT_FALSE(vocab->space_first.empty());
  EXPECT_TRUE(DropsFirstSpace(*tok, *vocab, std::vector<int32_t>{tok->bos_id()}));
  std::vector<int32_t> ctx = tok->Encode("Once upon a time");
  ctx.insert(ctx.begin(), tok->bos_id());
  EXPECT_FALSE(DropsFirstSpace(*tok, *vocab, ctx));
}

// A regex whose space-led branch a first "▁word" token would satisfy for the grammar but not
// in the text the client gets (the detokenizer drops that space after BOS alone).
TEST(StructuredDecoding, ClientTextMatchesRegexAfterBosAlone) {
  auto tok = Tok512();
  ASSERT_NE(tok, nullptr);
  auto vocab = BuildGrammarVocabulary(*tok, {tok->eos_id()});
  auto g = grammar::GrammarFromRegex("( [a-z]+|[0-9]+)");
  ASSERT_TRUE(g.ok()) << g.status();
  const std::regex re("( [a-z]+|[0-9]+)");
  std::vector<int32_t> bos = {tok->bos_id()};
  std::vector<int32_t> story = tok->Encode("Once upon a time");
  story.insert(story.begin(), tok->bos_id());
  int spaced = 0;
  for (uint32_t seed = 0; seed < 40; ++seed) {
    for (const std::vector<int32_t>* ctx : {&bos, &story}) {
      const bool drop = DropsFirstSpace(*tok, *vocab, *ctx);
      const std::string text = Decode(*tok, *vocab, *ctx, MakeGrammarProcessor(*g, vocab, 12, drop), 12, seed);
      EXPECT_TRUE(std::regex_match(text, re)) << "seed " << seed << " context " << ctx->size() << ": '" << text << "'";
      spaced += !text.empty() && text[0] == ' ';
    }
  }
  EXPECT_GT(spaced, 0);  // after the story the space-led branch is taken
}

TEST(StructuredDecoding, ChoiceEndsWithForcedEos) {
  auto tok = Tok512();
  ASSERT_NE(tok, nullptr);
  auto vocab = BuildGrammarVocabulary(*tok, {tok->eos_id()});
  auto g = grammar::GrammarFromChoices({"Once", "yes", "no way"});
  ASSERT_TRUE(g.ok()) << g.status();
  std::vector<int32_t> bos = {tok->bos_id()};
  for (uint32_t seed = 0; seed < 30; ++seed) {
    const std::string text = Decode(*tok, *vocab, bos, MakeGrammarProcessor(*g, vocab, 20, true), 20, seed);
    EXPECT_TRUE(text == "Once" || text == "yes" || text == "no way") << text;
  }
}

TEST(StructuredDecoding, UnsupportedSchemaKeywordIs400NamingTheField) {
  auto req = service::ParseOpenAiRequest(service::Endpoint::kCompletions,
                                         R"({"prompt": "x", "guided_json": {"type": "string", "minLength": 3}})");
  ASSERT_TRUE(req.ok());
  auto g = CompileRequestGrammar(*req, service::ToolCallFormat::kHermes);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().param, "guided_json");
  EXPECT_NE(g.error().message.find("minLength"), std::string::npos) << g.error().message;
}

TEST(StructuredDecoding, GrammarCacheCompilesARecurringConstraintOnce) {
  auto tok = Tok512();
  ASSERT_NE(tok, nullptr);
  auto vocab = BuildGrammarVocabulary(*tok, {tok->eos_id()});
  int vocab_calls = 0;
  auto get_vocab = [&] {
    ++vocab_calls;
    return vocab;
  };
  auto parse = [](const std::string& body) {
    auto r = service::ParseOpenAiRequest(service::Endpoint::kCompletions, body);
    EXPECT_TRUE(r.ok());
    return *r;
  };
  GrammarCache cache(2);
  const auto a = parse(R"({"prompt": "x", "guided_json": {"type": "object", "properties": {"b": {"type": "integer"}, "a": {"type": "string"}}}})");
  const auto a_again = parse(R"({"prompt": "y", "temperature": 0.5, "guided_json": {"type": "object", "properties": {"b": {"type": "integer"}, "a": {"type": "string"}}}})");
  // The same properties in another order are another grammar (properties come in schema order).
  const auto a_swapped = parse(R"({"prompt": "x", "guided_json": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}})");
  auto first = cache.Get(a, service::ToolCallFormat::kHermes, get_vocab);
  ASSERT_TRUE(first.ok());
  ASSERT_NE(first->grammar, nullptr);
  ASSERT_NE(first->masks, nullptr);
  auto second = cache.Get(a_again, service::ToolCallFormat::kHermes, get_vocab);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->grammar, first->grammar);
  EXPECT_EQ(second->masks, first->masks);
  auto swapped = cache.Get(a_swapped, service::ToolCallFormat::kHermes, get_vocab);
  ASSERT_TRUE(swapped.ok());
  EXPECT_NE(swapped->grammar, first->grammar);
  EXPECT_TRUE(swapped->grammar->Matches(R"({"a":"q","b":1})"));
  EXPECT_FALSE(first->grammar->Matches(R"({"a":"q","b":1})"));
  EXPECT_EQ(vocab_calls, 2);
  // No constraint: an entry without a grammar. Capacity 2: the least recently used goes.
  auto none = cache.Get(parse(R"({"prompt": "x"})"), service::ToolCallFormat::kHermes, get_vocab);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->grammar, nullptr);
  EXPECT_EQ(cache.size(), 2u);
  auto recompiled = cache.Get(a, service::ToolCallFormat::kHermes, get_vocab);
  ASSERT_TRUE(recompiled.ok());
  EXPECT_NE(recompiled->grammar, first->grammar);  // evicted, compiled again
  // Errors are not cached: each request gets its 400.
  const auto bad = parse(R"({"prompt": "x", "guided_regex": "(a"})");
  EXPECT_FALSE(cache.Get(bad, service::ToolCallFormat::kHermes, get_vocab).ok());
  EXPECT_FALSE(cache.Get(bad, service::ToolCallFormat::kHermes, get_vocab).ok());
  // A masked decode through the cached masks still gives valid output.
  auto choice = cache.Get(parse(R"({"prompt": "x", "guided_choice": ["Once", "yes"]})"), service::ToolCallFormat::kHermes,
                          get_vocab);
  ASSERT_TRUE(choice.ok());
  std::vector<int32_t> bos = {tok->bos_id()};
  for (uint32_t seed = 0; seed < 10; ++seed) {
    const std::string text =
        Decode(*tok, *vocab, bos, MakeGrammarProcessor(choice->grammar, vocab, 20, true, choice->masks), 20, seed);
    EXPECT_TRUE(text == "Once" || text == "yes") << text;
  }
}

}  // namespace
}  // namespace tailor
