// Loading: dispatch by content and extension, serialized-model round trips, vocabularies built
// by hand, and bad inputs (missing, truncated or garbage files, short llama2.c files, too many
// pieces, non-llama GGUF tokenizers, malformed vocabularies), which must be clear errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/gguf_file.h"
#include "tests/test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocabulary_readers.h"

namespace tailor {
namespace {

using ::testing::HasSubstr;
using testing_util::ReadAll;
using testing_util::TempDir;
using testing_util::WriteAll;

const std::string kShared = TAILOR_SHARED_DIR;
const std::string kStories = kShared + "/models/stories260K";
const std::string kLlama = kShared + "/models/tokenizers/llama2-tokenizer.model";

void ExpectError(const absl::StatusOr<std::unique_ptr<Tokenizer>>& t,
                 const std::vector<std::string>& substrings) {
  ASSERT_FALSE(t.ok()) << "loaded, but an error was expected";
  for (const auto& s : substrings) EXPECT_THAT(std::string(t.status().message()), HasSubstr(s));
}

// A GGUF file with only metadata: string keys, string arrays, float and int arrays.
class GgufMetadata {
 public:
  GgufMetadata& String(const std::string& key, const std::string& v) {
    Key(key, 8);
    Str(v);
    ++n_;
    return *this;
  }
  GgufMetadata& Strings(const std::string& key, const std::vector<std::string>& v) {
    Key(key, 9);
    Pod<uint32_t>(8);
    Pod<uint64_t>(v.size());
    for (const auto& s : v) Str(s);
    ++n_;
    return *this;
  }
  GgufMetadata& Floats(const std::string& key, const std::vector<float>& v) {
    Key(key, 9);
    Pod<uint32_t>(6);
    Pod<uint64_t>(v.size());
    for (float f : v) Pod(f);
    ++n_;
    return *this;
  }
  GgufMetadata& Ints(const std::string& key, const std::vector<int32_t>& v) {
    Key(key, 9);
    Pod<uint32_t>(5);
    Pod<uint64_t>(v.size());
    for (int32_t x : v) Pod(x);
    ++n_;
    return *this;
  }
  GgufMetadata& Int(const std::string& key, int32_t v) {
    Key(key, 5);
    Pod(v);
    ++n_;
    return *this;
  }
  GgufMetadata& Bool(const std::string& key, bool v) {
    Key(key, 7);
    Pod<uint8_t>(v ? 1 : 0);
    ++n_;
    return *this;
  }
  std::string Bytes() const {
    std::string out = "GGUF";
    auto pod = [&](auto v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); };
    pod(uint32_t{3});
    pod(uint64_t{0});
    pod(n_);
    return out + body_;
  }

