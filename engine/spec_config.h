// The specialization config file, exactly the format of qaic-compile's
// -network-specialization-config:
//   {"specializations": [{"batch_size": "1", "seq_len": "128", "ctx_len": "512",
//                         "compile_opts": "-ols=2"}, ...]}
// Values are decimal strings (plain JSON integers accepted too). Symbols of causal LMs:
// batch_size, seq_len, ctx_len; compile_opts may hold only -ols=N.
#ifndef TAILOR_ENGINE_SPEC_CONFIG_H_
#define TAILOR_ENGINE_SPEC_CONFIG_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/executor.h"

namespace tailor {

// Parses and validates `text` (from `source`, named in errors). Every error names the entry
// (index) and field: unknown or missing symbol, a value that is not a positive integer,
// seq_len > ctx_len, ctx_len > max_positions, duplicates, an empty list, no decode entry
// (seq_len == 1), compile options other than -ols=N, malformed JSON (line and column).
absl::StatusOr<std::vector<Specialization>> ParseSpecConfig(absl::string_view text,
                                                            const std::string& source,
                                                            int32_t max_positions);

absl::StatusOr<std::vector<Specialization>> LoadSpecConfig(const std::filesystem::path& path,
                                                           int32_t max_positions);

}  // namespace tailor

#endif  // TAILOR_ENGINE_SPEC_CONFIG_H_
