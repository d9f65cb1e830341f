// Package trust (issue 15, item 6), as a user meets it with `tailor generate --package`: one
// byte changed in a kernel object, the weights, the tokenizer or the manifest is refused with a
// message naming the file; so is a package that other users may write (or that another user
// owns), with the chmod that fixes it; and a manifest cannot point tailor at a file outside the
// package. Each case runs on a fresh copy of build/default-package (generated kernels).
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "engine/package_trust.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_util.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using testing_util::CommandResult;
using testing_util::ReadAll;
using testing_util::RunTailor;
using testing_util::TempDir;
using testing_util::WriteAll;

class PackageTrust : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path source = TAILOR_DEFAULT_PACKAGE;
    if (!fs::exists(source / "manifest.json")) GTEST_SKIP() << "no default package: run scripts/setup.sh";
    dir_ = tmp_ / "pkg";
    fs::copy(source, dir_, fs::copy_options::recursive);
    manifest_ = nlohmann::json::parse(ReadAll(dir_ / "manifest.json"));
  }
  CommandResult Generate() {
    return RunTailor({"generate", "--package", dir_.string(), "--prompt", "Once upon a time", "--max-tokens", "4"});
  }
  // Flips bits `mask` of the byte at `offset` (from the end when negative).
  static void FlipByte(const fs::path& file, long offset, char mask = 0x04) {
    std::string bytes = ReadAll(file);
    const size_t at = offset >= 0 ? static_cast<size_t>(offset) : bytes.size() - static_cast<size_t>(-offset);
    ASSERT_LT(at, bytes.size());
    bytes[at] ^= mask;
    WriteAll(file, bytes);
  }
  void ExpectRefused(const fs::path& file, const std::string& why) {
    CommandResult r = Generate();
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_THAT(r.err, AllOf(HasSubstr(file.string()), HasSubstr(why)));
    EXPECT_EQ(r.out, "");
  }

  TempDir tmp_;
  fs::path dir_;
  nlohmann::json manifest_;
};

TEST_F(PackageTrust, IntactCopyLoads) {
  CommandResult r = Generate();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
}

TEST_F(PackageTrust, FlippedByteInKernelObject) {
  const fs::path so = dir_ / manifest_["specializations"][0]["kernel"]["object"].get<std::string>();
  ASSERT_TRUE(fs::exists(so)) << so;
  FlipByte(so, static_cast<long>(fs::file_size(so) / 2));
  ExpectRefused(so, "checksum mismatch");
}

TEST_F(PackageTrust, FlippedByteInWeights) {
  FlipByte(dir_ / "weights.bin", 100);
  ExpectRefused(dir_ / "weights.bin", "checksum mismatch");
}

TEST_F(PackageTrust, FlippedByteInTokenizer) {
  const fs::path tok = dir_ / manifest_["tokenizer"]["file"].get<std::string>();
  FlipByte(tok, -10);
  ExpectRefused(tok, "checksum mismatch");
}

// Flips that keep the JSON valid and plausible (a digit of a cost: 0 <-> 1; the case of a letter
// of the architecture): only the manifest's own checksum can tell.
TEST_F(PackageTrust, FlippedByteInManifest) {
  const std::string text = ReadAll(dir_ / "manifest.json");
  for (const auto& [needle, mask] : {std::pair{std::string("\"cost_seconds\": "), char{0x01}},
                                     std::pair{std::string("\"architecture\": \""), char{0x20}}}) {
    const size_t at = text.find(needle);
    ASSERT_NE(at, std::string::npos) << needle;
    WriteAll(dir_ / "manifest.json", text);
    FlipByte(dir_ / "manifest.json", static_cast<long>(at + needle.size()), mask);
    ASSERT_FALSE(nlohmann::json::parse(ReadAll(dir_ / "manifest.json"), nullptr, false).is_discarded());
    ExpectRefused(dir_ / "manifest.json", "checksum mismatch");
  }
  // A manifest whose field was deleted along with its value.
  nlohmann::json m = nlohmann::json::parse(text);
  m.erase(kManifestChecksumField);
  WriteAll(dir_ / "manifest.json", m.dump(2));
  ExpectRefused(dir_ / "manifest.json", kManifestChecksumField);
}

// Writable by other users: the directory, a kernel object. The message says what to run.
TEST_F(PackageTrust, WritableByOthersIsRefused) {
  fs::permissions(dir_, fs::perms::others_write, fs::perm_options::add);
  ExpectRefused(dir_, "chmod go-w");
  fs::permissions(dir_, fs::perms::others_write, fs::perm_options::remove);
  ASSERT_EQ(Generate().exit_code, 0);

  const fs::path so = dir_ / manifest_["specializations"][0]["kernel"]["object"].get<std::string>();
  fs::permissions(so, fs::perms::others_write, fs::perm_options::add);
  ExpectRefused(so, "writable by every user");
  fs::permissions(so, fs::perms::others_write, fs::perm_options::remove);
  fs::permissions(so.parent_path(), fs::perms::others_write, fs::perm_options::add);
  ExpectRefused(so.parent_path(), "chmod go-w");
}

// Owned by another (non-root) user: that user could change it. Needs root to set up.
TEST_F(PackageTrust, OwnedByAnotherUserIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "chown needs root";
  ASSERT_EQ(chown((dir_ / "weights.bin").c_str(), 65534, 65534), 0);  // nobody
  ExpectRefused(dir_ / "weights.bin", "neither you");
}

// A manifest (sealed, so that its checksum holds) naming a kernel object outside the package.
TEST_F(PackageTrust, KernelObjectOutsideThePackage) {
  nlohmann::json m = manifest_;
  m["specializations"][0]["kernel"]["object"] = "../evil.so";
  WriteAll(dir_ / "manifest.json", SealManifestText(m.dump(2)).value());
  ExpectRefused(dir_ / "manifest.json", "inside the package");
}

}  // namespace
}  // namespace tailor
