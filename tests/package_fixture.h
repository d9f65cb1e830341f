// Test packages, compiled once per build and shared by every test process (file lock + stamp).
#ifndef TAILOR_TESTS_PACKAGE_FIXTURE_H_
#define TAILOR_TESTS_PACKAGE_FIXTURE_H_

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "engine/compiler.h"
#include "engine/spec_config.h"
#include "gtest/gtest.h"
#include "models/model_loader.h"

namespace tailor::testing_util {

// Identifies this build of the tests: packages compiled by an older build are redone.
inline std::string BuildStamp() {
  struct stat st {};
  stat("/proc/self/exe", &st);
  return std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
}

// Load options for a model under ../shared/models: the tokenizer of checkpoints that ship none
// (llama2.c stories; the tiny Llama 3 / Qwen models, whose tokenizers are in tokenizers/).
inline LoadOptions TestLoadOptions(const std::string& model_rel) {
  const std::string shared = TAILOR_SHARED_DIR;
  LoadOptions lo;
  if (model_rel.ends_with(".bin")) lo.tokenizer = shared + "/models/stories260K/tok512.model";
  if (model_rel.starts_with("tiny-llama3")) lo.tokenizer = shared + "/models/tokenizers/llama3/tokenizer.json";
  if (model_rel.starts_with("tiny-qwen")) lo.tokenizer = shared + "/models/tokenizers/qwen3/tokenizer.json";
  return lo;
}

// Compiles `model_rel` (under ../shared/models) with `specs_json` into
// <build>/test-packages/<name> unless this build already did.
inline std::filesystem::path TestPackage(const std::string& name, const std::string& model_rel,
                                         const std::string& specs_json, CompileOptions options) {
  namespace fs = std::filesystem;
  const fs::path root = fs::path(TAILOR_BUILD_DIR) / "test-packages";
  fs::create_directories(root);
  const fs::path dir = root / name;
  const std::string stamp = BuildStamp() + " " + specs_json;
  int lock = open((root / (name + ".lock")).c_str(), O_CREAT | O_RDWR, 0644);
  flock(lock, LOCK_EX);
  std::string existing;
  {
    std::ifstream in(dir / "test-stamp");
    std::getline(in, existing, '\0');
  }
  if (existing != stamp) {
    fs::remove_all(dir);
    auto model = LoadModel(std::string(TAILOR_SHARED_DIR) + "/models/" + model_rel, TestLoadOptions(model_rel));
    EXPECT_TRUE(model.ok()) << model.status();
    auto specs = ParseSpecConfig(specs_json, name, (*model)->config.max_positions);
    EXPECT_TRUE(specs.ok()) << specs.status();
    options.out = dir;
    options.tokenizer_bytes = "not used by engine tests";
    absl::Status s = CompilePackage(**model, *specs, options);
    EXPECT_TRUE(s.ok()) << s;
    std::ofstream(dir / "test-stamp") << stamp;
  }
  flock(lock, LOCK_UN);
  close(lock);
  return dir;
}

}  // namespace tailor::testing_util

#endif  // TAILOR_TESTS_PACKAGE_FIXTURE_H_
