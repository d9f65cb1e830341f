// Calibration profiles on the engine: histograms that grow and merge exactly, the clip methods,
// the .pgq format (round trip; every truncation and corruption refused), and a dump on
// stories260K over the default specializations checked against statistics computed here from
// the model's weights (layer 0's matmul input, keys after rope and values depend on the token
// and position alone), merging, and the checks a load makes.
#include <cmath>
#include <cstring>
#include <random>

#include "engine/profile.h"
#include "engine/profile_dump.h"
#include "engine/spec_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/model_loader.h"

namespace tailor {
namespace {

using ::testing::HasSubstr;

const std::string kShared = TAILOR_SHARED_DIR;
constexpr char kDefaultSpecs[] = R"({"specializations": [
    { "batch_size": "1", "seq_len": "1",  "ctx_len": "128" },
    { "batch_size": "1", "seq_len": "1",  "ctx_len": "512" },
    { "batch_size": "4", "seq_len": "1",  "ctx_len": "512" },
    { "batch_size": "8", "seq_len": "1",  "ctx_len": "512", "compile_opts": "-ols=2" },
    { "batch_size": "1", "seq_len": "32", "ctx_len": "512" },
    { "batch_size": "4", "seq_len": "16", "ctx_len": "512", "compile_opts": "-ols=2" }]})";

// ---------------------------------------------------------------------------------------------
// Histograms and clips

TEST(Histogram, GrowingKeepsWhatDirectBinningGives) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values;
  for (int i = 0; i < 5000; ++i) values.push_back(normal(rng) * (i < 2500 ? 0.01f : 3.0f));
  values.push_back(-4.0f);  // exactly a power of two, both signs
  values.push_back(2.0f);
  Histogram grown(64);
  for (float x : values) {
    grown.Cover(std::fabs(x));
    grown.Add(x);
  }
  float absmax = 0;
  for (float x : values) absmax = std::max(absmax, std::fabs(x));
  Histogram direct(64);
  direct.Cover(absmax);
  for (float x : values) direct.Add(x);
  EXPECT_EQ(grown.exponent(), direct.exponent());
  EXPECT_EQ(grown.counts(), direct.counts());
  EXPECT_EQ(grown.total(), values.size());
  EXPECT_GT(grown.range(), absmax);
  EXPECT_LE(grown.range(), 2 * absmax);

  // Merging halves in either order gives the same histogram.
  Histogram a(64), b(64);
  for (size_t i = 0; i < values.size(); ++i) {
    Histogram& h = i < 2500 ? a : b;
    h.Cover(std::fabs(values[i]));
    h.Add(values[i]);
  }
  Histogram ab = a, ba = b;
  ab.Merge(b);
  ba.Merge(a);
  EXPECT_EQ(ab.counts(), direct.counts());
  EXPECT_EQ(ba.counts(), direct.counts());
  EXPECT_EQ(ab.exponent(), direct.exponent());
}

TEST(Histogram, AbsCountsFoldTheNegativeSide) {
  Histogram h(8);  // range 4 after Cover(3): bins of width 1 over [-4, 4)
  h.Cover(3.0f);
  ASSERT_EQ(h.exponent(), 2);
  for (float x : {-3.5f, -0.5f, 0.0f, 0.5f, 1.5f, 3.9f}) h.Add(x);
  EXPECT_EQ(h.AbsCounts(), (std::vector<uint64_t>{3, 1, 0, 2}));
}

