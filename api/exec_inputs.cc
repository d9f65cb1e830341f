#include "api/exec_inputs.h"

#include "absl/strings/str_cat.h"
#include "common/mapped_file.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace tailor {

using json = nlohmann::json;

absl::StatusOr<std::vector<ExecInput>> ReadExecInputs(const std::string& path) {
  TAILOR_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseExecInputs(text, path);
}

absl::StatusOr<std::vector<ExecInput>> ParseExecInputs(std::string_view text, const std::string& path) {
  const json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("inputs") || !doc["inputs"].is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": expected {\"inputs\": [...]}"));
  }
  std::vector<ExecInput> inputs;
  for (size_t i = 0; i < doc["inputs"].size(); ++i) {
    const json& in = doc["inputs"][i];
    const std::string where = absl::StrCat(path, ": inputs[", i, "]");
    auto matrix = [&](const char* key, std::vector<std::vector<int32_t>>* out) -> absl::Status {
      if (!in.is_object() || !in.contains(key) || !in[key].is_array()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ".", key, " must be a list of rows"));
      }
      for (const auto& row : in[key]) {
        if (!row.is_array()) return absl::InvalidArgumentError(absl::StrCat(where, ".", key, " rows must be lists"));
        std::vector<int32_t> r;
        for (const auto& v : row) {
          if (!v.is_number_integer() || v.get<int64_t>() < INT32_MIN || v.get<int64_t>() > INT32_MAX) {
            return absl::InvalidArgumentError(absl::StrCat(where, ".", key, " holds a non-integer"));
          }
          r.push_back(v.get<int32_t>());
        }
        out->push_back(std::move(r));
      }
      return absl::OkStatus();
    };
    ExecInput input;
    TAILOR_RETURN_IF_ERROR(matrix("input_ids", &input.ids));
    TAILOR_RETURN_IF_ERROR(matrix("position_ids", &input.pos));
    if (input.ids.size() != input.pos.size()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": input_ids has ", input.ids.size(),
                                                     " rows but position_ids has ", input.pos.size()));
    }
    for (size_t r = 0; r < input.ids.size(); ++r) {
      if (input.ids[r].size() != input.pos[r].size()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": row ", r, " has ", input.ids[r].size(),
                                                       " ids but ", input.pos[r].size(), " positions"));
      }
    }
    inputs.push_back(std::move(input));
  }
  return inputs;
}

}  // namespace tailor
