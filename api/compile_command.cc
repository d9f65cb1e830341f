// `tailor compile` (long options and qaic-compile's spellings) and `tailor inspect`.
#include <algorithm>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "api/commands.h"
#include "api/flags.h"
#include "common/status_macros.h"
#include "engine/compiler.h"
#include "engine/package.h"
#include "engine/spec_config.h"
#include "models/model_loader.h"
#include "tokenizer/tokenizer.h"

namespace tailor {
namespace {

const std::vector<FlagSpec>& CompileFlags() {
  static const auto* specs = new std::vector<FlagSpec>{
      {"model", true, {"m"}, "HF directory, .gguf file or llama2.c .bin"},
      {"tokenizer", true, {}, "tokenizer to use instead of the model's"},
      {"specializations", true, {"network-specialization-config"}, "specialization config (JSON)"},
      {"out", true, {"aic-binary-dir"}, "package directory to write"},
      {"dtype", true, {}, "weights: f32 (default; quantized GGUF tensors keep their format), f16, bf16, q8_0 or q4 (int8 / int4 blocks of 32), w8a8 (int8 rows, static activation scales: needs -load-profile); shapes that do not fit stay bf16"},
      {"quantize-embeddings", false, {}, "q8_0, q4: also the embedding and output projection (default: bf16)"},
      {"smoothquant-alpha", true, {}, "w8a8: migration strength of activation outliers into weights, 0..1 (default 0.5; 0: off)"},
      {"convert-to-fp16", false, {}, "same as --dtype f16"},
      {"kv-dtype", true, {}, "KV cache element: f32 (default), f16, bf16 or int8 (a scale per token and kv head)"},
      {"kv-block", true, {}, "positions per KV block (default 16)"},
      {"threads", true, {"aic-num-cores"}, "accepted for qaic-compile compatibility; -ols sets threads per specialization"},
      {"target", true, {}, "generated (default) or native"},
      {"aic-hw", false, {}, "same as --target generated"},
      {"compile-only", false, {}, "estimate costs from bytes and FLOPs instead of timing"},
      {"cost-table", true, {}, "JSON {\"b1_s1_c128\": seconds, ...} setting the costs"},
      {"json-input-file", true, {}, "calibration inputs (the exec input format; `tailor calibrate` makes one)"},
      {"dump-profile", true, {}, "run the fp32 programs over -json-input-file and write a calibration profile"},
      {"load-profile", true, {}, "compile with a calibration profile (from -dump-profile or `tailor profile merge`)"},
      {"quantization-calibration", true, {}, "-load-profile clipping: minmax (default), percentile or mse"},
      {"percentile-calibration-value", true, {}, "the percentile of -quantization-calibration=percentile (default 99.99)"},
  };
  return *specs;
}

// --dtype (`quantized`: also q8_0) and --kv-dtype.
absl::StatusOr<DType> DTypeFlag(const ParsedFlags& f, const std::string& name, bool quantized) {
  std::string v = f.Get(name).value_or("f32");
  auto t = ParseDType(v);
  const bool ok = t && (*t == DType::kF32 || *t == DType::kF16 || *t == DType::kBF16 ||
                        (quantized && (*t == DType::kQ8 || *t == DType::kQ4 || *t == DType::kW8)));
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat(f.Spelling(name), ": '", v, "' (expected f32, f16, bf16", quantized ? ", q8_0, q4 or w8a8)" : ")"));
  }
  return *t;
}

// --kv-dtype: a float type or int8.
absl::StatusOr<DType> KvDTypeFlag(const ParsedFlags& f) {
  std::string v = f.Get("kv-dtype").value_or("f32");
  auto t = ParseDType(v);
  if (!t || (*t != DType::kF32 && *t != DType::kF16 && *t != DType::kBF16 && *t != DType::kI8)) {
    return absl::InvalidArgumentError(absl::StrCat(f.Spelling("kv-dtype"), ": '", v, "' (expected f32, f16, bf16 or int8)"));
  }
  return *t;
}

// The calibration profile flags, checked against each other.
absl::StatusOr<CompileProfileFlags> ProfileFlagsOf(const ParsedFlags& f) {
  CompileProfileFlags p;
  p.json_input_file = f.Get("json-input-file");
  p.dump_profile = f.Get("dump-profile");
  p.load_profile = f.Get("load-profile");
  if (p.dump_profile && p.load_profile) {
    return absl::InvalidArgumentError(
        "-load-profile and -dump-profile cannot be given together: dump a profile first, then compile with it");
  }
  if (p.json_input_file && !p.dump_profile && !p.load_profile) {
    return absl::InvalidArgumentError("-json-input-file is used only with -dump-profile or -load-profile");
  }
  for (const char* flag : {"quantization-calibration", "percentile-calibration-value"}) {
    if (f.Has(flag) && !p.load_profile) return absl::InvalidArgumentError(absl::StrCat("-", flag, " needs -load-profile"));
  }
  p.calibration = f.Get("quantization-calibration").value_or("minmax");
  TAILOR_ASSIGN_OR_RETURN(p.percentile, f.GetDouble("percentile-calibration-value", 99.99, 0, 100));
  return p;
}

