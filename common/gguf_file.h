// Reader for GGUF files (v2 and v3): metadata key/values and tensor infos; tensor data stays in
// the memory mapping. Every read is bounds-checked: a truncated or corrupt file is an error
// naming the file and the byte offset, never a crash. Immutable after Open; thread-safe.
#ifndef TAILOR_COMMON_GGUF_FILE_H_
#define TAILOR_COMMON_GGUF_FILE_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/mapped_file.h"

namespace tailor {

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // GGUF order: dims[0] is the innermost (contiguous) dimension
  uint32_t ggml_type = 0;
  uint64_t offset = 0;  // relative to the data section
  const std::byte* data = nullptr;
  size_t nbytes = 0;  // 0 when the type's size is unknown to this reader
};

class GgufFile {
 public:
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::filesystem::path& path);

  std::optional<int64_t> GetInt(std::string_view key) const;   // any integer type
  std::optional<double> GetFloat(std::string_view key) const;  // floats and integers
  std::optional<bool> GetBool(std::string_view key) const;
  std::optional<std::string> GetString(std::string_view key) const;
  std::optional<std::vector<std::string>> GetStringArray(std::string_view key) const;
  std::optional<std::vector<double>> GetFloatArray(std::string_view key) const;
  std::optional<std::vector<int64_t>> GetIntArray(std::string_view key) const;
  bool Has(std::string_view key) const { return values_.count(std::string(key)) > 0; }

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* FindTensor(std::string_view name) const;
  const std::shared_ptr<const MappedFile>& file() const { return file_; }
  const std::filesystem::path& path() const { return file_->path(); }
  uint32_t version() const { return version_; }

 private:
  enum class Kind { kInt, kFloat, kBool, kString, kArray };
  struct Value {
    Kind kind = Kind::kInt;
    int64_t i = 0;
    double f = 0;
    std::string s;
    Kind elem = Kind::kInt;  // arrays
    std::vector<int64_t> ints;
    std::vector<double> floats;
    std::vector<std::string> strings;
  };
  friend class GgufParser;

  std::shared_ptr<const MappedFile> file_;
  uint32_t version_ = 0;
  std::map<std::string, Value> values_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace tailor

#endif  // TAILOR_COMMON_GGUF_FILE_H_
