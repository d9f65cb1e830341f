// GgufFile on the stories260K GGUF and on files written here: every value type, alignment,
// tensor placement, and malformed files (truncated at every cut point, bad magic/version, absurd
// counts, unknown types, misaligned or out-of-file data), which must be errors, never crashes.
#include "common/gguf_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace tailor {
namespace {

using ::testing::HasSubstr;
using testing_util::ReadAll;
using testing_util::TempDir;
using testing_util::WriteAll;

const std::string kStoriesGguf = std::string(TAILOR_SHARED_DIR) + "/models/stories260K/stories260K.gguf";

// Little-endian GGUF bytes, written field by field.
class GgufBytes {
 public:
  template <typename T>
  GgufBytes& Pod(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof v);
    out_.append(b, sizeof b);
    return *this;
  }
  GgufBytes& Str(const std::string& s) {
    Pod<uint64_t>(s.size());
    out_ += s;
    return *this;
  }
  GgufBytes& Header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    out_ += "GGUF";
    return Pod(version).Pod(n_tensors).Pod(n_kv);
  }
  GgufBytes& Key(const std::string& k, uint32_t type) { return Str(k).Pod(type); }
  GgufBytes& TensorInfo(const std::string& name, std::vector<uint64_t> dims, uint32_t type,
                        uint64_t offset) {
    Str(name).Pod<uint32_t>(dims.size());
    for (uint64_t d : dims) Pod(d);
    return Pod(type).Pod(offset);
  }
  GgufBytes& PadTo(size_t alignment) {
    while (out_.size() % alignment != 0) out_.push_back('\0');
    return *this;
  }
  GgufBytes& Raw(const std::string& s) {
    out_ += s;
    return *this;
  }
  const std::string& str() const { return out_; }
  size_t size() const { return out_.size(); }

 private:
  std::string out_;
};

// A file with one key of every type, an array of each kind, alignment 64 and four tensors.
std::string RichFile() {
  GgufBytes b;
  b.Header(3, 4, 17);
  b.Key("u8", 0).Pod<uint8_t>(200);
  b.Key("i8", 1).Pod<int8_t>(-100);
  b.Key("u16", 2).Pod<uint16_t>(60000);
  b.Key("i16", 3).Pod<int16_t>(-30000);
  b.Key("u32", 4).Pod<uint32_t>(4000000000u);
  b.Key("i32", 5).Pod<int32_t>(-2000000000);
  b.Key("f32", 6).Pod<float>(1.5f);
  b.Key("bool", 7).Pod<uint8_t>(1);
  b.Key("str", 8).Str("héllo");
  b.Key("u64", 10).Pod<uint64_t>(uint64_t{1} << 63);
  b.Key("i64", 11).Pod<int64_t>(-(int64_t{1} << 40));
  b.Key("f64", 12).Pod<double>(0.25);
  b.Key("general.alignment", 4).Pod<uint32_t>(64);
  b.Key("strs", 9).Pod<uint32_t>(8).Pod<uint64_t>(3).Str("a").Str("").Str("▁b");
  b.Key("floats", 9).Pod<uint32_t>(6).Pod<uint64_t>(2).Pod<float>(-1.0f).Pod<float>(2.5f);
  b.Key("ints", 9).Pod<uint32_t>(5).Pod<uint64_t>(3).Pod<int32_t>(1).Pod<int32_t>(-2).Pod<int32_t>(3);
  b.Key("nested", 9).Pod<uint32_t>(9).Pod<uint64_t>(2);
  b.Pod<uint32_t>(4).Pod<uint64_t>(1).Pod<uint32_t>(7);
  b.Pod<uint32_t>(8).Pod<uint64_t>(1).Str("x");
  b.TensorInfo("f32.weight", {4, 2}, 0, 0);        // 32 bytes
  b.TensorInfo("q8.weight", {64, 2}, 8, 64);       // 2 rows * 2 blocks * 34 = 136 bytes
  b.TensorInfo("bf16.weight", {3}, 30, 256);       // 6 bytes
  b.TensorInfo("iq.weight", {256}, 19, 320);       // a type tailor does not size
  b.PadTo(64);
  std::string data(384, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  b.Raw(data);
  return b.str();
}

class GgufTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::unique_ptr<GgufFile>> OpenBytes(const std::string& bytes,
                                                     const std::string& name = "t.gguf") {
    WriteAll(tmp_ / name, bytes);
    return GgufFile::Open(tmp_ / name);
  }
  TempDir tmp_;
};

