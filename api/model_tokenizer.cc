#include "api/model_tokenizer.h"

#include "common/status_macros.h"

namespace tailor {

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFor(const std::filesystem::path& path,
                                                            const ModelConfig& config) {
  TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::Load(path, config.vocab_size));
  tokenizer->set_add_bos(config.add_bos);
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadModelTokenizer(const Model& model) {
  return LoadTokenizerFor(model.tokenizer_path, model.config);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadPackageTokenizer(const Package& package) {
  return LoadTokenizerFor(package.dir / package.tokenizer_file, package.config);
}

std::vector<int32_t> EncodePrompt(const Tokenizer& tokenizer, std::string_view text, bool add_special_tokens,
                                  int32_t bos_id) {
  EncodeOptions options;
  options.add_special_tokens = add_special_tokens;
  std::vector<int32_t> ids = tokenizer.Encode(text, options);
  if (ids.empty()) ids.push_back(bos_id);
  return ids;
}

}  // namespace tailor
