#include "common/gguf_file.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace tailor {

// Sequential, bounds-checked reads over the mapping.
class GgufParser {
 public:
  GgufParser(const MappedFile& f, GgufFile* out) : f_(f), out_(out) {}

  absl::Status Parse() {
    if (f_.size() < 4 || std::memcmp(f_.data(), "GGUF", 4) != 0) {
      std::string got = f_.size() >= 4 ? std::string(reinterpret_cast<const char*>(f_.data()), 4) : "";
      for (char& c : got) c = (c >= 32 && c < 127) ? c : '?';
      return absl::InvalidArgumentError(absl::StrCat(f_.path().string(), ": not a GGUF file (wrong magic number \"",
                                                     got, "\"; expected \"GGUF\")"));
    }
    pos_ = 4;
    TAILOR_ASSIGN_OR_RETURN(out_->version_, Read<uint32_t>("version"));
    if (out_->version_ != 2 && out_->version_ != 3) {
      return absl::InvalidArgumentError(absl::StrCat(f_.path().string(), ": GGUF version ", out_->version_,
                                                     " is not supported (expected 2 or 3)"));
    }
    TAILOR_ASSIGN_OR_RETURN(uint64_t n_tensors, Read<uint64_t>("tensor count"));
    TAILOR_ASSIGN_OR_RETURN(uint64_t n_kv, Read<uint64_t>("metadata count"));
    if (n_tensors > f_.size() || n_kv > f_.size()) return Corrupt("absurd tensor or metadata count");
    for (uint64_t i = 0; i < n_kv; ++i) {
      TAILOR_ASSIGN_OR_RETURN(std::string key, ReadString("metadata key"));
      TAILOR_ASSIGN_OR_RETURN(uint32_t type, Read<uint32_t>("metadata type"));
      GgufFile::Value v;
      TAILOR_RETURN_IF_ERROR(ReadValue(type, key, &v));
      out_->values_[key] = std::move(v);
    }
    for (uint64_t i = 0; i < n_tensors; ++i) {
      GgufTensorInfo t;
      TAILOR_ASSIGN_OR_RETURN(t.name, ReadString("tensor name"));
      TAILOR_ASSIGN_OR_RETURN(uint32_t n_dims, Read<uint32_t>("tensor dimensions"));
      if (n_dims == 0 || n_dims > 4) return Corrupt(absl::StrCat("tensor '", t.name, "' has ", n_dims, " dimensions"));
      for (uint32_t d = 0; d < n_dims; ++d) {
        TAILOR_ASSIGN_OR_RETURN(uint64_t dim, Read<uint64_t>("tensor dimension"));
        if (dim == 0 || dim > (uint64_t{1} << 40)) return Corrupt(absl::StrCat("tensor '", t.name, "' has dimension ", dim));
        t.dims.push_back(static_cast<int64_t>(dim));
      }
      TAILOR_ASSIGN_OR_RETURN(t.ggml_type, Read<uint32_t>("tensor type"));
      TAILOR_ASSIGN_OR_RETURN(t.offset, Read<uint64_t>("tensor offset"));
      out_->tensors_.push_back(std::move(t));
    }
    uint64_t alignment = 32;
    if (auto it = out_->values_.find("general.alignment"); it != out_->values_.end()) {
      if (it->second.kind != GgufFile::Kind::kInt || it->second.i <= 0 || it->second.i > (1 << 20)) {
        return Corrupt("general.alignment is not a positive integer");
      }
      alignment = static_cast<uint64_t>(it->second.i);
    }
    const uint64_t data_start = (pos_ + alignment - 1) / alignment * alignment;
    for (size_t i = 0; i < out_->tensors_.size(); ++i) {
      GgufTensorInfo& t = out_->tensors_[i];
      int64_t count = 1;
      for (int64_t d : t.dims) count *= d;
      t.nbytes = TypeBytes(t.ggml_type, count);
      if (data_start + t.offset > f_.size() || t.nbytes > f_.size() - data_start - t.offset) {
        return absl::InvalidArgumentError(absl::StrCat(
            f_.path().string(), ": tensor '", t.name, "' lies beyond the end of the file (",
            f_.size(), " bytes): the file is truncated"));
      }
      t.data = f_.data() + data_start + t.offset;
      out_->tensor_index_[t.name] = i;
    }
    return absl::OkStatus();
  }

