// The `.pgq` file format (see engine/profile.h): writing, and reading with every size and value
// checked before it is used.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/checksum.h"
#include "common/mapped_file.h"
#include "common/status_macros.h"
#include "engine/profile.h"
#include "nlohmann/json.hpp"

namespace tailor {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr char kMagic[8] = {'T', 'L', 'R', 'P', 'G', 'Q', '\r', '\n'};
constexpr size_t kFixedHeader = sizeof(kMagic) + 4 + 4;  // magic, version, header bytes
constexpr size_t kTrailer = 8;                            // checksum
constexpr int32_t kMaxBins = 1 << 16;
constexpr int64_t kMaxChannels = int64_t{1} << 24;
constexpr int64_t kMaxRows = int64_t{1} << 40;

template <typename T>
void Append(std::string* out, const T& v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}
template <typename T>
void AppendArray(std::string* out, const std::vector<T>& v) {
  out->append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

json FingerprintJson(const ModelFingerprint& f) {
  return {{"name", f.name},       {"family", f.family},         {"architecture", f.architecture},
          {"dim", f.dim},         {"n_layers", f.n_layers},     {"n_heads", f.n_heads},
          {"n_kv_heads", f.n_kv_heads}, {"head_dim", f.head_dim}, {"ffn_dim", f.ffn_dim},
          {"vocab_size", f.vocab_size}, {"weights_checksum", f.weights_checksum}};
}

// Reads header fields, each error naming the file and the field.
class HeaderReader {
 public:
  explicit HeaderReader(const std::string& source) : source_(source) {}

  absl::Status Error(const std::string& field, const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": corrupt profile: ", field, " ", what));
  }
  absl::StatusOr<std::string> String(const json& j, const char* key, const std::string& path) const {
    if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return Error(path + key, "must be a string");
    return j[key].get<std::string>();
  }
  absl::StatusOr<int64_t> Int(const json& j, const char* key, const std::string& path, int64_t lo, int64_t hi) const {
    if (!j.is_object() || !j.contains(key) || !j[key].is_number_integer()) {
      return Error(path + key, "must be an integer");
    }
    const int64_t v = j[key].get<int64_t>();
    if (v < lo || v > hi) return Error(path + key, absl::StrCat("is ", v, ", outside [", lo, ", ", hi, "]"));
    return v;
  }
  // A float stored as a JSON number (exact: written with 17 significant digits).
  absl::StatusOr<float> Float(const json& j, const char* key, const std::string& path) const {
    if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return Error(path + key, "must be a number");
    const double v = j[key].get<double>();
    if (!std::isfinite(v) || std::fabs(v) > 3.4028234663852886e38) return Error(path + key, "must be a finite float");
    return static_cast<float>(v);
  }

 private:
  const std::string& source_;
};

absl::StatusOr<ModelFingerprint> ReadFingerprint(const HeaderReader& r, const json& j) {
  ModelFingerprint f;
  const std::string p = "model.";
  TAILOR_ASSIGN_OR_RETURN(f.name, r.String(j, "name", p));
  TAILOR_ASSIGN_OR_RETURN(f.family, r.String(j, "family", p));
  TAILOR_ASSIGN_OR_RETURN(f.architecture, r.String(j, "architecture", p));
  TAILOR_ASSIGN_OR_RETURN(f.weights_checksum, r.String(j, "weights_checksum", p));
  for (auto [key, field] : {std::pair{"dim", &f.dim}, std::pair{"n_layers", &f.n_layers}, std::pair{"n_heads", &f.n_heads},
                            std::pair{"n_kv_heads", &f.n_kv_heads}, std::pair{"head_dim", &f.head_dim},
                            std::pair{"ffn_dim", &f.ffn_dim}, std::pair{"vocab_size", &f.vocab_size}}) {
    TAILOR_ASSIGN_OR_RETURN(int64_t v, r.Int(j, key, p, 0, INT32_MAX));
    *field = static_cast<int32_t>(v);
  }
  return f;
}

}  // namespace