 private:
  template <typename T>
  void Pod(T v) {
    body_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void Str(const std::string& s) {
    Pod<uint64_t>(s.size());
    body_ += s;
  }
  void Key(const std::string& k, uint32_t type) {
    Str(k);
    Pod(type);
  }
  std::string body_;
  uint64_t n_ = 0;
};

// A small, valid llama vocabulary: <unk>, <s>, </s>, a few pieces.
Vocabulary SmallVocab() {
  Vocabulary v;
  for (const std::string p : {"<unk>", "<s>", "</s>", "▁h", "▁hi", "h", "i", "▁"}) {
    v.pieces.push_back(p);
    v.scores.push_back(-static_cast<float>(v.scores.size()));
    v.types.push_back(InferPieceType(p));
  }
  return v;
}

class LoadTest : public ::testing::Test {
 protected:
  TempDir tmp_;
};

TEST_F(LoadTest, DispatchesOnContentAndExtension) {
  // A sentencepiece model under an unhelpful name, and a llama2.c file without extension.
  WriteAll(tmp_ / "tokenizer", ReadAll(kStories + "/tok512.model"));
  WriteAll(tmp_ / "llama2c-tok", ReadAll(kStories + "/tok512.bin"));
  WriteAll(tmp_ / "vocab.dat", ReadAll(kStories + "/stories260K.gguf"));  // GGUF by magic
  WriteAll(tmp_ / "sp.bin", ReadAll(kStories + "/tok512.model"));  // not llama2.c after all
  const std::vector<int32_t> want = {403, 407, 261, 378};
  for (const std::string name : {"tokenizer", "llama2c-tok", "vocab.dat", "sp.bin"}) {
    auto tok = Tokenizer::Load(tmp_ / name, 512);
    ASSERT_TRUE(tok.ok()) << name << ": " << tok.status();
    EXPECT_EQ((*tok)->Encode("Once upon a time"), want) << name;
  }
}

TEST_F(LoadTest, SerializedModelRoundTrips) {
  for (const std::string& path : {kStories + "/tok512.model", kStories + "/tok512.bin",
                                 kStories + "/stories260K.gguf"}) {
    auto tok = Tokenizer::Load(path, 512);
    ASSERT_TRUE(tok.ok()) << tok.status();
    const std::string bytes = (*tok)->SerializedModel();
    auto again = Tokenizer::FromSerializedModel(bytes, "package");
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ((*again)->SerializedModel(), bytes);
    EXPECT_EQ((*again)->vocab_size(), 512);
    EXPECT_EQ((*again)->bos_id(), 1);
    for (const std::string t : {"Once upon a time", " two  spaces ", "日本語 🦙"}) {
      EXPECT_EQ((*again)->Encode(t), (*tok)->Encode(t)) << path;
    }
  }
  EXPECT_EQ((*Tokenizer::Load(kStories + "/tok512.model", 512))->SerializedModel(),
            ReadAll(kStories + "/tok512.model"));
}

TEST_F(LoadTest, FewerPiecesThanTheModelIsFine) {
  auto tok = Tokenizer::Load(kStories + "/tok512.model", 520);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->vocab_size(), 512);
}

TEST_F(LoadTest, MorePiecesThanTheModelIsAnError) {
  ExpectError(Tokenizer::Load(kLlama, 1000),
              {"llama2-tokenizer.model", "has 32000 pieces but the model's vocabulary has 1000"});
  ExpectError(Tokenizer::Load(kStories + "/stories260K.gguf", 100),
              {"stories260K.gguf", "has 512 pieces but the model's vocabulary has 100"});
}

TEST_F(LoadTest, MissingFileOrDirectory) {
  auto t = Tokenizer::Load(tmp_ / "nope.model", 512);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("nope.model"));
  ExpectError(Tokenizer::Load(tmp_.path(), 512), {"not a regular file"});
}

TEST_F(LoadTest, TruncatedModelAtEveryCut) {
  const std::string bytes = ReadAll(kStories + "/tok512.model");
  WriteAll(tmp_ / "t.model", "");
  ExpectError(Tokenizer::Load(tmp_ / "t.model", 512), {"t.model", "not a valid sentencepiece model"});
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    auto t = Tokenizer::FromSerializedModel(std::string_view(bytes).substr(0, cut), "t.model");
    ASSERT_FALSE(t.ok()) << "cut at " << cut;
    ASSERT_THAT(std::string(t.status().message()), HasSubstr("t.model")) << cut;
  }
  WriteAll(tmp_ / "t.model", bytes.substr(0, bytes.size() / 2));
  ExpectError(Tokenizer::Load(tmp_ / "t.model", 512), {"t.model", "runs past the end"});
  const std::string big = ReadAll(kLlama);
  for (size_t cut : {size_t{1}, size_t{100}, big.size() / 2, big.size() - 100, big.size() - 1}) {
    ExpectError(Tokenizer::FromSerializedModel(std::string_view(big).substr(0, cut), "llama"),
                {"llama", "not a valid sentencepiece model"});
  }
}

// Found by the sentencepiece_model fuzz target: a piece starting with a NUL byte made the
// library's trie builder throw, which ended the process. Now a clear error naming the file.
TEST_F(LoadTest, APieceStartingWithNulIsRefusedNotThrown) {
  const unsigned char model[] = {0x0a, 0x0e, 0x0a, 0x05, 0x3c, 0x75, 0x6e, 0x72, 0x00, 0x15, 0x00,
                                 0x00, 0x00, 0x00, 0x18, 0x02, 0x0a, 0x0b, 0x0a, 0x04, 0x00, 0x00,
                                 0x5d, 0x79, 0x15, 0x00, 0x00, 0xd6, 0x79, 0x12, 0x00, 0x1a, 0x00};
  ExpectError(Tokenizer::FromSerializedModel(
                  std::string_view(reinterpret_cast<const char*>(model), sizeof model), "nul.model"),
              {"nul.model", "zero-length key"});
}

