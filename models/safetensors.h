// Reader for the safetensors format: 8-byte little-endian header length, JSON header, data.
// Tensor data stays in the memory mapping; nothing is copied.
#ifndef TAILOR_MODELS_SAFETENSORS_H_
#define TAILOR_MODELS_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/mapped_file.h"

namespace tailor {

struct SafetensorsTensor {
  std::string dtype;           // "F32", "F16", "BF16", ... as written in the header
  std::vector<int64_t> shape;  // outermost first
  const std::byte* data = nullptr;
  size_t nbytes = 0;
};

class SafetensorsFile {
 public:
  // Parses the header and checks every tensor's byte range against its shape, dtype and the file.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::filesystem::path& path);
  // The same over bytes already mapped (or held by MappedFile::FromBytes), named by file->path().
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Parse(std::shared_ptr<const MappedFile> file);

  const std::map<std::string, SafetensorsTensor>& tensors() const { return tensors_; }
  const std::shared_ptr<const MappedFile>& file() const { return file_; }

 private:
  std::shared_ptr<const MappedFile> file_;
  std::map<std::string, SafetensorsTensor> tensors_;
};

}  // namespace tailor

#endif  // TAILOR_MODELS_SAFETENSORS_H_
