// Helpers shared by the format-specific loaders (internal to models/).
#ifndef TAILOR_MODELS_LOADER_UTIL_H_
#define TAILOR_MODELS_LOADER_UTIL_H_

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/gguf_file.h"
#include "common/mapped_file.h"
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

// The same loaders over bytes already read (file->path() names them in errors; the GGUF one
// takes the parsed file). The path loaders above map the file and call these.
absl::StatusOr<std::unique_ptr<Model>> LoadGguf(std::unique_ptr<GgufFile> g, const LoadOptions& options);
absl::StatusOr<std::unique_ptr<Model>> LoadLlama2c(std::shared_ptr<const MappedFile> mapped,
                                                        const LoadOptions& options);

// Reads config.json's text (`source` names it in errors) into `c`: dimensions, rope, ids;
// returns the family its architectures (or model_type) name.
absl::StatusOr<const ModelFamily*> ParseHfConfig(std::string_view text, const std::string& source,
                                                  ModelConfig* c);

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