TEST_F(LoadTest, GarbageModel) {
  WriteAll(tmp_ / "g.model", "this is not a protobuf, just some text\n");
  ExpectError(Tokenizer::Load(tmp_ / "g.model", 512), {"g.model", "not a valid sentencepiece model"});
  std::mt19937 rng(3);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string junk(1 + rng() % 200, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    if (trial % 2 == 0) junk[0] = 0x0A;  // looks like a piece field
    EXPECT_FALSE(Tokenizer::FromSerializedModel(junk, "junk").ok());
  }
  // Flipped bytes inside a real model: an error or a working tokenizer, never a crash.
  const std::string bytes = ReadAll(kStories + "/tok512.model");
  for (int trial = 0; trial < 300; ++trial) {
    std::string bad = bytes;
    bad[rng() % bad.size()] = static_cast<char>(rng());
    auto t = Tokenizer::FromSerializedModel(bad, "flipped");
    if (t.ok()) (*t)->Decode((*t)->Encode("Once upon a time 🦙"));
  }
}

TEST_F(LoadTest, Llama2cFileShorterThanTheVocabulary) {
  ExpectError(Tokenizer::Load(kStories + "/tok512.bin", 600),
              {"tok512.bin", "token 512", "the model's vocabulary has 600 tokens"});
  const std::string bytes = ReadAll(kStories + "/tok512.bin");
  for (size_t cut : {size_t{0}, size_t{3}, size_t{4}, size_t{7}, size_t{100}, bytes.size() / 2,
                     bytes.size() - 1}) {
    WriteAll(tmp_ / "t.bin", bytes.substr(0, cut));
    auto t = Tokenizer::Load(tmp_ / "t.bin", 512);
    ASSERT_FALSE(t.ok()) << cut;
    EXPECT_THAT(std::string(t.status().message()), HasSubstr("t.bin")) << cut;
  }
  ExpectError(Tokenizer::Load(kStories + "/tok512.bin", 0), {"tok512.bin", "vocabulary size"});
  std::string negative = bytes;
  const int32_t bad_len = -5;
  std::memcpy(&negative[4 + 4], &bad_len, 4);  // token 0's length
  WriteAll(tmp_ / "neg.bin", negative);
  ExpectError(Tokenizer::Load(tmp_ / "neg.bin", 512), {"neg.bin", "token 0", "length -5"});
}

TEST_F(LoadTest, GgufTokenizers) {
  const Vocabulary small = SmallVocab();
  std::vector<int32_t> types;
  for (PieceType t : small.types) types.push_back(static_cast<int32_t>(t));
  const auto base = [&](const std::string& model) {
    GgufMetadata m;
    m.String("general.architecture", "llama").String("tokenizer.ggml.model", model);
    return m.Strings("tokenizer.ggml.tokens", small.pieces)
        .Floats("tokenizer.ggml.scores", small.scores)
        .Ints("tokenizer.ggml.token_type", types);
  };
  WriteAll(tmp_ / "ok.gguf", base("llama").Bytes());
  auto ok = Tokenizer::Load(tmp_ / "ok.gguf", 8);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)->Decode((*ok)->Encode("hi hi")), "hi hi");
  EXPECT_FALSE((*ok)->byte_fallback());

  WriteAll(tmp_ / "gpt2.gguf", base("gpt2").Bytes());
  ExpectError(Tokenizer::Load(tmp_ / "gpt2.gguf", 8),
              {"gpt2.gguf", "'tokenizer.ggml.merges' is missing"});
  WriteAll(tmp_ / "bert.gguf", base("bert").Bytes());
  ExpectError(Tokenizer::Load(tmp_ / "bert.gguf", 8),
              {"bert.gguf", "tokenizer model 'bert'", "supported: \"llama\"", "\"gpt2\""});
  GgufMetadata none;
  none.String("general.architecture", "llama");
  WriteAll(tmp_ / "none.gguf", none.Bytes());
  ExpectError(Tokenizer::Load(tmp_ / "none.gguf", 8), {"none.gguf", "no tokenizer"});
  GgufMetadata short_scores;
  short_scores.String("tokenizer.ggml.model", "llama")
      .Strings("tokenizer.ggml.tokens", small.pieces)
      .Floats("tokenizer.ggml.scores", {1.0f, 2.0f});
  WriteAll(tmp_ / "scores.gguf", short_scores.Bytes());
  ExpectError(Tokenizer::Load(tmp_ / "scores.gguf", 8), {"tokenizer.ggml.scores", "array of 8"});
  GgufMetadata bad_type;
  std::vector<int32_t> t9 = types;
  t9[4] = 9;
  bad_type.String("tokenizer.ggml.model", "llama")
      .Strings("tokenizer.ggml.tokens", small.pieces)
      .Ints("tokenizer.ggml.token_type", t9);
  WriteAll(tmp_ / "type.gguf", bad_type.Bytes());
  ExpectError(Tokenizer::Load(tmp_ / "type.gguf", 8), {"token 4", "token_type 9"});
  GgufMetadata no_prefix;  // no scores, no types (inferred), no dummy prefix
  no_prefix.String("tokenizer.ggml.model", "llama")
      .Strings("tokenizer.ggml.tokens", small.pieces)
      .Bool("tokenizer.ggml.add_space_prefix", false);
  WriteAll(tmp_ / "noprefix.gguf", no_prefix.Bytes());
  auto np = Tokenizer::Load(tmp_ / "noprefix.gguf", 8);
  ASSERT_TRUE(np.ok()) << np.status();
  EXPECT_FALSE((*np)->add_dummy_prefix());
  EXPECT_EQ((*np)->Piece((*np)->Encode("hi")[0]), "h");  // no "▁" in front
  // A truncated GGUF is the GGUF reader's error, naming the file.
  const std::string gguf = ReadAll(kStories + "/stories260K.gguf");
  WriteAll(tmp_ / "cut.gguf", gguf.substr(0, 5000));
  ExpectError(Tokenizer::Load(tmp_ / "cut.gguf", 512), {"cut.gguf", "truncated"});
  WriteAll(tmp_ / "magic.gguf", "GGUX" + gguf.substr(4, 100));
  ExpectError(Tokenizer::Load(tmp_ / "magic.gguf", 512), {"magic.gguf", "not a GGUF file"});
}

