// `tailor perplexity` end to end: the PPL of a stories260K package equals llama-perplexity's
// protocol computed here independently with the float64 reference forward pass; --base against
// the same package and against the model; the JSON fields; one clear error (exit 2, nothing on
// stdout, no JSON file) for each bad input.
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "api/model_tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/model_loader.h"
#include "models/reference_forward.h"
#include "nlohmann/json.hpp"
#include "tests/serve_package.h"
#include "tests/test_util.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing_util::CommandResult;
using testing_util::ReadAll;
using testing_util::RunTailor;
using testing_util::TempDir;
using testing_util::WriteAll;

const std::string kShared = TAILOR_SHARED_DIR;
const std::string kStories = kShared + "/models/stories260K";
constexpr int kCtx = 64;

// The first stories of the samples file, cut at a space after `bytes` bytes: a few hundred tokens.
std::string TinyText(size_t bytes) {
  const std::string all = ReadAll(kShared + "/data/stories260K-samples.txt");
  return all.substr(0, all.find(' ', bytes));
}

// llama-perplexity's protocol, written out plainly on the reference forward pass: encode the
// text with BOS, cut it into chunks of ctx tokens, BOS first in each, and score positions
// [ctx/2, ctx-1) of each chunk against the next token.
double ReferencePerplexity(const std::string& text, int ctx, int64_t* scored) {
  LoadOptions options;
  options.tokenizer = kStories + "/tok512.model";
  auto model = LoadModel(kStories + "/stories260K.bin", options);
  EXPECT_TRUE(model.ok()) << model.status();
  auto tokenizer = LoadModelTokenizer(**model);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  EncodeOptions encode;
  encode.add_special_tokens = true;
  const std::vector<int32_t> ids = (*tokenizer)->Encode(text, encode);
  const int32_t bos = (*model)->config.bos_id;
  EXPECT_EQ(ids[0], bos);  // tok512 adds BOS, so every chunk starts with it
  const int64_t V = (*model)->config.vocab_size;
  ReferenceForward forward(**model);
  double nll = 0;
  int64_t n = 0;
  for (size_t start = 0; start + ctx <= ids.size(); start += ctx) {
    std::vector<int32_t> chunk(ids.begin() + start, ids.begin() + start + ctx);
    chunk[0] = bos;
    ReferenceKvCache cache((*model)->config);
    ReferenceRow row{&cache, chunk};
    auto logits = forward.Run({&row, 1});
    EXPECT_TRUE(logits.ok()) << logits.status();
    for (int i = ctx / 2; i < ctx - 1; ++i) {
      const float* x = (*logits)[0].data() + i * V;
      double max = x[0];
      for (int64_t v = 1; v < V; ++v) max = std::max(max, static_cast<double>(x[v]));
      double sum = 0;
      for (int64_t v = 0; v < V; ++v) sum += std::exp(x[v] - max);
      nll += max + std::log(sum) - x[chunk[i + 1]];
      ++n;
    }
  }
  *scored = n;
  return std::exp(nll / n);
}

class Perplexity : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    package_ = testing_util::ServePackage(&error);
    ASSERT_FALSE(package_.empty()) << error;
    text_ = (tmp_ / "text.txt").string();
    WriteAll(text_, TinyText(1500));
  }
  CommandResult Run(std::vector<std::string> extra) {
    std::vector<std::string> args = {"perplexity", "--package", package_, "--text", text_};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunTailor(args);
  }
  nlohmann::json Json(const fs::path& p) { return nlohmann::json::parse(ReadAll(p)); }

  TempDir tmp_;
  std::string package_;
  std::string text_;
};

