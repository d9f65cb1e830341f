#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"

#include "api/commands.h"

namespace tailor {

absl::StatusOr<std::string> PackageOrDefault(const std::optional<std::string>& flag_value,
                                             const char* alternatives) {
  if (flag_value) return *flag_value;
  const std::string dir = TAILOR_DEFAULT_PACKAGE;
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::path(dir) / "manifest.json", ec)) {
    return absl::NotFoundError(absl::StrCat("no ", alternatives, " given and the default package ", dir,
                                            " does not exist (scripts/setup.sh makes it)"));
  }
  return dir;
}

int ReportError(const absl::Status& status) {
  std::cerr << "tailor: " << status.message() << "\n";
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kUnimplemented:
      return 2;
    default:
      return 1;
  }
}

}  // namespace tailor