// A small byte-level BPE vocabulary in a GGUF (tokenizer.ggml.model "gpt2").
TEST_F(LoadTest, GgufGpt2Vocabularies) {
  const std::vector<std::string> tokens = {"h", "i", "Ġ", "hi", "Ġhi", "<|bos|>", "<think>"};
  const std::vector<std::string> merges = {"h i", "Ġ hi"};
  const auto gpt2 = [&](const std::string& pre) {
    GgufMetadata m;
    m.String("tokenizer.ggml.model", "gpt2").Strings("tokenizer.ggml.tokens", tokens);
    if (!pre.empty()) m.String("tokenizer.ggml.pre", pre);
    return m.Strings("tokenizer.ggml.merges", merges)
        .Ints("tokenizer.ggml.token_type", {1, 1, 1, 1, 1, 3, 4});
  };
  for (const std::string pre : {"", "default", "gpt2", "llama-bpe", "smaug-bpe", "qwen2"}) {
    WriteAll(tmp_ / "ok.gguf", gpt2(pre).Bytes());
    auto tok = Tokenizer::Load(tmp_ / "ok.gguf", 7);
    ASSERT_TRUE(tok.ok()) << pre << ": " << tok.status();
    EXPECT_EQ((*tok)->kind(), Tokenizer::Kind::kHuggingFace);
    EXPECT_EQ((*tok)->Encode("hi hi<|bos|><think>"), (std::vector<int32_t>{3, 4, 5, 6})) << pre;
    EXPECT_EQ((*tok)->Decode(std::vector<int32_t>{3, 4, 5, 6}, true), "hi hi<think>");
    EXPECT_EQ((*tok)->Serialize().file_name, "tokenizer.json");
  }
  // BOS: added by default for the Llama 3 names only, else when add_bos_token says so.
  const auto with_special = [&](GgufMetadata m) {
    WriteAll(tmp_ / "bos.gguf", m.Bytes());
    auto tok = Tokenizer::Load(tmp_ / "bos.gguf", 7);
    EXPECT_TRUE(tok.ok()) << tok.status();
    return tok.ok() ? (*tok)->Encode("hi", {.add_special_tokens = true}) : std::vector<int32_t>{};
  };
  EXPECT_EQ(with_special(gpt2("llama-bpe").Int("tokenizer.ggml.bos_token_id", 5)),
            (std::vector<int32_t>{5, 3}));
  EXPECT_EQ(with_special(gpt2("qwen2").Int("tokenizer.ggml.bos_token_id", 5)),
            (std::vector<int32_t>{3}));
  EXPECT_EQ(with_special(gpt2("qwen2")
                             .Int("tokenizer.ggml.bos_token_id", 5)
                             .Bool("tokenizer.ggml.add_bos_token", true)),
            (std::vector<int32_t>{5, 3}));
  EXPECT_EQ(with_special(gpt2("qwen2").Bool("tokenizer.ggml.add_bos_token", true)),
            (std::vector<int32_t>{3}));  // no bos id: nothing to add
  GgufMetadata bad_id = gpt2("qwen2");
  bad_id.Int("tokenizer.ggml.bos_token_id", 99);
  WriteAll(tmp_ / "id.gguf", bad_id.Bytes());
  ExpectError(Tokenizer::Load(tmp_ / "id.gguf", 7),
              {"id.gguf", "'tokenizer.ggml.bos_token_id' must be a token id below 7"});

  WriteAll(tmp_ / "pre.gguf", gpt2("tekken").Bytes());
  ExpectError(Tokenizer::Load(tmp_ / "pre.gguf", 7),
              {"pre.gguf", "tokenizer.ggml.pre 'tekken' is not supported",
               "llama-bpe, llama3, llama-v3, smaug-bpe, qwen2, default, gpt2"});
  GgufMetadata bad_merge;
  bad_merge.String("tokenizer.ggml.model", "gpt2")
      .Strings("tokenizer.ggml.tokens", tokens)
      .Strings("tokenizer.ggml.merges", {"h x"});
  WriteAll(tmp_ / "merge.gguf", bad_merge.Bytes());
  ExpectError(Tokenizer::Load(tmp_ / "merge.gguf", 7),
              {"merge.gguf", "model.merges[0]", "token \"x\" is not in model.vocab"});
  GgufMetadata twice;
  twice.String("tokenizer.ggml.model", "gpt2")
      .Strings("tokenizer.ggml.tokens", {"h", "h"})
      .Strings("tokenizer.ggml.merges", {});
  WriteAll(tmp_ / "twice.gguf", twice.Bytes());
  ExpectError(Tokenizer::Load(tmp_ / "twice.gguf", 7), {"twice.gguf", "token 'h' appears twice"});
}