TEST(Clips, PercentileAndMseAreOrderedAndBounded) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Histogram h(512);
  float absmax = 0;
  std::vector<float> v;
  for (int i = 0; i < 20000; ++i) v.push_back(normal(rng));
  v.push_back(40.0f);  // one outlier
  for (float x : v) absmax = std::max(absmax, std::fabs(x));
  h.Cover(absmax);
  for (float x : v) h.Add(x);
  EXPECT_EQ(PercentileClip(h, absmax, 100.0), absmax);
  const float p9999 = PercentileClip(h, absmax, 99.99), p99 = PercentileClip(h, absmax, 99.0);
  EXPECT_LE(p99, p9999);
  EXPECT_LE(p9999, absmax);
  EXPECT_NEAR(p99, 2.576f, 0.25f);  // |N(0,1)|'s 99th percentile
  const float mse = MseClip(h, absmax);
  EXPECT_GT(mse, 0.0f);
  // The outlier's clipping error (40 - c)^2 against 20000 values' rounding noise (c / 127)^2 / 12:
  // the minimum is at c = 40 / (1 + 20000 / (12 * 127^2)) (bin centres, bin width 0.25).
  EXPECT_LT(mse, absmax);
  EXPECT_NEAR(mse, 40.125 / (1 + 20000.0 / (12 * 127.0 * 127.0)), 0.25);
  // Nothing seen: every clip is 0.
  EXPECT_EQ(PercentileClip(Histogram(512), 0.0f, 99.0), 0.0f);
  EXPECT_EQ(MseClip(Histogram(512), 0.0f), 0.0f);
}

// ---------------------------------------------------------------------------------------------
// A dump on stories260K

// Slot r's token at position p (deterministic, never BOS/EOS).
int32_t TokenAt(int32_t slot, int32_t pos, uint32_t seed) {
  uint32_t h = (static_cast<uint32_t>(slot) * 2654435761u) ^ (static_cast<uint32_t>(pos) * 40503u) ^ seed;
  h ^= h >> 13;
  h *= 0x5bd1e995u;
  h ^= h >> 15;
  return 3 + static_cast<int32_t>(h % 509);
}

CalibrationInput MakeInput(int32_t rows, int32_t start, int32_t tokens, uint32_t seed) {
  CalibrationInput in;
  in.listed_rows = rows;
  for (int32_t r = 0; r < rows; ++r) {
    CalibrationInput::Row row{r, start, {}};
    for (int32_t t = 0; t < tokens; ++t) row.tokens.push_back(TokenAt(r, start + t, seed));
    in.rows.push_back(row);
  }
  return in;
}

// One input of each default specialization (each at the start of its slots), then decode
// inputs reading what a prefill of slot 0 left.
std::vector<CalibrationInput> MakeInputs(uint32_t seed) {
  return {MakeInput(4, 0, 16, seed), MakeInput(1, 0, 32, seed), MakeInput(1, 32, 1, seed), MakeInput(1, 33, 1, seed),
          MakeInput(4, 16, 1, seed), MakeInput(8, 0, 1, seed),  MakeInput(1, 0, 1, seed)};
}

class StoriesProfile : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto model = LoadModel(kShared + "/models/stories260K/stories260K.bin",
                           LoadOptions{kShared + "/models/stories260K/tok512.model"});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = model->release();
    auto specs = ParseSpecConfig(kDefaultSpecs, "default", model_->config.max_positions);
    ASSERT_TRUE(specs.ok()) << specs.status();
    specs_ = new std::vector<Specialization>(*specs);
    auto profile = DumpProfile(*model_, *specs_, MakeInputs(1), DumpOptions{});
    ASSERT_TRUE(profile.ok()) << profile.status();
    profile_ = new Profile(*std::move(profile));
  }
  static void TearDownTestSuite() {
    delete profile_;
    delete specs_;
    delete model_;
  }

  // Runs of each input: the specializations that can run it.
  static std::vector<int> Runs(const std::vector<CalibrationInput>& inputs, std::vector<int64_t>* rows_per_spec) {
    std::vector<int> runs;
    rows_per_spec->assign(specs_->size(), 0);
    for (const CalibrationInput& in : inputs) {
      int n = 0;
      for (size_t s = 0; s < specs_->size(); ++s) {
        if (!Covers((*specs_)[s].shape, in.Shape())) continue;
        ++n;
        for (const auto& row : in.rows) (*rows_per_spec)[s] += static_cast<int64_t>(row.tokens.size());
      }
      runs.push_back(n);
    }
    return runs;
  }

  static Model* model_;
  static std::vector<Specialization>* specs_;
  static Profile* profile_;
};
Model* StoriesProfile::model_ = nullptr;
std::vector<Specialization>* StoriesProfile::specs_ = nullptr;
Profile* StoriesProfile::profile_ = nullptr;