TEST_F(Perplexity, MatchesTheProtocolOnTheReferenceForwardPass) {
  int64_t scored = 0;
  const double expected = ReferencePerplexity(ReadAll(text_), kCtx, &scored);
  ASSERT_GE(scored, 3 * (kCtx - 1 - kCtx / 2));  // a few chunks
  CommandResult r = Run({"--ctx", std::to_string(kCtx), "--json", (tmp_ / "out.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::MatchesRegex("Final estimate: PPL = [0-9]+\\.[0-9]{4} \\+/- [0-9]+\\.[0-9]{5}\n"));
  EXPECT_THAT(r.err, HasSubstr("[1/"));  // progress per chunk
  const nlohmann::json j = Json(tmp_ / "out.json");
  EXPECT_NEAR(j["ppl"].get<double>(), expected, 1e-3 * expected);
  EXPECT_EQ(j["tokens_scored"].get<int64_t>(), scored);
  EXPECT_EQ(j["chunks"].get<int64_t>(), scored / (kCtx - 1 - kCtx / 2));
  EXPECT_EQ(j["ctx"].get<int64_t>(), kCtx);
  for (const char* key : {"ppl_base", "ppl_ratio", "kld_mean", "same_top_pct"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_TRUE(j[key].is_null()) << key;
  }
  // The stdout figure is the JSON's, rounded.
  const double printed = std::stod(r.out.substr(r.out.find('=') + 1));
  EXPECT_NEAR(printed, j["ppl"].get<double>(), 1e-4);
}

TEST_F(Perplexity, BaseIsTheSamePackage) {
  CommandResult r = Run({"--ctx", std::to_string(kCtx), "--base", package_, "--json", (tmp_ / "out.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::MatchesRegex("Final estimate: PPL = [0-9.]+ \\+/- [0-9.]+\n"
                                             "Base estimate: PPL = [0-9.]+ \\+/- [0-9.]+\n"
                                             "PPL ratio: 1\\.000000\n"
                                             "Mean KLD: 0\\.000000 \\+/- 0\\.000000\n"
                                             "Same top token: 100\\.00 \\+/- 0\\.00 %\n"));
  const nlohmann::json j = Json(tmp_ / "out.json");
  EXPECT_EQ(j["ppl"].get<double>(), j["ppl_base"].get<double>());
  EXPECT_EQ(j["ppl_ratio"].get<double>(), 1.0);
  EXPECT_LT(j["kld_mean"].get<double>(), 1e-9);
  EXPECT_EQ(j["same_top_pct"].get<double>(), 100.0);
}

TEST_F(Perplexity, BaseIsTheModelOnTheReferenceForwardPass) {
  CommandResult r = Run({"--ctx", std::to_string(kCtx), "--base", kStories + "/stories260K.bin", "--json",
                         (tmp_ / "out.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = Json(tmp_ / "out.json");
  int64_t scored = 0;
  const double expected = ReferencePerplexity(ReadAll(text_), kCtx, &scored);
  EXPECT_NEAR(j["ppl_base"].get<double>(), expected, 1e-9 * expected);  // the same float64 pass
  EXPECT_NEAR(j["ppl_ratio"].get<double>(), 1.0, 1e-3);
  EXPECT_GT(j["kld_mean"].get<double>(), 0.0);
  EXPECT_LT(j["kld_mean"].get<double>(), 1e-4);
  EXPECT_GT(j["same_top_pct"].get<double>(), 95.0);
  EXPECT_LE(j["same_top_pct"].get<double>(), 100.0);
  EXPECT_EQ(j["tokens_scored"].get<int64_t>(), scored);
}

TEST_F(Perplexity, DefaultCtxIsCappedAtTheLargestCtxLen) {
  WriteAll(text_, TinyText(2400));  // more than 512 tokens
  CommandResult r = Run({"--json", (tmp_ / "out.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json(tmp_ / "out.json")["ctx"].get<int64_t>(), 512);
}

// Every bad input: exit 2, a message naming the problem, nothing on stdout, no JSON written.
class PerplexityBadInput : public Perplexity {
 protected:
  void Expect(std::vector<std::string> extra, const std::vector<std::string>& fragments) {
    const fs::path json = tmp_ / "bad.json";
    extra.insert(extra.end(), {"--json", json.string()});
    CommandResult r = Run(extra);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.out, "");
    for (const auto& f : fragments) EXPECT_THAT(r.err, HasSubstr(f));
    EXPECT_FALSE(fs::exists(json));
  }
};

TEST_F(PerplexityBadInput, TextShorterThanOneChunk) {
  WriteAll(text_, TinyText(600));  // about 270 tokens
  Expect({}, {"text.txt", "the text has ", "needs at least 512"});
  Expect({"--ctx", "300"}, {"text.txt", "the text has ", "needs at least 300"});
}

TEST_F(PerplexityBadInput, CtxOutOfRange) {
  Expect({"--ctx", "8"}, {"--ctx 8", "at least 16"});
  Expect({"--ctx", "1024"}, {"--ctx 1024", "largest ctx_len", "512"});
  Expect({"--ctx", "many"}, {"--ctx", "many"});
}

TEST_F(PerplexityBadInput, MissingFiles) {
  text_ = (tmp_ / "nope.txt").string();
  Expect({"--ctx", "64"}, {"nope.txt", "no such file"});
  WriteAll(tmp_ / "text.txt", TinyText(1500));
  text_ = (tmp_ / "text.txt").string();
  Expect({"--ctx", "64", "--base", (tmp_ / "missing.gguf").string()}, {"missing.gguf"});
  package_ = (tmp_ / "no-package").string();
  Expect({"--ctx", "64"}, {"no-package"});
}

TEST_F(PerplexityBadInput, MissingFlags) {
  CommandResult r = RunTailor({"perplexity", "--package", package_});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--text"));
}

TEST_F(PerplexityBadInput, MismatchedVocabularies) {
  Expect({"--ctx", "64", "--base", kShared + "/models/tiny-llama3"}, {"vocabularies differ", "512", "128256"});
}

}  // namespace
}  // namespace tailor
