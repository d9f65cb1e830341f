#include "common/gguf_file.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <limits>
#include <type_traits>
#include <unordered_set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace tailor {
namespace {

// GGUF metadata value types.
enum : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

constexpr uint32_t kMaxDims = 4;          // GGML_MAX_DIMS
constexpr int kMaxArrayNesting = 4;       // arrays of arrays are legal GGUF; deeper is absurd
constexpr uint64_t kMaxAlignment = 1 << 20;

bool IsInteger(uint32_t t) {
  return t == kU8 || t == kI8 || t == kU16 || t == kI16 || t == kU32 || t == kI32 || t == kU64 ||
         t == kI64;
}
bool IsUnsigned(uint32_t t) { return t == kU8 || t == kU16 || t == kU32 || t == kU64; }
bool IsFloat(uint32_t t) { return t == kF32 || t == kF64; }

// Smallest number of bytes one element of GGUF type `t` takes in the file (for count checks).
uint64_t MinElementBytes(uint32_t t) {
  switch (t) {
    case kU8: case kI8: case kBool: return 1;
    case kU16: case kI16: return 2;
    case kU32: case kI32: case kF32: return 4;
    case kU64: case kI64: case kF64: case kString: return 8;  // a string is at least its length
    case kArray: return 12;                                   // element type + count
    default: return 1;
  }
}

std::string Printable(std::string_view s) {
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 32 && u < 127 && c != '\\' && c != '"') {
      out.push_back(c);
    } else {
      absl::StrAppend(&out, "\\x", absl::Hex(u, absl::kZeroPad2));
    }
  }
  return out;
}

}  // namespace

std::optional<GgmlTypeSize> GgmlTypeSizeOf(uint32_t ggml_type) {
  switch (ggml_type) {
    case 0: return GgmlTypeSize{1, 4};      // F32
    case 1: return GgmlTypeSize{1, 2};      // F16
    case 2: return GgmlTypeSize{32, 18};    // Q4_0
    case 3: return GgmlTypeSize{32, 20};    // Q4_1
    case 6: return GgmlTypeSize{32, 22};    // Q5_0
    case 7: return GgmlTypeSize{32, 24};    // Q5_1
    case 8: return GgmlTypeSize{32, 34};    // Q8_0
    case 9: return GgmlTypeSize{32, 36};    // Q8_1
    case 10: return GgmlTypeSize{256, 84};  // Q2_K
    case 11: return GgmlTypeSize{256, 110};  // Q3_K
    case 12: return GgmlTypeSize{256, 144};  // Q4_K
    case 13: return GgmlTypeSize{256, 176};  // Q5_K
    case 14: return GgmlTypeSize{256, 210};  // Q6_K
    case 15: return GgmlTypeSize{256, 292};  // Q8_K
    case 24: return GgmlTypeSize{1, 1};     // I8
    case 25: return GgmlTypeSize{1, 2};     // I16
    case 26: return GgmlTypeSize{1, 4};     // I32
    case 27: return GgmlTypeSize{1, 8};     // I64
    case 28: return GgmlTypeSize{1, 8};     // F64
    case 30: return GgmlTypeSize{1, 2};     // BF16
    default: return std::nullopt;
  }
}

const char* GgmlTypeName(uint32_t ggml_type) {
  // ggml's enum ggml_type; 4, 5 (Q4_2, Q4_3), 31..33 and 36..38 (repacked layouts) are retired.
  static constexpr const char* kNames[] = {
      "F32",     "F16",    "Q4_0",    "Q4_1",  "",       "",       "Q5_0",   "Q5_1",
      "Q8_0",    "Q8_1",   "Q2_K",    "Q3_K",  "Q4_K",   "Q5_K",   "Q6_K",   "Q8_K",
      "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S",  "IQ2_S",  "IQ4_XS",
      "I8",      "I16",    "I32",     "I64",   "F64",    "IQ1_M",  "BF16",   "",
      "",        "",       "TQ1_0",   "TQ2_0", "",       "",       "",       "MXFP4"};
  if (ggml_type >= std::size(kNames) || kNames[ggml_type][0] == '\0') return nullptr;
  return kNames[ggml_type];
}

