#include "engine/compiler.h"

#include <chrono>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/checksum.h"
#include "common/status_macros.h"
#include "engine/ops.h"
#include "engine/profile.h"
#include "engine/runtime.h"
#include "engine/weight_writer.h"
#include "nlohmann/json.hpp"

namespace tailor {
namespace {

namespace fs = std::filesystem;

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
  if (o.weight_dtype == DType::kW8 && !o.keep_source_formats && o.calibration == nullptr) {
    return absl::InvalidArgumentError(
        "--dtype w8a8 needs a calibration profile for its static activation scales (-load-profile=FILE; make one "
        "with -dump-profile)");
  }
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
  if (o.calibration) pkg.calibration = o.calibration->record();
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
    ps.cost_model = StepCostModel::FromEnds(specs[i].shape, ps.cost_seconds, ps.cost_seconds_at_start);
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
      pkg.specs[i].cost_model = StepCostModel{costs[i], 0, 0};
      pkg.specs[i].cost_source = "table";
    }
  }
  TAILOR_RETURN_IF_ERROR(WriteManifest(pkg));
  if (!o.cost_table && !o.compile_only) {
    progress("timing each specialization (the cost table)");
    TAILOR_ASSIGN_OR_RETURN(auto rt, Runtime::Open(o.out, RuntimeOptions{}));
    TAILOR_ASSIGN_OR_RETURN(auto measured, MeasureStepCosts(*rt, 5));
    for (size_t i = 0; i < specs.size(); ++i) {
      const MeasuredCost& m = measured[i];
      pkg.specs[i].cost_seconds = m.full_seconds;
      pkg.specs[i].cost_seconds_at_start = m.at_start_seconds;
      pkg.specs[i].cost_model = m.model;
      pkg.specs[i].cost_source = "measured";
      progress(absl::StrFormat("  %s: %.3f ms per step (%.3f ms at the start of the context); model %.3f ms + "
                               "%.4f ms/row + %.3g ms/attended position",
                               specs[i].Name(), m.full_seconds * 1e3, m.at_start_seconds * 1e3,
                               m.model.fixed_seconds * 1e3, m.model.per_row_seconds * 1e3,
                               m.model.per_position_seconds * 1e3));
    }
    TAILOR_RETURN_IF_ERROR(WriteManifest(pkg));
  }
  return absl::OkStatus();
}

}  // namespace tailor