TEST_F(LoadTest, MalformedVocabularies) {
  Vocabulary v = SmallVocab();
  v.types[0] = PieceType::kNormal;
  ExpectError(Tokenizer::FromVocabulary(v, "vocab"), {"vocab", "no unknown piece"});
  v = SmallVocab();
  v.types[3] = PieceType::kUnknown;
  ExpectError(Tokenizer::FromVocabulary(v, "vocab"), {"pieces 0 and 3 are both the unknown piece"});
  v = SmallVocab();
  v.pieces[4] = "▁h";
  ExpectError(Tokenizer::FromVocabulary(v, "vocab"), {"piece '▁h' appears twice (ids 3 and 4)"});
  v = SmallVocab();
  v.pieces[5] = "";
  ExpectError(Tokenizer::FromVocabulary(v, "vocab"), {"piece 5 is empty"});
  v = SmallVocab();
  v.types[5] = PieceType::kByte;
  ExpectError(Tokenizer::FromVocabulary(v, "vocab"), {"piece 5 'h' has type BYTE"});
  v = SmallVocab();
  v.scores.pop_back();
  ExpectError(Tokenizer::FromVocabulary(v, "vocab"), {"8 pieces but 7 scores"});
  ExpectError(Tokenizer::FromVocabulary(Vocabulary{}, "vocab"), {"vocabulary is empty"});
  v = SmallVocab();
  v.types[5] = static_cast<PieceType>(42);
  ExpectError(Tokenizer::FromVocabulary(v, "vocab"), {"piece 5 has type 42"});
}

// Some but not all of the 256 byte pieces: no byte fallback; the byte pieces are never produced
// by encoding and decode as their text.
TEST_F(LoadTest, PartialBytePiecesMeanNoByteFallback) {
  Vocabulary v = SmallVocab();
  v.pieces.push_back("<0x41>");
  v.scores.push_back(0);
  v.types.push_back(PieceType::kByte);
  auto tok = Tokenizer::FromVocabulary(v, "partial");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_FALSE((*tok)->byte_fallback());
  EXPECT_EQ((*tok)->Type(8), PieceType::kUnused);
  EXPECT_THAT((*tok)->Encode("A"), ::testing::Not(::testing::Contains(8)));
  EXPECT_EQ((*tok)->Decode(std::vector<int32_t>{3, 8}), "h<0x41>");
}

TEST_F(LoadTest, UnsupportedModelSettings) {
  // treat_whitespace_as_suffix (TrainerSpec field 24) changes decoding: refused.
  // Appends a second trainer_spec (field 2, 3 bytes) holding field 24 = 1 (tag 24 << 3 = 0xC0
  // 0x01 as a varint); protobuf merges it into the first.
  const std::string bytes = ReadAll(kStories + "/tok512.model") + std::string("\x12\x03\xC0\x01\x01", 5);
  ExpectError(Tokenizer::FromSerializedModel(bytes, "suffix.model"),
              {"suffix.model", "treat_whitespace_as_suffix is not supported"});
}

}  // namespace
}  // namespace tailor
