// The pieces of the tokenizer.json pipeline on small hand-made documents: SentencePiece-style
// BPE (Llama 2 / Mistral layout: Prepend + Replace normalizers, byte fallback, the
// Replace/ByteFallback/Fuse/Strip decoder), Metaspace, added tokens (lstrip, rstrip,
// single_word, normalized), post-processors, no decoder; and the errors for documents tailor
// cannot run, each naming the file and the field.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "tests/test_util.h"
#include "tokenizer/tokenizer.h"

namespace tailor {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;
using Ids = std::vector<int32_t>;

// <unk> <s> </s> ▁ h i ▁h ▁hi, then the 256 byte tokens (ids 8..263), merges ▁+h, ▁h+i.
Json SpStyleDocument() {
  Json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}, {"▁", 3},
                {"h", 4},     {"i", 5},   {"▁h", 6},   {"▁hi", 7}};
  for (int b = 0; b < 256; ++b) vocab[absl::StrFormat("<0x%02X>", b)] = 8 + b;
  Json added = Json::array();
  for (int id = 0; id < 3; ++id) {
    const char* names[] = {"<unk>", "<s>", "</s>"};
    added.push_back({{"id", id}, {"content", names[id]}, {"special", true}, {"normalized", false},
                     {"lstrip", false}, {"rstrip", false}, {"single_word", false}});
  }
  return Json{
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", "▁"}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}}}}},
      {"pre_tokenizer", nullptr},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair", Json::array()},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model",
       {{"type", "BPE"},
        {"unk_token", "<unk>"},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"vocab", vocab},
        {"merges", {"▁ h", {"▁h", "i"}}}}}};  // both forms of merges
}

std::unique_ptr<Tokenizer> Make(const Json& doc) {
  auto tok = Tokenizer::FromTokenizerJson(doc.dump(), "test.json");
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(*tok) : nullptr;
}

// Every split of `ids` streams to the whole decode.
void ExpectStreams(const Tokenizer& tok, const Ids& ids, bool skip) {
  const std::string whole = tok.Decode(ids, skip);
  for (size_t k = 0; k <= ids.size(); ++k) {
    const std::span<const int32_t> all(ids);
    const std::string head = tok.Decode(all.first(k), skip);
    if (!whole.starts_with(head)) continue;
    StreamingDetokenizer stream(tok, all.first(k), skip);
    std::string out = head;
    for (int32_t id : all.subspan(k)) out += stream.Push(id);
    out += stream.Flush();
    EXPECT_EQ(out, whole) << "split at " << k;
  }
}

TEST(HfPipeline, SentencePieceStyleBpe) {
  auto tok = Make(SpStyleDocument());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("hi hi"), (Ids{7, 7}));
  EXPECT_EQ(tok->Encode("hi hi", {.add_special_tokens = true}), (Ids{1, 7, 7}));
  EXPECT_EQ(tok->Encode(""), Ids{});
  EXPECT_EQ(tok->Encode("", {.add_special_tokens = true}), Ids{1});
  EXPECT_EQ(tok->Decode(Ids{7, 7}), "hi hi");
  EXPECT_EQ(tok->Decode(Ids{1, 7, 7}), "<s> hi hi");
  EXPECT_EQ(tok->Decode(Ids{1, 7, 7}, true), "hi hi");
  // é is not in the vocabulary: its two UTF-8 bytes as byte tokens.
  EXPECT_EQ(tok->Encode("hé"), (Ids{6, 8 + 0xC3, 8 + 0xA9}));
  EXPECT_EQ(tok->Decode(Ids{6, 8 + 0xC3, 8 + 0xA9}), "hé");
  EXPECT_EQ(tok->Decode(Ids{6, 8 + 0xC3}), "h\uFFFD");
  // Special-token text inside the text is that token; each side is normalized on its own
  // (Prepend puts "▁" before "hi" after "<s>" too), as HF does.
  EXPECT_EQ(tok->Encode("hi<s>hi"), (Ids{7, 1, 7}));
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(tok->unk_id(), 0);
  EXPECT_EQ(tok->Type(8 + 0x41), PieceType::kByte);
  EXPECT_EQ(tok->TokenText(7), " hi");
  EXPECT_EQ(tok->TokenText(8 + 0x41), "A");
  for (bool skip : {false, true}) {
    ExpectStreams(*tok, {1, 7, 6, 8 + 0xC3, 8 + 0xA9, 7, 8 + 0xE4, 8 + 0xB8, 8 + 0xAD}, skip);
    ExpectStreams(*tok, {8 + 0xE4, 8 + 0xB8, 7, 8 + 0xFF, 8 + 0x41, 1, 3, 3}, skip);
  }
  // Strip drops one leading space of the whole text, across a skipped special token.
  StreamingDetokenizer stream(*tok, {}, /*skip_special_tokens=*/true);
  EXPECT_EQ(stream.Push(1), "");
  EXPECT_EQ(stream.Push(7), "hi");
  EXPECT_EQ(stream.Push(7), " hi");
}

