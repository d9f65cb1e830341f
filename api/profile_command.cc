// Calibration profiles on the command line:
//   tailor compile ... -json-input-file=inputs.json -dump-profile=profile.pgq
//   tailor compile ... -load-profile=profile.pgq [-quantization-calibration=minmax|percentile|mse]
//                      [-percentile-calibration-value=99.99]
//   tailor profile merge A B [C ...] -o OUT
//   tailor profile show FILE
// (engine/profile.h describes the profile and its file format.)
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "api/commands.h"
#include "api/exec_inputs.h"
#include "api/flags.h"
#include "common/mapped_file.h"
#include "common/status_macros.h"
#include "engine/profile.h"
#include "engine/profile_dump.h"
#include "models/model.h"
#include "nlohmann/json.hpp"

namespace tailor {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// The inputs of a `tailor exec` input file: {"inputs": [{"input_ids": [[...]],
// "position_ids": [[...]]}]}, rows are KV slots, negative positions are padding, valid
// positions of a row consecutive.
absl::StatusOr<std::vector<CalibrationInput>> ReadCalibrationInputs(const std::string& path) {
  TAILOR_ASSIGN_OR_RETURN(const std::vector<ExecInput> file, ReadExecInputs(path));
  std::vector<CalibrationInput> inputs;
  for (size_t i = 0; i < file.size(); ++i) {
    const auto& ids = file[i].ids;
    const auto& pos = file[i].pos;
    const std::string where = absl::StrCat(path, ": inputs[", i, "]");
    CalibrationInput input;
    input.listed_rows = static_cast<int32_t>(ids.size());
    for (size_t r = 0; r < ids.size(); ++r) {
      CalibrationInput::Row row;
      row.slot = static_cast<int32_t>(r);
      for (size_t t = 0; t < ids[r].size(); ++t) {
        if (pos[r][t] < 0) continue;
        if (!row.tokens.empty() && pos[r][t] != row.start + static_cast<int32_t>(row.tokens.size())) {
          return absl::InvalidArgumentError(absl::StrCat(where, " row ", r, ": valid positions must be consecutive"));
        }
        if (row.tokens.empty()) row.start = pos[r][t];
        row.tokens.push_back(ids[r][t]);
      }
      if (!row.tokens.empty()) input.rows.push_back(std::move(row));
    }
    inputs.push_back(std::move(input));
  }
  return inputs;
}

// The seed's rule: at least one input per specialization.
absl::Status CheckCoverage(const std::vector<Specialization>& specs, const std::vector<CalibrationInput>& inputs,
                           const std::string& path) {
  const std::vector<std::string> missing = UncoveredSpecializations(specs, inputs);
  if (missing.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      path, ": no input belongs to specialization", missing.size() > 1 ? "s " : " ", absl::StrJoin(missing, ", "),
      "; every specialization needs at least one input of exactly its batch_size rows of seq_len tokens below its "
      "ctx_len (`tailor calibrate` makes such a file)"));
}

absl::Status CheckWritable(const std::string& path, const char* flag) {
  std::error_code ec;
  const fs::path parent = fs::absolute(path, ec).parent_path();
  if (ec || !fs::is_directory(parent, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": directory ", parent.string(), " does not exist"));
  }
  if (fs::is_directory(path, ec)) return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": is a directory"));
  return absl::OkStatus();
}

absl::Status Merge(const std::vector<std::string>& files, const std::string& out) {
  TAILOR_RETURN_IF_ERROR(CheckWritable(out, "-o"));
  TAILOR_ASSIGN_OR_RETURN(Profile merged, ReadProfile(files[0]));
  for (size_t i = 1; i < files.size(); ++i) {
    TAILOR_ASSIGN_OR_RETURN(Profile next, ReadProfile(files[i]));
    auto sum = MergeProfiles(merged, next);
    if (!sum.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("cannot merge ", files[i], " into ",
                                                     absl::StrJoin(files.begin(), files.begin() + i, " + "), ": ",
                                                     sum.status().message()));
    }
    merged = *std::move(sum);
  }
  TAILOR_RETURN_IF_ERROR(WriteProfile(merged, out));
  int64_t inputs = 0;
  for (const ProfileSpec& s : merged.specs) inputs += s.inputs;
  std::cerr << absl::StrFormat("profile: merged %d profiles of %s: %d specializations, %d steps, %d tensors -> %s\n",
                               files.size(), merged.model.name, merged.specs.size(), inputs, merged.tensors.size(), out);
  return absl::OkStatus();
}

absl::Status Show(const std::string& file) {
  TAILOR_ASSIGN_OR_RETURN(Profile p, ReadProfile(file));
  std::cout << absl::StrFormat("profile %s (version %d, checksum %s)\nmodel %s\nhistogram bins %d\n\n", file,
                               kProfileVersion, p.file_checksum, p.model.Describe(), p.histogram_bins);
  std::cout << absl::StrFormat("%-14s %8s %10s\n", "specialization", "steps", "tokens");
  for (const ProfileSpec& s : p.specs) std::cout << absl::StrFormat("%-14s %8d %10d\n", s.name, s.inputs, s.token_rows);
  std::cout << absl::StrFormat("\n%-24s %8s %10s %12s %12s %12s %12s\n", "tensor", "channels", "rows", "min", "max",
                               "p99.99 |x|", "mse clip");
  for (const TensorProfile& t : p.tensors) {
    std::cout << absl::StrFormat("%-24s %8d %10d %12.6g %12.6g %12.6g %12.6g\n", t.name, t.channels, t.rows(),
                                 t.rows() > 0 ? t.min : 0.0f, t.rows() > 0 ? t.max : 0.0f,
                                 PercentileClip(t.histogram, t.absmax(), 99.99), MseClip(t.histogram, t.absmax()));
  }
  return absl::OkStatus();
}