 private:
  static size_t TypeBytes(uint32_t type, int64_t count) {
    switch (type) {
      case 0: return static_cast<size_t>(count) * 4;                    // F32
      case 1: case 30: return static_cast<size_t>(count) * 2;           // F16, BF16
      case 8: return static_cast<size_t>(count / 32) * 34;              // Q8_0
      case 24: return static_cast<size_t>(count);                       // I8
      case 25: return static_cast<size_t>(count) * 2;                   // I16
      case 26: return static_cast<size_t>(count) * 4;                   // I32
      case 27: case 28: return static_cast<size_t>(count) * 8;          // I64, F64
      default: return 0;
    }
  }

  absl::Status Corrupt(const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(f_.path().string(), ": corrupt GGUF file at byte ", pos_, ": ", what));
  }

  template <typename T>
  absl::StatusOr<T> Read(const char* what) {
    if (pos_ + sizeof(T) > f_.size()) {
      return absl::InvalidArgumentError(absl::StrCat(f_.path().string(), ": truncated at byte ", pos_,
                                                     " while reading the ", what, " (file has ", f_.size(), " bytes)"));
    }
    T v;
    std::memcpy(&v, f_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  absl::StatusOr<std::string> ReadString(const char* what) {
    TAILOR_ASSIGN_OR_RETURN(uint64_t len, Read<uint64_t>(what));
    if (len > f_.size() - pos_) {
      return absl::InvalidArgumentError(absl::StrCat(f_.path().string(), ": truncated at byte ", pos_, " while reading the ",
                                                     what, " (a string of ", len, " bytes)"));
    }
    std::string s(reinterpret_cast<const char*>(f_.data() + pos_), len);
    pos_ += len;
    return s;
  }

  // Reads one scalar of GGUF type `type` into v (kind set), or a string.
  absl::Status ReadScalar(uint32_t type, const std::string& key, GgufFile::Value* v) {
    using K = GgufFile::Kind;
    switch (type) {
      case 0: { TAILOR_ASSIGN_OR_RETURN(uint8_t x, Read<uint8_t>("value")); v->kind = K::kInt; v->i = x; return absl::OkStatus(); }
      case 1: { TAILOR_ASSIGN_OR_RETURN(int8_t x, Read<int8_t>("value")); v->kind = K::kInt; v->i = x; return absl::OkStatus(); }
      case 2: { TAILOR_ASSIGN_OR_RETURN(uint16_t x, Read<uint16_t>("value")); v->kind = K::kInt; v->i = x; return absl::OkStatus(); }
      case 3: { TAILOR_ASSIGN_OR_RETURN(int16_t x, Read<int16_t>("value")); v->kind = K::kInt; v->i = x; return absl::OkStatus(); }
      case 4: { TAILOR_ASSIGN_OR_RETURN(uint32_t x, Read<uint32_t>("value")); v->kind = K::kInt; v->i = x; return absl::OkStatus(); }
      case 5: { TAILOR_ASSIGN_OR_RETURN(int32_t x, Read<int32_t>("value")); v->kind = K::kInt; v->i = x; return absl::OkStatus(); }
      case 6: { TAILOR_ASSIGN_OR_RETURN(float x, Read<float>("value")); v->kind = K::kFloat; v->f = x; return absl::OkStatus(); }
      case 7: { TAILOR_ASSIGN_OR_RETURN(uint8_t x, Read<uint8_t>("value")); v->kind = K::kBool; v->i = x != 0; return absl::OkStatus(); }
      case 8: { TAILOR_ASSIGN_OR_RETURN(v->s, ReadString("string value")); v->kind = K::kString; return absl::OkStatus(); }
      case 10: { TAILOR_ASSIGN_OR_RETURN(uint64_t x, Read<uint64_t>("value")); v->kind = K::kInt; v->i = static_cast<int64_t>(x); return absl::OkStatus(); }
      case 11: { TAILOR_ASSIGN_OR_RETURN(int64_t x, Read<int64_t>("value")); v->kind = K::kInt; v->i = x; return absl::OkStatus(); }
      case 12: { TAILOR_ASSIGN_OR_RETURN(double x, Read<double>("value")); v->kind = K::kFloat; v->f = x; return absl::OkStatus(); }
      default: return Corrupt(absl::StrCat("metadata '", key, "' has unknown value type ", type));
    }
  }

  absl::Status ReadValue(uint32_t type, const std::string& key, GgufFile::Value* v) {
    if (type != 9) return ReadScalar(type, key, v);
    TAILOR_ASSIGN_OR_RETURN(uint32_t elem, Read<uint32_t>("array type"));
    TAILOR_ASSIGN_OR_RETURN(uint64_t n, Read<uint64_t>("array length"));
    if (elem == 9) return Corrupt(absl::StrCat("metadata '", key, "' is a nested array"));
    if (n > f_.size() - pos_) return Corrupt(absl::StrCat("metadata '", key, "' claims ", n, " elements"));
    v->kind = GgufFile::Kind::kArray;
    for (uint64_t i = 0; i < n; ++i) {
      GgufFile::Value e;
      TAILOR_RETURN_IF_ERROR(ReadScalar(elem, key, &e));
      v->elem = e.kind;
      switch (e.kind) {
        case GgufFile::Kind::kString: v->strings.push_back(std::move(e.s)); break;
        case GgufFile::Kind::kFloat: v->floats.push_back(e.f); break;
        default: v->ints.push_back(e.i); break;
      }
    }
    return absl::OkStatus();
  }

  const MappedFile& f_;
  GgufFile* out_;
  uint64_t pos_ = 0;
};

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::filesystem::path& path) {
  TAILOR_ASSIGN_OR_RETURN(auto file, MappedFile::Open(path));
  auto g = std::unique_ptr<GgufFile>(new GgufFile());
  GgufParser parser(*file, g.get());
  TAILOR_RETURN_IF_ERROR(parser.Parse());
  g->file_ = std::move(file);
  return g;
}

