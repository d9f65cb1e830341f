#include "engine/compiler.h"

#include <chrono>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/checksum.h"
#include "common/status_macros.h"
#include "engine/ops.h"
#include "engine/runtime.h"
#include "kernels/q8_kernels.h"
#include "kernels/reference_kernels.h"
#include "nlohmann/json.hpp"

namespace tailor {
namespace {

namespace fs = std::filesystem;

// Writes weights.bin: each tensor converted to its package dtype, 64-byte aligned.
class WeightWriter {
 public:
  explicit WeightWriter(const fs::path& path) : out_(path, std::ios::binary | std::ios::trunc) {}
  bool ok() const { return static_cast<bool>(out_); }
  int64_t size() const { return offset_; }

  // Converts `src` to `dtype`; `row_map(r)` gives the source row of package row r, `col_map(c)`
  // the source column of package column c (either may be null: the identity).
  TensorRef Write(const WeightView& src, DType dtype, const std::function<int64_t(int64_t)>& row_map,
                  const std::function<int64_t(int64_t)>& col_map) {
    Pad();
    TensorRef t{dtype, offset_, src.rows, src.cols};
    std::vector<float> source_row(src.cols), row(src.cols);
    std::vector<char> bytes(RowBytes(dtype, src.cols));
    for (int64_t r = 0; r < src.rows; ++r) {
      ref::DequantizeRow(src, row_map ? row_map(r) : r, source_row.data());
      for (int64_t c = 0; c < src.cols; ++c) row[c] = source_row[col_map ? col_map(c) : c];
      for (int64_t c = 0; c < src.cols; ++c) {
        if (dtype == DType::kF32) {
          std::memcpy(bytes.data() + 4 * c, &row[c], 4);
        } else {
          uint16_t h = dtype == DType::kF16 ? F32ToF16(row[c]) : F32ToBF16(row[c]);
          std::memcpy(bytes.data() + 2 * c, &h, 2);
        }
      }
      out_.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      offset_ += static_cast<int64_t>(bytes.size());
    }
    return t;
  }
  // Quantizes `src` to tailor's q8_0 (kern::q8's grouped layout): per block of 32, the scale
  // amax / 127 rounded to f16, quants nearest-even(w / scale) in [-127, 127].
  TensorRef WriteQ8(const WeightView& src, const std::function<int64_t(int64_t)>& row_map,
                    const std::function<int64_t(int64_t)>& col_map) {
    namespace q8 = kern::q8;
    Pad();
    TensorRef t{DType::kQ8, offset_, src.rows, src.cols};
    const int64_t k = src.cols, blocks = k / q8::kBlock;
    std::vector<float> source_row(k), row(k);
    std::vector<int8_t> quants(q8::kGroup * k);
    std::vector<uint16_t> scales(q8::kGroup * blocks);
    std::vector<uint8_t> packed(static_cast<size_t>(blocks) * q8::kTileBytes);
    for (int64_t g = 0; g < src.rows / q8::kGroup; ++g) {
      for (int64_t i = 0; i < q8::kGroup; ++i) {
        const int64_t r = g * q8::kGroup + i;
        ref::DequantizeRow(src, row_map ? row_map(r) : r, source_row.data());
        for (int64_t c = 0; c < k; ++c) row[c] = source_row[col_map ? col_map(c) : c];
        for (int64_t b = 0; b < blocks; ++b) {
          float amax = 0.0f;
          for (int64_t c = b * q8::kBlock; c < (b + 1) * q8::kBlock; ++c) amax = std::max(amax, std::fabs(row[c]));
          const uint16_t h = F32ToF16(amax / 127.0f);
          const float d = F16ToF32(h);
          scales[i * blocks + b] = h;
          for (int64_t c = b * q8::kBlock; c < (b + 1) * q8::kBlock; ++c) {
            const float q = d > 0.0f ? std::nearbyint(row[c] / d) : 0.0f;
            quants[i * k + c] = static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
          }
        }
      }
      q8::Pack(q8::kGroup, static_cast<int>(k), quants.data(), scales.data(), packed.data());
      out_.write(reinterpret_cast<const char*>(packed.data()), static_cast<std::streamsize>(packed.size()));
      offset_ += static_cast<int64_t>(packed.size());
    }
    return t;
  }

  void Pad() {
    static const char zeros[64] = {};
    const int64_t pad = (64 - offset_ % 64) % 64;
    out_.write(zeros, pad);
    offset_ += pad;
  }

