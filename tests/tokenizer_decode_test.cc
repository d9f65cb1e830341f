// Decoding: tailor's decoder against sentencepiece's own Decode on random id sequences, round
// trips of hard text, and the streaming detokenizer against whole-sequence decoding for every
// split point, random chunkings and contexts (byte-fallback emoji/CJK included).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace tailor {
namespace {

const std::string kShared = TAILOR_SHARED_DIR;

std::unique_ptr<Tokenizer> MustLoad(const std::string& rel, int32_t vocab) {
  auto tok = Tokenizer::Load(kShared + "/models/" + rel, vocab);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(*tok) : nullptr;
}

// A vocabulary with no byte pieces: unknown characters become <unk>.
std::unique_ptr<Tokenizer> NoBytesTokenizer() {
  Vocabulary v;
  auto add = [&](std::string p, float score, PieceType t) {
    v.pieces.push_back(std::move(p));
    v.scores.push_back(score);
    v.types.push_back(t);
  };
  add("<unk>", 0, PieceType::kUnknown);
  add("<s>", 0, PieceType::kControl);
  add("</s>", 0, PieceType::kControl);
  const std::vector<std::string> merged = {"▁a", "▁b", "ab", "▁ab", "▁▁", "ba"};
  for (size_t i = 0; i < merged.size(); ++i) add(merged[i], -static_cast<float>(i), PieceType::kNormal);
  for (const std::string c : {"▁", "a", "b", "c", "\n", "é"}) add(c, -100, PieceType::kNormal);
  auto tok = Tokenizer::FromVocabulary(v, "no-bytes test vocabulary");
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(*tok) : nullptr;
}

// Random ids, biased toward what makes decoding hard: byte pieces (valid and broken UTF-8),
// control pieces, the unknown piece, and pieces with leading spaces.
std::vector<int32_t> RandomIds(const Tokenizer& tok, std::mt19937& rng, size_t n) {
  std::vector<int32_t> byte_ids;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    if (auto id = tok.PieceToId(name); id && tok.Type(*id) == PieceType::kByte) byte_ids.push_back(*id);
  }
  // Byte values that form real characters: lead bytes of each length and continuation bytes.
  const std::vector<int> interesting = {0x41, 0x20, 0x0A, 0xC3, 0xA9, 0xE4, 0xBD, 0xA0, 0xF0, 0x9F,
                                        0xA6, 0x99, 0x80, 0xBF, 0xED, 0xA0, 0xC0, 0xF4, 0x90, 0xFF};
  std::vector<int32_t> ids;
  for (size_t i = 0; i < n; ++i) {
    const int r = static_cast<int>(rng() % 100);
    if (r < 45 && byte_ids.size() == 256) {
      const int b = r < 30 ? interesting[rng() % interesting.size()] : static_cast<int>(rng() % 256);
      ids.push_back(byte_ids[static_cast<size_t>(b)]);
    } else if (r < 52 && tok.bos_id() >= 0) {
      ids.push_back(rng() % 2 ? tok.bos_id() : tok.eos_id());
    } else if (r < 55 && tok.unk_id() >= 0) {
      ids.push_back(tok.unk_id());
    } else {
      ids.push_back(static_cast<int32_t>(rng() % static_cast<uint32_t>(tok.vocab_size())));
    }
  }
  return ids;
}

class DecodeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    llama_ = MustLoad("tokenizers/llama2-tokenizer.model", 32000).release();
    stories_model_ = MustLoad("stories260K/tok512.model", 512).release();
    stories_bin_ = MustLoad("stories260K/tok512.bin", 512).release();
    no_bytes_ = NoBytesTokenizer().release();
  }
  static void TearDownTestSuite() {
    for (const Tokenizer* t : All()) delete t;
  }
  static std::vector<const Tokenizer*> All() { return {llama_, stories_model_, stories_bin_, no_bytes_}; }
  static const Tokenizer* llama_;
  static const Tokenizer* stories_model_;
  static const Tokenizer* stories_bin_;
  static const Tokenizer* no_bytes_;
};
const Tokenizer* DecodeTest::llama_ = nullptr;
const Tokenizer* DecodeTest::stories_model_ = nullptr;
const Tokenizer* DecodeTest::stories_bin_ = nullptr;
const Tokenizer* DecodeTest::no_bytes_ = nullptr;

