// Hugging Face tokenizer.json tokenizers (Llama 3, Qwen3, Gemma 3) against
// ../shared/reference/tokenizer_vectors.json: ids with and without special tokens, token
// strings, decodes keeping and skipping special tokens, and streaming decodes at every split.
// Each tokenizer is loaded once per process, and each test uses one tokenizer, as ctest runs every
// test in a process of its own.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode_text.h"

namespace tailor {
namespace {

const std::string kShared = TAILOR_SHARED_DIR;

struct Case {
  std::string text;
  std::vector<int32_t> ids, ids_with_special;
  std::vector<std::string> tokens;
  std::string decoded, decoded_skip_special;
};

const std::map<std::string, std::vector<Case>>& Vectors() {
  static const auto* vectors = [] {
    auto* out = new std::map<std::string, std::vector<Case>>();
    std::ifstream in(kShared + "/reference/tokenizer_vectors.json");
    const nlohmann::json doc = nlohmann::json::parse(in);
    for (const auto& [name, tok] : doc.at("tokenizers").items()) {
      for (const auto& c : tok.at("cases")) {
        (*out)[name].push_back(Case{c.at("text"), c.at("ids"), c.at("ids_with_special"),
                                    c.at("tokens"), c.at("decoded"), c.at("decoded_skip_special")});
      }
    }
    return out;
  }();
  return *vectors;
}

// Loaded once per binary; the load time is printed.
const Tokenizer& Get(const std::string& name) {
  static auto* cache = new std::map<std::string, std::unique_ptr<Tokenizer>>();
  auto it = cache->find(name);
  if (it == cache->end()) {
    const std::string path = kShared + "/models/tokenizers/" + name + "/tokenizer.json";
    const auto start = std::chrono::steady_clock::now();
    auto tok = Tokenizer::Load(path, 0);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_TRUE(tok.ok()) << tok.status();
    if (!tok.ok()) std::abort();
    std::cerr << "[ load     ] " << name << "/tokenizer.json: " << (*tok)->vocab_size()
              << " tokens in " << s << " s\n";
    it = cache->emplace(name, std::move(*tok)).first;
  }
  return *it->second;
}

void CheckCases(const std::string& name) {
  const Tokenizer& tok = Get(name);
  const std::vector<Case>& cases = Vectors().at(name);
  ASSERT_EQ(cases.size(), 71u);
  EXPECT_EQ(tok.kind(), Tokenizer::Kind::kHuggingFace);
  size_t bytes = 0;
  const auto start = std::chrono::steady_clock::now();
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "text: " << nlohmann::json(c.text).dump());
    bytes += c.text.size();
    EXPECT_EQ(tok.Encode(c.text), c.ids);
    EXPECT_EQ(tok.Encode(c.text, {.add_special_tokens = true}), c.ids_with_special);
    std::vector<std::string> pieces;
    for (int32_t id : c.ids) pieces.emplace_back(tok.Piece(id));
    EXPECT_EQ(pieces, c.tokens);
    for (size_t i = 0; i < c.ids.size(); ++i) {
      EXPECT_EQ(tok.PieceToId(c.tokens[i]), c.ids[i]) << c.tokens[i];
    }
    EXPECT_EQ(tok.Decode(c.ids), c.decoded);
    EXPECT_EQ(tok.Decode(c.ids_with_special, false),
              tok.Decode(c.ids_with_special.size() > c.ids.size() ? c.ids_with_special : c.ids))
        << "decode keeps the BOS the post-processor adds";
    EXPECT_EQ(tok.Decode(c.ids, /*skip_special_tokens=*/true), c.decoded_skip_special);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "[ encode   ] " << name << ": 71 cases (" << bytes << " bytes) encoded twice "
            << "and decoded in " << s * 1e3 << " ms\n";
}

// Streams `ids` after `context` and returns what came out; every piece must be whole UTF-8.
std::string Stream(const Tokenizer& tok, std::span<const int32_t> context,
                   std::span<const int32_t> ids, bool skip) {
  StreamingDetokenizer stream(tok, context, skip);
  std::string out;
  for (int32_t id : ids) {
    const std::string piece = stream.Push(id);
    EXPECT_TRUE(tokenizer_internal::IsValidUtf8(piece)) << "a push split a character";
    out += piece;
  }
  const std::string rest = stream.Flush();
  EXPECT_TRUE(tokenizer_internal::IsValidUtf8(rest));
  return out + rest;
}

void CheckStreaming(const std::string& name) {
  const Tokenizer& tok = Get(name);
  for (const Case& c : Vectors().at(name)) {
    SCOPED_TRACE(testing::Message() << "text: " << nlohmann::json(c.text).dump());
    for (bool skip : {false, true}) {
      const std::vector<int32_t>& ids = c.ids_with_special;
      const std::string whole = tok.Decode(ids, skip);
      EXPECT_EQ(Stream(tok, {}, ids, skip), whole) << "skip " << skip;
      for (size_t k = 1; k < ids.size(); ++k) {
        const std::span<const int32_t> all(ids);
        const std::string head = tok.Decode(all.first(k), skip);
        if (!whole.starts_with(head)) continue;  // an unfinished character at the cut
        EXPECT_EQ(head + Stream(tok, all.first(k), all.subspan(k), skip), whole)
            << "split at " << k << ", skip " << skip;
      }
    }
  }
}

// Byte-level tokens can end inside a character: a stream holds the bytes until the character
// is complete, and an unfinished one becomes U+FFFD at Flush, as the whole decode has it.
void CheckPartialCharacters(const std::string& name) {
  const Tokenizer& tok = Get(name);
  const std::vector<int32_t> ids = tok.Encode("😀 ok 你好");
  for (size_t n = 1; n <= ids.size(); ++n) {
    const std::span<const int32_t> head(ids.data(), n);
    const std::string decoded = tok.Decode(head);
    EXPECT_TRUE(tokenizer_internal::IsValidUtf8(decoded));
    EXPECT_EQ(Stream(tok, {}, head, false), decoded);
  }
  if (name == "llama3") {  // 😀 is two tokens: F0 9F 98, then 80
    ASSERT_EQ(tok.Encode("😀"), (std::vector<int32_t>{76460, 222}));
    EXPECT_EQ(tok.Decode(std::vector<int32_t>{76460}), "\xEF\xBF\xBD");
    StreamingDetokenizer stream(tok, {});
    EXPECT_EQ(stream.Push(76460), "");
    EXPECT_EQ(stream.Push(222), "😀");
    EXPECT_EQ(stream.Flush(), "");
    StreamingDetokenizer cut(tok, {});
    EXPECT_EQ(cut.Push(76460), "");
    EXPECT_EQ(cut.Flush(), "\xEF\xBF\xBD");
  }
}

// Token texts concatenate to the decode (for text without special tokens or partial bytes).
void CheckTokenText(const std::string& name) {
  const Tokenizer& tok = Get(name);
  for (const std::string text : {"Hello world", " x\n\ny", "你好😀", "<bos>a"}) {
    std::string joined;
    const std::vector<int32_t> ids = tok.Encode(text);
    for (int32_t id : ids) joined += tok.TokenText(id);
    EXPECT_EQ(joined, tok.Decode(ids)) << text;
  }
  EXPECT_EQ(tok.TokenText(-1), "");
  EXPECT_EQ(tok.TokenText(tok.vocab_size()), "");
}

void CheckAll(const std::string& name) {
  {
    SCOPED_TRACE("vectors");
    CheckCases(name);
  }
  {
    SCOPED_TRACE("streaming");
    CheckStreaming(name);
  }
  {
    SCOPED_TRACE("partial characters");
    CheckPartialCharacters(name);
  }
  {
    SCOPED_TRACE("token text");
    CheckTokenText(name);
  }
}

TEST(HfTokenizers, Llama3) {
  CheckAll("llama3");
  const Tokenizer& llama = Get("llama3");
  EXPECT_EQ(llama.vocab_size(), 128256);
  EXPECT_EQ(llama.TokenToId("<|begin_of_text|>"), 128000);
  EXPECT_TRUE(llama.IsSpecial(128000));
  EXPECT_FALSE(llama.IsSpecial(9906));
  EXPECT_EQ(llama.Type(128000), PieceType::kControl);
  EXPECT_EQ(llama.Type(9906), PieceType::kNormal);
  EXPECT_EQ(llama.bos_id(), 128000);  // tokenizer_config.json's bos_token
  EXPECT_EQ(llama.eos_id(), 128001);
  EXPECT_FALSE(llama.add_bos());      // this tokenizer.json's post-processor adds none
  EXPECT_EQ(llama.TokenText(220), " ");
  EXPECT_EQ(llama.TokenText(128000), "<|begin_of_text|>");
  EXPECT_EQ(llama.Encode("<|begin_of_text|>", {.add_special_tokens = true}),
            (std::vector<int32_t>{128000}));
  const std::string aaa(100000, 'a');
  EXPECT_EQ(llama.Decode(llama.Encode(aaa)), aaa);
  EXPECT_EQ(llama.Encode("a\xFF" "b"), llama.Encode("a\xEF\xBF\xBD" "b"));  // invalid UTF-8
  EXPECT_EQ(llama.Encode("\xE4\xB8"), llama.Encode("\xEF\xBF\xBD"));  // one U+FFFD per subpart
  // \s is Unicode White_Space, as in HF's Oniguruma (not JavaScript's): U+FEFF is not space,
  // U+0085 is (the values ../shared/reference/README.md gives for HF's rules).
  EXPECT_EQ(llama.Encode("a \uFEFFb"), (std::vector<int32_t>{64, 76880, 65}));
  EXPECT_EQ(llama.Encode("x \u0085y"), (std::vector<int32_t>{87, 220, 116360, 88}));
}

// Const methods from several threads at once give the same results as from one.
TEST(HfTokenizers, ConstMethodsAreThreadSafe) {
  const Tokenizer& tok = Get("llama3");
  const std::vector<Case>& cases = Vectors().at("llama3");
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < 3; ++round) {
        for (const Case& c : cases) {
          if (tok.Encode(c.text) != c.ids || tok.Decode(c.ids) != c.decoded) ++mismatches;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(HfTokenizers, Qwen3) {
  CheckAll("qwen3");
  const Tokenizer& qwen = Get("qwen3");
  EXPECT_EQ(qwen.bos_id(), -1);
  EXPECT_EQ(qwen.eos_id(), 151645);  // <|im_end|>
  EXPECT_EQ(qwen.Type(151667), PieceType::kUserDefined);  // <think>: added, not special
  EXPECT_FALSE(qwen.IsSpecial(151667));
  EXPECT_EQ(qwen.Decode(qwen.Encode("<think>x</think>"), /*skip_special_tokens=*/true),
            "<think>x</think>");
  EXPECT_EQ(qwen.Decode(qwen.Encode("<|im_start|>x"), /*skip_special_tokens=*/true), "x");
}

TEST(HfTokenizers, Gemma3) {
  CheckAll("gemma3");
  const Tokenizer& gemma = Get("gemma3");
  EXPECT_EQ(gemma.vocab_size(), 262145);
  EXPECT_EQ(gemma.bos_id(), 2);
  EXPECT_EQ(gemma.eos_id(), 106);  // <end_of_turn>
  EXPECT_TRUE(gemma.add_bos());
  EXPECT_EQ(gemma.unk_id(), 3);
  EXPECT_TRUE(gemma.byte_fallback());
  const std::optional<int32_t> newline = gemma.TokenToId("<0x0A>");
  ASSERT_TRUE(newline.has_value());
  EXPECT_EQ(gemma.Type(*newline), PieceType::kByte);
  EXPECT_EQ(gemma.TokenText(*newline), "\n");
  EXPECT_EQ(gemma.TokenText(*gemma.TokenToId("▁the")), " the");

  // The whole text is one BPE word (no pre-tokenizer split): long inputs must stay fast.
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "The quick brown fox jumps over the lazy dog. ";
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = gemma.Encode(text);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "[ encode   ] gemma3: " << text.size() << " bytes -> " << ids.size() << " ids in "
            << s * 1e3 << " ms\n";
  EXPECT_EQ(gemma.Decode(ids), text);
  EXPECT_LT(ids.size(), text.size() / 3);
  const std::string aaa(100000, 'a');
  EXPECT_EQ(gemma.Decode(gemma.Encode(aaa)), aaa);
  // Byte fallback: invalid runs of byte tokens decode to one U+FFFD per byte token, as HF.
  const int32_t e4 = *gemma.TokenToId("<0xE4>"), b8 = *gemma.TokenToId("<0xB8>");
  const int32_t ad = *gemma.TokenToId("<0xAD>"), ff = *gemma.TokenToId("<0xFF>");
  EXPECT_EQ(gemma.Decode(std::vector<int32_t>{e4, b8, ad}), "中");
  EXPECT_EQ(gemma.Decode(std::vector<int32_t>{e4, b8, ad, ff}), "\uFFFD\uFFFD\uFFFD\uFFFD");
  EXPECT_EQ(gemma.Decode(std::vector<int32_t>{e4, b8, 2364}), "\uFFFD\uFFFDuser");
  StreamingDetokenizer stream(gemma, {});
  EXPECT_EQ(stream.Push(e4), "");  // the run is held: a later byte may yet make it invalid
  EXPECT_EQ(stream.Push(b8), "");
  EXPECT_EQ(stream.Push(ad), "");
  EXPECT_EQ(stream.Push(2364), "中user");
}

}  // namespace
}  // namespace tailor
