// GGUF's quantized tensor types (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) on llama.cpp-made files
// (../shared/models/quant-test): the loader takes every tensor, ref::DequantizeRow gives the
// same values as gguf-py's independent numpy dequantization (../shared/reference/
// quant_gguf_dequant.json), the reference forward pass runs on every file, and unsupported or
// malformed tensors are refused with messages naming the tensor and the type.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/gguf_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/reference_kernels.h"
#include "models/model_loader.h"
#include "models/reference_forward.h"
#include "nlohmann/json.hpp"
#include "tests/test_util.h"

namespace tailor {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using testing_util::ReadAll;
using testing_util::TempDir;
using testing_util::WriteAll;

const std::string kShared = TAILOR_SHARED_DIR;
const std::string kQuantDir = kShared + "/models/quant-test/";
const std::vector<std::string> kFiles = {"quant-test-Q8_0.gguf", "quant-test-Q6_K.gguf",
                                         "quant-test-Q5_K_M.gguf", "quant-test-Q4_K_M.gguf",
                                         "quant-test-Q4_0.gguf"};

const json& Reference() {
  static const json* ref =
      new json(json::parse(ReadAll(kShared + "/reference/quant_gguf_dequant.json")));
  return *ref;
}

// numpy.random.default_rng(seed).integers(0, n, count) for n <= 2^32, as numpy computes it:
// SeedSequence(seed) -> PCG64 (XSL-RR 128/64) -> 32-bit draws (low half of each 64-bit output
// first) -> Lemire's bounded integers with rejection.
class NumpyDefaultRng {
 public:
  explicit NumpyDefaultRng(uint32_t seed) {
    // SeedSequence: a pool of 4 words mixed from the entropy [seed], then 8 words out.
    constexpr uint32_t kInitA = 0x43b0d7e5, kMultA = 0x931e8875, kInitB = 0x8b51f9dd,
                       kMultB = 0x58f38ded, kMixL = 0xca01f9dd, kMixR = 0x4973f715;
    uint32_t hash = kInitA;
    auto hashmix = [&hash](uint32_t v) {
      v ^= hash;
      hash *= kMultA;
      v *= hash;
      return v ^ (v >> 16);
    };
    auto mix = [](uint32_t x, uint32_t y) {
      uint32_t r = kMixL * x - kMixR * y;
      return r ^ (r >> 16);
    };
    uint32_t pool[4];
    for (int i = 0; i < 4; ++i) pool[i] = hashmix(i == 0 ? seed : 0);
    for (int src = 0; src < 4; ++src) {
      for (int dst = 0; dst < 4; ++dst) {
        if (src != dst) pool[dst] = mix(pool[dst], hashmix(pool[src]));
      }
    }
    uint32_t words[8];
    uint32_t hash_b = kInitB;
    for (int i = 0; i < 8; ++i) {
      uint32_t v = pool[i % 4] ^ hash_b;
      hash_b *= kMultB;
      v *= hash_b;
      words[i] = v ^ (v >> 16);
    }
    uint64_t s[4];
    for (int i = 0; i < 4; ++i) {
      s[i] = words[2 * i] | (static_cast<uint64_t>(words[2 * i + 1]) << 32);
    }
    // PCG64's seeding from (initstate, initseq).
    const U128 initstate = (static_cast<U128>(s[0]) << 64) | s[1];
    const U128 initseq = (static_cast<U128>(s[2]) << 64) | s[3];
    state_ = 0;
    inc_ = (initseq << 1) | 1;
    Step();
    state_ += initstate;
    Step();
  }

  std::vector<int64_t> Integers(int64_t n, int count) {
    const uint32_t rng = static_cast<uint32_t>(n - 1), excl = rng + 1;
    std::vector<int64_t> out;
    for (int i = 0; i < count; ++i) {
      uint64_t m = static_cast<uint64_t>(Next32()) * excl;
      if (static_cast<uint32_t>(m) < excl) {
        const uint32_t threshold = (UINT32_MAX - rng) % excl;
        while (static_cast<uint32_t>(m) < threshold) m = static_cast<uint64_t>(Next32()) * excl;
      }
      out.push_back(static_cast<int64_t>(m >> 32));
    }
    return out;
  }

 private:
  using U128 = unsigned __int128;
  void Step() {
    const U128 mult = (static_cast<U128>(0x2360ED051FC65DA4ull) << 64) | 0x4385DF649FCCF645ull;
    state_ = state_ * mult + inc_;
  }
  uint64_t Next64() {
    Step();
    const uint64_t x = static_cast<uint64_t>(state_ >> 64) ^ static_cast<uint64_t>(state_);
    const unsigned rot = static_cast<unsigned>(state_ >> 122);
    return (x >> rot) | (x << ((64 - rot) & 63));
  }
  uint32_t Next32() {
    if (has_high_) {
      has_high_ = false;
      return high_;
    }
    const uint64_t v = Next64();
    high_ = static_cast<uint32_t>(v >> 32);
    has_high_ = true;
    return static_cast<uint32_t>(v);
  }

