// `tailor calibrate` end to end: with the default specialization set and stories260K, every
// specialization has an input that belongs to it (exactly its batch_size rows of seq_len tokens,
// every position below its ctx_len), every slot's KV is filled before it is read, and
// `tailor exec` on a package compiled from the same set runs every input; a text too short is
// refused with nothing written.
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
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

struct Shape {
  int batch_size, seq_len, ctx_len;
};

std::vector<Shape> LoadShapes(const std::string& path) {
  std::vector<Shape> shapes;
  auto as_int = [](const nlohmann::json& v) { return v.is_string() ? std::stoi(v.get<std::string>()) : v.get<int>(); };
  const nlohmann::json doc = nlohmann::json::parse(ReadAll(path));
  for (const auto& s : doc["specializations"]) {
    shapes.push_back({as_int(s["batch_size"]), as_int(s["seq_len"]), as_int(s["ctx_len"])});
  }
  return shapes;
}

// The valid (position >= 0) tokens of each row of an input.
struct Row {
  std::vector<int> ids, pos;
};
std::vector<Row> ValidRows(const nlohmann::json& input) {
  std::vector<Row> rows(input["input_ids"].size());
  for (size_t r = 0; r < rows.size(); ++r) {
    for (size_t t = 0; t < input["input_ids"][r].size(); ++t) {
      const int p = input["position_ids"][r][t].get<int>();
      if (p < 0) continue;
      rows[r].ids.push_back(input["input_ids"][r][t].get<int>());
      rows[r].pos.push_back(p);
    }
  }
  return rows;
}

bool Belongs(const nlohmann::json& input, const Shape& s) {
  const std::vector<Row> rows = ValidRows(input);
  if (static_cast<int>(rows.size()) != s.batch_size) return false;
  for (const Row& row : rows) {
    if (static_cast<int>(row.pos.size()) != s.seq_len) return false;
    for (int p : row.pos) {
      if (p >= s.ctx_len) return false;
    }
  }
  return true;
}

TEST(Calibrate, EveryShapeCoveredAndExecRunsEveryInput) {
  TempDir tmp;
  const fs::path out = tmp / "inputs.json";
  CommandResult r = RunTailor({"calibrate", "--model", kModel, "--text", kText, "--specializations", kSpecs,
                               "--out", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  const nlohmann::json doc = nlohmann::json::parse(ReadAll(out));
  const nlohmann::json& inputs = doc["inputs"];
  const std::vector<Shape> shapes = LoadShapes(kSpecs);
  ASSERT_EQ(shapes.size(), 6u);
  int max_batch = 0, max_ctx = 0, max_seq = 1;
  for (const Shape& s : shapes) {
    max_batch = std::max(max_batch, s.batch_size);
    max_ctx = std::max(max_ctx, s.ctx_len);
    max_seq = std::max(max_seq, s.seq_len);
    bool found = false;
    for (const auto& input : inputs) found = found || Belongs(input, s);
    EXPECT_TRUE(found) << "b" << s.batch_size << "_s" << s.seq_len << "_c" << s.ctx_len;
  }
  // Small: warm-up shared between specializations (fewer inputs than filling each on its own).
  EXPECT_LT(inputs.size(), 60u);

  // Replay the slots: every row continues its slot's text without a gap, a position always holds
  // the same token, no position reaches the largest ctx_len, chunks are no longer than the
  // largest seq_len, and at least one input reads half-way into a 512 context.
  std::map<int, std::map<int, int>> slot_tokens;  // slot -> position -> token
  std::map<int, int> filled;
  int deepest = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::vector<Row> rows = ValidRows(inputs[i]);
    ASSERT_LE(static_cast<int>(rows.size()), max_batch);
    for (size_t slot = 0; slot < rows.size(); ++slot) {
      const Row& row = rows[slot];
      if (row.pos.empty()) continue;
      EXPECT_LE(static_cast<int>(row.pos.size()), max_seq) << "input " << i;
      EXPECT_LE(row.pos[0], filled[slot]) << "input " << i << " slot " << slot << " reads unfilled positions";
      for (size_t t = 0; t < row.pos.size(); ++t) {
        EXPECT_EQ(row.pos[t], row.pos[0] + static_cast<int>(t));
        EXPECT_LT(row.pos[t], max_ctx);
        auto [it, inserted] = slot_tokens[slot].emplace(row.pos[t], row.ids[t]);
        EXPECT_EQ(it->second, row.ids[t]) << "input " << i << " slot " << slot << " position " << row.pos[t];
      }
      filled[slot] = std::max(filled[slot], row.pos.back() + 1);
      deepest = std::max(deepest, row.pos.back());
    }
  }
  EXPECT_GE(deepest, 255);
  // Each slot starts at BOS (id 1) and the slots hold different text.
  for (auto& [slot, tokens] : slot_tokens) EXPECT_EQ(tokens[0], 1) << slot;
  EXPECT_NE(slot_tokens[0][10], slot_tokens[1][10]);

  // A package compiled from the same set runs every input.
  CommandResult c = RunTailor({"compile", "--model", kModel, "--specializations", kSpecs, "--out",
                               (tmp / "pkg").string(), "--compile-only", "--target", "native"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  CommandResult e = RunTailor({"exec", "--package", (tmp / "pkg").string(), "--json-input-file", out.string()});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  size_t lines = 0;
  for (size_t at = 0; (at = e.out.find('\n', at)) != std::string::npos; ++at) ++lines;
  EXPECT_EQ(lines, inputs.size());
}

TEST(Calibrate, TooShortTextIsRefused) {
  TempDir tmp;
  WriteAll(tmp / "short.txt", ReadAll(kText).substr(0, 2000));
  const fs::path out = tmp / "inputs.json";
  CommandResult r = RunTailor({"calibrate", "--model", kModel, "--text", (tmp / "short.txt").string(),
                               "--specializations", kSpecs, "--out", out.string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("short.txt"));
  EXPECT_THAT(r.err, HasSubstr("need"));
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out.string() + ".tmp"));
}

TEST(Calibrate, BadInputs) {
  TempDir tmp;
  const fs::path out = tmp / "inputs.json";
  CommandResult r = RunTailor({"calibrate", "--model", kModel, "--text", (tmp / "nope.txt").string(),
                               "--specializations", kSpecs, "--out", out.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("nope.txt"));
  WriteAll(tmp / "specs.json", R"({"specializations": [{"batch_size": "1", "seq_len": "1", "ctx_len": "99999"}]})");
  r = RunTailor({"calibrate", "--model", kModel, "--text", kText, "--specializations",
                 (tmp / "specs.json").string(), "--out", out.string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("ctx_len"));
  r = RunTailor({"calibrate", "--model", kModel, "--text", kText, "--specializations", kSpecs});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--out"));
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace tailor