const float* F32(const WeightView* w) {
  EXPECT_EQ(w->dtype, DType::kF32);
  return reinterpret_cast<const float*>(w->data);
}

TEST_F(StoriesProfile, EveryTensorEverySpecialization) {
  const Profile& p = *profile_;
  const std::vector<ProfiledTensor> expected = ProfiledTensors(model_->config, *model_->family);
  ASSERT_EQ(expected.size(), 5u * (7 + 2) + 1);  // q k v o gate up down, K and V, the output
  EXPECT_EQ(expected.back().name, "token_embd.weight");  // tied embeddings: the output projection
  ASSERT_EQ(p.tensors.size(), expected.size());
  ASSERT_EQ(p.specs.size(), 6u);
  std::vector<int64_t> rows_per_spec;
  Runs(MakeInputs(1), &rows_per_spec);
  for (size_t s = 0; s < p.specs.size(); ++s) {
    EXPECT_EQ(p.specs[s].name, (*specs_)[s].Name());
    EXPECT_GT(p.specs[s].inputs, 0) << p.specs[s].name;
    EXPECT_EQ(p.specs[s].token_rows, rows_per_spec[s]) << p.specs[s].name;
  }
  for (size_t i = 0; i < expected.size(); ++i) {
    const TensorProfile& t = p.tensors[i];
    EXPECT_EQ(t.name, expected[i].name);
    EXPECT_EQ(t.channels, expected[i].channels) << t.name;
    for (size_t s = 0; s < p.specs.size(); ++s) {
      EXPECT_GT(t.rows_per_spec[s], 0) << t.name << " on " << p.specs[s].name;
      // Token rows everywhere but after the last-token gather (one kept row per row of a step).
      if (t.name != "token_embd.weight") {
        EXPECT_EQ(t.rows_per_spec[s], rows_per_spec[s]) << t.name;
      }
    }
    EXPECT_EQ(t.histogram.total(), static_cast<uint64_t>(t.rows()) * t.channels) << t.name;
    EXPECT_LT(t.min, t.max) << t.name;
    float channel_max = 0;
    for (float a : t.channel_absmax) channel_max = std::max(channel_max, a);
    EXPECT_EQ(channel_max, t.absmax()) << t.name;
  }
  EXPECT_EQ(p.Find("blk.1.k")->channels, model_->config.kv_dim());
  EXPECT_EQ(p.Find("blk.2.ffn_down.weight")->channels, model_->config.ffn_dim);
}

