// The tokenizer of a model or of a compiled package, set up with the model's BOS rule, and the
// prompt encoding every front end shares. Tokenizers are immutable once loaded.
#ifndef TAILOR_API_MODEL_TOKENIZER_H_
#define TAILOR_API_MODEL_TOKENIZER_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/package.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"

namespace tailor {

// Loads `path` (a tokenizer file, or a package's stored one) for a model of `config`: checked
// against its vocabulary size; SentencePiece tokenizers add BOS as config.add_bos says
// (tokenizer_config.json / GGUF add_bos_token), tokenizer.json ones as their post-processor does.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFor(const std::filesystem::path& path,
                                                            const ModelConfig& config);
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadModelTokenizer(const Model& model);
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadPackageTokenizer(const Package& package);

// The ids of a text prompt: with `add_special_tokens`, what the tokenizer adds (BOS); text of
// special tokens inside it becomes those tokens where the tokenizer says so (tokenizer.json).
// An empty result becomes BOS alone (`bos_id`): a model needs one position to start from.
std::vector<int32_t> EncodePrompt(const Tokenizer& tokenizer, std::string_view text, bool add_special_tokens,
                                  int32_t bos_id);

}  // namespace tailor

#endif  // TAILOR_API_MODEL_TOKENIZER_H_
