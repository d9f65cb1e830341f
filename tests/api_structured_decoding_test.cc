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

}  // namespace
}  // namespace tailor
