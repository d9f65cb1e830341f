// Llama 3, Qwen2 and Qwen3 against the float64 reference of ../shared/reference/families_logits.json
// (an implementation written from transformers' modeling code, cross-checked with llama.cpp):
// through the reference forward pass (fp32, float64 accumulation) and through compiled packages
// (f32 and bf16 weights, generated kernels and the native path), and batch invariance of the
// ops these families add (q/k/v biases, per-head q/k norms).
#include <algorithm>
#include <cmath>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "engine/runtime.h"
#include "engine/spec_config.h"
#include "kernels/reference_kernels.h"
#include "engine/sequence_runner.h"
#include "gtest/gtest.h"
#include "models/family.h"
#include "models/reference_forward.h"
#include "nlohmann/json.hpp"
#include "tests/package_fixture.h"
#include "tests/step_helpers.h"
#include "tests/test_util.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing_util::TestLoadOptions;
using testing_util::TestPackage;

const std::string kShared = TAILOR_SHARED_DIR;

const json& References() {
  static const json* j = [] {
    std::ifstream in(kShared + "/reference/families_logits.json");
    return new json(json::parse(in));
  }();
  return *j;
}

std::unique_ptr<Model> Load(const std::string& rel) {
  auto m = LoadModel(kShared + "/models/" + rel, TestLoadOptions(rel));
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? std::move(m).value() : nullptr;
}

struct Family {
  std::string dir;          // under ../shared/models
  std::string family;       // ModelFamily::name()
  int32_t head_dim;
};
const Family kFamilies[] = {{"tiny-llama3", "llama", 16}, {"tiny-qwen2", "qwen2", 16}, {"tiny-qwen3", "qwen3", 32}};

// Something that takes tokens and returns the last token's logits.
using Feed = std::function<std::vector<float>(std::span<const int32_t>)>;

// Teacher-forces every case of the model's reference through `feed` (a fresh sequence per case):
// at each step the reference's top-5 logits within `tolerance` (times max(1, |top-1 logit|) with
// `relative`), and the argmax the reference's greedy id wherever its top-1/top-2 gap exceeds
// twice that.
void ExpectMatchesReference(const std::string& dir, const std::function<Feed()>& fresh, float tolerance,
                            bool relative, const std::string& what) {
  const json& ref = References()["families"][dir];
  ASSERT_FALSE(ref.is_null()) << dir;
  for (const json& c : ref["cases"]) {
    Feed feed = fresh();
    const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    const auto greedy = c["greedy_ids"].get<std::vector<int32_t>>();
    ASSERT_EQ(greedy.size(), 24u);
    std::vector<int32_t> next = prompt;
    for (size_t step = 0; step < greedy.size(); ++step) {
      const std::vector<float> logits = feed(next);
      ASSERT_FALSE(logits.empty()) << what;
      const auto top_ids = c["top_ids"][step].get<std::vector<int32_t>>();
      const auto top_logits = c["top_logits"][step].get<std::vector<double>>();
      const double scale = relative ? std::max(1.0, std::fabs(top_logits[0])) : 1.0;
      for (size_t k = 0; k < top_ids.size(); ++k) {
        EXPECT_NEAR(logits[top_ids[k]], top_logits[k], tolerance * scale)
            << what << " " << dir << " \"" << c["prompt"].get<std::string>() << "\" step " << step << " id " << top_ids[k];
      }
      const int32_t argmax = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      if (c["gap_top1_top2"][step].get<double>() > 2 * tolerance * scale) {
        EXPECT_EQ(argmax, greedy[step]) << what << " " << dir << " step " << step;
      }
      next = {greedy[step]};
    }
  }
}

