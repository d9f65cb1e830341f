// Parity of the reference forward pass with independent implementations (../shared/reference),
// for every format stories260K ships in and for the tiny Hugging Face checkpoints.
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "models/model_loader.h"
#include "models/reference_forward.h"
#include "nlohmann/json.hpp"

namespace tailor {
namespace {

using json = nlohmann::json;
const std::string kShared = TAILOR_SHARED_DIR;

json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

std::unique_ptr<Model> Load(const std::string& rel) {
  LoadOptions options;
  if (rel.ends_with(".bin")) options.tokenizer = kShared + "/models/stories260K/tok512.model";
  auto m = LoadModel(kShared + "/models/" + rel, options);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? std::move(m).value() : nullptr;
}

int32_t Argmax(const float* v, int32_t n) {
  return static_cast<int32_t>(std::max_element(v, v + n) - v);
}

// Greedy continuation of `prompt` for up to `max_new` tokens, stopping after emitting `stop`.
std::vector<int32_t> Greedy(const Model& m, const std::vector<int32_t>& prompt, int max_new,
                            int32_t stop) {
  ReferenceForward fwd(m);
  ReferenceKvCache cache(m.config);
  std::vector<int32_t> out;
  std::vector<int32_t> next = prompt;
  const int32_t V = m.config.vocab_size;
  for (int i = 0; i < max_new; ++i) {
    ReferenceRow row{&cache, next};
    auto logits = fwd.Run({&row, 1});
    EXPECT_TRUE(logits.ok()) << logits.status();
    if (!logits.ok()) break;
    const float* last = logits->at(0).data() + (next.size() - 1) * V;
    int32_t t = Argmax(last, V);
    out.push_back(t);
    if (t == stop) break;
    next = {t};
  }
  return out;
}

class Stories260KTest : public ::testing::TestWithParam<std::string> {};

TEST_P(Stories260KTest, GreedyMatchesReference) {
  auto model = Load(GetParam());
  ASSERT_NE(model, nullptr);
  json ref = ReadJson(kShared + "/reference/stories260K_greedy.json");
  const int max_new = ref["max_new_tokens"].get<int>();
  ASSERT_GE(ref["cases"].size(), 3u);
  for (const auto& c : ref["cases"]) {
    auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    auto expected = c["output_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(Greedy(*model, prompt, max_new, /*stop=*/1), expected) << "prompt: " << c["prompt"];
  }
}

TEST_P(Stories260KTest, LogitsMatchReference) {
  auto model = Load(GetParam());
  ASSERT_NE(model, nullptr);
  json ref = ReadJson(kShared + "/reference/stories260K_logits.json");
  const int32_t V = model->config.vocab_size;
  for (const auto& c : ref["cases"]) {
    auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    ReferenceKvCache cache(model->config);
    ReferenceRow row{&cache, prompt};
    auto logits = ReferenceForward(*model).Run({&row, 1});
    ASSERT_TRUE(logits.ok()) << logits.status();
    auto top_ids = c["top_ids"].get<std::vector<std::vector<int32_t>>>();
    auto top_logits = c["top_logits"].get<std::vector<std::vector<double>>>();
    ASSERT_EQ(top_ids.size(), prompt.size());
    for (size_t p = 0; p < prompt.size(); ++p) {
      const float* l = logits->at(0).data() + p * V;
      for (size_t k = 0; k < top_ids[p].size(); ++k) {
        EXPECT_NEAR(l[top_ids[p][k]], top_logits[p][k], 1e-4) << "position " << p << " rank " << k;
      }
      EXPECT_EQ(Argmax(l, V), top_ids[p][0]) << "position " << p;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllFormats, Stories260KTest,
                         ::testing::Values("stories260K/stories260K.bin",
                                           "stories260K/stories260K.gguf", "stories260K-hf"),
                         [](const auto& info) {
                           std::string n = info.param;
                           return n.ends_with(".bin") ? std::string("llama2c")
                                  : n.ends_with(".gguf") ? std::string("gguf")
                                                         : std::string("hf");
                         });

// generation_config.json's sampling fields reach the config ("do_sample": false = greedy).
TEST(Stories260K, HfGenerationConfigGivesSamplingDefaults) {
  auto m = Load("stories260K-hf");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->config.sampling_defaults.do_sample, std::optional<bool>(false));
  EXPECT_FALSE(m->config.sampling_defaults.temperature.has_value());
}

// The three copies of stories260K give the same logits (up to fp32 rounding).
TEST(Stories260K, FormatsAgree) {
  auto a = Load("stories260K/stories260K.bin");
  auto b = Load("stories260K/stories260K.gguf");
  auto c = Load("stories260K-hf");
  ASSERT_TRUE(a && b && c);
  std::vector<int32_t> prompt = {1, 403, 407, 261, 378, 432, 383, 286};
  std::vector<std::vector<float>> out;
  for (Model* m : {a.get(), b.get(), c.get()}) {
    ReferenceKvCache cache(m->config);
    ReferenceRow row{&cache, prompt};
    auto logits = ReferenceForward(*m).Run({&row, 1});
    ASSERT_TRUE(logits.ok());
    out.push_back(logits->at(0));
  }
  for (size_t i = 0; i < out[0].size(); ++i) {
    ASSERT_NEAR(out[0][i], out[1][i], 1e-4) << i;
    ASSERT_NEAR(out[0][i], out[2][i], 1e-4) << i;
  }
}

// Batches: any batch size and any number of new tokens per row give the same logits as one
// row at a time, one token at a time.
TEST(ReferenceForward, BatchedAndChunkedEqualsSequential) {
  auto m = Load("stories260K/stories260K.bin");
  ASSERT_NE(m, nullptr);
  const int32_t V = m->config.vocab_size;
  std::vector<std::vector<int32_t>> seqs = {{1, 403, 407, 261, 378, 432}, {1, 274, 287}, {1, 291, 376, 400, 428}};
  // Sequential, one token per call.
  std::vector<std::vector<float>> seq_logits;
  for (const auto& s : seqs) {
    ReferenceKvCache cache(m->config);
    std::vector<float> all;
    for (int32_t t : s) {
      std::vector<int32_t> one = {t};
      ReferenceRow row{&cache, one};
      auto l = ReferenceForward(*m).Run({&row, 1});
      ASSERT_TRUE(l.ok());
      all.insert(all.end(), l->at(0).begin(), l->at(0).end());
    }
    seq_logits.push_back(all);
  }
  // Batched: first chunk of 2 (or fewer) tokens for all rows, then the rest in one chunk.
  std::vector<ReferenceKvCache> caches(seqs.size(), ReferenceKvCache(m->config));
  std::vector<std::vector<float>> batched(seqs.size());
  for (int phase = 0; phase < 2; ++phase) {
    std::vector<ReferenceRow> rows;
    for (size_t r = 0; r < seqs.size(); ++r) {
      size_t cut = std::min<size_t>(2, seqs[r].size());
      std::span<const int32_t> s(seqs[r]);
      rows.push_back({&caches[r], phase == 0 ? s.subspan(0, cut) : s.subspan(cut)});
    }
    auto l = ReferenceForward(*m).Run(rows);
    ASSERT_TRUE(l.ok());
    for (size_t r = 0; r < seqs.size(); ++r) {
      batched[r].insert(batched[r].end(), l->at(r).begin(), l->at(r).end());
    }
  }
  for (size_t r = 0; r < seqs.size(); ++r) {
    ASSERT_EQ(batched[r].size(), seqs[r].size() * V);
    for (size_t i = 0; i < batched[r].size(); ++i) ASSERT_EQ(batched[r][i], seq_logits[r][i]);
  }
}

TEST(ReferenceForward, RejectsBadTokenAndTooManyPositions) {
  auto m = Load("stories260K/stories260K.bin");
  ASSERT_NE(m, nullptr);
  ReferenceKvCache cache(m->config);
  std::vector<int32_t> bad = {1, 99999};
  ReferenceRow row{&cache, bad};
  auto l = ReferenceForward(*m).Run({&row, 1});
  EXPECT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find("99999"), std::string::npos);
  EXPECT_EQ(cache.length(), 0);
  std::vector<int32_t> long_seq(m->config.max_positions + 1, 5);
  row.tokens = long_seq;
  EXPECT_FALSE(ReferenceForward(*m).Run({&row, 1}).ok());
}

class TinyHfTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TinyHfTest, MatchesTransformers) {
  auto model = Load(GetParam());
  ASSERT_NE(model, nullptr);
  json ref = ReadJson(kShared + "/reference/tiny_hf_logits.json");
  auto prompt = ref["prompt_ids"].get<std::vector<int32_t>>();
  const json& r = ref["models"][GetParam()];
  const int32_t V = model->config.vocab_size;
  ReferenceKvCache cache(model->config);
  ReferenceRow row{&cache, prompt};
  auto logits = ReferenceForward(*model).Run({&row, 1});
  ASSERT_TRUE(logits.ok()) << logits.status();
  auto top_ids = r["top_ids"].get<std::vector<std::vector<int32_t>>>();
  auto top_logits = r["top_logits"].get<std::vector<std::vector<double>>>();
  for (size_t p = 0; p < prompt.size(); ++p) {
    for (size_t k = 0; k < top_ids[p].size(); ++k) {
      EXPECT_NEAR(logits->at(0)[p * V + top_ids[p][k]], top_logits[p][k], 1e-4)
          << "position " << p << " rank " << k;
    }
  }
  auto greedy = r["greedy_ids"].get<std::vector<int32_t>>();
  auto gaps = r["greedy_gaps"].get<std::vector<double>>();
  // Steps before the first near-tie must agree; from there an fp32 engine may diverge.
  size_t comparable = 0;
  while (comparable < gaps.size() && gaps[comparable] >= 1e-3) ++comparable;
  auto got = Greedy(*model, prompt, static_cast<int>(greedy.size()), /*stop=*/-1);
  ASSERT_GE(got.size(), comparable);
  for (size_t i = 0; i < comparable; ++i) EXPECT_EQ(got[i], greedy[i]) << "step " << i;
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, TinyHfTest,
                         ::testing::Values("tiny-llama-gqa-bf16-sharded", "tiny-mistral-f16"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n) if (ch == '-') ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace tailor