TEST_F(DecodeTest, MatchesSentencepieceOnRandomIds) {
  std::mt19937 rng(7);
  for (const Tokenizer* tok : All()) {
    ASSERT_NE(tok, nullptr);
    for (int trial = 0; trial < 1500; ++trial) {
      const std::vector<int32_t> ids = RandomIds(*tok, rng, 1 + rng() % 24);
      absl::StatusOr<std::string> want = tok->ReferenceDecode(ids);
      ASSERT_TRUE(want.ok()) << want.status();
      ASSERT_EQ(tok->Decode(ids), *want) << tok->origin() << " trial " << trial;
    }
  }
}

TEST_F(DecodeTest, DummyPrefixAndControlPieces) {
  const Tokenizer& t = *stories_bin_;
  const auto id = [&](const char* piece) { return *t.PieceToId(piece); };
  const int32_t once = id("▁Once"), upon = id("▁upon"), space = id("▁");
  EXPECT_EQ(once, 403);
  EXPECT_EQ(upon, 407);
  EXPECT_EQ(t.Decode(std::vector<int32_t>{1, once, upon}), "Once upon");
  EXPECT_EQ(t.Decode(std::vector<int32_t>{once, 2, upon, 1}), "Once upon");
  EXPECT_EQ(t.Decode(std::vector<int32_t>{space, once}), " Once");  // only the first "▁" goes
  EXPECT_EQ(t.Decode(std::vector<int32_t>{space, space, once}), "  Once");
  EXPECT_EQ(t.Decode(std::vector<int32_t>{id("<0x41>"), once}), "A Once");
  EXPECT_EQ(t.Decode(std::vector<int32_t>{1, 2, 1}), "");
  EXPECT_EQ(t.Decode(std::vector<int32_t>{}), "");
  EXPECT_EQ(t.Decode(std::vector<int32_t>{-5, once, 99999}), "Once");  // out of range: nothing
  EXPECT_EQ(t.Decode(std::vector<int32_t>{0}), " \xE2\x81\x87 ");     // <unk>
  // A byte run broken by a control piece is two runs: each incomplete character is U+FFFD.
  EXPECT_EQ(t.Decode(std::vector<int32_t>{id("<0xE4>"), id("<0xBD>"), id("<0xA0>")}), "你");
  EXPECT_EQ(t.Decode(std::vector<int32_t>{id("<0xE4>"), id("<0xBD>"), 1, id("<0xA0>")}),
            "\uFFFD\uFFFD\uFFFD");
}

TEST_F(DecodeTest, RoundTrips) {
  const std::vector<std::string> texts = {
      "Hello, world!",
      "Ünïcödé: àéîõü ß Æ ø Ł ñ",
      "日本語のテキスト、中文文本，한국어 텍스트",
      "emoji 🦙🚀😀 family 👩‍👩‍👧 flag 🇯🇵 keycap 1️⃣",
      "combining: a\u0301 e\u0308 n\u0303 \u0915\u094D\u0937",
      "math ∑∫√∞≠≤ arrows ←→ blocks ▂▃▄",
      "line1\nline2\r\n\ttabbed\t\tx\n\n",
      "  two leading spaces, trailing three   ",
      "multiple     inner     spaces",
      "\n starts with a newline",
      "zero\u200Bwidth and nbsp\u00A0here",
  };
  // Llama 2 and the llama2.c vocabulary keep every space; tok512.model removes extra ones.
  for (const Tokenizer* tok : {llama_, stories_bin_}) {
    for (const std::string& s : texts) {
      const std::vector<int32_t> ids = tok->Encode(s);
      EXPECT_EQ(tok->Decode(ids), s) << tok->origin();
      EXPECT_EQ(*tok->ReferenceDecode(ids), s) << tok->origin();
    }
  }
  for (const std::string s : {"日本語 🦙 emoji", "a\u0301 combining", "tab\tnew\nline"}) {
    EXPECT_EQ(stories_model_->Decode(stories_model_->Encode(s)), s);
  }
  // In the 512-piece vocabulary CJK and emoji are byte pieces.
  int bytes = 0;
  for (int32_t id : stories_bin_->Encode("日本語🦙")) bytes += stories_bin_->Type(id) == PieceType::kByte;
  EXPECT_EQ(bytes, 13);
  // A literal U+2581 in the text is sentencepiece's space symbol: it comes back as a space.
  EXPECT_EQ(llama_->Decode(llama_->Encode("a▁b")), "a b");
  // Invalid UTF-8 in the input becomes U+FFFD, as sentencepiece's normalizer makes it.
  EXPECT_EQ(llama_->Decode(llama_->Encode("a\xFF" "b")), "a\uFFFD" "b");
  // Without byte pieces, unknown characters come back as " ⁇ ".
  const std::vector<int32_t> ids = no_bytes_->Encode("ab ç ba");
  EXPECT_THAT(ids, ::testing::Contains(no_bytes_->unk_id()));
  EXPECT_EQ(no_bytes_->Decode(ids), "ab  \xE2\x81\x87  ba");
  EXPECT_EQ(no_bytes_->Decode(no_bytes_->Encode("abc ba\n")), "abc ba\n");
}