std::string GgmlTypeLabel(uint32_t ggml_type) {
  const char* name = GgmlTypeName(ggml_type);
  return absl::StrCat(name != nullptr ? name : "unknown", " (", ggml_type, ")");
}

// Sequential, bounds-checked reads over the mapping; fills a GgufFile.
class GgufParser {
 public:
  GgufParser(const MappedFile& f, GgufFile* out)
      : f_(f), out_(out), data_(reinterpret_cast<const char*>(f.data())), size_(f.size()) {}

  absl::Status Parse() {
    if (size_ < 4 || std::memcmp(data_, "GGUF", 4) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          Source(), ": not a GGUF file: magic is \"", Printable({data_, std::min<size_t>(size_, 4)}),
          "\", expected \"GGUF\""));
    }
    pos_ = 4;
    TAILOR_ASSIGN_OR_RETURN(out_->version_, Read<uint32_t>("the version"));
    if (out_->version_ != 2 && out_->version_ != 3) {
      return absl::InvalidArgumentError(absl::StrCat(Source(), ": GGUF version ", out_->version_,
                                                     " is not supported (expected 2 or 3)"));
    }
    TAILOR_ASSIGN_OR_RETURN(uint64_t n_tensors, Read<uint64_t>("the tensor count"));
    TAILOR_ASSIGN_OR_RETURN(uint64_t n_kv, Read<uint64_t>("the metadata count"));
    // A metadata entry takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info (checked
    // below) at least 8 + 4 + 4 + 8.
    TAILOR_RETURN_IF_ERROR(CheckCount(n_kv, 13, "the metadata count"));
    std::unordered_set<std::string_view> seen;  // views into the mapping
    out_->kvs_.reserve(n_kv);
    for (uint64_t i = 0; i < n_kv; ++i) {
      const std::string what = absl::StrCat("the key of metadata entry ", i);
      TAILOR_ASSIGN_OR_RETURN(std::string_view key, ReadString(what));
      const std::string ctx = absl::StrCat("metadata '", Printable(key), "'");
      TAILOR_ASSIGN_OR_RETURN(uint32_t type, Read<uint32_t>(absl::StrCat("the type of ", ctx)));
      GgufFile::Value v;
      TAILOR_RETURN_IF_ERROR(ReadValue(type, ctx, 0, &v));
      if (!seen.insert(key).second) return Corrupt(absl::StrCat(ctx, " appears twice"));
      out_->kvs_.emplace_back(std::string(key), std::move(v));
    }
    for (size_t i = 0; i < out_->kvs_.size(); ++i) out_->kv_index_[out_->kvs_[i].first] = i;

    if (const GgufFile::Value* a = out_->Find("general.alignment")) {
      if (!IsInteger(a->type) || a->u == 0 || a->u > kMaxAlignment || (a->u & (a->u - 1)) != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            Source(), ": metadata 'general.alignment' must be a power of two up to ", kMaxAlignment));
      }
      out_->alignment_ = a->u;
    }

    TAILOR_RETURN_IF_ERROR(CheckCount(n_tensors, 24, "the tensor count"));
    std::unordered_set<std::string_view> seen_tensors;  // views into the mapping
    out_->tensors_.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) {
      GgufTensorInfo t;
      TAILOR_ASSIGN_OR_RETURN(std::string_view name,
                              ReadString(absl::StrCat("the name of tensor ", i)));
      t.name = std::string(name);
      const std::string ctx = absl::StrCat("tensor '", Printable(name), "'");
      TAILOR_ASSIGN_OR_RETURN(uint32_t n_dims,
                              Read<uint32_t>(absl::StrCat("the dimension count of ", ctx)));
      if (n_dims > kMaxDims) {
        return Corrupt(absl::StrCat(ctx, " has ", n_dims, " dimensions (at most ", kMaxDims, ")"));
      }
      for (uint32_t d = 0; d < n_dims; ++d) {
        TAILOR_ASSIGN_OR_RETURN(uint64_t dim,
                                Read<uint64_t>(absl::StrCat("dimension ", d, " of ", ctx)));
        if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          return Corrupt(absl::StrCat(ctx, " has dimension ", dim));
        }
        t.dims.push_back(static_cast<int64_t>(dim));
      }
      TAILOR_ASSIGN_OR_RETURN(t.ggml_type, Read<uint32_t>(absl::StrCat("the type of ", ctx)));
      TAILOR_ASSIGN_OR_RETURN(t.offset, Read<uint64_t>(absl::StrCat("the offset of ", ctx)));
      if (!seen_tensors.insert(name).second) return Corrupt(absl::StrCat(ctx, " appears twice"));
      out_->tensors_.push_back(std::move(t));
    }
    // The index's keys view into tensors_' names: built once the vector no longer moves.
    for (size_t i = 0; i < out_->tensors_.size(); ++i) {
      out_->tensor_index_[out_->tensors_[i].name] = i;
    }

    const uint64_t align = out_->alignment_;
    const uint64_t data_start = (pos_ + align - 1) / align * align;
    for (GgufTensorInfo& t : out_->tensors_) TAILOR_RETURN_IF_ERROR(PlaceTensor(data_start, &t));
    return absl::OkStatus();
  }

 private:
  std::string Source() const { return f_.path().string(); }
  uint64_t Remaining() const { return size_ - pos_; }

  absl::Status Corrupt(const std::string& what) const {
    return absl::InvalidArgumentError(
        absl::StrCat(Source(), ": corrupt GGUF file at byte ", pos_, ": ", what));
  }
  absl::Status Truncated(const std::string& what, uint64_t need) const {
    return absl::InvalidArgumentError(
        absl::StrCat(Source(), ": truncated at byte ", pos_, " while reading ", what, " (needs ",
                     need, " bytes, ", Remaining(), " remain of ", size_, ")"));
  }

  // `count` items of at least `min_bytes` each must fit in what remains of the file.
  absl::Status CheckCount(uint64_t count, uint64_t min_bytes, const std::string& what) const {
    if (count <= Remaining() / min_bytes) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        Source(), ": truncated or corrupt at byte ", pos_, ": ", what, " is ", count,
        ", which needs more than the ", Remaining(), " bytes that remain of ", size_));
  }

  // `what` names the item for error messages: a string, or a callable returning one (built only
  // on failure, so per-element reads of large arrays allocate nothing).
  template <typename W>
  static std::string Describe(const W& what) {
    if constexpr (std::is_invocable_v<const W&>) {
      return what();
    } else {
      return std::string(what);
    }
  }

  template <typename T, typename W>
  absl::StatusOr<T> Read(const W& what) {
    if (Remaining() < sizeof(T)) return Truncated(Describe(what), sizeof(T));
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  template <typename W>
  absl::StatusOr<std::string_view> ReadString(const W& what) {
    TAILOR_ASSIGN_OR_RETURN(uint64_t len, Read<uint64_t>(what));
    if (len > Remaining()) {
      pos_ -= sizeof(uint64_t);  // report the string's start
      return Truncated(absl::StrCat(Describe(what), " (a string of ", len, " bytes)"),
                       sizeof(uint64_t) + len);
    }
    std::string_view s(data_ + pos_, len);
    pos_ += len;
    return s;
  }

  // Reads one non-array value of type `type` into `v` (v->type set); `index` >= 0 for an array
  // element.
  absl::Status ReadScalar(uint32_t type, const std::string& ctx, int64_t index,
                          GgufFile::Value* v) {
    v->type = type;
    auto what = [&] {
      return index < 0 ? absl::StrCat("the value of ", ctx)
                       : absl::StrCat("element ", index, " of ", ctx);
    };
    switch (type) {
      case kU8: { TAILOR_ASSIGN_OR_RETURN(uint8_t x, Read<uint8_t>(what)); v->u = x; break; }
      case kI8: { TAILOR_ASSIGN_OR_RETURN(int8_t x, Read<int8_t>(what)); v->i = x; break; }
      case kU16: { TAILOR_ASSIGN_OR_RETURN(uint16_t x, Read<uint16_t>(what)); v->u = x; break; }
      case kI16: { TAILOR_ASSIGN_OR_RETURN(int16_t x, Read<int16_t>(what)); v->i = x; break; }
      case kU32: { TAILOR_ASSIGN_OR_RETURN(uint32_t x, Read<uint32_t>(what)); v->u = x; break; }
      case kI32: { TAILOR_ASSIGN_OR_RETURN(int32_t x, Read<int32_t>(what)); v->i = x; break; }
      case kU64: { TAILOR_ASSIGN_OR_RETURN(uint64_t x, Read<uint64_t>(what)); v->u = x; break; }
      case kI64: { TAILOR_ASSIGN_OR_RETURN(int64_t x, Read<int64_t>(what)); v->i = x; break; }
      case kF32: { TAILOR_ASSIGN_OR_RETURN(float x, Read<float>(what)); v->f = x; break; }
      case kF64: { TAILOR_ASSIGN_OR_RETURN(double x, Read<double>(what)); v->f = x; break; }
      case kBool: { TAILOR_ASSIGN_OR_RETURN(uint8_t x, Read<uint8_t>(what)); v->i = x != 0; break; }
      case kString: { TAILOR_ASSIGN_OR_RETURN(v->s, ReadString(what)); break; }
      default:
        pos_ -= sizeof(uint32_t);  // point at the type field
        return Corrupt(absl::StrCat(ctx, " has unknown value type ", type, " (expected 0..12)"));
    }
    if (IsUnsigned(type)) {
      v->i = static_cast<int64_t>(v->u);
    } else if (IsInteger(type) || type == kBool) {
      v->u = static_cast<uint64_t>(v->i);
    }
    return absl::OkStatus();
  }

  absl::Status ReadValue(uint32_t type, const std::string& ctx, int depth, GgufFile::Value* v) {
    if (type != kArray) return ReadScalar(type, ctx, -1, v);
    v->type = kArray;
    TAILOR_ASSIGN_OR_RETURN(v->elem_type, Read<uint32_t>(absl::StrCat("the element type of ", ctx)));
    TAILOR_ASSIGN_OR_RETURN(v->count, Read<uint64_t>(absl::StrCat("the length of ", ctx)));
    if (v->elem_type > kF64) {
      pos_ -= 12;
      return Corrupt(absl::StrCat(ctx, " is an array of unknown value type ", v->elem_type,
                                  " (expected 0..12)"));
    }
    TAILOR_RETURN_IF_ERROR(
        CheckCount(v->count, MinElementBytes(v->elem_type), absl::StrCat("the length of ", ctx)));
    if (v->elem_type == kArray) {
      if (depth + 1 >= kMaxArrayNesting) {
        return Corrupt(absl::StrCat(ctx, " nests arrays more than ", kMaxArrayNesting, " deep"));
      }
      for (uint64_t i = 0; i < v->count; ++i) {  // validated and skipped; no accessor reads them
        GgufFile::Value e;
        TAILOR_RETURN_IF_ERROR(ReadValue(kArray, ctx, depth + 1, &e));
      }
      return absl::OkStatus();
    }
    const uint32_t et = v->elem_type;
    if (et == kString) {
      v->strings.reserve(v->count);
    } else if (IsFloat(et)) {
      v->floats.reserve(v->count);
    } else {
      v->ints.reserve(v->count);
    }
    for (uint64_t i = 0; i < v->count; ++i) {
      GgufFile::Value e;
      TAILOR_RETURN_IF_ERROR(ReadScalar(et, ctx, static_cast<int64_t>(i), &e));
      if (et == kString) {
        v->strings.push_back(e.s);
      } else if (IsFloat(et)) {
        v->floats.push_back(e.f);
      } else {
        if (IsUnsigned(et) && e.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          v->ints_fit = false;
        }
        v->ints.push_back(e.i);
      }
    }
    return absl::OkStatus();
  }

  absl::Status PlaceTensor(uint64_t data_start, GgufTensorInfo* t) {
    const std::string ctx = absl::StrCat(Source(), ": tensor '", Printable(t->name), "'");
    if (t->offset % out_->alignment_ != 0) {
      return absl::InvalidArgumentError(absl::StrCat(ctx, " has offset ", t->offset,
                                                     ", not a multiple of the alignment ",
                                                     out_->alignment_));
    }
    uint64_t nbytes = 0;
    if (std::optional<GgmlTypeSize> ts = GgmlTypeSizeOf(t->ggml_type)) {
      const int64_t inner = t->dims.empty() ? 1 : t->dims[0];
      if (inner % ts->block_elements != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            ctx, " has ", inner, " elements per row, not a multiple of the block size ",
            ts->block_elements, " of ggml type ", GgmlTypeLabel(t->ggml_type)));
      }
      // rows * blocks per row * block bytes, each step checked against the file size.
      unsigned __int128 total = static_cast<unsigned __int128>(inner / ts->block_elements) *
                                static_cast<uint64_t>(ts->block_bytes);
      for (size_t d = 1; d < t->dims.size(); ++d) {
        total *= static_cast<uint64_t>(t->dims[d]);
        if (total > size_) break;
      }
      if (total > size_) {
        return absl::InvalidArgumentError(absl::StrCat(
            ctx, " needs more bytes than the whole file has (", size_, ")"));
      }
      nbytes = static_cast<uint64_t>(total);
    }
    if (data_start > size_ || t->offset > size_ - data_start ||
        nbytes > size_ - data_start - t->offset) {
      return absl::InvalidArgumentError(absl::StrCat(
          ctx, ": its data (", nbytes, " bytes at data offset ", t->offset,
          ") lies past the end of the file (", size_, " bytes, data section at ", data_start,
          "); the file is truncated or corrupt"));
    }
    t->nbytes = static_cast<size_t>(nbytes);
    t->data = f_.data() + data_start + t->offset;
    return absl::OkStatus();
  }

  const MappedFile& f_;
  GgufFile* out_;
  const char* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