// Fresh sequences on the reference forward pass of `model` (which must outlive it).
class ReferenceFeeds {
 public:
  explicit ReferenceFeeds(const Model& model) : model_(model), fwd_(model) {}
  Feed Fresh() {
    cache_ = std::make_unique<ReferenceKvCache>(model_.config);
    return [this](std::span<const int32_t> tokens) -> std::vector<float> {
      ReferenceRow row{cache_.get(), tokens};
      auto out = fwd_.Run({&row, 1});
      if (!out.ok()) return {};
      const size_t V = model_.config.vocab_size;
      return std::vector<float>(out->at(0).end() - V, out->at(0).end());
    };
  }

 private:
  const Model& model_;
  ReferenceForward fwd_;
  std::unique_ptr<ReferenceKvCache> cache_;
};

TEST(Families, ConfigurationsAndRotaryFrequencies) {
  for (const Family& f : kFamilies) {
    auto m = Load(f.dir);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->config.family, f.family);
    EXPECT_EQ(m->family, FindFamily(f.family));
    EXPECT_EQ(m->config.head_dim, f.head_dim);
    EXPECT_TRUE(m->config.tied_embeddings);
    EXPECT_EQ(m->Weight("output.weight"), nullptr) << "tied: no separate output";
    const auto want = References()["families"][f.dir]["rope_inv_freq"].get<std::vector<double>>();
    const std::vector<double> got = RopeInvFreq(m->config);
    ASSERT_EQ(got.size(), want.size()) << f.dir;
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12 * want[i]) << f.dir << " " << i;
  }
  // Every eos id of generation_config.json: Qwen3 has two.
  auto qwen3 = Load("tiny-qwen3");
  ASSERT_NE(qwen3, nullptr);
  EXPECT_EQ(qwen3->config.eos_ids, (std::vector<int32_t>{151645, 151643}));
  auto bias = Load("tiny-qwen2");
  ASSERT_NE(bias, nullptr);
  EXPECT_NE(bias->Weight("blk.1.attn_v.bias"), nullptr);
}

// Linear rope scaling divides every frequency by its factor; a directory with both tokenizers
// uses tokenizer.json.
TEST(Families, LinearRopeScalingAndTokenizerChoice) {
  testing_util::TempDir tmp;
  for (const char* f : {"model.safetensors", "generation_config.json"}) {
    std::filesystem::create_symlink(kShared + "/models/tiny-qwen3/" + f, tmp / f);
  }
  json config = json::parse(std::ifstream(kShared + "/models/tiny-qwen3/config.json"));
  config["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  testing_util::WriteAll(tmp / "config.json", config.dump());
  std::filesystem::create_symlink(kShared + "/models/tokenizers/qwen3/tokenizer.json", tmp / "tokenizer.json");
  std::filesystem::create_symlink(kShared + "/models/stories260K/tok512.model", tmp / "tokenizer.model");
  auto m = LoadModel(tmp.path());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->tokenizer_path.filename(), "tokenizer.json");
  const std::vector<double> plain = DefaultRopeInvFreq(1e6, 32), scaled = RopeInvFreq((*m)->config);
  ASSERT_EQ(scaled.size(), 16u);
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_DOUBLE_EQ(scaled[i], plain[i] / 4) << i;
}

TEST(Families, ReferenceForwardMatches) {
  for (const Family& f : kFamilies) {
    auto m = Load(f.dir);
    ASSERT_NE(m, nullptr);
    ReferenceFeeds feeds(*m);
    ExpectMatchesReference(f.dir, [&] { return feeds.Fresh(); }, 1e-4f, false, "reference");
  }
}