 private:
  std::ofstream out_;
  int64_t offset_ = 0;
};

// The dtype a tensor gets in a package of `dtype`: vectors f32; quantized formats only where the
// blocks fit (rows % 16, cols % 32; else bf16) and, for the embedding and the output
// projection, only when asked.
DType TensorDType(const TensorDesc& t, DType dtype, bool quantize_embeddings) {
  if (t.kind == TensorKind::kVector) return DType::kF32;
  if (dtype != DType::kQ8) return dtype;
  const bool fits = t.rows % kern::q8::kGroup == 0 && t.cols % kern::q8::kBlock == 0;
  const bool embedding = t.kind == TensorKind::kEmbedding || t.kind == TensorKind::kOutput;
  return fits && (!embedding || quantize_embeddings) ? DType::kQ8 : DType::kBF16;
}

absl::StatusOr<WeightLayout> WriteWeights(const Model& model, const CompileOptions& o, const fs::path& path) {
  const ModelConfig& c = model.config;
  WeightWriter w(path);
  if (!w.ok()) return absl::InternalError(absl::StrCat(path.string(), ": cannot write"));
  // Rotary features ordered for rotate-half rope (Hugging Face, GGUF qwen) are stored for
  // interleaved pairs: package feature 2i + j of a head is source feature i + j * head_dim / 2.
  const bool permute = c.rope_layout == RopeLayout::kHalf;
  const int64_t hd = c.head_dim, half = c.head_dim / 2;
  const std::function<int64_t(int64_t)> rope_map = [&](int64_t f) {
    const int64_t head = f / hd, i = (f % hd) / 2, j = f % 2;
    return head * hd + i + j * half;
  };
  WeightLayout L;
  for (size_t i = 0; i < model.tensors.size(); ++i) {
    const TensorDesc& t = model.tensors[i];
    const WeightView& src = model.weights[i];
    const bool rope = permute && t.rope_features;
    const bool vector = t.kind == TensorKind::kVector;
    const auto rows = rope && !vector ? rope_map : nullptr, cols = rope && vector ? rope_map : nullptr;
    const DType dtype = TensorDType(t, o.weight_dtype, o.quantize_embeddings);
    L.tensors.push_back(dtype == DType::kQ8 ? w.WriteQ8(src, rows, cols) : w.Write(src, dtype, rows, cols));
  }
  w.Pad();
  L.total_bytes = w.size();
  if (!w.ok()) return absl::InternalError(absl::StrCat(path.string(), ": write failed (disk full?)"));
  return L;
}

absl::StatusOr<std::vector<double>> ReadCostTable(const fs::path& path,
                                                  const std::vector<Specialization>& specs) {
  TAILOR_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path.string(), ": malformed cost table (expected {\"b1_s1_c128\": seconds, ...})"));
  }
  std::vector<double> out;
  for (const auto& s : specs) {
    const std::string name = s.Name();
    if (!j.contains(name) || !j[name].is_number() || !(j[name].get<double>() > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(path.string(), ": no positive cost for specialization \"",
                                                     name, "\""));
    }
    out.push_back(j[name].get<double>());
  }
  return out;
}

}  // namespace

double EstimateStepSeconds(const Program& p, const ModelConfig& c, int32_t end_pos) {
  constexpr double kBytesPerSecond = 10e9, kFlopsPerSecond = 50e9, kSecondsPerOp = 2e-6;
  const SpecShape& s = p.spec.shape;
  const double attention_flops = 4.0 * s.batch_size * s.seq_len * end_pos * c.q_dim() * c.n_layers;
  const double compute = (p.flops + attention_flops) / kFlopsPerSecond / std::max(1, p.spec.ols);
  return std::max(p.weight_bytes_read / kBytesPerSecond, compute) + kSecondsPerOp * p.ops.size();
}

