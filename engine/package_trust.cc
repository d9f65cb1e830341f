#include "engine/package_trust.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/checksum.h"
#include "common/status_macros.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;

constexpr size_t kChecksumDigits = 16;

// The offset of the value (16 characters) of the one `"manifest_checksum": "..."` in `text`, or
// an error when there is none or more than one. A JSON string escapes every quote inside it, so
// the key with bare quotes is always structure, never string content.
absl::StatusOr<size_t> FindChecksumValue(const std::string& text, const std::string& manifest_path) {
  const std::string key = absl::StrCat("\"", kManifestChecksumField, "\"");
  std::optional<size_t> found;
  for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + 1)) {
    size_t i = at + key.size();
    auto skip_space = [&] {
      while (i < text.size() && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t')) ++i;
    };
    skip_space();
    if (i >= text.size() || text[i] != ':') continue;
    ++i;
    skip_space();
    if (i + kChecksumDigits + 2 > text.size() || text[i] != '"' || text[i + 1 + kChecksumDigits] != '"') continue;
    if (found) {
      return absl::InvalidArgumentError(
          absl::StrCat(manifest_path, ": '", kManifestChecksumField, "' appears more than once"));
    }
    found = i + 1;
  }
  if (!found) {
    return absl::InvalidArgumentError(absl::StrCat(
        manifest_path, ": no '", kManifestChecksumField,
        "' (16 hex digits): the manifest cannot be verified; recompile the package with `tailor compile`"));
  }
  return *found;
}

std::string ZeroedChecksum(std::string text, size_t value_at) {
  text.replace(value_at, kChecksumDigits, kChecksumDigits, '0');
  return ChecksumHex(std::as_bytes(std::span<const char>(text.data(), text.size())));
}

std::string UserName(uid_t uid) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* out = nullptr;
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &out) == 0 && out != nullptr) return out->pw_name;
  return absl::StrCat("uid ", uid);
}

// Whether group `gid` is `owner`'s private group: the owner's primary group, with no member
// other than the owner (what a user-private-group system with umask 002 makes).
bool IsPrivateGroupOf(gid_t gid, uid_t owner) {
  std::vector<char> pbuf(16384), gbuf(65536);
  passwd pw{};
  passwd* pout = nullptr;
  if (getpwuid_r(owner, &pw, pbuf.data(), pbuf.size(), &pout) != 0 || pout == nullptr) return false;
  if (pw.pw_gid != gid) return false;
  group gr{};
  group* gout = nullptr;
  if (getgrgid_r(gid, &gr, gbuf.data(), gbuf.size(), &gout) != 0 || gout == nullptr) return false;
  for (char** m = gr.gr_mem; m != nullptr && *m != nullptr; ++m) {
    if (std::strcmp(*m, pw.pw_name) != 0) return false;
  }
  return true;
}

std::string GroupName(gid_t gid) {
  std::vector<char> buf(65536);
  group gr{};
  group* out = nullptr;
  if (getgrgid_r(gid, &gr, buf.data(), buf.size(), &out) == 0 && out != nullptr) return out->gr_name;
  return absl::StrCat("gid ", gid);
}

}  // namespace

absl::StatusOr<std::string> SealManifestText(std::string text) {
  TAILOR_ASSIGN_OR_RETURN(size_t at, FindChecksumValue(text, "manifest.json"));
  const std::string sum = ZeroedChecksum(text, at);
  text.replace(at, kChecksumDigits, sum);
  return text;
}

absl::Status VerifyManifestText(const std::string& text, const std::string& manifest_path) {
  TAILOR_ASSIGN_OR_RETURN(size_t at, FindChecksumValue(text, manifest_path));
  if (ZeroedChecksum(text, at) != text.substr(at, kChecksumDigits)) {
    return absl::InvalidArgumentError(absl::StrCat(
        manifest_path,
        ": checksum mismatch: the manifest changed after `tailor compile` wrote it (edited, corrupt or tampered "
        "with); recompile the package"));
  }
  return absl::OkStatus();
}

absl::Status CheckNotWritableByOthers(const fs::path& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) return absl::NotFoundError(absl::StrCat(path.string(), ": not found"));
    return absl::FailedPreconditionError(absl::StrCat(path.string(), ": cannot stat: ", std::strerror(err)));
  }
  const std::string p = path.string();
  const std::string mode = absl::StrFormat("mode %04o", st.st_mode & 07777);
  const char* why = "others could change what tailor loads from this package (it runs the package's native code)";
  if (st.st_uid != geteuid() && st.st_uid != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        p, " is owned by ", UserName(st.st_uid), ", neither you (", UserName(geteuid()), ") nor root: ", why,
        ". Use a copy you own (cp -r) or chown it"));
  }
  if ((st.st_mode & S_IWOTH) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(p, " is writable by every user (", mode, "): ", why,
                                                      ". Fix it with: chmod go-w '", p, "'"));
  }
  if ((st.st_mode & S_IWGRP) != 0 && !IsPrivateGroupOf(st.st_gid, st.st_uid)) {
    return absl::FailedPreconditionError(absl::StrCat(p, " is writable by group ", GroupName(st.st_gid), " (", mode,
                                                      "), which holds other users: ", why,
                                                      ". Fix it with: chmod g-w '", p, "'"));
  }
  return absl::OkStatus();
}

absl::Status CheckPackageFile(const fs::path& package_dir, const std::string& rel, const std::string& field) {
  const fs::path relative(rel);
  if (rel.empty() || relative.is_absolute() || relative.has_root_name()) {
    return absl::InvalidArgumentError(absl::StrCat((package_dir / "manifest.json").string(), ": ", field, " '", rel,
                                                   "' must be a path inside the package"));
  }
  for (const fs::path& part : relative) {
    if (part == "..") {
      return absl::InvalidArgumentError(absl::StrCat((package_dir / "manifest.json").string(), ": ", field, " '", rel,
                                                     "' must be a path inside the package (no '..')"));
    }
  }
  fs::path at = package_dir;
  TAILOR_RETURN_IF_ERROR(CheckNotWritableByOthers(at));
  for (const fs::path& part : relative) {
    at /= part;
    TAILOR_RETURN_IF_ERROR(CheckNotWritableByOthers(at));
  }
  return absl::OkStatus();
}

}  // namespace tailor