TEST_F(GgufTest, Stories260K) {
  auto g = GgufFile::Open(kStoriesGguf);
  ASSERT_TRUE(g.ok()) << g.status();
  const GgufFile& f = **g;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.GetString("general.architecture"), "llama");
  EXPECT_EQ(f.GetInt("llama.embedding_length"), 64);
  EXPECT_EQ(f.GetInt("llama.block_count"), 5);
  EXPECT_EQ(f.GetInt("llama.attention.head_count"), 8);
  EXPECT_EQ(f.GetInt("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(f.GetString("tokenizer.ggml.model"), "llama");
  auto tokens = f.GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.has_value());
  ASSERT_EQ(tokens->size(), 512u);
  EXPECT_EQ((*tokens)[0], "<unk>");
  EXPECT_EQ((*tokens)[1], "<s>");
  EXPECT_EQ((*tokens)[3], "<0x00>");
  EXPECT_EQ(f.GetFloatArray("tokenizer.ggml.scores")->size(), 512u);
  auto types = f.GetIntArray("tokenizer.ggml.token_type");
  ASSERT_TRUE(types.has_value());
  EXPECT_EQ((*types)[0], 2);  // unknown
  EXPECT_EQ((*types)[1], 3);  // control
  EXPECT_EQ((*types)[3], 6);  // byte
  EXPECT_FALSE(f.GetString("llama.embedding_length").has_value());  // wrong type: nullopt
  EXPECT_FALSE(f.GetInt("no.such.key").has_value());
  EXPECT_TRUE(f.Has("general.architecture"));
  EXPECT_FALSE(f.Has("general.nope"));

  const GgufTensorInfo* emb = f.FindTensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->dims, (std::vector<int64_t>{64, 512}));
  EXPECT_EQ(emb->ggml_type, kGgmlTypeF32);
  EXPECT_EQ(emb->nbytes, 64u * 512u * 4u);
  EXPECT_EQ(f.FindTensor("nope"), nullptr);
  const std::byte* begin = f.file()->data();
  const std::byte* end = begin + f.file()->size();
  size_t total = 0;
  for (const GgufTensorInfo& t : f.tensors()) {
    ASSERT_EQ(t.ggml_type, kGgmlTypeF32) << t.name;
    int64_t n = 1;
    for (int64_t d : t.dims) n *= d;
    EXPECT_EQ(t.nbytes, static_cast<size_t>(n) * 4) << t.name;
    EXPECT_GE(t.data, begin);
    EXPECT_LE(t.data + t.nbytes, end);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 32, 0u) << t.name;
    total += t.nbytes;
  }
  // embeddings, output norm, output (untied), 9 per layer
  EXPECT_EQ(f.tensors().size(), 3u + 9u * 5u);
  EXPECT_GT(total, 250000u);
  // The first embedding value is the same float as in the llama2.c checkpoint's first weight.
  float first_emb;
  std::memcpy(&first_emb, emb->data, 4);
  std::string bin = ReadAll(std::string(TAILOR_SHARED_DIR) + "/models/stories260K/stories260K.bin");
  float first_bin;
  std::memcpy(&first_bin, bin.data() + 28, 4);
  EXPECT_EQ(first_emb, first_bin);
}

