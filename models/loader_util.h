// Helpers shared by the format-specific loaders (internal to models/).
#ifndef TAILOR_MODELS_LOADER_UTIL_H_
#define TAILOR_MODELS_LOADER_UTIL_H_

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "models/llama_model.h"
#include "models/model_loader.h"

namespace tailor::loader {

absl::StatusOr<std::unique_ptr<LlamaModel>> LoadHuggingFace(const std::filesystem::path& dir,
                                                            const LoadOptions& options);
absl::StatusOr<std::unique_ptr<LlamaModel>> LoadGguf(const std::filesystem::path& file,
                                                     const LoadOptions& options);
absl::StatusOr<std::unique_ptr<LlamaModel>> LoadLlama2c(const std::filesystem::path& file,
                                                        const LoadOptions& options);

// Checks dimensions for consistency (positive, heads divide, even head_dim, ids in range).
absl::Status ValidateConfig(const LlamaConfig& c, const std::string& source);

// Checks that `w` is [rows, cols]; the error names the source file and the tensor.
absl::Status CheckShape(const std::string& source, const std::string& tensor, const WeightView& w,
                        int64_t rows, int64_t cols);

// Checks that every weight of the model has the shape the config implies.
absl::Status CheckAllShapes(const LlamaModel& m, const std::string& source);

}  // namespace tailor::loader

#endif  // TAILOR_MODELS_LOADER_UTIL_H_
