// Command-line flags of the tailor subcommands: `--name value`, `--name=value`, and the seed's
// single-dash spellings (`-name=value`, `-name`). Unknown flags are errors that list the known.
#ifndef TAILOR_API_FLAGS_H_
#define TAILOR_API_FLAGS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tailor {

struct FlagSpec {
  std::string name;                  // canonical long name without dashes, e.g. "max-tokens"
  bool takes_value = true;
  std::vector<std::string> aliases;  // other spellings without dashes, e.g. "m" or "aic-binary-dir"
  std::string help;
};

class ParsedFlags {
 public:
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::optional<std::string> Get(const std::string& name) const;
  // Typed getters: absent -> fallback; present but malformed -> InvalidArgument naming the flag.
  absl::StatusOr<std::string> GetString(const std::string& name, const std::string& fallback) const;
  absl::StatusOr<int64_t> GetInt(const std::string& name, int64_t fallback, int64_t min,
                                 int64_t max) const;
  absl::StatusOr<double> GetDouble(const std::string& name, double fallback, double min,
                                   double max) const;
  const std::vector<std::string>& positional() const { return positional_; }
  // The flag as the user typed it ("-aic-num-cores", "--threads"), for messages; "--name" when
  // absent.
  std::string Spelling(const std::string& name) const;

 private:
  friend absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<FlagSpec>&,
                                                const std::vector<std::string>&);
  std::map<std::string, std::string> values_;
  std::map<std::string, std::string> spellings_;  // canonical name -> as typed, without "=value"
  std::vector<std::string> positional_;
};

absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<FlagSpec>& specs,
                                       const std::vector<std::string>& args);

// "  --name VALUE   help" lines for usage messages.
std::string FlagsHelp(const std::vector<FlagSpec>& specs);

// A command's --help / -h: when `args` hold one (not as the value of a flag of `specs`), prints
// `usage` and FlagsHelp(specs) on stdout and returns true (the command then exits 0).
bool PrintHelpIfAsked(const std::vector<std::string>& args, const std::string& usage,
                      const std::vector<FlagSpec>& specs);

}  // namespace tailor

#endif  // TAILOR_API_FLAGS_H_
