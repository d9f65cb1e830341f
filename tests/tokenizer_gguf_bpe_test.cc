// GGUF vocabularies with tokenizer.ggml.model "gpt2" (tiny-llama3-BF16.gguf: the Llama 3
// vocabulary with pre "smaug-bpe"; tiny-qwen2-Q8_0.gguf: Qwen3's with pre "qwen2") against the
// tokenizer.json ids of ../shared/reference/tokenizer_vectors.json, and Serialize -> Load round
// trips of every kind of tokenizer. Each file is loaded once per process, and each test uses one.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode_text.h"

namespace tailor {
namespace {

using testing_util::TempDir;
using testing_util::WriteAll;

const std::string kShared = TAILOR_SHARED_DIR;
const std::string kModels = kShared + "/models";

struct Case {
  std::string text;
  std::vector<int32_t> ids;
  std::vector<int32_t> ids_with_special;
  std::string decoded;
};

std::vector<Case> Cases(const std::string& name) {
  std::ifstream in(kShared + "/reference/tokenizer_vectors.json");
  const nlohmann::json doc = nlohmann::json::parse(in);
  std::vector<Case> out;
  for (const auto& c : doc.at("tokenizers").at(name).at("cases")) {
    out.push_back(Case{c.at("text"), c.at("ids"), c.at("ids_with_special"), c.at("decoded")});
  }
  return out;
}

// Loaded once per process; the load time is printed.
const Tokenizer& Get(const std::string& path) {
  static auto* cache = new std::map<std::string, std::unique_ptr<Tokenizer>>();
  auto it = cache->find(path);
  if (it == cache->end()) {
    const auto start = std::chrono::steady_clock::now();
    auto tok = Tokenizer::Load(path, 0);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_TRUE(tok.ok()) << tok.status();
    if (!tok.ok()) std::abort();
    std::cerr << "[ load     ] " << path << ": " << (*tok)->vocab_size() << " tokens in " << s
              << " s\n";
    it = cache->emplace(path, std::move(*tok)).first;
  }
  return *it->second;
}

// Serializes `tok` into a directory, loads it back and checks that every case encodes (with and
// without special tokens) and decodes alike.
void CheckRoundTrip(const Tokenizer& tok, const std::vector<Case>& cases) {
  TempDir dir;
  const SerializedTokenizer s = tok.Serialize();
  WriteAll(dir / s.file_name, s.bytes);
  auto back = Tokenizer::Load(dir / s.file_name, tok.vocab_size());
  ASSERT_TRUE(back.ok()) << back.status();
  const Tokenizer& b = **back;
  EXPECT_EQ(b.kind(), tok.kind());
  EXPECT_EQ(b.vocab_size(), tok.vocab_size());
  EXPECT_EQ(b.bos_id(), tok.bos_id());
  EXPECT_EQ(b.eos_id(), tok.eos_id());
  EXPECT_EQ(b.add_bos(), tok.add_bos());
  for (const Case& c : cases) {
    const std::vector<int32_t> ids = tok.Encode(c.text);
    EXPECT_EQ(b.Encode(c.text), ids) << c.text;
    EXPECT_EQ(b.Encode(c.text, {.add_special_tokens = true, .parse_special = true}),
              tok.Encode(c.text, {.add_special_tokens = true, .parse_special = true}))
        << c.text;
    EXPECT_EQ(b.Decode(ids), tok.Decode(ids));
    EXPECT_EQ(b.Decode(ids, true), tok.Decode(ids, true));
  }
  const SerializedTokenizer again = b.Serialize();
  EXPECT_EQ(again.file_name, s.file_name);
  EXPECT_EQ(again.bytes, s.bytes) << "a loaded package tokenizer serializes to the same bytes";
}

TEST(GgufBpe, Llama3VocabularyMatchesTokenizerJson) {
  const Tokenizer& tok = Get(kModels + "/tiny-llama3-BF16.gguf");
  EXPECT_EQ(tok.kind(), Tokenizer::Kind::kHuggingFace);
  EXPECT_EQ(tok.vocab_size(), 128256);
  EXPECT_EQ(tok.bos_id(), 128000);
  EXPECT_EQ(tok.eos_id(), 128001);
  EXPECT_FALSE(tok.add_bos());  // smaug-bpe, no add_bos_token key: no BOS, as llama.cpp
  const std::vector<Case> cases = Cases("llama3");
  ASSERT_EQ(cases.size(), 71u);
  for (const Case& c : cases) {
    EXPECT_EQ(tok.Encode(c.text), c.ids) << nlohmann::json(c.text).dump();
    EXPECT_EQ(tok.Encode(c.text, {.add_special_tokens = true}), c.ids_with_special);
    EXPECT_EQ(tok.Decode(c.ids), c.decoded);
  }
  EXPECT_TRUE(tok.IsSpecial(128009));  // <|eot_id|>, a control token
  EXPECT_EQ(tok.Decode(tok.Encode("<|eot_id|>hi"), /*skip_special_tokens=*/true), "hi");
  CheckRoundTrip(tok, cases);
}

TEST(GgufBpe, Qwen2VocabularyMatchesTokenizerJsonButForNfc) {
  const Tokenizer& tok = Get(kModels + "/tiny-qwen2-Q8_0.gguf");
  EXPECT_EQ(tok.vocab_size(), 151936);  // the GGUF pads to the model's rows with [PADn]
  EXPECT_EQ(tok.bos_id(), 151643);
  EXPECT_EQ(tok.eos_id(), 151645);
  EXPECT_FALSE(tok.add_bos());  // add_bos_token false
  EXPECT_EQ(tok.Type(151669), PieceType::kNormal);  // [PAD151669], unused in the GGUF: vocab
  EXPECT_EQ(tok.Type(151667), PieceType::kUserDefined);  // <think>
  EXPECT_EQ(tok.Type(151644), PieceType::kControl);      // <|im_start|>
  const std::vector<Case> cases = Cases("qwen3");
  int matched = 0;
  for (const Case& c : cases) {
    const std::vector<int32_t> ids = tok.Encode(c.text);
    const std::string nfc = tokenizer_internal::NormalizeUnicode(c.text, tokenizer_internal::NormalForm::kNfc);
    if (nfc != c.text) {
      // GGUF carries no normalizer: the text is encoded as it is, not in NFC as Qwen's
      // tokenizer.json does; encoding its NFC form gives the tokenizer.json ids.
      EXPECT_NE(ids, c.ids) << nlohmann::json(c.text).dump();
      EXPECT_EQ(tok.Encode(nfc), c.ids) << nlohmann::json(c.text).dump();
      continue;
    }
    EXPECT_EQ(ids, c.ids) << nlohmann::json(c.text).dump();
    EXPECT_EQ(tok.Encode(c.text, {.add_special_tokens = true}), c.ids_with_special);
    EXPECT_EQ(tok.Decode(ids), c.decoded);
    matched += ids == c.ids;
  }
  EXPECT_EQ(matched, 70);  // all but the combining-mark case
  CheckRoundTrip(tok, cases);
}

TEST(RoundTrip, TokenizerJsonWithConfigNames) {
  const Tokenizer& tok = Get(kModels + "/tokenizers/llama3/tokenizer.json");
  EXPECT_EQ(tok.bos_id(), 128000);  // from tokenizer_config.json, stored in the package
  CheckRoundTrip(tok, Cases("llama3"));
}

TEST(RoundTrip, SentencePieceKeepsAddBos) {
  auto tok = Tokenizer::Load(kShared + "/models/stories260K/tok512.model", 512);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_TRUE((*tok)->add_bos());
  EXPECT_EQ((*tok)->Serialize().file_name, "tokenizer.model");
  EXPECT_EQ((*tok)->Serialize().bytes, (*tok)->SerializedModel());
  const std::vector<Case> cases = {{"Once upon a time", {}, {}, {}}, {"<s>hi</s> there", {}, {}, {}}};
  CheckRoundTrip(**tok, cases);
  (*tok)->set_add_bos(false);
  (*tok)->set_add_eos(true);
  EXPECT_EQ((*tok)->Encode("hi", {.add_special_tokens = true}).back(), (*tok)->eos_id());
  CheckRoundTrip(**tok, cases);
}

}  // namespace
}  // namespace tailor