TEST_F(GgufTest, EveryValueTypeAlignmentAndTensors) {
  const std::string bytes = RichFile();
  auto g = OpenBytes(bytes);
  ASSERT_TRUE(g.ok()) << g.status();
  const GgufFile& f = **g;
  EXPECT_EQ(f.GetInt("u8"), 200);
  EXPECT_EQ(f.GetInt("i8"), -100);
  EXPECT_EQ(f.GetInt("u16"), 60000);
  EXPECT_EQ(f.GetInt("i16"), -30000);
  EXPECT_EQ(f.GetInt("u32"), 4000000000LL);
  EXPECT_EQ(f.GetInt("i32"), -2000000000);
  EXPECT_EQ(f.GetFloat("f32"), 1.5);
  EXPECT_EQ(f.GetBool("bool"), true);
  EXPECT_EQ(f.GetString("str"), "héllo");
  EXPECT_FALSE(f.GetInt("u64").has_value());  // 2^63 does not fit an int64
  EXPECT_EQ(f.GetFloat("u64"), 9223372036854775808.0);
  EXPECT_EQ(f.GetInt("i64"), -(int64_t{1} << 40));
  EXPECT_EQ(f.GetFloat("f64"), 0.25);
  EXPECT_EQ(f.GetFloat("i32"), -2000000000.0);  // integers read as floats too
  EXPECT_FALSE(f.GetInt("f32").has_value());
  EXPECT_FALSE(f.GetBool("u8").has_value());
  EXPECT_EQ(f.GetStringArray("strs"), (std::vector<std::string>{"a", "", "▁b"}));
  EXPECT_EQ(f.GetFloatArray("floats"), (std::vector<double>{-1.0, 2.5}));
  EXPECT_EQ(f.GetIntArray("ints"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(f.GetFloatArray("ints"), (std::vector<double>{1, -2, 3}));
  EXPECT_FALSE(f.GetIntArray("floats").has_value());
  EXPECT_FALSE(f.GetStringArray("ints").has_value());
  EXPECT_TRUE(f.Has("nested"));
  EXPECT_FALSE(f.GetStringArray("nested").has_value());
  EXPECT_EQ(f.Keys().size(), 17u);
  EXPECT_EQ(f.alignment(), 64u);

  ASSERT_EQ(f.tensors().size(), 4u);
  const size_t data_start = bytes.size() - 384;
  ASSERT_EQ(data_start % 64, 0u);
  const auto* base = reinterpret_cast<const std::byte*>(f.file()->data());
  const GgufTensorInfo* t = f.FindTensor("f32.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dims, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(t->nbytes, 32u);
  EXPECT_EQ(t->data, base + data_start);
  t = f.FindTensor("q8.weight");
  EXPECT_EQ(t->ggml_type, kGgmlTypeQ8_0);
  EXPECT_EQ(t->nbytes, 136u);
  EXPECT_EQ(t->data, base + data_start + 64);
  EXPECT_EQ(f.FindTensor("bf16.weight")->nbytes, 6u);
  t = f.FindTensor("iq.weight");
  EXPECT_EQ(t->ggml_type, 19u);
  EXPECT_EQ(t->nbytes, 0u);  // unknown size: the loader refuses it by type
  EXPECT_EQ(t->data, base + data_start + 320);
}

TEST_F(GgufTest, VersionTwoAccepted) {
  std::string bytes = RichFile();
  bytes[4] = 2;
  auto g = OpenBytes(bytes);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ((*g)->version(), 2u);
}

void ExpectError(const absl::StatusOr<std::unique_ptr<GgufFile>>& g,
                 std::vector<std::string> substrings) {
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument) << g.status();
  for (const auto& s : substrings) EXPECT_THAT(std::string(g.status().message()), HasSubstr(s));
}

TEST_F(GgufTest, MissingFile) {
  auto g = GgufFile::Open(tmp_ / "absent.gguf");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(g.status().message()), HasSubstr("absent.gguf"));
}

TEST_F(GgufTest, BadMagicAndVersion) {
  std::string bytes = RichFile();
  std::string bad = bytes;
  bad[0] = 'X';
  ExpectError(OpenBytes(bad, "magic.gguf"), {"magic.gguf", "not a GGUF file", "XGUF", "expected \"GGUF\""});
  ExpectError(OpenBytes("", "empty.gguf"), {"empty.gguf", "not a GGUF file"});
  ExpectError(OpenBytes("GG", "short.gguf"), {"not a GGUF file"});
  for (uint8_t v : {0, 1, 4, 200}) {
    bad = bytes;
    bad[4] = static_cast<char>(v);
    ExpectError(OpenBytes(bad), {"version " + std::to_string(v), "not supported"});
  }
}

// Every prefix of the file is an error (the data section is needed by the last tensor).
TEST_F(GgufTest, TruncatedAtEveryByte) {
  const std::string bytes = RichFile();
  // The last tensor of known size ends 262 bytes into the 384-byte data section.
  for (size_t cut = 0; cut < bytes.size() - 384 + 262; ++cut) {
    auto g = OpenBytes(bytes.substr(0, cut));
    ASSERT_FALSE(g.ok()) << "cut at " << cut;
    EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument) << cut;
  }
  ExpectError(OpenBytes(bytes.substr(0, 30)), {"truncated or corrupt at byte 24", "metadata count is 17"});
  ExpectError(OpenBytes(bytes.substr(0, 300)), {"truncated at byte", "while reading"});
}