absl::Status Compile(const std::vector<std::string>& args, const Environment& env) {
  TAILOR_ASSIGN_OR_RETURN(ParsedFlags f, ParseFlags(CompileFlags(), args));
  if (!f.positional().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", f.positional()[0], "'"));
  }
  TAILOR_ASSIGN_OR_RETURN(const CompileProfileFlags profile_flags, ProfileFlagsOf(f));
  for (const char* required : {"model", "specializations", "out"}) {
    if (!f.Has(required) && !(profile_flags.dump_profile && std::string(required) == "out")) {
      return absl::InvalidArgumentError(absl::StrCat("compile needs --", required, "\nusage: tailor compile --model PATH --specializations FILE --out DIR [options]\n",
                                                     FlagsHelp(CompileFlags())));
    }
  }
  CompileOptions o;
  o.out = f.Get("out").value_or("");
  TAILOR_ASSIGN_OR_RETURN(o.weight_dtype, DTypeFlag(f, "dtype", /*quantized=*/true));
  o.quantize_embeddings = f.Has("quantize-embeddings");
  o.keep_source_formats = !f.Has("dtype") && !f.Has("convert-to-fp16");
  TAILOR_ASSIGN_OR_RETURN(double alpha, f.GetDouble("smoothquant-alpha", 0.5, 0.0, 1.0));
  o.smoothquant_alpha = static_cast<float>(alpha);
  if (f.Has("convert-to-fp16")) {
    if (f.Has("dtype") && o.weight_dtype != DType::kF16) {
      return absl::InvalidArgumentError("-convert-to-fp16 contradicts --dtype");
    }
    o.weight_dtype = DType::kF16;
  }
  TAILOR_ASSIGN_OR_RETURN(o.kv_dtype, KvDTypeFlag(f));
  TAILOR_ASSIGN_OR_RETURN(int64_t block, f.GetInt("kv-block", 16, 1, 4096));
  o.kv_block = static_cast<int32_t>(block);
  TAILOR_ASSIGN_OR_RETURN(int64_t threads, f.GetInt("threads", 1, 1, 1024));
  (void)threads;
  std::string target = f.Get("target").value_or("generated");
  if (target != "generated" && target != "native") {
    return absl::InvalidArgumentError(absl::StrCat(f.Spelling("target"), ": '", target, "' (expected generated or native)"));
  }
  if (f.Has("aic-hw") && target == "native") return absl::InvalidArgumentError("-aic-hw contradicts --target native");
  o.target = target == "native" ? Target::kNative : Target::kGenerated;
  o.compile_only = f.Has("compile-only");
  if (f.Has("cost-table")) o.cost_table = *f.Get("cost-table");
  o.build.cxx = absl::StrSplit(env.cxx.empty() ? std::string("c++") : env.cxx, ' ', absl::SkipWhitespace());
  o.progress = [](const std::string& line) { std::cerr << "compile: " << line << "\n"; };

  LoadOptions lo;
  if (f.Has("tokenizer")) lo.tokenizer = *f.Get("tokenizer");
  TAILOR_ASSIGN_OR_RETURN(auto model, LoadModel(*f.Get("model"), lo));
  TAILOR_ASSIGN_OR_RETURN(auto specs, LoadSpecConfig(*f.Get("specializations"), model->config.max_positions));
  if (profile_flags.dump_profile) {
    if (f.Has("out")) std::cerr << "compile: -dump-profile writes the profile only, no package to " << o.out.string() << "\n";
    return DumpCompileProfile(*model, specs, profile_flags);
  }
  if (profile_flags.load_profile) {
    TAILOR_ASSIGN_OR_RETURN(o.calibration, LoadCompileProfile(*model, specs, profile_flags));
  }
  TAILOR_ASSIGN_OR_RETURN(auto tokenizer, Tokenizer::Load(model->tokenizer_path, model->config.vocab_size));
  SerializedTokenizer stored = tokenizer->Serialize();
  o.tokenizer_file = stored.file_name;
  o.tokenizer_bytes = std::move(stored.bytes);
  std::cerr << "compile: " << model->config.name << " (" << ModelFormatName(model->format) << "), "
            << specs.size() << " specializations -> " << o.out.string() << "\n";
  TAILOR_RETURN_IF_ERROR(CompilePackage(*model, specs, o));
  std::cerr << "compile: done\n";
  return absl::OkStatus();
}

