// SentencePiece tokenizers with EncodeOptions (BOS/EOS on request, control-piece text parsed on
// request) and the accessors shared with tokenizer.json tokenizers (IsSpecial, TokenText,
// TokenToId, Decode with skip_special_tokens).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace tailor {
namespace {

using Ids = std::vector<int32_t>;
const std::string kShared = TAILOR_SHARED_DIR;

std::unique_ptr<Tokenizer> Load(const std::string& path, int32_t vocab) {
  auto tok = Tokenizer::Load(path, vocab);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(*tok) : nullptr;
}

Ids Concat(std::initializer_list<Ids> parts) {
  Ids out;
  for (const Ids& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST(SentencePieceOptions, SpecialTokensOnRequest) {
  auto tok = Load(kShared + "/models/tokenizers/llama2-tokenizer.model", 32000);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->kind(), Tokenizer::Kind::kSentencePiece);
  const int32_t bos = tok->bos_id(), eos = tok->eos_id();
  ASSERT_EQ(bos, 1);
  ASSERT_EQ(eos, 2);
  const std::string text = "<s>[INST] hi </s>";
  // Plain prompts keep sentencepiece's behaviour: "<s>" is text.
  EXPECT_EQ(tok->Encode(text), tok->Encode(text, {}));
  EXPECT_THAT(tok->Encode(text), ::testing::Not(::testing::Contains(bos)));
  // parse_special: control-piece text becomes the piece; the rest is encoded piece by piece.
  EXPECT_EQ(tok->Encode(text, {.parse_special = true}),
            Concat({{bos}, tok->Encode("[INST] hi "), {eos}}));
  EXPECT_EQ(tok->Encode("a<unk>b", {.parse_special = true}),
            Concat({tok->Encode("a"), {tok->unk_id()}, tok->Encode("b")}));
  // add_special_tokens: BOS (add_bos defaults to true), no EOS.
  EXPECT_TRUE(tok->add_bos());
  EXPECT_FALSE(tok->add_eos());
  EXPECT_EQ(tok->Encode("hi", {.add_special_tokens = true}), Concat({{bos}, tok->Encode("hi")}));
  EXPECT_EQ(tok->Encode("", {.add_special_tokens = true}), Ids{bos});
  tok->set_add_bos(false);
  tok->set_add_eos(true);
  EXPECT_EQ(tok->Encode("hi", {.add_special_tokens = true}), Concat({tok->Encode("hi"), {eos}}));
  // Control pieces vanish in decoding whatever skip_special_tokens says.
  const Ids ids = tok->Encode(text, {.parse_special = true});
  EXPECT_EQ(tok->Decode(ids, false), "[INST] hi ");
  EXPECT_EQ(tok->Decode(ids, true), tok->Decode(ids, false));
}

TEST(SentencePieceOptions, Accessors) {
  auto tok = Load(kShared + "/models/stories260K/tok512.model", 512);
  ASSERT_NE(tok, nullptr);
  EXPECT_TRUE(tok->IsSpecial(tok->bos_id()));
  EXPECT_TRUE(tok->IsSpecial(tok->unk_id()));
  const Ids once = tok->Encode("Once");
  ASSERT_EQ(once.size(), 1u);
  EXPECT_FALSE(tok->IsSpecial(once[0]));
  EXPECT_EQ(tok->Piece(once[0]), "▁Once");
  EXPECT_EQ(tok->TokenText(once[0]), " Once");
  EXPECT_EQ(tok->TokenToId("▁Once"), once[0]);
  EXPECT_EQ(tok->TokenToId("<s>"), tok->bos_id());
  EXPECT_EQ(tok->TokenText(tok->bos_id()), "<s>");
  const std::optional<int32_t> newline = tok->TokenToId("<0x0A>");
  ASSERT_TRUE(newline.has_value());
  EXPECT_EQ(tok->TokenText(*newline), "\n");
  EXPECT_EQ(tok->TokenText(-1), "");
  EXPECT_FALSE(tok->TokenToId("no such piece").has_value());
  // The SentencePiece stream ignores skip_special_tokens (control pieces never show).
  StreamingDetokenizer stream(*tok, {}, /*skip_special_tokens=*/true);
  EXPECT_EQ(stream.Push(tok->bos_id()), "");
  EXPECT_EQ(stream.Flush(), "");
}

TEST(SentencePieceOptions, GgufAddBosToken) {
  auto tok = Load(kShared + "/models/stories260K/stories260K.gguf", 512);
  ASSERT_NE(tok, nullptr);
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(tok->Encode("x", {.add_special_tokens = true}).front(), tok->bos_id());
}

}  // namespace
}  // namespace tailor