// Layer 0's matmul input is rmsnorm(embedding[token]) * attn_norm, its keys are that times
// attn_k rotated by the position, its values that times attn_v: computed here in float64.
TEST_F(StoriesProfile, Layer0StatisticsMatchAnIndependentComputation) {
  const ModelConfig& c = model_->config;
  const float* embed = F32(model_->Weight("token_embd.weight"));
  const float* norm = F32(model_->Weight("blk.0.attn_norm.weight"));
  const float* wk = F32(model_->Weight("blk.0.attn_k.weight"));
  const float* wv = F32(model_->Weight("blk.0.attn_v.weight"));
  const std::vector<double> inv_freq = RopeInvFreq(c);
  const int D = c.dim, KV = c.kv_dim(), hd = c.head_dim;
  struct Stats {
    double min = 1e30, max = -1e30;
    std::vector<double> sumsq;
    int64_t rows = 0;
    void Add(const std::vector<double>& x, int weight) {
      sumsq.resize(x.size(), 0.0);
      for (size_t i = 0; i < x.size(); ++i) {
        min = std::min(min, x[i]);
        max = std::max(max, x[i]);
        sumsq[i] += weight * x[i] * x[i];
      }
      rows += weight;
    }
  } xs, ks, vs;
  const std::vector<CalibrationInput> inputs = MakeInputs(1);
  std::vector<int64_t> unused;
  const std::vector<int> runs = Runs(inputs, &unused);
  for (size_t i = 0; i < inputs.size(); ++i) {
    for (const auto& row : inputs[i].rows) {
      for (size_t t = 0; t < row.tokens.size(); ++t) {
        const int32_t pos = row.start + static_cast<int32_t>(t);
        const float* e = embed + static_cast<int64_t>(row.tokens[t]) * D;
        double ss = 0;
        for (int d = 0; d < D; ++d) ss += static_cast<double>(e[d]) * e[d];
        const double inv = 1.0 / std::sqrt(ss / D + c.rms_eps);
        std::vector<double> x(D), k(KV), v(KV);
        for (int d = 0; d < D; ++d) x[d] = e[d] * inv * norm[d];
        for (int f = 0; f < KV; ++f) {
          for (int d = 0; d < D; ++d) {
            k[f] += x[d] * wk[static_cast<int64_t>(f) * D + d];
            v[f] += x[d] * wv[static_cast<int64_t>(f) * D + d];
          }
        }
        for (int f = 0; f < KV; f += 2) {  // interleaved pairs of each head
          const double angle = pos * inv_freq[(f % hd) / 2];
          const double k0 = k[f], k1 = k[f + 1];
          k[f] = k0 * std::cos(angle) - k1 * std::sin(angle);
          k[f + 1] = k0 * std::sin(angle) + k1 * std::cos(angle);
        }
        xs.Add(x, runs[i]);
        ks.Add(k, runs[i]);
        vs.Add(v, runs[i]);
      }
    }
  }
  auto check = [&](const char* name, const Stats& want, double tol) {
    SCOPED_TRACE(name);
    const TensorProfile* t = profile_->Find(name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->rows(), want.rows);
    EXPECT_NEAR(t->min, want.min, tol * std::fabs(want.min));
    EXPECT_NEAR(t->max, want.max, tol * std::fabs(want.max));
    ASSERT_EQ(t->channel_sum_squares.size(), want.sumsq.size());
    for (size_t ch = 0; ch < want.sumsq.size(); ++ch) {
      EXPECT_NEAR(t->channel_sum_squares[ch], want.sumsq[ch], tol * want.sumsq[ch]) << "channel " << ch;
    }
  };
  check("blk.0.attn_q.weight", xs, 1e-5);
  check("blk.0.attn_v.weight", xs, 1e-5);
  check("blk.0.k", ks, 1e-4);
  check("blk.0.v", vs, 1e-4);

  // The calibration table from it.
  auto table = CalibrationTable::Build(*profile_, CalibrationMethod::kMinMax, 99.99, "p.pgq");
  auto q = table->ForTensor("blk.0.attn_q.weight");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ((*q)->clip, (*q)->absmax);
  EXPECT_NEAR((*q)->absmax, std::max(-xs.min, xs.max), 1e-5 * std::max(-xs.min, xs.max));
  ASSERT_EQ((*q)->channel_mean_square.size(), static_cast<size_t>(D));
  EXPECT_NEAR((*q)->channel_mean_square[3], xs.sumsq[3] / xs.rows, 1e-5 * xs.sumsq[3] / xs.rows);
  EXPECT_THAT(std::string(table->ForTensor("blk.9.attn_q.weight").status().message()), HasSubstr("blk.9.attn_q.weight"));
  EXPECT_EQ(table->record().method, "minmax");
  EXPECT_EQ(table->record().specializations.size(), 6u);
}

TEST_F(StoriesProfile, ClipMethodsAreOrdered) {
  auto minmax = CalibrationTable::Build(*profile_, CalibrationMethod::kMinMax, 99.99, "p");
  auto p100 = CalibrationTable::Build(*profile_, CalibrationMethod::kPercentile, 100.0, "p");
  auto p999 = CalibrationTable::Build(*profile_, CalibrationMethod::kPercentile, 99.9, "p");
  auto p90 = CalibrationTable::Build(*profile_, CalibrationMethod::kPercentile, 90.0, "p");
  auto mse = CalibrationTable::Build(*profile_, CalibrationMethod::kMse, 99.99, "p");
  for (const TensorProfile& t : profile_->tensors) {
    SCOPED_TRACE(t.name);
    const float absmax = (*minmax->ForTensor(t.name))->clip;
    EXPECT_EQ(absmax, t.absmax());
    EXPECT_EQ((*p100->ForTensor(t.name))->clip, absmax);
    const float a = (*p90->ForTensor(t.name))->clip, b = (*p999->ForTensor(t.name))->clip;
    EXPECT_GT(a, 0.0f);
    EXPECT_LE(a, b);
    EXPECT_LE(b, absmax);
    const float m = (*mse->ForTensor(t.name))->clip;
    EXPECT_GT(m, 0.0f);
    EXPECT_LE(m, absmax);
  }
}