std::optional<int64_t> GgufFile::GetInt(std::string_view key) const {
  auto it = values_.find(std::string(key));
  if (it == values_.end() || (it->second.kind != Kind::kInt && it->second.kind != Kind::kBool)) return std::nullopt;
  return it->second.i;
}

std::optional<double> GgufFile::GetFloat(std::string_view key) const {
  auto it = values_.find(std::string(key));
  if (it == values_.end()) return std::nullopt;
  if (it->second.kind == Kind::kFloat) return it->second.f;
  if (it->second.kind == Kind::kInt) return static_cast<double>(it->second.i);
  return std::nullopt;
}

std::optional<bool> GgufFile::GetBool(std::string_view key) const {
  auto it = values_.find(std::string(key));
  if (it == values_.end() || it->second.kind != Kind::kBool) return std::nullopt;
  return it->second.i != 0;
}

std::optional<std::string> GgufFile::GetString(std::string_view key) const {
  auto it = values_.find(std::string(key));
  if (it == values_.end() || it->second.kind != Kind::kString) return std::nullopt;
  return it->second.s;
}

std::optional<std::vector<std::string>> GgufFile::GetStringArray(std::string_view key) const {
  auto it = values_.find(std::string(key));
  if (it == values_.end() || it->second.kind != Kind::kArray ||
      (it->second.elem != Kind::kString && !it->second.strings.empty())) {
    return std::nullopt;
  }
  return it->second.strings;
}

std::optional<std::vector<double>> GgufFile::GetFloatArray(std::string_view key) const {
  auto it = values_.find(std::string(key));
  if (it == values_.end() || it->second.kind != Kind::kArray) return std::nullopt;
  if (it->second.elem == Kind::kFloat || it->second.ints.empty()) return it->second.floats;
  return std::vector<double>(it->second.ints.begin(), it->second.ints.end());
}

std::optional<std::vector<int64_t>> GgufFile::GetIntArray(std::string_view key) const {
  auto it = values_.find(std::string(key));
  if (it == values_.end() || it->second.kind != Kind::kArray || !it->second.floats.empty() ||
      !it->second.strings.empty()) {
    return std::nullopt;
  }
  return it->second.ints;
}

const GgufTensorInfo* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace tailor