// GGUF files of the families: Llama 3 in BF16 (bit-identical weights, q/k rows permuted by the
// converter, Llama 3's rope scaling as rope_freqs factors) and Qwen2 in Q8_0 (NEOX rope, biases in
// F32; Q8_0 rounding moves logits by up to ~0.2, as llama.cpp's own run of the file shows).
TEST(Families, GgufFilesMatch) {
  auto llama3 = Load("tiny-llama3-BF16.gguf");
  ASSERT_NE(llama3, nullptr);
  EXPECT_EQ(llama3->config.family, "llama");
  EXPECT_EQ(llama3->config.rope_layout, RopeLayout::kInterleaved);
  auto qwen2 = Load("tiny-qwen2-Q8_0.gguf");
  ASSERT_NE(qwen2, nullptr);
  EXPECT_EQ(qwen2->config.family, "qwen2");
  EXPECT_EQ(qwen2->config.rope_layout, RopeLayout::kHalf);
  EXPECT_EQ(qwen2->Weight("blk.0.attn_q.weight")->dtype, DType::kQ8_0);
  for (const auto& [model, dir, tolerance] : {std::tuple{llama3.get(), "tiny-llama3", 1e-4f},
                                              std::tuple{qwen2.get(), "tiny-qwen2", 0.25f}}) {
    ReferenceFeeds feeds(*model);
    ExpectMatchesReference(dir, [&] { return feeds.Fresh(); }, tolerance, false, model->source.filename().string());
  }
}

// Compiled without --dtype, quantized GGUF tensors keep their format: Q8_0 and Q4_0 blocks are
// repacked into q8_0 and q4 with the same values; K-quants become q8_0 (close, not equal).
TEST(Families, GgufQuantizedTensorsKeepTheirFormat) {
  for (const auto& [file, from, to, exact] :
       {std::tuple{"tiny-qwen2-Q8_0.gguf", DType::kQ8_0, DType::kQ8, true},
        std::tuple{"quant-test/quant-test-Q4_0.gguf", DType::kQ4_0, DType::kQ4, true},
        std::tuple{"quant-test/quant-test-Q4_K_M.gguf", DType::kQ4_K, DType::kQ8, false}}) {
    auto model = Load(file);
    ASSERT_NE(model, nullptr);
    testing_util::TempDir tmp;
    auto specs = ParseSpecConfig(R"({"specializations": [{"batch_size": "1", "seq_len": "1", "ctx_len": "16"}]})",
                                 "specs", model->config.max_positions);
    ASSERT_TRUE(specs.ok());
    CompileOptions o;
    o.out = tmp.path();
    o.target = Target::kNative;
    o.compile_only = true;
    o.keep_source_formats = true;
    ASSERT_TRUE(CompilePackage(*model, *specs, o).ok()) << file;
    auto pkg = OpenPackage(tmp.path());
    ASSERT_TRUE(pkg.ok()) << pkg.status();
    int checked = 0;
    for (size_t i = 0; i < model->tensors.size(); ++i) {
      const TensorDesc& t = model->tensors[i];
      const WeightView& src = model->weights[i];
      const TensorRef& ref = (*pkg)->weights.tensors[i];
      if (src.dtype != from || t.rope_features) continue;  // q/k rows are reordered for rope
      ASSERT_EQ(ref.dtype, to) << file << " " << t.name;
      const WeightView packed{ref.dtype, ref.rows, ref.cols, (*pkg)->weights_file->data() + ref.offset};
      std::vector<float> want(src.cols), got(src.cols);
      for (int64_t r = 0; r < src.rows; r += 7) {
        ref::DequantizeRow(src, r, want.data());
        ref::DequantizeRow(packed, r, got.data());
        for (int64_t c = 0; c < src.cols; ++c) {
          if (exact) {
            ASSERT_EQ(got[c], want[c]) << file << " " << t.name << " " << r << "," << c;
          } else {  // within half a step of q8_0's scale: amax of the block / 127 / 2
            float amax = 0;
            for (int64_t j = c / 32 * 32; j < c / 32 * 32 + 32; ++j) amax = std::max(amax, std::fabs(want[j]));
            ASSERT_NEAR(got[c], want[c], amax / 254 * 1.01f + 1e-7f) << file << " " << t.name;
          }
        }
      }
      ++checked;
    }
    EXPECT_GT(checked, 3) << file;
  }
}