std::string SerializeProfile(const Profile& p) {
  json specs = json::array();
  for (const ProfileSpec& s : p.specs) {
    specs.push_back({{"name", s.name}, {"batch_size", s.shape.batch_size}, {"seq_len", s.shape.seq_len},
                     {"ctx_len", s.shape.ctx_len}, {"inputs", s.inputs}, {"token_rows", s.token_rows}});
  }
  json tensors = json::array();
  for (const TensorProfile& t : p.tensors) {
    const bool seen = t.rows() > 0;
    tensors.push_back({{"name", t.name},
                       {"channels", t.channels},
                       {"rows_per_spec", t.rows_per_spec},
                       {"min", seen ? json(static_cast<double>(t.min)) : json(nullptr)},
                       {"max", seen ? json(static_cast<double>(t.max)) : json(nullptr)},
                       {"histogram_exponent", t.histogram.exponent()}});
  }
  const json header = {{"model", FingerprintJson(p.model)},
                       {"settings", {{"histogram_bins", p.histogram_bins}}},
                       {"specializations", specs},
                       {"tensors", tensors}};
  const std::string text = header.dump();
  std::string out(kMagic, sizeof(kMagic));
  Append(&out, kProfileVersion);
  Append(&out, static_cast<uint32_t>(text.size()));
  out += text;
  for (const TensorProfile& t : p.tensors) {
    AppendArray(&out, t.histogram.counts());
    AppendArray(&out, t.channel_absmax);
    AppendArray(&out, t.channel_sum_squares);
  }
  Append(&out, Checksum64(std::as_bytes(std::span<const char>(out.data(), out.size()))));
  return out;
}

