// The calibration profile flow end to end, with the seed's spellings: `tailor calibrate` makes
// the inputs, `compile -dump-profile` the profile, `compile -load-profile` a package that records
// it, `tailor profile merge` sums profiles; bad input is refused with exit 2 and nothing written.
#include <filesystem>
#include <string>
#include <vector>

#include "common/checksum.h"
#include "common/mapped_file.h"
#include "engine/profile.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/model_loader.h"
#include "nlohmann/json.hpp"
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
const std::string kModel = kShared + "/models/stories260K/stories260K.bin";
const std::string kText = kShared + "/data/stories260K-samples.txt";
const std::string kSpecs = (fs::path(__FILE__).parent_path().parent_path() / "configs/default-specializations.json").string();

// Two small specializations and inputs for them, for tiny-mistral (a different model).
constexpr char kSmallSpecs[] = R"({"specializations": [
    {"batch_size": "1", "seq_len": "1", "ctx_len": "64"},
    {"batch_size": "2", "seq_len": "4", "ctx_len": "64"}]})";
constexpr char kSmallInputs[] = R"({"inputs": [
    {"input_ids": [[1, 300, 301, 302], [1, 400, 401, 402]], "position_ids": [[0, 1, 2, 3], [0, 1, 2, 3]]},
    {"input_ids": [[303]], "position_ids": [[4]]}]})";

std::string Flag(const std::string& name, const std::string& value) { return "-" + name + "=" + value; }

// The inputs of tailor calibrate over `text` (computed once per text per test process).
class ProfileFlow : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    // A second text: the samples' second half, so its inputs hold other tokens.
    const std::string text = ReadAll(kText);
    WriteAll(*dir_ / "second.txt", text.substr(text.size() / 2));
    for (const auto& [t, out] : {std::pair{kText, "inputs.json"}, std::pair{(*dir_ / "second.txt").string(), "inputs2.json"}}) {
      CommandResult r = RunTailor({"calibrate", "--model", kModel, "--text", t, "--specializations", kSpecs, "--out",
                                   (*dir_ / out).string()});
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    CommandResult d = RunTailor({"compile", Flag("m", kModel), Flag("network-specialization-config", kSpecs),
                                 Flag("json-input-file", In("inputs.json")), Flag("dump-profile", In("profile.pgq"))});
    ASSERT_EQ(d.exit_code, 0) << d.err;
    EXPECT_EQ(d.out, "");
    dump_err_ = new std::string(d.err);
  }
  static void TearDownTestSuite() {
    delete dump_err_;
    delete dir_;
  }
  static std::string In(const std::string& name) { return (*dir_ / name).string(); }
  static Profile Read(const std::string& path) {
    auto p = ReadProfile(path);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *std::move(p) : Profile{};
  }

  static TempDir* dir_;
  static std::string* dump_err_;
};
TempDir* ProfileFlow::dir_ = nullptr;
std::string* ProfileFlow::dump_err_ = nullptr;

TEST_F(ProfileFlow, DumpCoversEveryTensorAndSpecialization) {
  EXPECT_THAT(*dump_err_, HasSubstr("b4_s16_c512"));
  auto model = LoadModel(kModel, LoadOptions{kShared + "/models/stories260K/tok512.model"});
  ASSERT_TRUE(model.ok()) << model.status();
  const Profile p = Read(In("profile.pgq"));
  EXPECT_TRUE(p.model.SameModel(FingerprintOf(**model)));
  ASSERT_EQ(p.specs.size(), 6u);
  for (const ProfileSpec& s : p.specs) EXPECT_GT(s.inputs, 0) << s.name;
  for (const ProfiledTensor& want : ProfiledTensors((*model)->config, *(*model)->family)) {
    const TensorProfile* t = p.Find(want.name);
    ASSERT_NE(t, nullptr) << want.name;
    EXPECT_EQ(t->channels, want.channels);
    for (size_t s = 0; s < p.specs.size(); ++s) EXPECT_GT(t->rows_per_spec[s], 0) << want.name << " " << p.specs[s].name;
    EXPECT_EQ(t->histogram.total(), static_cast<uint64_t>(t->rows()) * t->channels);
  }
  CommandResult show = RunTailor({"profile", "show", In("profile.pgq")});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_THAT(show.out, HasSubstr("blk.4.ffn_down.weight"));
  EXPECT_THAT(show.out, HasSubstr("b8_s1_c512"));
}