  U128 state_ = 0, inc_ = 0;
  uint32_t high_ = 0;
  bool has_high_ = false;
};

std::unique_ptr<Model> Load(const std::string& path) {
  auto m = LoadModel(path);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? std::move(m).value() : nullptr;
}

// The DType the loader should give a tensor of ggml type `name` ("Q4_K" -> kQ4_K).
std::optional<DType> ExpectedDType(const std::string& name) {
  if (name == "F32") return DType::kF32;
  if (name == "F16") return DType::kF16;
  if (name == "BF16") return DType::kBF16;
  std::string lower;
  for (char c : name) {
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return ParseDType("gguf_" + lower);
}

// Distance in units in the last place between two finite floats of the same sign (or zeros).
int64_t UlpDistance(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  auto ordered = [](int32_t i) { return i < 0 ? int64_t{INT32_MIN} - i : int64_t{i}; };
  return std::llabs(ordered(ia) - ordered(ib));
}

TEST(GgufQuantFiles, ReferenceCoversEveryFile) {
  std::vector<std::string> names;
  for (const auto& [name, file] : Reference()["files"].items()) names.push_back(name);
  EXPECT_THAT(names, ::testing::UnorderedElementsAreArray(kFiles));
}

class GgufQuantFile : public ::testing::TestWithParam<std::string> {};

// Every tensor: its type as recorded, and its dequantized values bit for bit (first 16, the 256
// sampled flat indices), its sum and sum of squares within a relative 1e-6.
TEST_P(GgufQuantFile, DequantizationMatchesGgufPy) {
  const std::string path = kQuantDir + GetParam();
  const json& ref = Reference()["files"][GetParam()];
  auto gguf = GgufFile::Open(path);
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  auto model = Load(path);
  ASSERT_NE(model, nullptr);
  ASSERT_EQ(ref["tensors"].size(), model->weights.size());
  int64_t compared = 0;
  for (const auto& [name, t] : ref["tensors"].items()) {
    SCOPED_TRACE(GetParam() + ": " + name);
    const std::string type = t["type"].get<std::string>();
    const GgufTensorInfo* info = (*gguf)->FindTensor(name);
    ASSERT_NE(info, nullptr);
    ASSERT_NE(GgmlTypeName(info->ggml_type), nullptr);
    EXPECT_EQ(GgmlTypeName(info->ggml_type), type);
    EXPECT_EQ(info->dims, t["shape"].get<std::vector<int64_t>>());
    const WeightView* w = model->Weight(name);
    ASSERT_NE(w, nullptr);
    ASSERT_EQ(model->files.size(), 1u);
    EXPECT_EQ(w->data - model->files[0]->data(), info->data - (*gguf)->file()->data());
    ASSERT_EQ(std::optional<DType>(w->dtype), ExpectedDType(type));

    std::vector<float> values(static_cast<size_t>(w->rows * w->cols));
    for (int64_t r = 0; r < w->rows; ++r) ref::DequantizeRow(*w, r, values.data() + r * w->cols);
    const int64_t n = static_cast<int64_t>(values.size());

    auto expect_exact = [&](int64_t index, double expected) {
      const float got = values[static_cast<size_t>(index)];
      EXPECT_EQ(static_cast<float>(expected), expected) << "reference value is not a float";
      EXPECT_EQ(got, expected) << "flat index " << index << " ("
                               << UlpDistance(got, static_cast<float>(expected)) << " ulp)";
      ++compared;
    };
    const auto first = t["first16"].get<std::vector<double>>();
    ASSERT_EQ(first.size(), 16u);
    for (int64_t i = 0; i < 16; ++i) expect_exact(i, first[i]);
    const auto samples = t["samples"].get<std::vector<double>>();
    const std::vector<int64_t> indices = NumpyDefaultRng(7).Integers(n, 256);
    ASSERT_EQ(samples.size(), indices.size());
    for (size_t i = 0; i < indices.size(); ++i) expect_exact(indices[i], samples[i]);

    double sum = 0, sum_sq = 0;
    for (float v : values) {
      sum += v;
      sum_sq += static_cast<double>(v) * v;
    }
    const double ref_sum = t["sum"].get<double>(), ref_sq = t["sum_sq"].get<double>();
    EXPECT_NEAR(sum, ref_sum, 1e-6 * std::fabs(ref_sum));
    EXPECT_NEAR(sum_sq, ref_sq, 1e-6 * ref_sq);
  }
  EXPECT_EQ(compared, static_cast<int64_t>(ref["tensors"].size()) * (16 + 256));
}

INSTANTIATE_TEST_SUITE_P(QuantTest, GgufQuantFile, ::testing::ValuesIn(kFiles),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string s = info.param.substr(11, info.param.size() - 16);
                           return s;  // "Q8_0", "Q4_K_M", ...
                         });

// Logits at every position of `tokens`, one teacher-forced pass: [tokens.size(), vocab].
std::vector<float> Logits(const Model& m, const std::vector<int32_t>& tokens) {
  ReferenceForward fwd(m);
  ReferenceKvCache cache(m.config);
  ReferenceRow row{&cache, tokens};
  auto logits = fwd.Run({&row, 1});
  EXPECT_TRUE(logits.ok()) << logits.status();
  return logits.ok() ? logits->at(0) : std::vector<float>();
}

// The forward pass runs on every file. There is no F32 file to compare with, so Q8_0 (the
// finest) is the baseline: Q6_K's logits stay close to it, and the 4-bit files, whose weights
// are coarser, differ from it more than Q6_K does.
TEST(GgufQuantForward, LogitsDivergeWithCoarserTypes) {
  auto base = Load(kQuantDir + "quant-test-Q8_0.gguf");
  ASSERT_NE(base, nullptr);
  const int32_t V = base->config.vocab_size;
  // A few greedy tokens from BOS with the Q8_0 model, then the same ids through every file.
  std::vector<int32_t> tokens = {base->config.bos_id};
  {
    ReferenceForward fwd(*base);
    ReferenceKvCache cache(base->config);
    std::vector<int32_t> next = tokens;
    for (int i = 0; i < 8; ++i) {
      ReferenceRow row{&cache, next};
      auto logits = fwd.Run({&row, 1});
      ASSERT_TRUE(logits.ok()) << logits.status();
      const float* last = logits->at(0).data() + (next.size() - 1) * V;
      next = {static_cast<int32_t>(std::max_element(last, last + V) - last)};
      tokens.push_back(next[0]);
    }
  }
  const std::vector<float> ref = Logits(*base, tokens);
  ASSERT_EQ(ref.size(), tokens.size() * V);
  double ref_sq = 0;
  for (float x : ref) ref_sq += static_cast<double>(x) * x;
  ASSERT_GT(ref_sq, 0);

  // Relative RMS distance of each file's logits from Q8_0's.
  std::map<std::string, double> distance;
  for (const std::string& file : kFiles) {
    auto m = Load(kQuantDir + file);
    ASSERT_NE(m, nullptr);
    const std::vector<float> logits = Logits(*m, tokens);
    ASSERT_EQ(logits.size(), ref.size()) << file;
    double sq = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      ASSERT_TRUE(std::isfinite(logits[i])) << file;
      const double d = static_cast<double>(logits[i]) - ref[i];
      sq += d * d;
    }
    distance[file] = std::sqrt(sq / ref_sq);
    std::printf("%s: logits' relative RMS distance from Q8_0's %.5f\n", file.c_str(),
                distance[file]);
  }
  // The weights are random (no structure for the quantizers to exploit): against Q8_0's, Q6_K's
  // differ by about 2% RMS, Q5_K_M's 4%, Q4_K_M's 8% and Q4_0's 11%, and two layers and the
  // output projection amplify that a few times in the logits (measured: Q6_K 0.10, Q5_K_M 0.17,
  // Q4_K_M and Q4_0 0.43). The bounds leave about a factor of 2 either way.
  EXPECT_EQ(distance["quant-test-Q8_0.gguf"], 0.0);
  const double q6 = distance["quant-test-Q6_K.gguf"], q5 = distance["quant-test-Q5_K_M.gguf"];
  EXPECT_GT(q6, 0.0);
  EXPECT_LT(q6, 0.2);
  EXPECT_GT(q5, q6);
  for (const char* q4 : {"quant-test-Q4_K_M.gguf", "quant-test-Q4_0.gguf"}) {
    EXPECT_GT(distance[q4], 2 * q6) << q4;
    EXPECT_GT(distance[q4], q5) << q4;
    EXPECT_LT(distance[q4], 0.8) << q4;  // coarser, still the same model
  }
}