absl::StatusOr<Profile> ParseProfile(std::span<const std::byte> bytes, const std::string& source) {
  const size_t size = bytes.size();
  const char* data = reinterpret_cast<const char*>(bytes.data());
  if (std::memcmp(data, kMagic, std::min(size, sizeof(kMagic))) != 0 || size == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": not a tailor calibration profile (no TLRPGQ magic); make one with `tailor compile ... -dump-profile`"));
  }
  if (size < kFixedHeader + kTrailer) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": truncated profile (", size, " bytes)"));
  }
  uint32_t version = 0, header_bytes = 0;
  std::memcpy(&version, data + sizeof(kMagic), 4);
  std::memcpy(&header_bytes, data + sizeof(kMagic) + 4, 4);
  if (version != kProfileVersion) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": profile version ", version,
                                                   " is not supported by this tailor (it reads version ",
                                                   kProfileVersion, "); dump the profile again"));
  }
  if (header_bytes > size - kFixedHeader - kTrailer) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": truncated profile (", size, " bytes; its header alone says ",
                                                   header_bytes, ")"));
  }
  const json h = json::parse(data + kFixedHeader, data + kFixedHeader + header_bytes, nullptr, false);
  if (h.is_discarded() || !h.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": corrupt profile: the header is not valid JSON"));
  }
  HeaderReader r(source);
  Profile p;
  if (!h.contains("model")) return r.Error("model", "is missing");
  TAILOR_ASSIGN_OR_RETURN(p.model, ReadFingerprint(r, h["model"]));
  {
    const json& settings = h.contains("settings") ? h["settings"] : json();
    TAILOR_ASSIGN_OR_RETURN(int64_t bins, r.Int(settings, "histogram_bins", "settings.", 4, kMaxBins));
    if ((bins & (bins - 1)) != 0) return r.Error("settings.histogram_bins", "must be a power of two");
    p.histogram_bins = static_cast<int32_t>(bins);
  }
  if (!h.contains("specializations") || !h["specializations"].is_array()) return r.Error("specializations", "must be a list");
  for (size_t i = 0; i < h["specializations"].size(); ++i) {
    const json& s = h["specializations"][i];
    const std::string at = absl::StrCat("specializations[", i, "].");
    ProfileSpec ps;
    TAILOR_ASSIGN_OR_RETURN(ps.name, r.String(s, "name", at));
    TAILOR_ASSIGN_OR_RETURN(int64_t b, r.Int(s, "batch_size", at, 1, INT32_MAX));
    TAILOR_ASSIGN_OR_RETURN(int64_t sl, r.Int(s, "seq_len", at, 1, INT32_MAX));
    TAILOR_ASSIGN_OR_RETURN(int64_t c, r.Int(s, "ctx_len", at, 1, INT32_MAX));
    ps.shape = SpecShape{static_cast<int32_t>(b), static_cast<int32_t>(sl), static_cast<int32_t>(c)};
    TAILOR_ASSIGN_OR_RETURN(ps.inputs, r.Int(s, "inputs", at, 0, kMaxRows));
    TAILOR_ASSIGN_OR_RETURN(ps.token_rows, r.Int(s, "token_rows", at, 0, kMaxRows));
    for (const ProfileSpec& other : p.specs) {
      if (other.name == ps.name) return r.Error(at + "name", absl::StrCat("repeats ", ps.name));
    }
    p.specs.push_back(std::move(ps));
  }
  if (!h.contains("tensors") || !h["tensors"].is_array()) return r.Error("tensors", "must be a list");
  // Sizes first: the payload must be exactly what the header describes.
  uint64_t payload = 0;
  const json& tensors = h["tensors"];
  std::vector<int64_t> channels(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    TAILOR_ASSIGN_OR_RETURN(channels[i], r.Int(tensors[i], "channels", absl::StrCat("tensors[", i, "]."), 1, kMaxChannels));
    payload += 8 * static_cast<uint64_t>(p.histogram_bins) + 12 * static_cast<uint64_t>(channels[i]);
  }
  const uint64_t expected = kFixedHeader + header_bytes + payload + kTrailer;
  if (expected != size) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", expected > size ? "truncated" : "corrupt",
                                                   " profile: ", size, " bytes, its header describes ", expected));
  }
  uint64_t stored = 0;
  std::memcpy(&stored, data + size - kTrailer, kTrailer);
  if (stored != Checksum64(bytes.first(size - kTrailer))) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": checksum mismatch: the profile is corrupt"));
  }
  const char* at = data + kFixedHeader + header_bytes;
  auto take = [&](void* dst, size_t n) {
    std::memcpy(dst, at, n);
    at += n;
  };
  for (size_t i = 0; i < tensors.size(); ++i) {
    const json& j = tensors[i];
    const std::string where = absl::StrCat("tensors[", i, "].");
    TensorProfile t;
    TAILOR_ASSIGN_OR_RETURN(t.name, r.String(j, "name", where));
    t.channels = static_cast<int32_t>(channels[i]);
    if (!j.contains("rows_per_spec") || !j["rows_per_spec"].is_array() ||
        j["rows_per_spec"].size() != p.specs.size()) {
      return r.Error(where + "rows_per_spec", "must hold one count per specialization");
    }
    int64_t rows = 0;
    for (const json& v : j["rows_per_spec"]) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > kMaxRows) {
        return r.Error(where + "rows_per_spec", "must hold counts in [0, 2^40]");
      }
      t.rows_per_spec.push_back(v.get<int64_t>());
      rows += t.rows_per_spec.back();
    }
    if (rows > kMaxRows) return r.Error(where + "rows_per_spec", "adds up to more than 2^40 rows");
    TAILOR_ASSIGN_OR_RETURN(int64_t exponent, r.Int(j, "histogram_exponent", where, Histogram::kMinExponent,
                                                    Histogram::kMaxExponent));
    if (rows > 0) {
      TAILOR_ASSIGN_OR_RETURN(t.min, r.Float(j, "min", where));
      TAILOR_ASSIGN_OR_RETURN(t.max, r.Float(j, "max", where));
      if (t.min > t.max) return r.Error(where + "min", "exceeds max");
      const double range = std::ldexp(1.0, static_cast<int>(exponent));
      if (!(t.max < range) || !(-t.min <= range)) {
        return r.Error(where + "histogram_exponent", "gives a range that does not hold min and max");
      }
    }
    std::vector<uint64_t> counts(static_cast<size_t>(p.histogram_bins));
    take(counts.data(), counts.size() * 8);
    uint64_t total = 0;
    for (uint64_t c : counts) {  // rows x channels <= 2^64: stop before the sum can wrap
      if (c > (uint64_t{1} << 63) - total) return r.Error(where + "histogram", "counts more values than rows x channels");
      total += c;
    }
    if (total != static_cast<uint64_t>(rows) * static_cast<uint64_t>(t.channels)) {
      return r.Error(where + "histogram", absl::StrCat("counts ", total, " values; rows x channels is ",
                                                      static_cast<uint64_t>(rows) * t.channels));
    }
    t.histogram = Histogram(static_cast<int32_t>(exponent), std::move(counts));
    t.channel_absmax.resize(t.channels);
    take(t.channel_absmax.data(), t.channel_absmax.size() * 4);
    t.channel_sum_squares.resize(t.channels);
    take(t.channel_sum_squares.data(), t.channel_sum_squares.size() * 8);
    const float absmax = t.absmax();
    for (int32_t c = 0; c < t.channels; ++c) {
      if (!(t.channel_absmax[c] >= 0 && t.channel_absmax[c] <= absmax)) {
        return r.Error(where + "channel_absmax", absl::StrCat("[", c, "] is outside [0, absmax]"));
      }
      if (!(t.channel_sum_squares[c] >= 0 && std::isfinite(t.channel_sum_squares[c]))) {
        return r.Error(where + "channel_sum_squares", absl::StrCat("[", c, "] is negative or not finite"));
      }
    }
    if (p.Find(t.name) != nullptr) return r.Error(where + "name", absl::StrCat("repeats ", t.name));
    p.tensors.push_back(std::move(t));
  }
  p.file_checksum = ChecksumHex(bytes);
  return p;
}

absl::StatusOr<Profile> ReadProfile(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return absl::InvalidArgumentError(absl::StrCat(path.string(), ": is a directory"));
  TAILOR_ASSIGN_OR_RETURN(auto file, MappedFile::Open(path));
  return ParseProfile(file->bytes(), path.string());
}

absl::Status WriteProfile(const Profile& profile, const fs::path& path) {
  const std::string bytes = SerializeProfile(profile);
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      return absl::InvalidArgumentError(absl::StrCat(path.string(), ": cannot write"));
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": cannot write: ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace tailor
