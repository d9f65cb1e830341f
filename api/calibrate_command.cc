// `tailor calibrate --model PATH --text FILE --specializations FILE --out inputs.json
//  [--tokenizer PATH]`: writes a `tailor exec` input file cut from plain text with, for every
// specialization (batch_size B, seq_len S, ctx_len C), one input that belongs to it: exactly B
// rows, S tokens each, at positions [p, p + S) with p = (C - S) / 2 (the middle of its context,
// so attention spans realistic lengths).
//
// Rows are KV slots that persist across inputs. Slot r holds one stretch of the text, T_r (its
// own place in the file; its first token BOS when the tokenizer adds one), and every input that
// writes slot r at positions [a, a + n) writes T_r[a, a + n) with a no further than the slot is
// already filled: so whatever runs before, the KV of positions [0, filled) is the text's. Before a
// specialization's input, warm-up inputs fill its slots' positions [0, p) in chunks no longer
// than the largest seq_len of the file, each chunk shaped to fit some specialization (as many
// slots per input as it has rows). Inputs run in order of p, so slots filled for one
// specialization also serve the next, and the file holds few inputs.
//
// stdout: nothing; stderr: which input belongs to which specialization, and a summary line.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api/commands.h"
#include "api/flags.h"
#include "api/model_tokenizer.h"
#include "common/mapped_file.h"
#include "common/status_macros.h"
#include "engine/spec_config.h"
#include "models/model_loader.h"
#include "nlohmann/json.hpp"
#include "tokenizer/tokenizer.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;

const std::vector<FlagSpec>& CalibrateFlags() {
  static const auto* specs = new std::vector<FlagSpec>{
      {"model", true, {"m"}, "HF directory, .gguf file or llama2.c .bin (its tokenizer and max positions)"},
      {"tokenizer", true, {}, "tokenizer to use instead of the model's"},
      {"text", true, {}, "plain UTF-8 text to cut the inputs from"},
      {"specializations", true, {"network-specialization-config"}, "specialization config (JSON)"},
      {"out", true, {}, "the exec input file to write"},
  };
  return *specs;
}

// One row of a planned input: slot `slot` at positions [start, start + count).
struct PlannedRow {
  int32_t slot = 0;
  int32_t start = 0;
  int32_t count = 0;
};

// One input: rows in increasing slot order; `spec` is the specialization it is the input of, or
// -1 for a warm-up input.
struct PlannedInput {
  std::vector<PlannedRow> rows;
  int32_t spec = -1;
};

struct Plan {
  std::vector<PlannedInput> inputs;
  std::vector<int32_t> slot_length;  // positions each slot reaches: the tokens T_r needs
};

// The inputs for `specs`, in order (see the file comment).
Plan MakePlan(const std::vector<Specialization>& specs) {
  int32_t slots = 0;
  for (const auto& s : specs) slots = std::max(slots, s.shape.batch_size);
  std::vector<int32_t> order(specs.size());
  std::iota(order.begin(), order.end(), 0);
  auto start_of = [&](int32_t i) { return (specs[i].shape.ctx_len - specs[i].shape.seq_len) / 2; };
  std::stable_sort(order.begin(), order.end(), [&](int32_t x, int32_t y) { return start_of(x) < start_of(y); });

  Plan plan;
  std::vector<int32_t> filled(slots, 0);
  for (int32_t index : order) {
    const SpecShape& target = specs[index].shape;
    const int32_t p = start_of(index);
    // Warm-up: fill positions [0, p) of slots [0, B), least filled slots first, with the
    // specialization (ctx_len >= p) that advances the most tokens per input.
    while (true) {
      std::vector<int32_t> needy;
      for (int32_t r = 0; r < target.batch_size; ++r) {
        if (filled[r] < p) needy.push_back(r);
      }
      if (needy.empty()) break;
      std::stable_sort(needy.begin(), needy.end(), [&](int32_t x, int32_t y) { return filled[x] < filled[y]; });
      int64_t best_tokens = 0;
      PlannedInput best;
      for (const auto& spec : specs) {
        const SpecShape& s = spec.shape;
        if (s.ctx_len < p) continue;
        PlannedInput candidate;
        int64_t tokens = 0;
        for (size_t k = 0; k < needy.size() && k < static_cast<size_t>(s.batch_size); ++k) {
          const int32_t r = needy[k];
          const int32_t n = std::min(s.seq_len, p - filled[r]);
          candidate.rows.push_back({r, filled[r], n});
          tokens += n;
        }
        if (tokens > best_tokens) {
          best_tokens = tokens;
          best = std::move(candidate);
        }
      }
      // The target's own specialization always qualifies, so best_tokens > 0.
      std::sort(best.rows.begin(), best.rows.end(),
                [](const PlannedRow& x, const PlannedRow& y) { return x.slot < y.slot; });
      for (const PlannedRow& row : best.rows) filled[row.slot] += row.count;
      plan.inputs.push_back(std::move(best));
    }
    PlannedInput input;
    input.spec = index;
    for (int32_t r = 0; r < target.batch_size; ++r) {
      input.rows.push_back({r, p, target.seq_len});
      filled[r] = std::max(filled[r], p + target.seq_len);
    }
    plan.inputs.push_back(std::move(input));
  }
  plan.slot_length = filled;
  return plan;
}