// Byte position of the ggml type field of tensor `name`'s info in a GGUF file's bytes (the info
// is: u64 name length, name, u32 n_dims, u64 dims[n_dims], u32 type, u64 offset).
size_t TypeFieldOf(const std::string& bytes, const std::string& name) {
  std::string key(8, '\0');
  const uint64_t len = name.size();
  std::memcpy(key.data(), &len, 8);
  key += name;
  const size_t at = bytes.find(key);
  EXPECT_NE(at, std::string::npos) << name;
  uint32_t n_dims;
  std::memcpy(&n_dims, bytes.data() + at + key.size(), 4);
  return at + key.size() + 4 + 8 * n_dims;
}

class GgufQuantRefusal : public ::testing::Test {
 protected:
  // A copy of the Q4_K_M file with tensor `name`'s type set to `type`.
  std::string WithType(const std::string& name, uint32_t type) {
    std::string bytes = ReadAll(kQuantDir + "quant-test-Q4_K_M.gguf");
    std::memcpy(bytes.data() + TypeFieldOf(bytes, name), &type, 4);
    const std::string path = (tmp_ / "edited.gguf").string();
    WriteAll(path, bytes);
    return path;
  }
  TempDir tmp_;
};

TEST_F(GgufQuantRefusal, UnsupportedTypesAreNamed) {
  struct Case {
    uint32_t type;
    const char* label;
  };
  for (const Case& c : {Case{kGgmlTypeQ2_K, "Q2_K (10)"}, Case{23, "IQ4_XS (23)"},
                        Case{3, "Q4_1 (3)"}, Case{99, "unknown (99)"}}) {
    auto m = LoadModel(WithType("blk.0.ffn_gate.weight", c.type));
    ASSERT_FALSE(m.ok()) << c.label;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(m.status().message(), HasSubstr("edited.gguf"));
    EXPECT_THAT(m.status().message(), HasSubstr("'blk.0.ffn_gate.weight'"));
    EXPECT_THAT(m.status().message(), HasSubstr(c.label));
    EXPECT_THAT(m.status().message(),
                HasSubstr("supported: F32 (0), F16 (1), Q4_0 (2), Q8_0 (8), Q4_K (12), Q5_K (13), "
                          "Q6_K (14), BF16 (30)"));
  }
}