TEST_F(GgufTest, Stories260KTruncated) {
  const std::string bytes = ReadAll(kStoriesGguf);
  ASSERT_GT(bytes.size(), 100000u);
  std::vector<size_t> cuts;
  for (size_t c = 0; c < 20000; c += 7) cuts.push_back(c);  // through metadata and tensor infos
  for (size_t c = 20000; c < bytes.size(); c += 9973) cuts.push_back(c);
  for (size_t c = bytes.size() - 40; c < bytes.size(); ++c) cuts.push_back(c);
  for (size_t cut : cuts) {
    auto g = OpenBytes(bytes.substr(0, cut));
    ASSERT_FALSE(g.ok()) << "cut at " << cut;
    EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument) << cut;
    EXPECT_THAT(std::string(g.status().message()), HasSubstr("t.gguf")) << cut;
  }
  ExpectError(OpenBytes(bytes.substr(0, 1000)), {"truncated", "tokenizer.ggml.tokens"});
  ExpectError(OpenBytes(bytes.substr(0, 6000)), {"truncated at byte", "while reading element", "of metadata 'tokenizer.ggml.tokens'"});
  ExpectError(OpenBytes(bytes.substr(0, bytes.size() - 1)), {"past the end of the file"});
}

TEST_F(GgufTest, AbsurdCountsAndLengths) {
  GgufBytes a;
  a.Header(3, 0, uint64_t{1} << 60);
  ExpectError(OpenBytes(a.str()), {"the metadata count is 1152921504606846976"});
  GgufBytes b;
  b.Header(3, uint64_t{1} << 62, 0);
  ExpectError(OpenBytes(b.str()), {"the tensor count is 4611686018427387904"});
  GgufBytes c;
  c.Header(3, 0, 1).Pod<uint64_t>(~uint64_t{0}).Raw("abcdefghijklmnop");
  ExpectError(OpenBytes(c.str()), {"truncated at byte 24", "key of metadata entry 0"});
  GgufBytes d;
  d.Header(3, 0, 1).Key("arr", 9).Pod<uint32_t>(8).Pod<uint64_t>(uint64_t{1} << 61).Raw("xxxxxxxx");
  ExpectError(OpenBytes(d.str()), {"the length of metadata 'arr' is 2305843009213693952"});
  GgufBytes e;
  e.Header(3, 0, 1).Key("s", 8).Pod<uint64_t>(1000).Raw("short");
  ExpectError(OpenBytes(e.str()), {"truncated", "value of metadata 's'"});
}

