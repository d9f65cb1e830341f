// Read-only memory mapping of a whole file. Immutable after Open; safe to share across threads.
#ifndef TAILOR_COMMON_MAPPED_FILE_H_
#define TAILOR_COMMON_MAPPED_FILE_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tailor {

class MappedFile {
 public:
  // Maps `path` read-only. Errors name the path: NotFound, or InvalidArgument for a directory.
  // An empty file maps to an empty span.
  static absl::StatusOr<std::shared_ptr<const MappedFile>> Open(const std::filesystem::path& path);
  // The same view over a copy of `bytes` held in memory (no file): parsers that take a
  // MappedFile read bytes that never were a file (fuzz targets, tests). `path` names it in errors.
  static std::shared_ptr<const MappedFile> FromBytes(std::string_view bytes, std::filesystem::path path);

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }
  // True when the bytes are a file mapping (Open), whose pages may be given back with
  // MADV_DONTNEED (a later read faults them in again from the file); false for FromBytes.
  bool file_backed() const { return owned_ == nullptr; }

 private:
  MappedFile(std::filesystem::path path, const std::byte* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}

  std::filesystem::path path_;
  const std::byte* data_ = nullptr;  // mmap'ed, or into owned_
  size_t size_ = 0;
  std::unique_ptr<std::byte[]> owned_;  // FromBytes: the copy data_ points into (nothing to unmap)
};

// Reads a whole (small) file into a string. Errors name the path.
absl::StatusOr<std::string> ReadFileToString(const std::filesystem::path& path);

}  // namespace tailor

#endif  // TAILOR_COMMON_MAPPED_FILE_H_