absl::Status CompilePackage(const Model& model, const std::vector<Specialization>& specs,
                            const CompileOptions& o) {
  auto progress = [&](const std::string& line) {
    if (o.progress) o.progress(line);
  };
  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec || !fs::is_directory(o.out)) {
    return absl::InvalidArgumentError(absl::StrCat(o.out.string(), ": cannot create the package directory"));
  }
  Package pkg;
  pkg.dir = o.out;
  pkg.config = model.config;
  pkg.config.rope_layout = RopeLayout::kInterleaved;
  pkg.config.rope_inv_freq = RopeInvFreq(model.config);
  pkg.family = model.family;
  pkg.bos_token = model.bos_token;
  pkg.eos_token = model.eos_token;
  pkg.source_format = std::string(ModelFormatName(model.format));
  pkg.chat_template = model.chat_template;
  pkg.weight_dtype = o.weight_dtype;
  pkg.kv_dtype = o.kv_dtype;
  pkg.kv_block = o.kv_block;
  pkg.target = o.target;
  pkg.tailor_version = TAILOR_VERSION;
  pkg.compiler = o.target == Target::kGenerated ? CompilerVersion(o.build) : "none";
  const CpuIsa isa = HostCpuIsa();
  if (o.target == Target::kGenerated) {
    pkg.kernel_isa = CpuIsaName(isa);
    for (std::string& f : HostCpuFeatures()) {  // AMX only where the kernels use it
      if (isa == CpuIsa::kAmx || f.rfind("amx", 0) != 0) pkg.cpu_features.push_back(std::move(f));
    }
  }

  progress(absl::StrCat("writing weights (", DTypeName(o.weight_dtype), ")"));
  TAILOR_ASSIGN_OR_RETURN(pkg.weights, WriteWeights(model, o, o.out / "weights.bin"));
  {
    TAILOR_ASSIGN_OR_RETURN(auto mapped, MappedFile::Open(o.out / "weights.bin"));
    pkg.weights_checksum = ChecksumHex(mapped->bytes());
  }
  {
    pkg.tokenizer_file = o.tokenizer_file;
    std::ofstream tok(o.out / pkg.tokenizer_file, std::ios::binary | std::ios::trunc);
    tok << o.tokenizer_bytes;
    if (!tok) return absl::InternalError(absl::StrCat((o.out / pkg.tokenizer_file).string(), ": cannot write"));
    pkg.tokenizer_checksum = ChecksumHex(std::as_bytes(std::span<const char>(o.tokenizer_bytes)));
  }

  const OpConstants k{model.config.n_heads, model.config.n_kv_heads, model.config.head_dim,
                      model.config.n_layers, o.kv_block, o.kv_dtype, model.config.rms_eps};
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    Program prog = LowerProgram(pkg.config, *pkg.family, pkg.weights, specs[i], o.kv_block);
    PackageSpec ps;
    ps.spec = specs[i];
    ps.arena_bytes = prog.arena_bytes;
    ps.cost_seconds = EstimateStepSeconds(prog, pkg.config, specs[i].shape.ctx_len);
    ps.cost_seconds_at_start = EstimateStepSeconds(prog, pkg.config, specs[i].shape.seq_len);
    ps.cost_source = "estimated";
    std::string how = "native path";
    if (o.target == Target::kGenerated) {
      TAILOR_ASSIGN_OR_RETURN(BuiltKernel built,
                              BuildKernel(o.out, specs[i].Name() + absl::StrCat("_ols", specs[i].ols),
                                          GenerateProgramSource(prog, k, isa), o.build));
      ps.kernel_source = built.source;
      ps.kernel_object = built.object;
      TAILOR_ASSIGN_OR_RETURN(auto obj, MappedFile::Open(o.out / built.object));
      ps.kernel_checksum = ChecksumHex(obj->bytes());
      how = built.cache_hit ? "generated kernels (cached object)" : "generated kernels";
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    progress(absl::StrFormat("[%d/%d] %s -ols=%d: %d ops, arena %d bytes, %s (%.1f s)", i + 1,
                             specs.size(), specs[i].Name(), specs[i].ols, prog.ops.size(),
                             prog.arena_bytes, how, secs));
    pkg.specs.push_back(ps);
  }

  if (o.cost_table) {
    TAILOR_ASSIGN_OR_RETURN(auto costs, ReadCostTable(*o.cost_table, specs));
    for (size_t i = 0; i < specs.size(); ++i) {
      pkg.specs[i].cost_seconds = costs[i];
      pkg.specs[i].cost_seconds_at_start = 0;  // a given table is position-independent
      pkg.specs[i].cost_source = "table";
    }
  }
  TAILOR_RETURN_IF_ERROR(WriteManifest(pkg));
  if (!o.cost_table && !o.compile_only) {
    progress("timing each specialization (the cost table)");
    TAILOR_ASSIGN_OR_RETURN(auto rt, Runtime::Open(o.out, RuntimeOptions{}));
    TAILOR_ASSIGN_OR_RETURN(auto seconds, MeasureStepSeconds(*rt, 3));
    TAILOR_ASSIGN_OR_RETURN(auto at_start, MeasureStepSeconds(*rt, 3, /*at_start=*/true));
    for (size_t i = 0; i < specs.size(); ++i) {
      pkg.specs[i].cost_seconds = seconds[i];
      pkg.specs[i].cost_seconds_at_start = at_start[i];
      pkg.specs[i].cost_source = "measured";
      progress(absl::StrFormat("  %s: %.3f ms per step (%.3f ms at the start of the context)", specs[i].Name(),
                               seconds[i] * 1e3, at_start[i] * 1e3));
    }
    TAILOR_RETURN_IF_ERROR(WriteManifest(pkg));
  }
  return absl::OkStatus();
}

}  // namespace tailor
