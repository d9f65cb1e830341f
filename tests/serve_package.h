// A small stories260K package compiled once per test binary (by the `tailor` executable), for the
// serving tests. Specializations: prefill b1_s16, decode b1 and b4, all with ctx_len 512, so at
// most 4 sequences run at once.
#ifndef TAILOR_TESTS_SERVE_PACKAGE_H_
#define TAILOR_TESTS_SERVE_PACKAGE_H_

#include <filesystem>
#include <string>

#include "tests/test_util.h"

namespace tailor::testing_util {

inline const std::string& StoriesDir() {
  static const std::string* dir = new std::string(std::string(TAILOR_SHARED_DIR) + "/models/stories260K");
  return *dir;
}

// Compiles the package on first use (in a temp dir that lives until the process exits).
// Returns "" and fills `error` when compiling failed.
inline std::string ServePackage(std::string* error = nullptr) {
  static TempDir* tmp = nullptr;
  static std::string* path = nullptr;
  static std::string* err = nullptr;
  if (path == nullptr) {
    tmp = new TempDir();
    WriteAll(*tmp / "specs.json", R"({"specializations": [
        {"batch_size": "1", "seq_len": "16", "ctx_len": "512"},
        {"batch_size": "1", "seq_len": "1", "ctx_len": "512"},
        {"batch_size": "4", "seq_len": "1", "ctx_len": "512"}]})");
    const std::string out = (*tmp / "pkg").string();
    CommandResult r = RunTailor({"compile", "--model", StoriesDir() + "/stories260K.bin", "--tokenizer",
                                 StoriesDir() + "/tok512.bin", "--specializations",
                                 (*tmp / "specs.json").string(), "--out", out, "--compile-only",
                                 "--target", "native"});
    path = new std::string(r.exit_code == 0 ? out : "");
    err = new std::string(r.err);
  }
  if (error) *error = *err;
  return *path;
}

}  // namespace tailor::testing_util

#endif  // TAILOR_TESTS_SERVE_PACKAGE_H_