TEST_F(GgufTest, UnknownTypesAndBadStructure) {
  GgufBytes a;
  a.Header(3, 0, 1).Key("k", 13).Pod<uint32_t>(0);
  ExpectError(OpenBytes(a.str()), {"metadata 'k'", "unknown value type 13"});
  GgufBytes b;
  b.Header(3, 0, 1).Key("k", 9).Pod<uint32_t>(77).Pod<uint64_t>(1).Pod<uint32_t>(0);
  ExpectError(OpenBytes(b.str()), {"unknown value type 77"});
  GgufBytes c;
  c.Header(3, 0, 2).Key("k", 4).Pod<uint32_t>(1).Key("k", 4).Pod<uint32_t>(2);
  ExpectError(OpenBytes(c.str()), {"'k' appears twice"});
  GgufBytes d;  // arrays nested too deep
  d.Header(3, 0, 1).Key("deep", 9);
  for (int i = 0; i < 6; ++i) d.Pod<uint32_t>(9).Pod<uint64_t>(1);
  d.Pod<uint32_t>(4).Pod<uint64_t>(0).Raw(std::string(64, '\0'));
  ExpectError(OpenBytes(d.str()), {"nests arrays"});
  GgufBytes e;
  e.Header(3, 0, 1).Key("general.alignment", 4).Pod<uint32_t>(48);
  ExpectError(OpenBytes(e.str()), {"general.alignment", "power of two"});
  GgufBytes f;
  f.Header(3, 1, 0).TensorInfo("t", {1, 1, 1, 1, 1}, 0, 0);
  ExpectError(OpenBytes(f.str()), {"tensor 't' has 5 dimensions"});
  GgufBytes g;
  g.Header(3, 2, 0).TensorInfo("t", {4}, 0, 0).TensorInfo("t", {4}, 0, 32).PadTo(32).Raw(std::string(64, '\0'));
  ExpectError(OpenBytes(g.str()), {"tensor 't' appears twice"});
}

TEST_F(GgufTest, BadTensorPlacement) {
  GgufBytes a;
  a.Header(3, 1, 0).TensorInfo("w", {4}, 0, 8).PadTo(32).Raw(std::string(64, '\0'));
  ExpectError(OpenBytes(a.str()), {"tensor 'w'", "offset 8", "alignment 32"});
  GgufBytes b;
  b.Header(3, 1, 0).TensorInfo("w", {1000}, 0, 0).PadTo(32).Raw(std::string(64, '\0'));
  ExpectError(OpenBytes(b.str()), {"tensor 'w'", "more bytes than the whole file"});
  GgufBytes c;
  c.Header(3, 1, 0).TensorInfo("w", {4}, 0, uint64_t{1} << 62).PadTo(32).Raw(std::string(64, '\0'));
  ExpectError(OpenBytes(c.str()), {"past the end of the file"});
  GgufBytes d;  // element count overflows 64 bits
  d.Header(3, 1, 0).TensorInfo("w", {uint64_t{1} << 40, uint64_t{1} << 40, 1 << 20}, 0, 0);
  d.PadTo(32).Raw(std::string(64, '\0'));
  ExpectError(OpenBytes(d.str()), {"tensor 'w'", "more bytes than the whole file"});
  GgufBytes e;
  e.Header(3, 1, 0).TensorInfo("w", {33}, 8, 0).PadTo(32).Raw(std::string(64, '\0'));
  ExpectError(OpenBytes(e.str()), {"not a multiple of the block size 32"});
  GgufBytes f;  // zero tensors, no data section: a vocab-only file is fine
  f.Header(3, 0, 1).Key("a", 8).Str("b");
  EXPECT_TRUE(OpenBytes(f.str()).ok());
}

// Random corruption of bytes in the header region: must never crash (errors or not).
TEST_F(GgufTest, RandomCorruptionNeverCrashes) {
  const std::string bytes = RichFile();
  uint32_t state = 12345;
  auto next = [&] { return state = state * 1664525u + 1013904223u; };
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bad = bytes;
    int flips = 1 + next() % 4;
    for (int k = 0; k < flips; ++k) {
      size_t pos = next() % (bytes.size() - 384);
      bad[pos] = static_cast<char>(next() >> 24);
    }
    auto g = OpenBytes(bad);
    if (g.ok()) {
      for (const GgufTensorInfo& t : (*g)->tensors()) {
        ASSERT_LE(t.data + t.nbytes, (*g)->file()->data() + (*g)->file()->size());
      }
    }
  }
}

}  // namespace
}  // namespace tailor
