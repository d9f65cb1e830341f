// `tailor exec --package DIR --json-input-file FILE [--output FILE]`: runs the inputs of the
// file on the package, one step each. Rows are KV slots kept across inputs (retained state);
// position -1 marks padding. Writes one JSON line per input: the specialization that ran and
// the logits of each row's last valid position (null for a row with no valid token).
#include <algorithm>
#include <fstream>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "api/commands.h"
#include "api/exec_inputs.h"
#include "api/flags.h"
#include "common/mapped_file.h"
#include "common/status_macros.h"
#include "engine/runtime.h"
#include "nlohmann/json.hpp"

namespace tailor {
namespace {

using json = nlohmann::json;

constexpr char kExecUsage[] = "usage: tailor exec --package DIR --json-input-file FILE [--output FILE]\n";

const std::vector<FlagSpec>& ExecFlags() {
  static const auto* specs = new std::vector<FlagSpec>{
      {"package", true, {}, "package directory"},
      {"json-input-file", true, {}, "inputs: {\"inputs\": [{\"input_ids\": [[...]], \"position_ids\": [[...]]}]}"},
      {"output", true, {}, "write results here instead of stdout"},
      {"kv-cache-mb", true, {}, "KV pool size in MiB (default: enough for the largest specialization)"},
      {"native", false, {}, "run on the native path even if generated kernels exist"},
  };
  return *specs;
}

absl::Status Exec(const std::vector<std::string>& args) {
  const std::vector<FlagSpec>& kFlags = ExecFlags();
  TAILOR_ASSIGN_OR_RETURN(ParsedFlags f, ParseFlags(kFlags, args));
  if (!f.Has("package") || !f.Has("json-input-file")) {
    return absl::InvalidArgumentError(absl::StrCat(
        kExecUsage, FlagsHelp(kFlags)));
  }
  const std::string input_path = *f.Get("json-input-file");
  // Parse and check every input before running anything.
  TAILOR_ASSIGN_OR_RETURN(const std::vector<ExecInput> inputs, ReadExecInputs(input_path));
  size_t slots = 0;
  for (const ExecInput& in : inputs) slots = std::max(slots, in.ids.size());

  RuntimeOptions ro;
  ro.force_native = f.Has("native");
  TAILOR_ASSIGN_OR_RETURN(ro.kv_cache_mb, f.GetInt("kv-cache-mb", 0, 1, 1 << 20));
  ro.warn = [](const std::string& w) { std::cerr << "tailor: warning: " << w << "\n"; };
  TAILOR_ASSIGN_OR_RETURN(auto rt, Runtime::Open(*f.Get("package"), ro));
  // First pass: the valid tokens of every row, the specialization of every input and the
  // positions each slot reaches; nothing runs until every input is known to fit.
  struct Prepared {
    std::vector<std::vector<int32_t>> tokens;
    std::vector<int32_t> start, plan_row;
    int32_t spec = -1;
  };
  std::vector<Prepared> prepared(inputs.size());
  std::vector<int32_t> slot_end(slots, 0);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ExecInput& in = inputs[i];
    Prepared& p = prepared[i];
    p.tokens.resize(in.ids.size());
    p.start.assign(in.ids.size(), 0);
    p.plan_row.assign(in.ids.size(), -1);
    StepShape shape;
    for (size_t r = 0; r < in.ids.size(); ++r) {
      int32_t expect = -1;
      for (size_t t = 0; t < in.ids[r].size(); ++t) {
        if (in.pos[r][t] < 0) continue;
        if (expect >= 0 && in.pos[r][t] != expect) {
          return absl::InvalidArgumentError(absl::StrCat(input_path, ": inputs[", i, "] row ", r,
                                                         ": valid positions must be consecutive"));
        }
        if (expect < 0) p.start[r] = in.pos[r][t];
        expect = in.pos[r][t] + 1;
        p.tokens[r].push_back(in.ids[r][t]);
      }
      if (p.tokens[r].empty()) continue;
      // Attention reads every position before the row's own: each must have been written by an
      // earlier input (or this one). slot_end[r] is where the slot's written positions end.
      if (p.start[r] > slot_end[r]) {
        return absl::InvalidArgumentError(absl::StrCat(
            input_path, ": inputs[", i, "] row ", r, " starts at position ", p.start[r], ", but KV slot ", r,
            slot_end[r] == 0 ? std::string(" has no positions written yet")
                             : absl::StrCat(" has only positions 0..", slot_end[r] - 1, " written"),
            " (expected a first position of at most ", slot_end[r], ")"));
      }
      p.plan_row[r] = shape.rows++;
      const int32_t end_pos = p.start[r] + static_cast<int32_t>(p.tokens[r].size());
      shape.max_tokens_per_row = std::max<int32_t>(shape.max_tokens_per_row, p.tokens[r].size());
      shape.max_end_pos = std::max(shape.max_end_pos, end_pos);
      slot_end[r] = std::max(slot_end[r], end_pos);
    }
    auto spec = SelectSpecialization(rt->specializations(), rt->costs(), shape);
    if (!spec) {
      std::string compiled;
      for (const auto& s : rt->specializations()) {
        absl::StrAppend(&compiled, compiled.empty() ? "" : ", ", "(batch_size ", s.shape.batch_size,
                        ", seq_len ", s.shape.seq_len, ", ctx_len ", s.shape.ctx_len, ")");
      }
      return absl::InvalidArgumentError(absl::StrCat(
          input_path, ": inputs[", i, "] needs (rows ", shape.rows, ", tokens per row ", shape.max_tokens_per_row,
          ", positions ", shape.max_end_pos, "); no specialization fits; compiled: ", compiled));
    }
    p.spec = *spec;
  }
  // Each slot owns the blocks its furthest position needs, numbered consecutively.
  const int32_t block = rt->kv_block_size();
  std::vector<std::vector<BlockId>> tables(slots);
  BlockId next_block = 0;
  for (size_t r = 0; r < slots; ++r) {
    for (int32_t b = 0; b < (slot_end[r] + block - 1) / block; ++b) tables[r].push_back(next_block++);
  }
  if (next_block > rt->num_kv_blocks()) {
    return absl::InvalidArgumentError(absl::StrCat(input_path, ": the inputs need ", next_block,
                                                   " KV blocks; the pool has ", rt->num_kv_blocks(),
                                                   " (raise --kv-cache-mb)"));
  }