TEST(HfPipeline, UnknownCharactersWithoutByteFallbackFuse) {
  Json doc = SpStyleDocument();
  doc["model"]["byte_fallback"] = false;
  auto tok = Make(doc);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("hxyi"), (Ids{6, 0, 5}));  // x and y: one fused <unk>
  doc["model"]["fuse_unk"] = false;
  auto unfused = Make(doc);
  ASSERT_NE(unfused, nullptr);
  EXPECT_EQ(unfused->Encode("hxyi"), (Ids{6, 0, 0, 5}));
  doc["model"].erase("unk_token");
  auto dropped = Make(doc);
  ASSERT_NE(dropped, nullptr);
  EXPECT_EQ(dropped->Encode("hxyi"), Ids{7});  // HF drops them: "▁h" and "i" then merge
}

TEST(HfPipeline, MetaspacePrependSchemes) {
  Json doc = SpStyleDocument();
  doc["normalizer"] = nullptr;
  doc["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"},
                          {"prepend_scheme", "first"}, {"split", false}};
  doc["decoder"] = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"},
                    {"split", false}};
  auto first = Make(doc);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->Encode("hi hi"), (Ids{7, 7}));
  EXPECT_EQ(first->Encode("hi<s>hi"), (Ids{7, 1, 4, 5}));  // only the start gets "▁"
  EXPECT_EQ(first->Decode(Ids{7, 7}), "hi hi");
  ExpectStreams(*first, {7, 7, 1, 4, 7}, false);
  doc["pre_tokenizer"]["prepend_scheme"] = "always";
  doc["pre_tokenizer"]["split"] = true;
  auto always = Make(doc);
  ASSERT_NE(always, nullptr);
  EXPECT_EQ(always->Encode("hi<s>hi"), (Ids{7, 1, 7}));
}

TEST(HfPipeline, AddedTokenOptions) {
  Json doc = SpStyleDocument();
  doc["model"]["vocab"]["<mask>"] = 264;
  doc["model"]["vocab"]["xx"] = 265;
  doc["model"]["vocab"]["é"] = 266;
  doc["added_tokens"].push_back({{"id", 264}, {"content", "<mask>"}, {"special", true},
                                 {"lstrip", true}, {"rstrip", true}, {"normalized", false}});
  doc["added_tokens"].push_back({{"id", 265}, {"content", "xx"}, {"single_word", true},
                                 {"normalized", false}});
  auto tok = Make(doc);
  ASSERT_NE(tok, nullptr);
  // lstrip/rstrip take the spaces around <mask>.
  EXPECT_EQ(tok->Encode("hi <mask> hi"), (Ids{7, 264, 7}));
  // single_word: "xx" inside "hxx" is not the token; the lone one is.
  const Ids ids = tok->Encode("hxx xx");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 265), 1);
  EXPECT_EQ(ids.back(), 265);
  EXPECT_EQ(tok->Type(265), PieceType::kUserDefined);
  EXPECT_FALSE(tok->IsSpecial(265));

  // A normalized added token is matched after normalization (here NFC).
  Json nfc = SpStyleDocument();
  nfc["normalizer"] = {{"type", "NFC"}};
  nfc["model"]["vocab"]["é"] = 264;
  nfc["added_tokens"].push_back({{"id", 264}, {"content", "é"}, {"normalized", true}});
  auto n = Make(nfc);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->Encode("e\u0301"), Ids{264});
  nfc["added_tokens"].back()["normalized"] = false;
  nfc["normalizer"] = nullptr;
  auto raw = Make(nfc);
  ASSERT_NE(raw, nullptr);
  EXPECT_NE(raw->Encode("e\u0301"), Ids{264});
}

TEST(HfPipeline, PostProcessorsAndNoDecoder) {
  Json doc = SpStyleDocument();
  doc["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       {{{"type", "ByteLevel"}, {"trim_offsets", false}},
        {{"type", "RobertaProcessing"}, {"sep", {"</s>", 2}}, {"cls", {"<s>", 1}}}}}};
  doc.erase("decoder");
  auto tok = Make(doc);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("hi", {.add_special_tokens = true}), (Ids{1, 7, 2}));
  EXPECT_TRUE(tok->add_eos() || tok->eos_id() < 0);
  EXPECT_EQ(tok->Decode(Ids{7, 6, 5}), "▁hi ▁h i");  // HF joins tokens with spaces
  ExpectStreams(*tok, {7, 6, 5, 1}, false);
}

