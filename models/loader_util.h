// Helpers shared by the format-specific loaders (internal to models/).
#ifndef TAILOR_MODELS_LOADER_UTIL_H_
#define TAILOR_MODELS_LOADER_UTIL_H_

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "models/family.h"
#include "models/model.h"
#include "models/model_loader.h"

namespace tailor::loader {

absl::StatusOr<std::unique_ptr<Model>> LoadHuggingFace(const std::filesystem::path& dir,
                                                            const LoadOptions& options);
absl::StatusOr<std::unique_ptr<Model>> LoadGguf(const std::filesystem::path& file,
                                                     const LoadOptions& options);
absl::StatusOr<std::unique_ptr<Model>> LoadLlama2c(const std::filesystem::path& file,
                                                        const LoadOptions& options);

// Checks dimensions for consistency (positive, heads divide, even head_dim, ids in range).
absl::Status ValidateConfig(const ModelConfig& c, const std::string& source);

// Sets model->family and the config's family name and lists the family's tensors.
void SetFamily(Model* model, const ModelFamily& family);

// Fills model->weights, one per model->tensors entry, with `take(tensor)`, then checks every
// shape against the configuration (CheckWeights).
absl::Status TakeWeights(Model* model, const std::string& source,
                         const std::function<absl::StatusOr<WeightView>(const TensorDesc&)>& take);

}  // namespace tailor::loader

#endif  // TAILOR_MODELS_LOADER_UTIL_H_
