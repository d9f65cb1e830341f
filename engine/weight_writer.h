// Writes a package's weights.bin: every tensor of the model's family in its package dtype
// (float formats converted, the packed int8/int4 formats of kernels/q8_kernels.h quantized or
// repacked from GGUF blocks), 64-byte aligned, q/k features reordered for interleaved rope.
#ifndef TAILOR_ENGINE_WEIGHT_WRITER_H_
#define TAILOR_ENGINE_WEIGHT_WRITER_H_

#include <filesystem>

#include "absl/status/statusor.h"
#include "engine/compiler.h"
#include "engine/program.h"
#include "models/model.h"

namespace tailor {

// Writes `path` and returns where each tensor lives (family order).
absl::StatusOr<WeightLayout> WriteWeights(const Model& model, const CompileOptions& options,
                                          const std::filesystem::path& path);

}  // namespace tailor

#endif  // TAILOR_ENGINE_WEIGHT_WRITER_H_