const std::vector<FlagSpec>& ProfileFlags() {
  static const auto* specs = new std::vector<FlagSpec>{{"out", true, {"o"}, "merge: the profile to write"}};
  return *specs;
}
constexpr char kUsage[] =
    "usage: tailor profile merge A B [C ...] -o OUT   sum calibration profiles of one model\n"
    "       tailor profile show FILE                  print a profile's specializations and tensors\n";

absl::Status ProfileMain(const std::vector<std::string>& args) {
  const std::vector<FlagSpec>& kFlags = ProfileFlags();
  TAILOR_ASSIGN_OR_RETURN(ParsedFlags f, ParseFlags(kFlags, args));
  const std::vector<std::string>& pos = f.positional();
  if (!pos.empty() && pos[0] == "merge") {
    if (pos.size() < 3 || !f.Has("out")) return absl::InvalidArgumentError(absl::StrCat("profile merge needs two profiles or more and -o\n", kUsage));
    return Merge(std::vector<std::string>(pos.begin() + 1, pos.end()), *f.Get("out"));
  }
  if (!pos.empty() && pos[0] == "show") {
    if (pos.size() != 2 || f.Has("out")) return absl::InvalidArgumentError(absl::StrCat("profile show takes one file\n", kUsage));
    return Show(pos[1]);
  }
  return absl::InvalidArgumentError(kUsage);
}

}  // namespace

absl::Status DumpCompileProfile(const Model& model, const std::vector<Specialization>& specs,
                                const CompileProfileFlags& flags) {
  const std::string& out = *flags.dump_profile;
  if (!flags.json_input_file) {
    return absl::InvalidArgumentError("-dump-profile needs -json-input-file (`tailor calibrate` makes one)");
  }
  TAILOR_RETURN_IF_ERROR(CheckWritable(out, "-dump-profile"));
  const std::string& inputs_path = *flags.json_input_file;
  TAILOR_ASSIGN_OR_RETURN(std::vector<CalibrationInput> inputs, ReadCalibrationInputs(inputs_path));
  TAILOR_RETURN_IF_ERROR(CheckCoverage(specs, inputs, inputs_path));
  DumpOptions o;
  o.source = inputs_path;
  o.progress = [](const std::string& line) { std::cerr << "profile: " << line << "\n"; };
  TAILOR_ASSIGN_OR_RETURN(Profile profile, DumpProfile(model, specs, inputs, o));
  TAILOR_RETURN_IF_ERROR(WriteProfile(profile, out));
  for (const ProfileSpec& s : profile.specs) {
    std::cerr << absl::StrFormat("profile: %s: %d steps, %d tokens\n", s.name, s.inputs, s.token_rows);
  }
  std::cerr << absl::StrFormat("profile: %d tensors of %s -> %s\n", profile.tensors.size(), model.config.name, out);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const CalibrationTable>> LoadCompileProfile(const Model& model,
                                                                           const std::vector<Specialization>& specs,
                                                                           const CompileProfileFlags& flags) {
  const std::string& path = *flags.load_profile;
  const auto method = ParseCalibrationMethod(flags.calibration);
  if (!method) {
    return absl::InvalidArgumentError(absl::StrCat("-quantization-calibration: '", flags.calibration,
                                                   "' (expected minmax, percentile or mse)"));
  }
  if (!(flags.percentile > 0 && flags.percentile <= 100)) {
    return absl::InvalidArgumentError(
        absl::StrCat("-percentile-calibration-value: ", flags.percentile, " (expected a percentage in (0, 100])"));
  }
  if (flags.json_input_file) {  // the seed's command names the inputs again: the same rule holds
    TAILOR_ASSIGN_OR_RETURN(std::vector<CalibrationInput> inputs, ReadCalibrationInputs(*flags.json_input_file));
    TAILOR_RETURN_IF_ERROR(CheckCoverage(specs, inputs, *flags.json_input_file));
  }
  TAILOR_ASSIGN_OR_RETURN(Profile profile, ReadProfile(path));
  TAILOR_RETURN_IF_ERROR(CheckProfileServes(profile, model, specs, path));
  std::cerr << absl::StrFormat("compile: calibration profile %s (%s", path, CalibrationMethodName(*method));
  if (*method == CalibrationMethod::kPercentile) std::cerr << absl::StrFormat(" %g", flags.percentile);
  std::cerr << ")\n";
  return CalibrationTable::Build(profile, *method, flags.percentile, fs::path(path).filename().string());
}

int RunProfile(const std::vector<std::string>& args) {
  if (PrintHelpIfAsked(args, kUsage, ProfileFlags())) return 0;
  absl::Status s = ProfileMain(args);
  return s.ok() ? 0 : ReportError(s);
}

}  // namespace tailor
