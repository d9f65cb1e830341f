// GGUF (v2 and v3) parser over a read-only memory mapping: metadata is parsed at Open, tensor data
// is never copied (GgufTensorInfo::data points into the mapping, which GgufFile keeps alive).
//
// Layout (little-endian): "GGUF", uint32 version, uint64 tensor_count, uint64 kv_count, then
// kv_count metadata entries (string key, uint32 value type, value), then tensor_count tensor infos
// (string name, uint32 n_dims, uint64 dims[n_dims], uint32 ggml type, uint64 offset), then padding
// to `general.alignment` (default 32) and the data section. Strings are uint64 length + bytes.
//
// Every read is bounds-checked: a bad file gives an InvalidArgument status naming the file, the
// byte offset and what was being read; it never crashes.
//
// Immutable after Open; all methods are const and safe to call from several threads.
#ifndef TAILOR_COMMON_GGUF_FILE_H_
#define TAILOR_COMMON_GGUF_FILE_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "common/mapped_file.h"

namespace tailor {

// ggml tensor types that tailor names (the numbering is ggml's).
inline constexpr uint32_t kGgmlTypeF32 = 0;
inline constexpr uint32_t kGgmlTypeF16 = 1;
inline constexpr uint32_t kGgmlTypeQ4_0 = 2;
inline constexpr uint32_t kGgmlTypeQ8_0 = 8;
inline constexpr uint32_t kGgmlTypeQ2_K = 10;
inline constexpr uint32_t kGgmlTypeQ4_K = 12;
inline constexpr uint32_t kGgmlTypeQ5_K = 13;
inline constexpr uint32_t kGgmlTypeQ6_K = 14;
inline constexpr uint32_t kGgmlTypeBF16 = 30;

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // GGUF order: dims[0] is the innermost (contiguous) dimension
  uint32_t ggml_type = 0;
  uint64_t offset = 0;        // bytes, relative to the start of the data section
  const std::byte* data = nullptr;  // into the mapping; valid while the GgufFile (or file()) lives
  size_t nbytes = 0;          // 0 when the ggml type's size is not known to tailor
};

class GgufFile {
 public:
  // Maps and parses `path`. Errors: NotFound for a missing file, InvalidArgument for anything
  // malformed (bad magic, unsupported version, truncation, absurd counts, misaligned or
  // out-of-file tensor data, unknown value types, duplicate keys or tensor names).
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::filesystem::path& path);
  // Parses bytes already mapped (or held by MappedFile::FromBytes), named by file->path().
  static absl::StatusOr<std::unique_ptr<GgufFile>> Parse(std::shared_ptr<const MappedFile> file);

  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;
  ~GgufFile();

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }

  // Typed metadata access; std::nullopt when the key is absent or has an incompatible type.
  std::optional<int64_t> GetInt(std::string_view key) const;   // any integer type that fits
  std::optional<double> GetFloat(std::string_view key) const;  // f32/f64, and integers
  std::optional<bool> GetBool(std::string_view key) const;
  std::optional<std::string> GetString(std::string_view key) const;
  std::optional<std::vector<std::string>> GetStringArray(std::string_view key) const;
  std::optional<std::vector<double>> GetFloatArray(std::string_view key) const;  // f32/f64/ints
  std::optional<std::vector<int64_t>> GetIntArray(std::string_view key) const;   // integer types
  bool Has(std::string_view key) const;
  std::vector<std::string> Keys() const;  // in file order
  // The GGUF value type of `key` (0..12, as in the file; 9 = array), nullopt if absent.
  std::optional<uint32_t> ValueType(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* FindTensor(std::string_view name) const;  // nullptr if absent

  const std::shared_ptr<const MappedFile>& file() const { return file_; }
  const std::filesystem::path& path() const { return path_; }

  // One parsed metadata value (public only so the parser in gguf_file.cc can fill it).
  struct Value {
    uint32_t type = 0;          // GGUF value type
    int64_t i = 0;              // signed integer types and bool
    uint64_t u = 0;             // unsigned integer types
    double f = 0;               // f32/f64
    std::string_view s;         // string, into the mapping
    uint32_t elem_type = 0;     // arrays: element type
    uint64_t count = 0;         // arrays: element count
    std::vector<std::string_view> strings;  // string arrays
    std::vector<int64_t> ints;              // signed/bool arrays, and unsigned ones that fit
    std::vector<double> floats;             // float arrays
    bool ints_fit = true;                   // false if an unsigned element exceeds INT64_MAX
  };

 private:
  GgufFile() = default;
  const Value* Find(std::string_view key) const;

  std::filesystem::path path_;
  std::shared_ptr<const MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::vector<std::pair<std::string, Value>> kvs_;  // in file order
  std::unordered_map<std::string_view, size_t> kv_index_;      // key (into kvs_) -> index
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string_view, size_t> tensor_index_;  // name (into tensors_) -> index

  friend class GgufParser;
};

// Bytes per block and elements per block of a ggml type, or nullopt if tailor does not know it.
struct GgmlTypeSize {
  int64_t block_elements;
  int64_t block_bytes;
};
std::optional<GgmlTypeSize> GgmlTypeSizeOf(uint32_t ggml_type);

// ggml's name of a tensor type ("F32", "Q4_K", "IQ4_XS", ...), or nullptr for a number ggml
// does not (or no longer) name.
const char* GgmlTypeName(uint32_t ggml_type);

// "Q4_K (12)", or "unknown (77)": how error messages name a ggml type.
std::string GgmlTypeLabel(uint32_t ggml_type);

}  // namespace tailor

#endif  // TAILOR_COMMON_GGUF_FILE_H_