// Rows 0 .. (largest slot) of the input; absent slots and short rows padded with position -1.
nlohmann::json InputJson(const PlannedInput& input, const std::vector<std::vector<int32_t>>& text_of_slot) {
  int32_t width = 0;
  for (const auto& row : input.rows) width = std::max(width, row.count);
  const int32_t n_rows = input.rows.back().slot + 1;
  std::vector<std::vector<int32_t>> ids(n_rows, std::vector<int32_t>(width, 0));
  std::vector<std::vector<int32_t>> pos(n_rows, std::vector<int32_t>(width, -1));
  for (const auto& row : input.rows) {
    for (int32_t t = 0; t < row.count; ++t) {
      ids[row.slot][t] = text_of_slot[row.slot][row.start + t];
      pos[row.slot][t] = row.start + t;
    }
  }
  return {{"input_ids", ids}, {"position_ids", pos}};
}

absl::Status Calibrate(const std::vector<std::string>& args) {
  TAILOR_ASSIGN_OR_RETURN(ParsedFlags f, ParseFlags(CalibrateFlags(), args));
  if (!f.positional().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", f.positional()[0], "'"));
  }
  for (const char* required : {"model", "text", "specializations", "out"}) {
    if (!f.Has(required)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "calibrate needs --", required,
          "\nusage: tailor calibrate --model PATH --text FILE --specializations FILE --out inputs.json\n",
          FlagsHelp(CalibrateFlags())));
    }
  }
  const std::string out_path = *f.Get("out");
  const std::string text_path = *f.Get("text");
  {
    std::error_code ec;
    const fs::path parent = fs::absolute(out_path).parent_path();
    if (!fs::is_directory(parent, ec)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--out ", out_path, ": directory ", parent.string(), " does not exist"));
    }
  }
  TAILOR_ASSIGN_OR_RETURN(std::string text, ReadFileToString(text_path));
  LoadOptions options;
  if (f.Has("tokenizer")) options.tokenizer = *f.Get("tokenizer");
  TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, LoadModel(*f.Get("model"), options));
  TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, LoadModelTokenizer(*model));
  TAILOR_ASSIGN_OR_RETURN(std::vector<Specialization> specs,
                          LoadSpecConfig(*f.Get("specializations"), model->config.max_positions));

  const Plan plan = MakePlan(specs);
  EncodeOptions encode;
  encode.add_special_tokens = true;
  const std::vector<int32_t> tokens = tokenizer->Encode(text, encode);
  const int64_t needed = std::accumulate(plan.slot_length.begin(), plan.slot_length.end(), int64_t{0});
  if (static_cast<int64_t>(tokens.size()) < needed) {
    return absl::InvalidArgumentError(absl::StrCat(
        text_path, ": the text has ", tokens.size(), " tokens; the specializations need ", needed, " (",
        plan.slot_length.size(), " KV slots filled up to ", *std::max_element(plan.slot_length.begin(), plan.slot_length.end()),
        " positions)"));
  }
  // Slot r's text: its own stretch of the file, the stretches spread evenly over it.
  const int64_t gap = (static_cast<int64_t>(tokens.size()) - needed) / static_cast<int64_t>(plan.slot_length.size());
  std::vector<std::vector<int32_t>> text_of_slot;
  int64_t offset = 0;
  for (int32_t length : plan.slot_length) {
    text_of_slot.emplace_back(tokens.begin() + offset, tokens.begin() + offset + length);
    if (tokenizer->add_bos() && length > 0) text_of_slot.back()[0] = model->config.bos_id;
    offset += length + gap;
  }

  std::string doc = "{\"inputs\": [\n";
  int32_t warm_up = 0;
  for (size_t i = 0; i < plan.inputs.size(); ++i) {
    const PlannedInput& input = plan.inputs[i];
    absl::StrAppend(&doc, "  ", InputJson(input, text_of_slot).dump(), i + 1 < plan.inputs.size() ? ",\n" : "\n");
    if (input.spec < 0) {
      ++warm_up;
      continue;
    }
    const SpecShape& s = specs[input.spec].shape;
    std::cerr << absl::StrFormat("%s: input %d (%d rows, positions %d..%d)\n", specs[input.spec].Name(), i,
                                 s.batch_size, input.rows[0].start, input.rows[0].start + s.seq_len - 1);
  }
  doc += "]}\n";
  // Written whole to a temporary file, then renamed: a failed run leaves nothing behind.
  const std::string tmp_path = out_path + ".tmp";
  {
    std::ofstream out(tmp_path, std::ios::binary | std::ios::trunc);
    out << doc;
    out.close();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp_path, ec);
      return absl::InvalidArgumentError(absl::StrCat("--out ", out_path, ": cannot write"));
    }
  }
  std::error_code ec;
  fs::rename(tmp_path, out_path, ec);
  if (ec) {
    fs::remove(tmp_path, ec);
    return absl::InvalidArgumentError(absl::StrCat("--out ", out_path, ": cannot write"));
  }
  std::cerr << absl::StrFormat("calibrate: %d inputs (%d warm-up, %d specializations), %d of %d tokens of %s, to %s\n",
                               plan.inputs.size(), warm_up, specs.size(), needed, tokens.size(), text_path,
                               out_path);
  return absl::OkStatus();
}

}  // namespace

int RunCalibrate(const std::vector<std::string>& args) {
  if (PrintHelpIfAsked(args,
                       "usage: tailor calibrate --model PATH --text FILE --specializations FILE --out inputs.json\n",
                       CalibrateFlags())) {
    return 0;
  }
  absl::Status s = Calibrate(args);
  return s.ok() ? 0 : ReportError(s);
}

}  // namespace tailor
