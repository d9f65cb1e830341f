#include "engine/package.h"

#include <cmath>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/checksum.h"
#include "common/status_macros.h"
#include "engine/package_trust.h"
#include "kernels/amx_kernels.h"
#include "kernels/q8_kernels.h"
#include "nlohmann/json.hpp"

namespace tailor {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// Only the fields the model set: {"do_sample": false, "temperature": 0.7, ...}.
json SamplingDefaultsJson(const ModelConfig::SamplingDefaults& d) {
  json j = json::object();
  if (d.do_sample) j["do_sample"] = *d.do_sample;
  if (d.temperature) j["temperature"] = *d.temperature;
  if (d.top_p) j["top_p"] = *d.top_p;
  if (d.top_k) j["top_k"] = *d.top_k;
  if (d.repetition_penalty) j["repetition_penalty"] = *d.repetition_penalty;
  if (d.max_new_tokens) j["max_new_tokens"] = *d.max_new_tokens;
  return j;
}

absl::Status ReadSamplingDefaults(const json& j, ModelConfig::SamplingDefaults* d) {
  auto bad = [](const char* key) {
    return absl::InvalidArgumentError(absl::StrCat(key, " has the wrong type"));
  };
  if (j.contains("do_sample")) {
    if (!j["do_sample"].is_boolean()) return bad("do_sample");
    d->do_sample = j["do_sample"].get<bool>();
  }
  for (auto [key, field] : {std::pair{"temperature", &d->temperature}, std::pair{"top_p", &d->top_p},
                            std::pair{"repetition_penalty", &d->repetition_penalty}}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_number()) return bad(key);
    *field = j[key].get<float>();
  }
  if (j.contains("top_k")) {
    if (!j["top_k"].is_number_integer()) return bad("top_k");
    d->top_k = j["top_k"].get<int32_t>();
  }
  if (j.contains("max_new_tokens")) {
    if (!j["max_new_tokens"].is_number_integer() || j["max_new_tokens"].get<int64_t>() < 1 ||
        j["max_new_tokens"].get<int64_t>() > INT32_MAX) {
      return bad("max_new_tokens");
    }
    d->max_new_tokens = j["max_new_tokens"].get<int32_t>();
  }
  return absl::OkStatus();
}

json CalibrationJson(const PackageCalibration& c) {
  return {{"profile", c.profile},           {"profile_checksum", c.profile_checksum},
          {"method", c.method},             {"percentile", c.percentile},
          {"histogram_bins", c.histogram_bins}, {"specializations", c.specializations}};
}