TEST_F(StoriesProfile, FileRoundTripAndCorruption) {
  const std::string bytes = SerializeProfile(*profile_);
  const auto span = std::as_bytes(std::span<const char>(bytes.data(), bytes.size()));
  auto back = ParseProfile(span, "p.pgq");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(SerializeProfile(*back), bytes);
  EXPECT_TRUE(back->model.SameModel(profile_->model));
  EXPECT_EQ(back->model.name, profile_->model.name);
  EXPECT_EQ(back->file_checksum.size(), 16u);
  const TensorProfile& t = back->tensors[7];
  EXPECT_EQ(t.min, profile_->tensors[7].min);
  EXPECT_EQ(t.channel_sum_squares, profile_->tensors[7].channel_sum_squares);

  // Every truncation is refused, as is any flipped byte (checksum) or a wrong version.
  for (size_t n = 0; n < bytes.size(); n += std::max<size_t>(1, n / 7)) {
    auto r = ParseProfile(span.first(n), "p.pgq");
    ASSERT_FALSE(r.ok()) << n;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("p.pgq")) << n;
  }
  EXPECT_THAT(std::string(ParseProfile(span.first(bytes.size() - 1), "p.pgq").status().message()),
              HasSubstr("truncated"));
  for (size_t at : {size_t{3}, size_t{20}, bytes.size() / 2, bytes.size() - 20}) {
    std::string bad = bytes;
    bad[at] ^= 0x10;
    EXPECT_FALSE(ParseProfile(std::as_bytes(std::span<const char>(bad.data(), bad.size())), "p").ok()) << at;
  }
  std::string v2 = bytes;
  v2[8] = 2;
  EXPECT_THAT(std::string(ParseProfile(std::as_bytes(std::span<const char>(v2.data(), v2.size())), "p").status().message()),
              HasSubstr("version 2"));
  const std::string garbage = "not a profile at all";
  EXPECT_THAT(std::string(ParseProfile(std::as_bytes(std::span<const char>(garbage.data(), garbage.size())), "g")
                              .status()
                              .message()),
              HasSubstr("not a tailor calibration profile"));
}

