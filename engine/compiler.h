// `tailor compile`: one model and a specialization config -> a package (engine/package.h).
#ifndef TAILOR_ENGINE_COMPILER_H_
#define TAILOR_ENGINE_COMPILER_H_

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/codegen.h"
#include "engine/executor.h"
#include "engine/package.h"
#include "engine/profile.h"
#include "models/model.h"

namespace tailor {

struct CompileOptions {
  std::filesystem::path out;
  // f32, f16, bf16, q8 (q8_0) or q4 for matrices (norms stay f32; see TensorDType in compiler.cc).
  DType weight_dtype = DType::kF32;
  bool quantize_embeddings = false;  // quantized packages: also the embedding and output projection
  // Quantized GGUF tensors keep their format (Q8_0 -> q8_0, Q4_0 -> q4, exactly; K-quants ->
  // q8_0) and float ones take weight_dtype (`tailor compile` without --dtype).
  bool keep_source_formats = false;
  // w8a8 (needs `calibration`): SmoothQuant's migration strength alpha in [0, 1] for matmuls fed
  // by an RMSNorm (their input channels scaled by s_j = max|x_j|^alpha / max|w_j|^(1 - alpha),
  // folded into the norm's weight); 0 turns it off.
  float smoothquant_alpha = 0.5f;
  DType kv_dtype = DType::kF32;
  int32_t kv_block = 16;
  Target target = Target::kGenerated;
  bool compile_only = false;  // estimate costs from bytes and FLOPs instead of timing
  std::optional<std::filesystem::path> cost_table;  // JSON {"b1_s1_c128": seconds, ...}
  BuildOptions build;
  // The tokenizer as the package stores it (Tokenizer::Serialize): file name and bytes.
  std::string tokenizer_file = "tokenizer.model";
  std::string tokenizer_bytes;
  std::function<void(const std::string&)> progress;  // one line per step, for stderr
  // From -load-profile: per profiled tensor (engine/profile.h: matmul inputs by weight name,
  // "blk.N.k"/"blk.N.v") its clipping range and channel mean squares; null without a profile.
  std::shared_ptr<const CalibrationTable> calibration;
};

absl::Status CompilePackage(const Model& model, const std::vector<Specialization>& specs,
                            const CompileOptions& options);

// Seconds per step estimated from the bytes a program reads and the FLOPs it does, with every
// row's tokens ending at position `end_pos` (attention reads every earlier position).
double EstimateStepSeconds(const Program& program, const ModelConfig& config, int32_t end_pos);

}  // namespace tailor

#endif  // TAILOR_ENGINE_COMPILER_H_