TEST_F(GgufQuantRefusal, RowsMustHoldWholeBlocks) {
  // blk.0.attn_k.weight is Q4_K [256, 128]; as [128, 256] its rows hold half a block each.
  std::string bytes = ReadAll(kQuantDir + "quant-test-Q4_K_M.gguf");
  const size_t type_at = TypeFieldOf(bytes, "blk.0.attn_k.weight");
  const uint64_t dims[2] = {128, 256};
  std::memcpy(bytes.data() + type_at - 16, dims, 16);
  WriteAll(tmp_ / "edited.gguf", bytes);
  auto m = LoadModel(tmp_ / "edited.gguf");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("'blk.0.attn_k.weight'"));
  EXPECT_THAT(m.status().message(), HasSubstr("128 elements per row"));
  EXPECT_THAT(m.status().message(), HasSubstr("block size 256 of ggml type Q4_K (12)"));
}

// Names of the types, and the sizes the parser places tensors with.
TEST(GgmlTypes, NamesAndSizes) {
  EXPECT_STREQ(GgmlTypeName(kGgmlTypeQ4_0), "Q4_0");
  EXPECT_STREQ(GgmlTypeName(kGgmlTypeQ6_K), "Q6_K");
  EXPECT_STREQ(GgmlTypeName(kGgmlTypeBF16), "BF16");
  EXPECT_STREQ(GgmlTypeName(39), "MXFP4");
  EXPECT_EQ(GgmlTypeName(4), nullptr);   // Q4_2, retired
  EXPECT_EQ(GgmlTypeName(31), nullptr);  // Q4_0_4_4, retired
  EXPECT_EQ(GgmlTypeName(40), nullptr);
  EXPECT_EQ(GgmlTypeLabel(kGgmlTypeQ5_K), "Q5_K (13)");
  for (auto [ggml, dtype] : {std::pair{kGgmlTypeQ4_0, DType::kQ4_0}, {kGgmlTypeQ8_0, DType::kQ8_0},
                             {kGgmlTypeQ4_K, DType::kQ4_K}, {kGgmlTypeQ5_K, DType::kQ5_K},
                             {kGgmlTypeQ6_K, DType::kQ6_K}}) {
    auto size = GgmlTypeSizeOf(ggml);
    ASSERT_TRUE(size.has_value());
    EXPECT_EQ(size->block_elements, BlockElements(dtype)) << GgmlTypeLabel(ggml);
    EXPECT_EQ(size->block_bytes, BlockBytes(dtype)) << GgmlTypeLabel(ggml);
  }
}

}  // namespace
}  // namespace tailor