  std::ofstream file;
  if (f.Has("output")) {
    file.open(*f.Get("output"), std::ios::trunc);
    if (!file) return absl::InvalidArgumentError(absl::StrCat(*f.Get("output"), ": cannot write"));
  }
  std::ostream& out = f.Has("output") ? file : std::cout;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ExecInput& in = inputs[i];
    const Prepared& p = prepared[i];
    StepPlan plan;
    for (size_t r = 0; r < in.ids.size(); ++r) {
      if (p.plan_row[r] < 0) continue;
      plan.rows.push_back(StepRow{static_cast<RequestId>(r), p.tokens[r], p.start[r], tables[r], 1});
    }
    plan.spec_index = p.spec;
    TAILOR_ASSIGN_OR_RETURN(StepOutput result, rt->Execute(plan));
    const SpecShape& s = rt->specializations()[p.spec].shape;
    json line = {{"input", i},
                 {"specialization", {{"index", p.spec}, {"batch_size", s.batch_size}, {"seq_len", s.seq_len},
                                     {"ctx_len", s.ctx_len}}}};
    json logits = json::array();
    for (size_t r = 0; r < in.ids.size(); ++r) {
      logits.push_back(p.plan_row[r] < 0 ? json(nullptr) : json(result.logits[p.plan_row[r]]));
    }
    line["logits"] = logits;
    out << line.dump() << "\n";
  }
  out.flush();
  return absl::OkStatus();
}

}  // namespace

int RunExec(const std::vector<std::string>& args) {
  if (PrintHelpIfAsked(args, kExecUsage, ExecFlags())) return 0;
  absl::Status s = Exec(args);
  return s.ok() ? 0 : ReportError(s);
}

}  // namespace tailor