GgufFile::~GgufFile() = default;

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::filesystem::path& path) {
  TAILOR_ASSIGN_OR_RETURN(std::shared_ptr<const MappedFile> file, MappedFile::Open(path));
  return Parse(std::move(file));
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Parse(std::shared_ptr<const MappedFile> file) {
  auto g = std::unique_ptr<GgufFile>(new GgufFile());
  g->path_ = file->path();
  GgufParser parser(*file, g.get());
  TAILOR_RETURN_IF_ERROR(parser.Parse());
  g->file_ = std::move(file);
  return g;
}

const GgufFile::Value* GgufFile::Find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kvs_[it->second].second;
}

bool GgufFile::Has(std::string_view key) const { return Find(key) != nullptr; }

std::vector<std::string> GgufFile::Keys() const {
  std::vector<std::string> keys;
  keys.reserve(kvs_.size());
  for (const auto& kv : kvs_) keys.push_back(kv.first);
  return keys;
}

std::optional<uint32_t> GgufFile::ValueType(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return std::nullopt;
  return v->type;
}

std::optional<int64_t> GgufFile::GetInt(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr || !IsInteger(v->type)) return std::nullopt;
  if (IsUnsigned(v->type) && v->u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return std::nullopt;
  }
  return v->i;
}

std::optional<double> GgufFile::GetFloat(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return std::nullopt;
  if (IsFloat(v->type)) return v->f;
  if (IsUnsigned(v->type)) return static_cast<double>(v->u);
  if (IsInteger(v->type)) return static_cast<double>(v->i);
  return std::nullopt;
}

std::optional<bool> GgufFile::GetBool(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr || v->type != kBool) return std::nullopt;
  return v->i != 0;
}

std::optional<std::string> GgufFile::GetString(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr || v->type != kString) return std::nullopt;
  return std::string(v->s);
}

std::optional<std::vector<std::string>> GgufFile::GetStringArray(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr || v->type != kArray || v->elem_type != kString) return std::nullopt;
  return std::vector<std::string>(v->strings.begin(), v->strings.end());
}

std::optional<std::vector<double>> GgufFile::GetFloatArray(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr || v->type != kArray) return std::nullopt;
  if (IsFloat(v->elem_type)) return v->floats;
  if (!IsInteger(v->elem_type)) return std::nullopt;
  std::vector<double> out;
  out.reserve(v->ints.size());
  for (int64_t x : v->ints) {
    out.push_back(IsUnsigned(v->elem_type) ? static_cast<double>(static_cast<uint64_t>(x))
                                           : static_cast<double>(x));
  }
  return out;
}

std::optional<std::vector<int64_t>> GgufFile::GetIntArray(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr || v->type != kArray || !IsInteger(v->elem_type) || !v->ints_fit) {
    return std::nullopt;
  }
  return v->ints;
}

const GgufTensorInfo* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace tailor