// Reading: every accessor checks presence and type, and errors name the manifest field.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  absl::Status Error(const std::string& field, const std::string& what) const {
    return absl::InvalidArgumentError(
        absl::StrCat(file_, ": corrupt package manifest: field '", field, "' ", what));
  }
  template <typename T>
  absl::StatusOr<T> Get(const json& j, const std::string& key, const std::string& path) const {
    if (!j.is_object() || !j.contains(key)) return Error(path + key, "is missing");
    const json& v = j[key];
    if constexpr (std::is_same_v<T, std::string>) {
      if (!v.is_string()) return Error(path + key, "must be a string");
    } else if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) return Error(path + key, "must be a boolean");
    } else if constexpr (std::is_integral_v<T>) {
      if (!v.is_number_integer()) return Error(path + key, "must be an integer");
    } else {
      if (!v.is_number()) return Error(path + key, "must be a number");
    }
    return v.get<T>();
  }
  absl::StatusOr<DType> GetDType(const json& j, const std::string& key, const std::string& path) const {
    TAILOR_ASSIGN_OR_RETURN(std::string s, Get<std::string>(j, key, path));
    auto t = ParseDType(s);
    if (!t || (*t != DType::kF32 && *t != DType::kF16 && *t != DType::kBF16 && *t != DType::kQ8 && *t != DType::kQ4 &&
               *t != DType::kW8)) {
      return Error(path + key, "must be f32, f16, bf16, q8_0, q4 or w8a8");
    }
    return *t;
  }
  // The KV cache's element type: a float type or int8 (kernels/cpu_ops.h's KV layout).
  absl::StatusOr<DType> GetKvDType(const json& j, const std::string& key, const std::string& path) const {
    TAILOR_ASSIGN_OR_RETURN(std::string s, Get<std::string>(j, key, path));
    auto t = ParseDType(s);
    if (!t || (*t != DType::kF32 && *t != DType::kF16 && *t != DType::kBF16 && *t != DType::kI8)) {
      return Error(path + key, "must be f32, f16, bf16 or int8");
    }
    return *t;
  }
  // The manifest's "weights.tensors": [{name, dtype, shape, offset}], checked against the
  // family's tensor list (every tensor present once, with its shape, inside the file) and placed
  // in its order.
  absl::StatusOr<WeightLayout> GetTensors(const json& w, std::span<const TensorDesc> expected, int64_t file_size) const {
    if (!w.contains("tensors") || !w["tensors"].is_array()) return Error("weights.tensors", "must be a list");
    std::map<std::string, TensorRef> found;
    for (size_t i = 0; i < w["tensors"].size(); ++i) {
      const json& t = w["tensors"][i];
      const std::string p = absl::StrCat("weights.tensors[", i, "].");
      TAILOR_ASSIGN_OR_RETURN(std::string name, Get<std::string>(t, "name", p));
      TensorRef r;
      TAILOR_ASSIGN_OR_RETURN(r.dtype, GetDType(t, "dtype", p));
      TAILOR_ASSIGN_OR_RETURN(r.offset, Get<int64_t>(t, "offset", p));
      if (!t.contains("shape") || !t["shape"].is_array() || t["shape"].empty() || t["shape"].size() > 2) {
        return Error(p + "shape", "must be [rows, cols] or [n]");
      }
      std::vector<int64_t> shape;
      for (const json& d : t["shape"]) {
        if (!d.is_number_integer() || d.get<int64_t>() <= 0 || d.get<int64_t>() > (int64_t{1} << 40)) {
          return Error(p + "shape", "must hold positive integers");
        }
        shape.push_back(d.get<int64_t>());
      }
      r.rows = shape.size() == 2 ? shape[0] : 1;
      r.cols = shape.back();
      const bool packed = r.dtype == DType::kQ8 || r.dtype == DType::kQ4 || r.dtype == DType::kW8;
      if (r.dtype == DType::kW8) {  // the static scale of the activations it multiplies
        TAILOR_ASSIGN_OR_RETURN(r.act_scale, Get<float>(t, "act_scale", p));
        if (!(r.act_scale > 0) || !std::isfinite(r.act_scale)) return Error(p + "act_scale", "must be positive");
      }
      if (packed && (r.rows % kern::q8::kGroup != 0 || r.cols % kern::q8::kBlock != 0)) {
        return Error(p + "shape", absl::StrCat("of ", DTypeName(r.dtype), " tensor ", name,
                                               " must have rows % 16 == 0 and cols % 32 == 0"));
      }
      if (r.offset < 0 || r.offset % 64 != 0 || r.offset + r.bytes() > file_size) {
        return Error(p + "offset", absl::StrCat("puts tensor ", name, " outside weights.bin (", file_size,
                                                " bytes) or off a 64-byte boundary: the package is truncated or corrupt"));
      }
      if (!found.emplace(name, r).second) return Error(p + "name", absl::StrCat("repeats tensor ", name));
    }
    WeightLayout layout;
    for (const TensorDesc& d : expected) {
      auto it = found.find(d.name);
      if (it == found.end()) return Error("weights.tensors", absl::StrCat("has no tensor ", d.name));
      const TensorRef& r = it->second;
      if (r.rows != d.rows || r.cols != d.cols) {
        return Error("weights.tensors", absl::StrCat("tensor ", d.name, " is [", r.rows, ", ", r.cols, "], expected [",
                                                     d.rows, ", ", d.cols, "]"));
      }
      if (d.kind == TensorKind::kVector && r.dtype != DType::kF32) {
        return Error("weights.tensors", absl::StrCat("tensor ", d.name, " must be f32"));
      }
      layout.tensors.push_back(r);
      found.erase(it);
    }
    if (!found.empty()) {
      return Error("weights.tensors", absl::StrCat("has tensor ", found.begin()->first, " that the model does not use"));
    }
    return layout;
  }

 private:
  std::string file_;
};

}  // namespace

std::vector<Specialization> Package::Specializations() const {
  std::vector<Specialization> out;
  for (const auto& s : specs) out.push_back(s.spec);
  return out;
}

