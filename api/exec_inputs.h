// The `tailor exec` input file, shared by `exec` and `compile -json-input-file` (profiles):
//   {"inputs": [{"input_ids": [[...], ...], "position_ids": [[...], ...]}, ...]}
// Row r of an input is KV slot r; a negative position marks padding.
#ifndef TAILOR_API_EXEC_INPUTS_H_
#define TAILOR_API_EXEC_INPUTS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tailor {

struct ExecInput {
  std::vector<std::vector<int32_t>> ids, pos;  // [rows][tokens], the same shape
};

// Every input, checked for shape: lists of rows of int32 integers, as many position rows as id
// rows, each row as many positions as ids. Errors (InvalidArgument) name `path`, the input and
// the key.
absl::StatusOr<std::vector<ExecInput>> ReadExecInputs(const std::string& path);
// The same over the file's text; `source` names it in errors.
absl::StatusOr<std::vector<ExecInput>> ParseExecInputs(std::string_view text, const std::string& source);

}  // namespace tailor

#endif  // TAILOR_API_EXEC_INPUTS_H_