constexpr char kSpecs[] = R"({"specializations": [
    {"batch_size": "1", "seq_len": "1", "ctx_len": "64"},
    {"batch_size": "3", "seq_len": "1", "ctx_len": "64", "compile_opts": "-ols=2"},
    {"batch_size": "2", "seq_len": "4", "ctx_len": "64", "compile_opts": "-ols=3"}]})";

fs::path Package(const Family& f, DType dtype, Target target) {
  CompileOptions o;
  o.weight_dtype = dtype;
  o.target = target;
  o.compile_only = true;
  return TestPackage(absl::StrCat(f.dir, "_", DTypeName(dtype), target == Target::kNative ? "_native" : ""), f.dir,
                     kSpecs, o);
}

std::unique_ptr<Runtime> Open(const fs::path& dir, bool native) {
  return testing_util::OpenRuntime(dir, native, 4);
}

void ExpectPackageMatches(const Family& f, const fs::path& dir, bool native, float tolerance, bool relative) {
  auto rt = Open(dir, native);
  ASSERT_NE(rt, nullptr);
  EXPECT_EQ(rt->package().config.family, f.family);
  std::unique_ptr<SequenceRunner> runner;
  ExpectMatchesReference(f.dir, [&]() -> Feed {
    runner = std::make_unique<SequenceRunner>(*rt);
    return [&](std::span<const int32_t> tokens) -> std::vector<float> {
      auto out = runner->Feed(tokens);
      EXPECT_TRUE(out.ok()) << out.status();
      return out.ok() ? *out : std::vector<float>{};
    };
  }, tolerance, relative, absl::StrCat(dir.filename().string(), native ? " native path" : " generated"));
}

TEST(Families, F32PackagesMatch) {
  for (const Family& f : kFamilies) {
    ExpectPackageMatches(f, Package(f, DType::kF32, Target::kGenerated), false, 1e-4f, false);
    ExpectPackageMatches(f, Package(f, DType::kF32, Target::kNative), false, 1e-4f, false);
  }
}

// bf16 weights compute on bf16-rounded activations: within 2e-2 of the top logit's size.
TEST(Families, Bf16PackagesMatch) {
  for (const Family& f : kFamilies) {
    const fs::path dir = Package(f, DType::kBF16, Target::kGenerated);
    ExpectPackageMatches(f, dir, false, 2e-2f, true);
    ExpectPackageMatches(f, dir, true, 2e-2f, true);
  }
}

// A row's logits are bitwise the same alone, beside other rows (-ols=2), and in prompt chunks
// beside another row (-ols=3), for the ops Qwen adds.
TEST(Families, BatchInvariance) {
  for (const Family& f : {kFamilies[1], kFamilies[2]}) {
    auto gen = Open(Package(f, DType::kBF16, Target::kGenerated), false);
    auto nat = Open(Package(f, DType::kBF16, Target::kGenerated), true);
    ASSERT_TRUE(gen && nat);
    ASSERT_TRUE(gen->uses_generated_kernels());
    const std::vector<int32_t> seq = {9707, 11, 1879, 0, 358, 1079, 264, 1273};
    const auto base = testing_util::FeedWithCompanions(*gen, 0, seq, 1, 1, 64);
    ASSERT_EQ(base.size(), seq.size());
    for (Runtime* rt : {gen.get(), nat.get()}) {
      EXPECT_EQ(testing_util::FeedWithCompanions(*rt, 1, seq, 1, 2, 64), base) << f.dir;
      EXPECT_EQ(testing_util::FeedWithCompanions(*rt, 0, seq, 1, 3, 64), base) << f.dir;
      auto chunks = testing_util::FeedWithCompanions(*rt, 2, seq, 4, 4, 64);
      ASSERT_EQ(chunks.size(), 2u);
      EXPECT_EQ(chunks[0], base[3]) << f.dir;
      EXPECT_EQ(chunks[1], base[7]) << f.dir;
    }
  }
}

}  // namespace
}  // namespace tailor