// Streams `ids` after `context` through a StreamingDetokenizer and checks it against whole
// decoding: each output is final (a prefix of the expected text) and all of them plus Flush
// equal Decode(context + ids) minus Decode(context). `cuts` groups the Pushes into chunks.
void CheckStream(const Tokenizer& tok, const std::vector<int32_t>& context,
                 const std::vector<int32_t>& ids, const std::vector<size_t>& cuts) {
  std::vector<int32_t> all = context;
  all.insert(all.end(), ids.begin(), ids.end());
  const std::string whole = tok.Decode(all);
  const std::string before = tok.Decode(context);
  if (!std::string_view(whole).starts_with(before)) return;  // no exact expectation
  const std::string want = whole.substr(before.size());
  StreamingDetokenizer stream(tok, context);
  std::string got;
  size_t i = 0;
  for (size_t cut : cuts) {
    for (; i < cut && i < ids.size(); ++i) got += stream.Push(ids[i]);
    ASSERT_TRUE(std::string_view(want).starts_with(got))
        << tok.origin() << ": after " << i << " ids the stream shows text that is not final";
  }
  for (; i < ids.size(); ++i) got += stream.Push(ids[i]);
  got += stream.Flush();
  ASSERT_EQ(got, want) << tok.origin() << ": context of " << context.size() << " ids, " << ids.size()
                       << " streamed";
}

std::vector<size_t> EveryId(size_t n) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i <= n; ++i) cuts.push_back(i);
  return cuts;
}

TEST_F(DecodeTest, StreamingEqualsWholeDecodeAtEverySplit) {
  const std::vector<std::string> texts = {
      "Once upon a time, there was a little girl named Lily.",
      "日本語のテキスト 🦙🚀 emoji and CJK 中文",
      "  spaces  and\ttabs\nand newlines \n",
      "mixed ✅ ½ é 👩‍👩‍👧 end",
  };
  for (const Tokenizer* tok : All()) {
    for (const std::string& text : texts) {
      std::vector<int32_t> seq = tok->Encode(text);
      if (tok->bos_id() >= 0) seq.insert(seq.begin(), tok->bos_id());
      for (size_t k = 0; k <= seq.size(); ++k) {  // context = seq[0, k), streamed = the rest
        const std::vector<int32_t> context(seq.begin(), seq.begin() + static_cast<ptrdiff_t>(k));
        const std::vector<int32_t> rest(seq.begin() + static_cast<ptrdiff_t>(k), seq.end());
        CheckStream(*tok, context, rest, EveryId(rest.size()));
        if (HasFatalFailure()) return;
      }
      // Streaming from an empty context gives the whole decode, which round-trips the text.
      std::string streamed;
      StreamingDetokenizer s(*tok, {});
      for (int32_t id : seq) streamed += s.Push(id);
      streamed += s.Flush();
      EXPECT_EQ(streamed, tok->Decode(seq));
    }
  }
}

TEST_F(DecodeTest, StreamingRandomIdsChunkingsAndContexts) {
  std::mt19937 rng(11);
  for (const Tokenizer* tok : All()) {
    for (int trial = 0; trial < 400; ++trial) {
      const std::vector<int32_t> seq = RandomIds(*tok, rng, 2 + rng() % 30);
      const size_t k = rng() % seq.size();
      const std::vector<int32_t> context(seq.begin(), seq.begin() + static_cast<ptrdiff_t>(k));
      const std::vector<int32_t> rest(seq.begin() + static_cast<ptrdiff_t>(k), seq.end());
      std::vector<size_t> cuts;
      for (size_t c = 0; c < rest.size();) {
        c += 1 + rng() % 5;
        cuts.push_back(c);
      }
      CheckStream(*tok, context, rest, cuts);
      CheckStream(*tok, context, rest, EveryId(rest.size()));
      if (HasFatalFailure()) return;
    }
  }
}