// "formats: q8_0 28 tensors 4718592 bytes, bf16 2 ..." and, with `each`, one line per tensor
// (name, format, shape, w8a8's activation scale).
void PrintTensorFormats(const Package& pkg, bool each) {
  const std::vector<TensorDesc> descs = pkg.family->Tensors(pkg.config);
  std::vector<std::pair<DType, std::pair<int, int64_t>>> formats;  // in order of first use
  for (const TensorRef& t : pkg.weights.tensors) {
    auto it = std::find_if(formats.begin(), formats.end(), [&](const auto& f) { return f.first == t.dtype; });
    if (it == formats.end()) it = formats.insert(formats.end(), {t.dtype, {0, 0}});
    ++it->second.first;
    it->second.second += t.bytes();
  }
  std::vector<std::string> parts;
  for (const auto& [dtype, count] : formats) {
    parts.push_back(absl::StrFormat("%s %d tensors %d bytes", DTypeName(dtype), count.first, count.second));
  }
  std::cout << "formats: " << absl::StrJoin(parts, ", ") << (each ? "\n" : " (--tensors lists each)\n") << "\n";
  if (!each) return;
  for (size_t i = 0; i < descs.size() && i < pkg.weights.tensors.size(); ++i) {
    const TensorRef& t = pkg.weights.tensors[i];
    const std::string shape = descs[i].kind == TensorKind::kVector ? absl::StrCat(t.cols) : absl::StrCat(t.rows, "x", t.cols);
    std::string line = absl::StrFormat("  %-40s %-6s %-14s%s", descs[i].name, DTypeName(t.dtype), shape,
                                       t.dtype == DType::kW8 ? absl::StrFormat(" act_scale %g", t.act_scale) : "");
    std::cout << absl::StripTrailingAsciiWhitespace(line) << "\n";
  }
  std::cout << "\n";
}

absl::Status Inspect(const std::vector<std::string>& args) {
  std::vector<std::string> dirs;
  bool each = false;
  for (const std::string& a : args) {
    if (a == "--tensors") {
      each = true;
    } else {
      dirs.push_back(a);
    }
  }
  if (dirs.size() != 1) return absl::InvalidArgumentError("usage: tailor inspect DIR [--tensors]");
  TAILOR_ASSIGN_OR_RETURN(auto pkg, OpenPackage(dirs[0]));
  const ModelConfig& c = pkg->config;
  std::cout << absl::StrFormat(
      "package %s\nmodel %s (%s, family %s, from %s): dim %d, %d layers, %d heads (%d kv), head_dim %d, ffn %d, vocab %d, "
      "max positions %d\nweights %s, %d bytes; kv %s, %d positions per block; target %s%s\n"
      "built by tailor %s with %s\n\n",
      dirs[0], c.name, c.architecture, c.family, pkg->source_format, c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim,
      c.vocab_size, c.max_positions, DTypeName(pkg->weight_dtype), pkg->weights.total_bytes,
      DTypeName(pkg->kv_dtype), pkg->kv_block, pkg->target == Target::kGenerated ? "generated" : "native",
      pkg->kernel_isa.empty() ? "" : absl::StrCat(" (", pkg->kernel_isa, " kernels)"), pkg->tailor_version,
      pkg->compiler);
  PrintTensorFormats(*pkg, each);
  if (pkg->calibration) {
    const PackageCalibration& cal = *pkg->calibration;
    std::cout << absl::StrFormat("calibration profile %s (checksum %s), %s%s, over %s\n\n", cal.profile,
                                 cal.profile_checksum, cal.method,
                                 cal.method == "percentile" ? absl::StrFormat(" %g", cal.percentile) : "",
                                 absl::StrJoin(cal.specializations, " "));
  }
  // cost_ms: rows at the end of their context; start_ms: at its start (- when not known).
  std::cout << absl::StrFormat("%3s  %10s %7s %7s %4s %12s %12s %10s %10s %12s  %s\n", "#", "batch_size", "seq_len",
                               "ctx_len", "ols", "arena", "cost_ms", "start_ms", "cost", "tokens/s", "kernel");
  for (size_t i = 0; i < pkg->specs.size(); ++i) {
    const PackageSpec& s = pkg->specs[i];
    const double tps = s.spec.shape.batch_size * s.spec.shape.seq_len / s.cost_seconds;
    const std::string start_ms =
        s.cost_seconds_at_start > 0 ? absl::StrFormat("%.4f", s.cost_seconds_at_start * 1e3) : std::string("-");
    std::cout << absl::StrFormat("%3d  %10d %7d %7d %4d %12d %12.4f %10s %10s %12.1f  %s\n", i,
                                 s.spec.shape.batch_size, s.spec.shape.seq_len, s.spec.shape.ctx_len, s.spec.ols,
                                 s.arena_bytes, s.cost_seconds * 1e3, start_ms, s.cost_source, tps,
                                 s.kernel_object.empty() ? "native" : s.kernel_object);
  }
  return absl::OkStatus();
}

}  // namespace

int RunCompile(const std::vector<std::string>& args, const Environment& env) {
  if (PrintHelpIfAsked(args, "usage: tailor compile --model PATH --specializations FILE --out DIR [options]\n",
                       CompileFlags())) {
    return 0;
  }
  absl::Status s = Compile(args, env);
  return s.ok() ? 0 : ReportError(s);
}

int RunInspect(const std::vector<std::string>& args) {
  if (PrintHelpIfAsked(args, "usage: tailor inspect DIR [--tensors]\n",
                       {{"tensors", false, {}, "list every tensor with its format"}})) {
    return 0;
  }
  absl::Status s = Inspect(args);
  return s.ok() ? 0 : ReportError(s);
}

}  // namespace tailor