TEST(HfPipeline, RegexSplitBehaviors) {
  Json doc = SpStyleDocument();
  doc["normalizer"] = nullptr;
  doc["model"]["vocab"]["hh"] = 264;
  doc["model"]["merges"].push_back("h h");
  doc["pre_tokenizer"] = {{"type", "Split"},
                          {"pattern", {{"Regex", "\\p{Lu}"}}},
                          {"behavior", "Removed"},
                          {"invert", false}};
  auto removed = Make(doc);
  ASSERT_NE(removed, nullptr);
  EXPECT_EQ(removed->Encode("hAhBi"), (Ids{4, 4, 5}));  // upper-case letters (\p{Lu}) removed
  doc["pre_tokenizer"]["behavior"] = "MergedWithPrevious";
  doc["pre_tokenizer"]["pattern"] = {{"String", "i"}};
  auto merged = Make(doc);
  ASSERT_NE(merged, nullptr);
  EXPECT_EQ(merged->Encode("hhihh"), (Ids{264, 5, 264}));  // "hhi" | "hh"
}

// Errors: each names the file and the field, and lists what is supported.
void ExpectError(const Json& doc, const std::vector<std::string>& parts) {
  auto tok = Tokenizer::FromTokenizerJson(doc.dump(), "bad.json");
  ASSERT_FALSE(tok.ok()) << "loaded, but an error was expected: " << doc.dump().substr(0, 200);
  for (const std::string& p : parts) {
    EXPECT_THAT(std::string(tok.status().message()), HasSubstr(p));
  }
}

TEST(HfPipeline, UnsupportedDocumentsAreRefused) {
  Json doc = SpStyleDocument();
  doc["model"]["type"] = "WordPiece";
  ExpectError(doc, {"bad.json", "field 'model.type'", "\"WordPiece\" is not supported",
                    "supported: BPE"});
  doc["model"]["type"] = "Unigram";
  ExpectError(doc, {"field 'model.type'", "\"Unigram\""});
  doc = SpStyleDocument();
  doc["normalizer"]["normalizers"][1]["type"] = "Lowercase";
  ExpectError(doc, {"bad.json", "field 'normalizer.normalizers[1].type'", "\"Lowercase\"",
                    "supported: NFC, NFD, NFKC, NFKD, Replace, Prepend, Strip, Sequence"});
  doc = SpStyleDocument();
  doc["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers", {{{"type", "Digits"}}, {{"type", "BertPreTokenizer"}}}}};
  ExpectError(doc, {"field 'pre_tokenizer.pretokenizers[1].type'", "\"BertPreTokenizer\"",
                    "supported: Split, ByteLevel, Metaspace"});
  doc = SpStyleDocument();
  doc["decoder"]["decoders"][0]["type"] = "WordPiece";
  ExpectError(doc, {"field 'decoder.decoders[0].type'", "\"WordPiece\"",
                    "supported: ByteLevel, ByteFallback"});
  doc = SpStyleDocument();
  doc["post_processor"]["type"] = "Whatever";
  ExpectError(doc, {"field 'post_processor.type'", "supported: TemplateProcessing"});
  doc = SpStyleDocument();
  doc["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(\\p{L}"}}},
                          {"behavior", "Isolated"}};
  ExpectError(doc, {"field 'pre_tokenizer.pattern.Regex'", "does not compile", "PCRE2"});
  doc["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Odd"}};
  ExpectError(doc, {"field 'pre_tokenizer.behavior'", "\"Odd\"", "Removed, Isolated"});
  doc = SpStyleDocument();
  doc["decoder"] = {{"type", "Sequence"}, {"decoders", {{{"type", "Fuse"}}, {{"type", "ByteFallback"}}}}};
  ExpectError(doc, {"field 'decoder.decoders[1]'", "after one that fuses tokens"});
  doc = SpStyleDocument();
  doc["model"]["dropout"] = 0.1;
  ExpectError(doc, {"field 'model.dropout'", "not supported"});
  doc = SpStyleDocument();
  Json nested = {{"type", "NFC"}};
  for (int i = 0; i < 100; ++i) nested = {{"type", "Sequence"}, {"normalizers", {nested}}};
  doc["normalizer"] = nested;  // would exhaust the stack if nested deep enough
  ExpectError(doc, {"bad.json", "nested more than 64 levels deep"});
  doc = SpStyleDocument();
  doc["model"]["continuing_subword_prefix"] = "##";
  ExpectError(doc, {"field 'model.continuing_subword_prefix'", "\"##\" is not supported"});
}