TEST_F(ProfileFlow, LoadRecordsTheProfileInTheManifest) {
  for (const char* method : {"minmax", "percentile", "mse"}) {
    const std::string out = In(std::string("pkg_") + method);
    CommandResult r = RunTailor({"compile", Flag("m", kModel), Flag("network-specialization-config", kSpecs),
                                 Flag("json-input-file", In("inputs.json")), Flag("load-profile", In("profile.pgq")),
                                 "--dtype", "bf16", Flag("quantization-calibration", method),
                                 Flag("percentile-calibration-value", "99.9"), Flag("aic-binary-dir", out),
                                 "--target", "native", "--compile-only"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const nlohmann::json m = nlohmann::json::parse(ReadAll(fs::path(out) / "manifest.json"));
    ASSERT_TRUE(m.contains("calibration")) << method;
    const std::string bytes = ReadAll(In("profile.pgq"));
    EXPECT_EQ(m["calibration"]["profile_checksum"], ChecksumHex(std::as_bytes(std::span<const char>(bytes))));
    EXPECT_EQ(m["calibration"]["method"], method);
    EXPECT_EQ(m["calibration"]["percentile"], 99.9);
    EXPECT_EQ(m["calibration"]["histogram_bins"], 512);
    EXPECT_EQ(m["calibration"]["specializations"].size(), 6u);
    CommandResult inspect = RunTailor({"inspect", out});
    ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
    EXPECT_THAT(inspect.out, HasSubstr("calibration profile profile.pgq"));
  }
  // Without a profile the manifest has no calibration field, and the package still opens.
  const std::string plain = In("pkg_plain");
  CommandResult r = RunTailor({"compile", "--model", kModel, "--specializations", kSpecs, "--out", plain, "--target",
                               "native", "--compile-only"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(nlohmann::json::parse(ReadAll(fs::path(plain) / "manifest.json")).contains("calibration"));
}

TEST_F(ProfileFlow, MergeSumsAndEqualsOneDumpOverBothInputs) {
  CommandResult self = RunTailor({"profile", "merge", In("profile.pgq"), In("profile.pgq"), "-o", In("twice.pgq")});
  ASSERT_EQ(self.exit_code, 0) << self.err;
  const Profile one = Read(In("profile.pgq")), two = Read(In("twice.pgq"));
  ASSERT_EQ(one.tensors.size(), two.tensors.size());
  for (size_t i = 0; i < one.tensors.size(); ++i) {
    EXPECT_EQ(two.tensors[i].rows(), 2 * one.tensors[i].rows());
    EXPECT_EQ(two.tensors[i].min, one.tensors[i].min);
    EXPECT_EQ(two.tensors[i].max, one.tensors[i].max);
    EXPECT_EQ(two.tensors[i].histogram.total(), 2 * one.tensors[i].histogram.total());
  }
  for (size_t s = 0; s < one.specs.size(); ++s) EXPECT_EQ(two.specs[s].inputs, 2 * one.specs[s].inputs);

  // A (inputs.json) + B (inputs2.json) against one dump over both files' inputs.
  CommandResult b = RunTailor({"compile", Flag("m", kModel), Flag("network-specialization-config", kSpecs),
                               Flag("json-input-file", In("inputs2.json")), Flag("dump-profile", In("b.pgq"))});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  nlohmann::json both = nlohmann::json::parse(ReadAll(In("inputs.json")));
  const nlohmann::json second = nlohmann::json::parse(ReadAll(In("inputs2.json")));
  for (const auto& in : second["inputs"]) both["inputs"].push_back(in);
  ASSERT_EQ(both["inputs"].size(), 2 * second["inputs"].size());
  WriteAll(In("both.json"), both.dump());
  CommandResult ab = RunTailor({"compile", Flag("m", kModel), Flag("network-specialization-config", kSpecs),
                                Flag("json-input-file", In("both.json")), Flag("dump-profile", In("both.pgq"))});
  ASSERT_EQ(ab.exit_code, 0) << ab.err;
  CommandResult merge = RunTailor({"profile", "merge", In("profile.pgq"), In("b.pgq"), "-o", In("merged.pgq")});
  ASSERT_EQ(merge.exit_code, 0) << merge.err;
  const Profile merged = Read(In("merged.pgq")), together = Read(In("both.pgq"));
  ASSERT_EQ(merged.tensors.size(), together.tensors.size());
  for (size_t i = 0; i < merged.tensors.size(); ++i) {
    const TensorProfile& m = merged.tensors[i];
    const TensorProfile& t = together.tensors[i];
    SCOPED_TRACE(m.name);
    EXPECT_EQ(m.rows_per_spec, t.rows_per_spec);
    EXPECT_EQ(m.min, t.min);
    EXPECT_EQ(m.max, t.max);
    EXPECT_EQ(m.histogram.counts(), t.histogram.counts());
    EXPECT_EQ(m.channel_absmax, t.channel_absmax);
    for (int32_t c = 0; c < m.channels; ++c) {
      EXPECT_NEAR(m.channel_sum_squares[c], t.channel_sum_squares[c], 1e-9 * t.channel_sum_squares[c]);
    }
  }
}

// w8a8 from the profile: static activation scales in the manifest, SmoothQuant folded into the
// weights, and the issue's accuracy targets against the f32 package on the samples at ctx 256.
TEST_F(ProfileFlow, W8a8PackageMeetsTheAccuracyTargets) {
  const std::string f32 = In("w8_base"), w8 = In("w8_pkg");
  CommandResult r = RunTailor({"compile", "--model", kModel, "--specializations", kSpecs, "--out", f32, "--dtype",
                               "f32", "--target", "native"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = RunTailor({"compile", Flag("m", kModel), Flag("network-specialization-config", kSpecs),
                 Flag("json-input-file", In("inputs.json")), Flag("load-profile", In("profile.pgq")), "--dtype", "w8a8",
                 Flag("aic-binary-dir", w8), "--target", "native"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json m = nlohmann::json::parse(ReadAll(fs::path(w8) / "manifest.json"));
  int w8a8 = 0;
  for (const auto& t : m["weights"]["tensors"]) {
    if (t["dtype"] != "w8a8") continue;
    ++w8a8;
    EXPECT_GT(t["act_scale"].get<double>(), 0.0) << t["name"];
  }
  EXPECT_EQ(w8a8, 5 * 4) << "q, k, v and o of 5 layers (the 172-wide MLP stays bf16)";
  CommandResult inspect = RunTailor({"inspect", w8});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_THAT(inspect.out, HasSubstr("w8a8 20 tensors"));
  inspect = RunTailor({"inspect", w8, "--tensors"});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_THAT(inspect.out, ::testing::ContainsRegex("blk.0.attn_q.weight +w8a8 +64x64 +act_scale [0-9.e-]+\n"));
  EXPECT_THAT(inspect.out, ::testing::ContainsRegex("blk.0.ffn_down.weight +bf16 +64x172\n"));
  r = RunTailor({"perplexity", "--package", w8, "--text", kText, "--ctx", "256", "--base", f32, "--json", In("w8.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(ReadAll(In("w8.json")));
  EXPECT_LE(j["ppl_ratio"].get<double>(), 1.002);
  EXPECT_LE(j["kld_mean"].get<double>(), 0.001);
  EXPECT_GE(j["same_top_pct"].get<double>(), 98.0);

  // No profile: refused before anything is written.
  r = RunTailor({"compile", "--model", kModel, "--specializations", kSpecs, "--out", In("w8_none"), "--dtype", "w8a8"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("w8a8 needs a calibration profile"));
  EXPECT_FALSE(fs::exists(In("w8_none")));
}

TEST_F(ProfileFlow, BadInputIsRefusedAndNothingWritten) {
  auto compile = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"compile", Flag("m", kModel), Flag("network-specialization-config", kSpecs)};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunTailor(args);
  };
  const std::string out = In("refused_pkg");

  // A profile of another model (tiny-mistral, over small specializations) for stories260K.
  WriteAll(In("small.json"), kSmallSpecs);
  WriteAll(In("small_inputs.json"), kSmallInputs);
  CommandResult m = RunTailor({"compile", Flag("m", kShared + "/models/tiny-mistral-f16"),
                               Flag("network-specialization-config", In("small.json")),
                               Flag("json-input-file", In("small_inputs.json")), Flag("dump-profile", In("mistral.pgq"))});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  CommandResult r = RunTailor({"compile", Flag("m", kModel), Flag("network-specialization-config", In("small.json")),
                               Flag("load-profile", In("mistral.pgq")), "--dtype", "bf16", Flag("aic-binary-dir", out)});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("another model"));
  EXPECT_THAT(r.err, HasSubstr("mistral.pgq"));
  EXPECT_FALSE(fs::exists(out));
  r = RunTailor({"profile", "merge", In("profile.pgq"), In("mistral.pgq"), "-o", In("mixed.pgq")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("different models"));
  EXPECT_FALSE(fs::exists(In("mixed.pgq")));

  // A truncated profile, and a garbage one.
  const std::string bytes = ReadAll(In("profile.pgq"));
  WriteAll(In("truncated.pgq"), bytes.substr(0, bytes.size() - 100));
  r = compile({Flag("load-profile", In("truncated.pgq")), Flag("aic-binary-dir", out)});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("truncated"));
  EXPECT_FALSE(fs::exists(out));
  WriteAll(In("garbage.pgq"), "{\"this\": \"is not a profile\"}\n");
  r = compile({Flag("load-profile", In("garbage.pgq")), Flag("aic-binary-dir", out)});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("not a tailor calibration profile"));
  EXPECT_FALSE(fs::exists(out));
  r = RunTailor({"profile", "show", In("garbage.pgq")});
  EXPECT_EQ(r.exit_code, 2) << r.err;

  // -load-profile with -dump-profile.
  r = compile({Flag("json-input-file", In("inputs.json")), Flag("load-profile", In("profile.pgq")),
               Flag("dump-profile", In("again.pgq")), Flag("aic-binary-dir", out)});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("-load-profile and -dump-profile"));
  EXPECT_FALSE(fs::exists(In("again.pgq")));
  EXPECT_FALSE(fs::exists(out));

  // Inputs that miss a specialization: the b8 decode input removed.
  nlohmann::json inputs = nlohmann::json::parse(ReadAll(In("inputs.json")));
  nlohmann::json kept = nlohmann::json::array();
  for (const auto& in : inputs["inputs"]) {
    if (in["input_ids"].size() != 8) kept.push_back(in);
  }
  inputs["inputs"] = kept;
  WriteAll(In("no_b8.json"), inputs.dump());
  r = compile({Flag("json-input-file", In("no_b8.json")), Flag("dump-profile", In("no_b8.pgq"))});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("b8_s1_c512"));
  EXPECT_THAT(r.err, HasSubstr("no_b8.json"));
  EXPECT_FALSE(fs::exists(In("no_b8.pgq")));
  EXPECT_FALSE(fs::exists(In("no_b8.pgq.tmp")));
  r = compile({Flag("json-input-file", In("no_b8.json")), Flag("load-profile", In("profile.pgq")),
               Flag("aic-binary-dir", out)});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("b8_s1_c512"));
  EXPECT_FALSE(fs::exists(out));

  // Flags that make no sense alone.
  r = compile({Flag("dump-profile", In("x.pgq"))});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("-json-input-file"));
  r = compile({Flag("quantization-calibration", "mse"), Flag("aic-binary-dir", out)});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = compile({Flag("load-profile", In("profile.pgq")), Flag("quantization-calibration", "kl"), Flag("aic-binary-dir", out)});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("minmax, percentile or mse"));
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(In("x.pgq")));
}

}  // namespace
}  // namespace tailor
