// Package trust. A package holds native code (kernels/build/*.so) that tailor dlopen()s and runs
// in its own process, with the rights of the user running it: a package is as powerful as an
// executable. Two checks keep a package what `tailor compile` wrote:
//
//  - Integrity: manifest.json records a checksum of every file tailor loads (weights, tokenizer,
//    kernel objects) and one of itself ("manifest_checksum": the file's text with that value
//    zeroed). A changed byte anywhere is refused with an error naming the file. The checksum is
//    ChecksumHex (fast, not cryptographic): it catches corruption and edits, not a forger who can
//    rewrite the manifest as well. The defence against other users is the next check.
//  - Ownership and permissions: the package directory, every directory on the way to a loaded
//    file, and the file itself must be owned by the user running tailor or by root, and
//    writable by nobody else: not world-writable, and group-writable only for the owner's own
//    group with no other members (a user-private group, as umask 002 makes). Symbolic links are
//    followed (the target is what is checked). The package's parent directories are not checked.
//
// Pure functions of the file system; safe from any thread.
#ifndef TAILOR_ENGINE_PACKAGE_TRUST_H_
#define TAILOR_ENGINE_PACKAGE_TRUST_H_

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tailor {

// The manifest's field holding its own checksum (16 lowercase hex digits).
inline constexpr char kManifestChecksumField[] = "manifest_checksum";

// `text` (a JSON manifest with a top-level "manifest_checksum" string of 16 characters, any
// value) with that value replaced by the checksum of the text with the value zeroed.
// InvalidArgument if the field does not occur exactly once.
absl::StatusOr<std::string> SealManifestText(std::string text);

// OK if `text`'s "manifest_checksum" matches its content; else InvalidArgument naming
// `manifest_path` (missing field, or a checksum mismatch).
absl::Status VerifyManifestText(const std::string& text, const std::string& manifest_path);

// OK unless `path` may be changed by a user other than its owner, or is owned by someone other
// than this process's effective user and root. FailedPrecondition naming the path, who may write
// it, and the fix (chmod go-w / chown / a copy); NotFound naming the path if it does not exist.
absl::Status CheckNotWritableByOthers(const std::filesystem::path& path);

// Checks `rel` (a path the manifest names, relative to the package: no root, no "..") and
// CheckNotWritableByOthers on every directory from `package_dir` down to it and on the file.
// `field` names the manifest field for errors ("weights.file", "specializations[2].kernel.object").
absl::Status CheckPackageFile(const std::filesystem::path& package_dir, const std::string& rel,
                              const std::string& field);

}  // namespace tailor

#endif  // TAILOR_ENGINE_PACKAGE_TRUST_H_