TEST_F(StoriesProfile, MergeAddsAndEqualsOneDumpOverBothInputs) {
  auto twice = MergeProfiles(*profile_, *profile_);
  ASSERT_TRUE(twice.ok()) << twice.status();
  for (size_t i = 0; i < profile_->tensors.size(); ++i) {
    const TensorProfile& a = profile_->tensors[i];
    const TensorProfile& b = twice->tensors[i];
    EXPECT_EQ(b.rows(), 2 * a.rows());
    EXPECT_EQ(b.min, a.min);
    EXPECT_EQ(b.max, a.max);
    EXPECT_EQ(b.histogram.total(), 2 * a.histogram.total());
    EXPECT_EQ(b.histogram.exponent(), a.histogram.exponent());
    EXPECT_EQ(b.channel_absmax, a.channel_absmax);
    EXPECT_EQ(b.channel_sum_squares[0], 2 * a.channel_sum_squares[0]);
  }
  for (size_t s = 0; s < profile_->specs.size(); ++s) EXPECT_EQ(twice->specs[s].inputs, 2 * profile_->specs[s].inputs);

  // Other tokens, then one dump over both input lists.
  auto other = DumpProfile(*model_, *specs_, MakeInputs(2), DumpOptions{});
  ASSERT_TRUE(other.ok()) << other.status();
  std::vector<CalibrationInput> both = MakeInputs(1);
  for (CalibrationInput& in : MakeInputs(2)) both.push_back(std::move(in));
  auto together = DumpProfile(*model_, *specs_, both, DumpOptions{});
  ASSERT_TRUE(together.ok()) << together.status();
  auto merged = MergeProfiles(*profile_, *other);
  ASSERT_TRUE(merged.ok()) << merged.status();
  for (size_t i = 0; i < merged->tensors.size(); ++i) {
    const TensorProfile& m = merged->tensors[i];
    const TensorProfile& t = together->tensors[i];
    SCOPED_TRACE(m.name);
    EXPECT_EQ(m.rows_per_spec, t.rows_per_spec);
    EXPECT_EQ(m.min, t.min);
    EXPECT_EQ(m.max, t.max);
    EXPECT_EQ(m.histogram.exponent(), t.histogram.exponent());
    EXPECT_EQ(m.histogram.counts(), t.histogram.counts());
    EXPECT_EQ(m.channel_absmax, t.channel_absmax);
    for (int32_t c = 0; c < m.channels; ++c) {
      EXPECT_NEAR(m.channel_sum_squares[c], t.channel_sum_squares[c], 1e-9 * t.channel_sum_squares[c]);
    }
  }
  for (size_t s = 0; s < merged->specs.size(); ++s) {
    EXPECT_EQ(merged->specs[s].inputs, together->specs[s].inputs);
    EXPECT_EQ(merged->specs[s].token_rows, together->specs[s].token_rows);
  }
}

TEST_F(StoriesProfile, LoadChecks) {
  EXPECT_TRUE(CheckProfileServes(*profile_, *model_, *specs_, "p.pgq").ok());
  Profile other_model = *profile_;
  other_model.model.weights_checksum = "0123456789abcdef";
  absl::Status s = CheckProfileServes(other_model, *model_, *specs_, "p.pgq");
  EXPECT_THAT(std::string(s.message()), HasSubstr("another model"));
  EXPECT_FALSE(MergeProfiles(*profile_, other_model).ok());

  Profile missing = *profile_;
  missing.tensors.erase(missing.tensors.begin() + 4);  // blk.0.v
  s = CheckProfileServes(missing, *model_, *specs_, "p.pgq");
  EXPECT_THAT(std::string(s.message()), HasSubstr("blk.0.v"));

  std::vector<Specialization> more = *specs_;
  more.push_back(Specialization{SpecShape{2, 8, 256}, 1});
  s = CheckProfileServes(*profile_, *model_, more, "p.pgq");
  EXPECT_THAT(std::string(s.message()), HasSubstr("b2_s8_c256"));

  Profile other_bins = *profile_;
  other_bins.histogram_bins = 256;
  EXPECT_THAT(std::string(MergeProfiles(*profile_, other_bins).status().message()), HasSubstr("settings"));
}

TEST_F(StoriesProfile, InputsMissingASpecializationAreRefused) {
  std::vector<CalibrationInput> inputs = MakeInputs(1);
  inputs.erase(inputs.begin());  // the b4_s16 input
  EXPECT_EQ(UncoveredSpecializations(*specs_, inputs), std::vector<std::string>{"b4_s16_c512"});
  DumpOptions o;
  o.source = "in.json";
  auto r = DumpProfile(*model_, *specs_, inputs, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("in.json"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("b4_s16_c512"));

  // An input that no specialization can run, and a token outside the vocabulary.
  inputs = MakeInputs(1);
  inputs.push_back(MakeInput(2, 0, 20, 1));
  EXPECT_THAT(std::string(DumpProfile(*model_, *specs_, inputs, o).status().message()), HasSubstr("inputs[7]"));
  inputs = MakeInputs(1);
  inputs[2].rows[0].tokens[0] = 512;
  EXPECT_THAT(std::string(DumpProfile(*model_, *specs_, inputs, o).status().message()), HasSubstr("token id 512"));
}

}  // namespace
}  // namespace tailor
