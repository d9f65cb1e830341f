#include "engine/spec_config.h"

#include <cerrno>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/mapped_file.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace tailor {
namespace {

using json = nlohmann::json;

constexpr char kSymbols[] = "batch_size, seq_len, ctx_len";

// Line and column (1-based) of byte `offset` in `text`.
std::pair<int, int> LineColumn(absl::string_view text, size_t offset) {
  int line = 1, col = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return {line, col};
}

// A positive decimal integer from a string ("128") or a JSON integer.
absl::StatusOr<int32_t> ParsePositive(const json& v, const std::string& where) {
  int64_t x = 0;
  if (v.is_number_integer()) {
    x = v.get<int64_t>();
  } else if (v.is_string()) {
    const std::string s = v.get<std::string>();
    errno = 0;
    char* end = nullptr;
    long long parsed = std::strtoll(s.c_str(), &end, 10);
    bool digits_only = !s.empty();
    for (char c : s) digits_only = digits_only && ((c >= '0' && c <= '9') || c == '-' || c == '+');
    if (!digits_only || *end != '\0' || errno != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " is \"", s, "\", not an integer (expected a decimal string like \"128\")"));
    }
    x = parsed;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        where, " is ", v.dump(), ", not an integer (expected a decimal string like \"128\")"));
  }
  if (x <= 0 || x > (1 << 24)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " is ", x, "; expected a positive integer (at most 16777216)"));
  }
  return static_cast<int32_t>(x);
}

absl::Status ParseCompileOpts(const json& v, const std::string& where, Specialization* spec) {
  if (!v.is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " must be a string of options such as \"-ols=2\""));
  }
  for (absl::string_view opt : absl::StrSplit(v.get<std::string>(), ' ', absl::SkipWhitespace())) {
    if (absl::StartsWith(opt, "-ols=")) {
      TAILOR_ASSIGN_OR_RETURN(spec->ols, ParsePositive(json(std::string(opt.substr(5))),
                                                       absl::StrCat(where, ": -ols")));
      if (spec->ols > 256) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": -ols=", spec->ols,
                                                       " is too large (at most 256)"));
      }
      continue;
    }
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": option '", opt,
        "' is not allowed per specialization (allowed: -ols=N, output-dimension partitions)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<Specialization>> ParseSpecConfig(absl::string_view text,
                                                            const std::string& source,
                                                            int32_t max_positions) {
  json doc;
  try {
    doc = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    auto [line, col] = LineColumn(text, e.byte > 0 ? e.byte - 1 : 0);
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", line, ":", col, ": malformed JSON: ", e.what()));
  } catch (const json::exception& e) {  // e.g. out_of_range 406: a number too large for a double
    return absl::InvalidArgumentError(absl::StrCat(source, ": malformed JSON: ", e.what()));
  }
  if (!doc.is_object() || !doc.contains("specializations")) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": expected an object with a \"specializations\" list"));
  }
  const json& list = doc["specializations"];
  if (!list.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": \"specializations\" must be a list"));
  }
  if (list.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": \"specializations\" is empty; expected at least one decode entry (seq_len 1)"));
  }
  std::vector<Specialization> specs;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string entry = absl::StrCat(source, ": specializations[", i, "]");
    const json& e = list[i];
    if (!e.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(entry, " must be an object"));
    }
    for (auto it = e.begin(); it != e.end(); ++it) {
      const std::string& k = it.key();
      if (k != "batch_size" && k != "seq_len" && k != "ctx_len" && k != "compile_opts") {
        return absl::InvalidArgumentError(absl::StrCat(
            entry, ": unknown symbol \"", k, "\" (expected ", kSymbols, ", compile_opts)"));
      }
    }
    Specialization s;
    int32_t* fields[] = {&s.shape.batch_size, &s.shape.seq_len, &s.shape.ctx_len};
    const char* names[] = {"batch_size", "seq_len", "ctx_len"};
    for (int f = 0; f < 3; ++f) {
      if (!e.contains(names[f])) {
        return absl::InvalidArgumentError(
            absl::StrCat(entry, ": missing symbol \"", names[f], "\" (every entry needs ", kSymbols, ")"));
      }
      TAILOR_ASSIGN_OR_RETURN(*fields[f],
                              ParsePositive(e[names[f]], absl::StrCat(entry, ".", names[f])));
    }
    if (e.contains("compile_opts")) {
      TAILOR_RETURN_IF_ERROR(ParseCompileOpts(e["compile_opts"], entry + ".compile_opts", &s));
    }
    if (s.shape.seq_len > s.shape.ctx_len) {
      return absl::InvalidArgumentError(absl::StrCat(entry, ": seq_len ", s.shape.seq_len,
                                                     " is larger than ctx_len ", s.shape.ctx_len));
    }
    if (s.shape.ctx_len > max_positions) {
      return absl::InvalidArgumentError(absl::StrCat(entry, ": ctx_len ", s.shape.ctx_len,
                                                     " is beyond the model's maximum of ",
                                                     max_positions, " positions"));
    }
    for (size_t j = 0; j < specs.size(); ++j) {
      if (specs[j].shape == s.shape) {
        return absl::InvalidArgumentError(absl::StrCat(
            entry, ": duplicate of specializations[", j, "] (batch_size ", s.shape.batch_size,
            ", seq_len ", s.shape.seq_len, ", ctx_len ", s.shape.ctx_len, ")"));
      }
    }
    specs.push_back(s);
  }
  bool has_decode = false;
  for (const auto& s : specs) has_decode = has_decode || s.shape.seq_len == 1;
  if (!has_decode) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": no decode specialization (an entry with seq_len \"1\" is required)"));
  }
  return specs;
}

absl::StatusOr<std::vector<Specialization>> LoadSpecConfig(const std::filesystem::path& path,
                                                           int32_t max_positions) {
  TAILOR_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseSpecConfig(text, path.string(), max_positions);
}

}  // namespace tailor