TEST_F(DecodeTest, StreamingReadsAsAfterThePrompt) {
  const Tokenizer& t = *stories_bin_;
  {
    StreamingDetokenizer s(t, std::vector<int32_t>{1, 403});  // BOS "▁Once"
    EXPECT_EQ(s.Push(407), " upon");                          // "▁upon"
    EXPECT_EQ(s.Push(261), " a");
    EXPECT_EQ(s.Flush(), "");
  }
  {
    StreamingDetokenizer s(t, std::vector<int32_t>{1});  // BOS only
    EXPECT_EQ(s.Push(403), "Once");
    EXPECT_EQ(s.Push(407), " upon");
  }
  {  // An emoji as four byte pieces appears whole, with the fourth.
    std::vector<int32_t> ids = t.Encode("🦙");
    ASSERT_EQ(ids.size(), 5u);  // "▁" then F0 9F A6 99
    StreamingDetokenizer s(t, std::vector<int32_t>{1, 403});
    EXPECT_EQ(s.Push(ids[0]), " ");
    EXPECT_EQ(s.Push(ids[1]), "");
    EXPECT_EQ(s.Push(ids[2]), "");
    EXPECT_EQ(s.Push(ids[3]), "");
    EXPECT_EQ(s.Push(ids[4]), "🦙");
  }
  {  // Incomplete bytes at the end become U+FFFD on Flush, as whole decoding does.
    StreamingDetokenizer s(t, std::vector<int32_t>{1});
    EXPECT_EQ(s.Push(*t.PieceToId("<0xE4>")), "");
    EXPECT_EQ(s.Push(*t.PieceToId("<0xBD>")), "");
    EXPECT_EQ(s.Flush(), "\uFFFD\uFFFD");
  }
  {  // A prompt ending in EF, completed to EF BF BD: that is U+FFFD, which Decode(prompt)
     // already showed for the lone EF, so nothing new appears.
    const int32_t ef = *t.PieceToId("<0xEF>"), bf = *t.PieceToId("<0xBF>"), bd = *t.PieceToId("<0xBD>");
    StreamingDetokenizer s(t, std::vector<int32_t>{1, ef});
    EXPECT_EQ(s.Push(bf), "");
    EXPECT_EQ(s.Push(bd), "");
    EXPECT_EQ(s.Push(403), " Once");
    CheckStream(t, {1, ef}, {bf, bd, 403}, EveryId(3));
  }
  {  // A prompt ending inside a character: its completion shows the character.
    StreamingDetokenizer s(t, std::vector<int32_t>{1, *t.PieceToId("<0xE4>"), *t.PieceToId("<0xBD>")});
    EXPECT_EQ(s.Push(*t.PieceToId("<0xA0>")), "你");
  }
}

TEST_F(DecodeTest, ReferenceGreedyStoryStreams) {
  // Ids of the stories260K greedy story after BOS (reference/stories260K_greedy.json).
  const std::vector<int32_t> story = {403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315,
                                      421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408};
  for (const Tokenizer* tok : {stories_model_, stories_bin_}) {
    StreamingDetokenizer s(*tok, std::vector<int32_t>{1});
    std::string text;
    for (int32_t id : story) text += s.Push(id);
    text += s.Flush();
    EXPECT_EQ(text, tok->Decode(story));
    EXPECT_TRUE(text.starts_with("Once upon a time, there was a little girl named Lily.")) << text;
  }
}

TEST_F(DecodeTest, ConstMethodsAreThreadSafe) {
  const std::vector<std::string> texts = {"Once upon a time 🦙", "日本語 text", "  spaced  out  "};
  std::vector<std::vector<int32_t>> want;
  for (const auto& t : texts) want.push_back(llama_->Encode(t));
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < 300; ++i) {
        const size_t k = static_cast<size_t>(i + w) % texts.size();
        if (llama_->Encode(texts[k]) != want[k]) ++failures[w];
        if (llama_->Decode(want[k]) != texts[k]) ++failures[w];
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int f : failures) EXPECT_EQ(f, 0);
}

}  // namespace
}  // namespace tailor
