// Subcommands of the `tailor` executable. Each returns the process exit code:
// 0 success, 2 bad input or usage (message on stderr), 1 internal error.
#ifndef TAILOR_API_COMMANDS_H_
#define TAILOR_API_COMMANDS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "api/line_reader.h"

namespace tailor {

// Facts main() reads from the environment and passes down (no getenv below main).
struct Environment {
  uint64_t random_seed = 0;  // used when a command is given no --seed
  std::string cxx;           // $CXX: the C++ compiler for generated kernels ("" = c++)
  // Line editing for `tailor chat` on a terminal; empty when the executable has no readline.
  TerminalLineReaderFactory terminal_line_reader;
  // Where `tailor plan` keeps measured costs: $XDG_CACHE_HOME/tailor, else $HOME/.cache/tailor
  // ("" when neither is set: nothing is cached unless --cache-dir says where).
  std::string cache_dir;
};

int RunGenerate(const std::vector<std::string>& args, const Environment& env);
int RunCompile(const std::vector<std::string>& args, const Environment& env);
int RunInspect(const std::vector<std::string>& args);
int RunExec(const std::vector<std::string>& args);
int RunServe(const std::vector<std::string>& args, const Environment& env);
int RunChat(const std::vector<std::string>& args, const Environment& env);
int RunBatch(const std::vector<std::string>& args, const Environment& env);
int RunTokenize(const std::vector<std::string>& args);
int RunDetokenize(const std::vector<std::string>& args);
int RunPerplexity(const std::vector<std::string>& args);
int RunCalibrate(const std::vector<std::string>& args);
int RunProfile(const std::vector<std::string>& args);  // tailor profile merge|show
int RunPlan(const std::vector<std::string>& args, const Environment& env);

// The calibration profile flags of `tailor compile` (api/profile_command.cc).
struct Model;
struct Specialization;
class CalibrationTable;
struct CompileProfileFlags {
  std::optional<std::string> json_input_file;  // -json-input-file
  std::optional<std::string> dump_profile;     // -dump-profile
  std::optional<std::string> load_profile;     // -load-profile
  std::string calibration = "minmax";          // -quantization-calibration
  double percentile = 99.99;                   // -percentile-calibration-value
};
// -dump-profile: runs the fp32 programs of `specs` over the inputs file and writes the profile.
absl::Status DumpCompileProfile(const Model& model, const std::vector<Specialization>& specs,
                                const CompileProfileFlags& flags);
// -load-profile: reads and checks the profile (and the inputs file's coverage, when given) and
// chooses the clipping ranges.
absl::StatusOr<std::shared_ptr<const CalibrationTable>> LoadCompileProfile(
    const Model& model, const std::vector<Specialization>& specs, const CompileProfileFlags& flags);

// The package a serving command runs: `flag_value` if given, else the default package that
// scripts/setup.sh compiles (NotFound naming the flags to use when it does not exist).
absl::StatusOr<std::string> PackageOrDefault(const std::optional<std::string>& flag_value,
                                             const char* alternatives);

// Maps a Status to an exit code (2 for bad input, 1 otherwise) after printing it to stderr.
int ReportError(const absl::Status& status);

}  // namespace tailor

#endif  // TAILOR_API_COMMANDS_H_
