// Loads a llama-family model from any supported format:
//   a Hugging Face directory (config.json + *.safetensors [+ index] + tokenizer.model),
//   a GGUF v3 file (general.architecture = llama; F32/F16/Q8_0 tensors; vocabulary inside),
//   a llama2.c checkpoint (.bin) with a tokenizer beside it.
// Every error names the file and what is wrong; configurations this code does not implement
// are refused, never silently ignored.
#ifndef TAILOR_MODELS_MODEL_LOADER_H_
#define TAILOR_MODELS_MODEL_LOADER_H_

#include <filesystem>
#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "models/model.h"

namespace tailor {

struct LoadOptions {
  // A tokenizer to use instead of the one found with the model (.model, llama2.c .bin, .gguf).
  std::optional<std::filesystem::path> tokenizer;
};

absl::StatusOr<std::unique_ptr<Model>> LoadModel(const std::filesystem::path& path,
                                                      const LoadOptions& options = {});

}  // namespace tailor

#endif  // TAILOR_MODELS_MODEL_LOADER_H_
