#include "models/safetensors.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace tailor {
namespace {

int64_t DTypeSize(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" ||
      dtype == "F8_E5M2") {
    return 1;
  }
  return 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(
    const std::filesystem::path& path) {
  TAILOR_ASSIGN_OR_RETURN(auto file, MappedFile::Open(path));
  return Parse(std::move(file));
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Parse(std::shared_ptr<const MappedFile> file) {
  const std::string name = file->path().string();
  if (file->size() < 8) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": truncated safetensors file (", file->size(), " bytes; expected at least 8)"));
  }
  uint64_t header_len;
  std::memcpy(&header_len, file->data(), 8);
  if (header_len > file->size() - 8 || header_len > (100u << 20)) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": not a safetensors file or truncated: header length ", header_len,
        " exceeds the file size ", file->size()));
  }
  const char* header_begin = reinterpret_cast<const char*>(file->data() + 8);
  nlohmann::json header = nlohmann::json::parse(header_begin, header_begin + header_len,
                                                nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": corrupt safetensors header (expected a JSON object)"));
  }
  const std::byte* data_begin = file->data() + 8 + header_len;
  const uint64_t data_size = file->size() - 8 - header_len;

  auto out = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const auto& entry = it.value();
    auto bad = [&](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": tensor '", it.key(), "': ", what));
    };
    if (!entry.is_object() || !entry.contains("dtype") || !entry["dtype"].is_string() ||
        !entry.contains("shape") || !entry["shape"].is_array() ||
        !entry.contains("data_offsets") || !entry["data_offsets"].is_array() ||
        entry["data_offsets"].size() != 2) {
      return bad("malformed header entry (expected dtype, shape, data_offsets)");
    }
    SafetensorsTensor t;
    t.dtype = entry["dtype"].get<std::string>();
    // Elements. Every dtype takes at least a byte, so a count past the data section's size is
    // refused (a header claiming 2^40 elements), and the product stops growing there: no
    // overflow (<= 2^64 * 2^63 in 128 bits).
    unsigned __int128 count = 1;
    bool empty = false;
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) return bad("bad shape");
      t.shape.push_back(d.get<int64_t>());
      if (t.shape.back() == 0) empty = true;
      if (count <= data_size) count *= static_cast<uint64_t>(t.shape.back());
    }
    if (empty) count = 0;
    if (count > data_size) {
      return bad(absl::StrCat("shape [", absl::StrJoin(t.shape, ", "), "] has more elements than the file's ",
                              data_size, " data bytes can hold"));
    }
    const auto& offs = entry["data_offsets"];
    if (!offs[0].is_number_unsigned() || !offs[1].is_number_unsigned()) {
      return bad("bad data_offsets");
    }
    uint64_t begin = offs[0].get<uint64_t>(), end = offs[1].get<uint64_t>();
    if (begin > end || end > data_size) {
      return bad(absl::StrCat("data [", begin, ", ", end, ") lies beyond the end of the file (",
                              data_size, " data bytes): the file is truncated"));
    }
    const uint64_t elem = static_cast<uint64_t>(DTypeSize(t.dtype));
    if (elem != 0 && static_cast<uint64_t>(count) * elem != end - begin) {
      return bad(absl::StrCat("holds ", end - begin, " bytes but shape and dtype ", t.dtype,
                              " need ", static_cast<uint64_t>(count) * elem));
    }
    t.data = data_begin + begin;
    t.nbytes = end - begin;
    out->tensors_.emplace(it.key(), std::move(t));
  }
  out->file_ = std::move(file);
  return out;
}

}  // namespace tailor