TEST(HfPipeline, MalformedDocumentsAreRefused) {
  ExpectError(Json::array(), {"bad.json", "expected a JSON object"});
  Json doc = SpStyleDocument();
  doc["model"].erase("vocab");
  ExpectError(doc, {"bad.json", "field 'model'", "'vocab' is missing"});
  doc = SpStyleDocument();
  doc.erase("model");
  ExpectError(doc, {"the document", "'model' is missing"});
  doc = SpStyleDocument();
  doc["model"]["merges"].push_back("▁ zz");
  ExpectError(doc, {"field 'model.merges[2]'", "token \"zz\" is not in model.vocab"});
  doc = SpStyleDocument();
  doc["model"]["merges"].push_back("i h");
  ExpectError(doc, {"field 'model.merges[2]'", "the merged token \"ih\" is not in model.vocab"});
  doc = SpStyleDocument();
  doc["model"]["merges"].push_back("a b c");
  ExpectError(doc, {"field 'model.merges[2]'", "not two tokens separated by one space"});
  doc = SpStyleDocument();
  doc["model"]["merges"].push_back(42);
  ExpectError(doc, {"field 'model.merges[2]'", "expected \"a b\" or [\"a\", \"b\"]"});
  doc = SpStyleDocument();
  doc["model"]["vocab"]["huge"] = 4000000000LL;  // must not allocate 4 billion entries
  ExpectError(doc, {"field 'model.vocab'", "token \"huge\" has id 4000000000"});
  doc = SpStyleDocument();
  doc["model"]["vocab"]["neg"] = -1;
  ExpectError(doc, {"field 'model.vocab'", "token \"neg\" has id -1"});
  doc = SpStyleDocument();
  doc["model"]["vocab"]["twin"] = 5;
  ExpectError(doc, {"field 'model.vocab'", "id 5 belongs to both"});
  doc = SpStyleDocument();
  doc["model"]["vocab"]["str"] = "x";
  ExpectError(doc, {"field 'model.vocab'", "the id of token \"str\" is not an integer"});
  doc = SpStyleDocument();
  doc["added_tokens"][1]["id"] = 1 << 30;
  ExpectError(doc, {"field 'added_tokens[1].id'", "out of range"});
  doc = SpStyleDocument();
  doc["added_tokens"][1]["id"] = 0;
  ExpectError(doc, {"field 'added_tokens[1].id'", "also the id of added_tokens[0]"});
  doc = SpStyleDocument();
  doc["added_tokens"][1]["special"] = "yes";
  ExpectError(doc, {"field 'added_tokens[1].special'", "expected true or false"});
  doc = SpStyleDocument();
  doc["model"]["unk_token"] = "<nope>";
  ExpectError(doc, {"field 'model.unk_token'", "\"<nope>\" is not in model.vocab"});
  doc = SpStyleDocument();
  doc["post_processor"]["special_tokens"]["<s>"]["ids"] = {99999};
  ExpectError(doc, {"field 'post_processor.special_tokens.<s>.ids[0]'", "id 99999 is not a token"});

  for (const char* text : {"{", "{\"model\": [1,}", ""}) {
    auto tok = Tokenizer::FromTokenizerJson(text, "broken.json");
    ASSERT_FALSE(tok.ok());
    EXPECT_THAT(std::string(tok.status().message()), HasSubstr("broken.json: not a valid tokenizer.json"));
  }
}

TEST(HfPipeline, LoadDetectsTokenizerJsonByNameAndContent) {
  testing_util::TempDir dir;
  const std::string text = SpStyleDocument().dump();
  testing_util::WriteAll(dir / "tokenizer.json", text);
  testing_util::WriteAll(dir / "no_extension", "\n  " + text);
  for (const char* name : {"tokenizer.json", "no_extension"}) {
    auto tok = Tokenizer::Load(dir / name, 264);
    ASSERT_TRUE(tok.ok()) << tok.status();
    EXPECT_EQ((*tok)->Encode("hi"), Ids{7});
  }
  auto small = Tokenizer::Load(dir / "tokenizer.json", 100);
  ASSERT_FALSE(small.ok());
  EXPECT_THAT(std::string(small.status().message()), HasSubstr("has 264 pieces"));
  testing_util::WriteAll(dir / "cut.json", text.substr(0, text.size() / 2));
  auto cut = Tokenizer::Load(dir / "cut.json", 0);
  ASSERT_FALSE(cut.ok());
  EXPECT_THAT(std::string(cut.status().message()), HasSubstr("cut.json: not a valid tokenizer.json"));
  // A malformed tokenizer_config.json beside it is named.
  testing_util::WriteAll(dir / "tokenizer_config.json", "{\"bos_token\": 3}");
  auto config = Tokenizer::Load(dir / "tokenizer.json", 0);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("tokenizer_config.json: field 'bos_token'"));
  testing_util::WriteAll(dir / "tokenizer_config.json",
                         "{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"</s>\"}");
  auto named = Tokenizer::Load(dir / "tokenizer.json", 0);
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ((*named)->bos_id(), 1);
  EXPECT_EQ((*named)->eos_id(), 2);
}

}  // namespace
}  // namespace tailor