std::vector<std::string> HostCpuFeatures() {
  std::vector<std::string> out;
  __builtin_cpu_init();
#define TAILOR_FEATURE(name) \
  if (__builtin_cpu_supports(name)) out.push_back(name);
  TAILOR_FEATURE("avx2")
  TAILOR_FEATURE("fma")
  if (kern::CpuHasF16c()) out.push_back("f16c");
  TAILOR_FEATURE("avx512f")
  TAILOR_FEATURE("avx512dq")
  TAILOR_FEATURE("avx512bw")
  TAILOR_FEATURE("avx512vl")
  if (kern::CpuHasAvx512Bf16()) out.push_back("avx512bf16");
  TAILOR_FEATURE("avx512vnni")
#undef TAILOR_FEATURE
  if (kern::amx::Available()) {  // the kernel layer's check: reading a package needs no op runner
    out.push_back("amx-tile");
    out.push_back("amx-bf16");
  }
  return out;
}

absl::Status WriteManifest(const Package& p) {
  const ModelConfig& c = p.config;
  json model = {{"name", c.name},         {"family", c.family},
                {"architecture", c.architecture}, {"dim", c.dim},
                {"n_layers", c.n_layers}, {"n_heads", c.n_heads},
                {"n_kv_heads", c.n_kv_heads}, {"head_dim", c.head_dim},
                {"ffn_dim", c.ffn_dim},   {"vocab_size", c.vocab_size},
                {"max_positions", c.max_positions}, {"rms_eps", c.rms_eps},
                {"rope_theta", c.rope_theta}, {"rope_inv_freq", RopeInvFreq(c)},
                {"tied_embeddings", c.tied_embeddings},
                {"source_format", p.source_format}};
  json tensors = json::array();
  const std::vector<TensorDesc> descs = p.family->Tensors(c);
  for (size_t i = 0; i < descs.size() && i < p.weights.tensors.size(); ++i) {
    const TensorRef& t = p.weights.tensors[i];
    json shape = descs[i].kind == TensorKind::kVector ? json::array({t.cols}) : json::array({t.rows, t.cols});
    tensors.push_back({{"name", descs[i].name}, {"dtype", std::string(DTypeName(t.dtype))}, {"shape", shape},
                       {"offset", t.offset}});
    if (t.dtype == DType::kW8) tensors.back()["act_scale"] = t.act_scale;
  }
  json specs = json::array();
  for (const PackageSpec& s : p.specs) {
    json kernel = nullptr;
    if (!s.kernel_object.empty()) {
      kernel = {{"source", s.kernel_source}, {"object", s.kernel_object}, {"checksum", s.kernel_checksum}};
    }
    specs.push_back({{"batch_size", s.spec.shape.batch_size}, {"seq_len", s.spec.shape.seq_len},
                     {"ctx_len", s.spec.shape.ctx_len}, {"compile_opts", absl::StrCat("-ols=", s.spec.ols)},
                     {"arena_bytes", s.arena_bytes}, {"cost_seconds", s.cost_seconds},
                     {"cost_seconds_at_start", s.cost_seconds_at_start},
                     {"cost_model",
                      {{"fixed_seconds", s.cost_model.fixed_seconds},
                       {"per_row_seconds", s.cost_model.per_row_seconds},
                       {"per_position_seconds", s.cost_model.per_position_seconds}}},
                     {"cost_source", s.cost_source}, {"kernel", kernel}});
  }
  json m = {
      {"format", "tailor-package"},
      {"version", kPackageVersion},
      {"fingerprint", {{"tailor_version", p.tailor_version}, {"compiler", p.compiler},
                       {"cpu_features", p.cpu_features}, {"kernel_isa", p.kernel_isa},
                       {"target", p.target == Target::kGenerated ? "generated" : "native"}}},
      {"model", model},
      {"generation", {{"bos_id", c.bos_id}, {"eos_ids", c.eos_ids}, {"add_bos", c.add_bos},
                      {"sampling_defaults", SamplingDefaultsJson(c.sampling_defaults)}}},
      {"chat_template", p.chat_template},
      {"special_tokens", {{"bos", p.bos_token}, {"eos", p.eos_token}}},
      {"tokenizer", {{"file", p.tokenizer_file}, {"checksum", p.tokenizer_checksum}}},
      {"weights", {{"file", "weights.bin"}, {"dtype", std::string(DTypeName(p.weight_dtype))},
                   {"bytes", p.weights.total_bytes}, {"checksum", p.weights_checksum},
                   {"tensors", tensors}}},
      {"kv", {{"dtype", std::string(DTypeName(p.kv_dtype))}, {"block", p.kv_block}}},
      {"specializations", specs}};
  if (p.calibration) m["calibration"] = CalibrationJson(*p.calibration);
  m[kManifestChecksumField] = std::string(16, '0');  // sealed below: the checksum of this text
  TAILOR_ASSIGN_OR_RETURN(const std::string sealed, SealManifestText(m.dump(2) + "\n"));
  const fs::path tmp = p.dir / "manifest.json.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << sealed;
    if (!out) return absl::InternalError(absl::StrCat(tmp.string(), ": cannot write"));
  }
  std::error_code ec;
  fs::rename(tmp, p.dir / "manifest.json", ec);
  if (ec) return absl::InternalError(absl::StrCat((p.dir / "manifest.json").string(), ": ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Package>> OpenPackage(const fs::path& dir) {
  const fs::path manifest_path = dir / "manifest.json";
  const std::string mf = manifest_path.string();
  if (!fs::exists(manifest_path)) {
    return absl::NotFoundError(absl::StrCat(dir.string(),
                                            ": not a tailor package (no manifest.json); make one "
                                            "with `tailor compile`"));
  }
  // Nothing is read from a package that others may change (package_trust.h).
  TAILOR_RETURN_IF_ERROR(CheckNotWritableByOthers(dir));
  TAILOR_RETURN_IF_ERROR(CheckNotWritableByOthers(manifest_path));
  TAILOR_ASSIGN_OR_RETURN(std::string text, ReadFileToString(manifest_path));
  json m = json::parse(text, nullptr, false);
  if (m.is_discarded() || !m.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(mf, ": corrupt package manifest (not valid JSON)"));
  }
  Reader r(mf);
  TAILOR_ASSIGN_OR_RETURN(std::string format, r.Get<std::string>(m, "format", ""));
  TAILOR_ASSIGN_OR_RETURN(int version, r.Get<int>(m, "version", ""));
  if (format != "tailor-package") return r.Error("format", "is not \"tailor-package\"");
  if (version != kPackageVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        mf, ": package version ", version, " is not supported by this tailor (it reads version ",
        kPackageVersion, "); recompile the package with `tailor compile`"));
  }
  // Integrity before any other field is read: every byte of the manifest as compile wrote it.
  TAILOR_RETURN_IF_ERROR(VerifyManifestText(text, mf));
  auto p = std::make_unique<Package>();
  p->dir = dir;
  const json& fp = m.value("fingerprint", json::object());
  TAILOR_ASSIGN_OR_RETURN(p->tailor_version, r.Get<std::string>(fp, "tailor_version", "fingerprint."));
  TAILOR_ASSIGN_OR_RETURN(p->compiler, r.Get<std::string>(fp, "compiler", "fingerprint."));
  TAILOR_ASSIGN_OR_RETURN(std::string target, r.Get<std::string>(fp, "target", "fingerprint."));
  p->target = target == "native" ? Target::kNative : Target::kGenerated;
  if (fp.contains("kernel_isa") && fp["kernel_isa"].is_string()) p->kernel_isa = fp["kernel_isa"].get<std::string>();
  if (fp.contains("cpu_features") && fp["cpu_features"].is_array()) {
    for (const auto& f : fp["cpu_features"]) {
      if (f.is_string()) p->cpu_features.push_back(f.get<std::string>());
    }
  }

  const json& mo = m.value("model", json::object());
  ModelConfig& c = p->config;
  TAILOR_ASSIGN_OR_RETURN(c.name, r.Get<std::string>(mo, "name", "model."));
  TAILOR_ASSIGN_OR_RETURN(c.family, r.Get<std::string>(mo, "family", "model."));
  TAILOR_ASSIGN_OR_RETURN(c.architecture, r.Get<std::string>(mo, "architecture", "model."));
  p->family = FindFamily(c.family);
  if (p->family == nullptr) return r.Error("model.family", absl::StrCat("names an unknown family '", c.family, "'"));
  TAILOR_ASSIGN_OR_RETURN(c.dim, r.Get<int32_t>(mo, "dim", "model."));
  TAILOR_ASSIGN_OR_RETURN(c.n_layers, r.Get<int32_t>(mo, "n_layers", "model."));
  TAILOR_ASSIGN_OR_RETURN(c.n_heads, r.Get<int32_t>(mo, "n_heads", "model."));
  TAILOR_ASSIGN_OR_RETURN(c.n_kv_heads, r.Get<int32_t>(mo, "n_kv_heads", "model."));
  TAILOR_ASSIGN_OR_RETURN(c.head_dim, r.Get<int32_t>(mo, "head_dim", "model."));
  TAILOR_ASSIGN_OR_RETURN(c.ffn_dim, r.Get<int32_t>(mo, "ffn_dim", "model."));
  TAILOR_ASSIGN_OR_RETURN(c.vocab_size, r.Get<int32_t>(mo, "vocab_size", "model."));
  TAILOR_ASSIGN_OR_RETURN(c.max_positions, r.Get<int32_t>(mo, "max_positions", "model."));
  TAILOR_ASSIGN_OR_RETURN(c.rms_eps, r.Get<float>(mo, "rms_eps", "model."));
  TAILOR_ASSIGN_OR_RETURN(c.rope_theta, r.Get<float>(mo, "rope_theta", "model."));
  TAILOR_ASSIGN_OR_RETURN(c.tied_embeddings, r.Get<bool>(mo, "tied_embeddings", "model."));
  TAILOR_ASSIGN_OR_RETURN(p->source_format, r.Get<std::string>(mo, "source_format", "model."));
  c.rope_layout = RopeLayout::kInterleaved;
  if (!mo.contains("rope_inv_freq") || !mo["rope_inv_freq"].is_array()) return r.Error("model.rope_inv_freq", "must be a list");
  for (const json& f : mo["rope_inv_freq"]) {
    if (!f.is_number() || !(f.get<double>() > 0)) return r.Error("model.rope_inv_freq", "must hold positive numbers");
    c.rope_inv_freq.push_back(f.get<double>());
  }
  if (c.head_dim <= 0 || c.head_dim > 4096 || c.rope_inv_freq.size() != static_cast<size_t>(c.head_dim / 2)) {
    return r.Error("model.rope_inv_freq", "must hold head_dim / 2 frequencies");
  }
  if (c.dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.head_dim <= 0 ||
      c.head_dim % 2 != 0 || c.n_heads % c.n_kv_heads != 0 || c.ffn_dim <= 0 || c.vocab_size <= 0 ||
      c.max_positions <= 0) {
    return r.Error("model", "has inconsistent dimensions");
  }
  const json& gen = m.value("generation", json::object());
  TAILOR_ASSIGN_OR_RETURN(c.bos_id, r.Get<int32_t>(gen, "bos_id", "generation."));
  TAILOR_ASSIGN_OR_RETURN(c.add_bos, r.Get<bool>(gen, "add_bos", "generation."));
  if (!gen.contains("eos_ids") || !gen["eos_ids"].is_array()) return r.Error("generation.eos_ids", "must be a list");
  c.eos_ids.clear();
  for (const auto& e : gen["eos_ids"]) {
    if (!e.is_number_integer()) return r.Error("generation.eos_ids", "must hold integers");
    c.eos_ids.push_back(e.get<int32_t>());
  }
  if (gen.contains("sampling_defaults")) {
    if (!gen["sampling_defaults"].is_object()) return r.Error("generation.sampling_defaults", "must be an object");
    absl::Status s = ReadSamplingDefaults(gen["sampling_defaults"], &c.sampling_defaults);
    if (!s.ok()) return r.Error("generation.sampling_defaults", std::string(s.message()));
  }
  if (m.contains("chat_template") && m["chat_template"].is_string()) {
    p->chat_template = m["chat_template"].get<std::string>();
  }
  const json& special = m.value("special_tokens", json::object());
  TAILOR_ASSIGN_OR_RETURN(p->bos_token, r.Get<std::string>(special, "bos", "special_tokens."));
  TAILOR_ASSIGN_OR_RETURN(p->eos_token, r.Get<std::string>(special, "eos", "special_tokens."));

  const json& kv = m.value("kv", json::object());
  TAILOR_ASSIGN_OR_RETURN(p->kv_dtype, r.GetKvDType(kv, "dtype", "kv."));
  TAILOR_ASSIGN_OR_RETURN(p->kv_block, r.Get<int32_t>(kv, "block", "kv."));
  if (p->kv_block <= 0) return r.Error("kv.block", "must be positive");

  const json& w = m.value("weights", json::object());
  TAILOR_ASSIGN_OR_RETURN(p->weight_dtype, r.GetDType(w, "dtype", "weights."));
  TAILOR_ASSIGN_OR_RETURN(p->weights.total_bytes, r.Get<int64_t>(w, "bytes", "weights."));
  TAILOR_ASSIGN_OR_RETURN(p->weights_checksum, r.Get<std::string>(w, "checksum", "weights."));
  // Weights: size, every tensor inside, checksum.
  const fs::path wpath = dir / "weights.bin";
  TAILOR_RETURN_IF_ERROR(CheckPackageFile(dir, "weights.bin", "weights.file"));
  TAILOR_ASSIGN_OR_RETURN(p->weights_file, MappedFile::Open(wpath));
  const int64_t wsize = static_cast<int64_t>(p->weights_file->size());
  if (wsize != p->weights.total_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(wpath.string(), ": ", wsize, " bytes, the manifest says ",
                                                   p->weights.total_bytes, ": the package is truncated or corrupt"));
  }
  const std::string ws = wpath.string();
  {
    const int64_t total = p->weights.total_bytes;
    TAILOR_ASSIGN_OR_RETURN(p->weights, r.GetTensors(w, p->family->Tensors(c), wsize));
    p->weights.total_bytes = total;
  }
  if (ChecksumHex(p->weights_file->bytes()) != p->weights_checksum) {
    return absl::InvalidArgumentError(
        absl::StrCat(ws, ": checksum mismatch: the package's weights are corrupt"));
  }

  const json& tok = m.value("tokenizer", json::object());
  TAILOR_ASSIGN_OR_RETURN(p->tokenizer_file, r.Get<std::string>(tok, "file", "tokenizer."));
  TAILOR_ASSIGN_OR_RETURN(p->tokenizer_checksum, r.Get<std::string>(tok, "checksum", "tokenizer."));
  {
    TAILOR_RETURN_IF_ERROR(CheckPackageFile(dir, p->tokenizer_file, "tokenizer.file"));
    TAILOR_ASSIGN_OR_RETURN(auto tf, MappedFile::Open(dir / p->tokenizer_file));
    if (ChecksumHex(tf->bytes()) != p->tokenizer_checksum) {
      return absl::InvalidArgumentError(absl::StrCat((dir / p->tokenizer_file).string(),
                                                     ": checksum mismatch: the tokenizer is corrupt"));
    }
  }

  if (!m.contains("specializations") || !m["specializations"].is_array() || m["specializations"].empty()) {
    return r.Error("specializations", "must be a non-empty list");
  }
  for (size_t i = 0; i < m["specializations"].size(); ++i) {
    const json& s = m["specializations"][i];
    const std::string pre = absl::StrCat("specializations[", i, "].");
    PackageSpec ps;
    TAILOR_ASSIGN_OR_RETURN(ps.spec.shape.batch_size, r.Get<int32_t>(s, "batch_size", pre));
    TAILOR_ASSIGN_OR_RETURN(ps.spec.shape.seq_len, r.Get<int32_t>(s, "seq_len", pre));
    TAILOR_ASSIGN_OR_RETURN(ps.spec.shape.ctx_len, r.Get<int32_t>(s, "ctx_len", pre));
    TAILOR_ASSIGN_OR_RETURN(std::string opts, r.Get<std::string>(s, "compile_opts", pre));
    if (opts.rfind("-ols=", 0) != 0) return r.Error(pre + "compile_opts", "must be -ols=N");
    ps.spec.ols = std::atoi(opts.c_str() + 5);
    TAILOR_ASSIGN_OR_RETURN(ps.arena_bytes, r.Get<int64_t>(s, "arena_bytes", pre));
    TAILOR_ASSIGN_OR_RETURN(ps.cost_seconds, r.Get<double>(s, "cost_seconds", pre));
    TAILOR_ASSIGN_OR_RETURN(ps.cost_source, r.Get<std::string>(s, "cost_source", pre));
    if (s.contains("cost_seconds_at_start")) {
      TAILOR_ASSIGN_OR_RETURN(ps.cost_seconds_at_start, r.Get<double>(s, "cost_seconds_at_start", pre));
      if (!(ps.cost_seconds_at_start >= 0)) return r.Error(pre + "cost_seconds_at_start", "must be >= 0");
    }
    const SpecShape& sh = ps.spec.shape;
    if (sh.batch_size <= 0 || sh.seq_len <= 0 || sh.ctx_len < sh.seq_len || sh.ctx_len > c.max_positions ||
        ps.spec.ols <= 0 || !(ps.cost_seconds > 0)) {
      return r.Error(pre.substr(0, pre.size() - 1), "has an invalid shape, -ols or cost");
    }
    if (s.contains("cost_model")) {  // optional: packages before it carry the two figures only
      const std::string mp = pre + "cost_model.";
      StepCostModel& cm = ps.cost_model;
      TAILOR_ASSIGN_OR_RETURN(cm.fixed_seconds, r.Get<double>(s["cost_model"], "fixed_seconds", mp));
      TAILOR_ASSIGN_OR_RETURN(cm.per_row_seconds, r.Get<double>(s["cost_model"], "per_row_seconds", mp));
      TAILOR_ASSIGN_OR_RETURN(cm.per_position_seconds, r.Get<double>(s["cost_model"], "per_position_seconds", mp));
      for (double v : {cm.fixed_seconds, cm.per_row_seconds, cm.per_position_seconds}) {
        if (!(v >= 0) || !std::isfinite(v)) return r.Error(mp.substr(0, mp.size() - 1), "must hold finite seconds >= 0");
      }
      if (!(cm.Seconds(sh.batch_size, AttendedPositions(sh.batch_size, sh.seq_len, sh.ctx_len)) > 0)) {
        return r.Error(mp.substr(0, mp.size() - 1), "gives no positive cost for a full step");
      }
    } else {
      ps.cost_model = StepCostModel::FromEnds(sh, ps.cost_seconds, ps.cost_seconds_at_start);
    }
    if (s.contains("kernel") && s["kernel"].is_object()) {
      TAILOR_ASSIGN_OR_RETURN(ps.kernel_source, r.Get<std::string>(s["kernel"], "source", pre + "kernel."));
      TAILOR_ASSIGN_OR_RETURN(ps.kernel_object, r.Get<std::string>(s["kernel"], "object", pre + "kernel."));
      TAILOR_ASSIGN_OR_RETURN(ps.kernel_checksum, r.Get<std::string>(s["kernel"], "checksum", pre + "kernel."));
      // Where the runtime dlopen()s it: inside the package, and nobody else's to change.
      TAILOR_RETURN_IF_ERROR(CheckPackageFile(dir, ps.kernel_object, pre + "kernel.object"));
    } else if (p->target == Target::kGenerated) {
      return r.Error(pre + "kernel", "is missing for a package with generated kernels");
    }
    p->specs.push_back(ps);
  }
  if (m.contains("calibration") && !m["calibration"].is_null()) {  // optional: the profile compiled with
    const json& cal = m["calibration"];
    PackageCalibration c;
    TAILOR_ASSIGN_OR_RETURN(c.profile, r.Get<std::string>(cal, "profile", "calibration."));
    TAILOR_ASSIGN_OR_RETURN(c.profile_checksum, r.Get<std::string>(cal, "profile_checksum", "calibration."));
    TAILOR_ASSIGN_OR_RETURN(c.method, r.Get<std::string>(cal, "method", "calibration."));
    TAILOR_ASSIGN_OR_RETURN(c.percentile, r.Get<double>(cal, "percentile", "calibration."));
    TAILOR_ASSIGN_OR_RETURN(c.histogram_bins, r.Get<int32_t>(cal, "histogram_bins", "calibration."));
    if (!cal.contains("specializations") || !cal["specializations"].is_array()) {
      return r.Error("calibration.specializations", "must be a list");
    }
    for (const json& name : cal["specializations"]) {
      if (!name.is_string()) return r.Error("calibration.specializations", "must hold strings");
      c.specializations.push_back(name.get<std::string>());
    }
    p->calibration = std::move(c);
  }
  return p;
}

}  // namespace tailor
