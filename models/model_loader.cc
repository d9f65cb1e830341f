#include "models/model_loader.h"

#include <cmath>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "models/loader_util.h"

namespace tailor {

const char* ModelFormatName(ModelFormat f) {
  switch (f) {
    case ModelFormat::kHuggingFace: return "huggingface";
    case ModelFormat::kGguf: return "gguf";
    case ModelFormat::kLlama2c: return "llama2c";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<Model>> LoadModel(const std::filesystem::path& path,
                                                      const LoadOptions& options) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat(path.string(), ": no such file or directory"));
  }
  if (std::filesystem::is_directory(path, ec)) return loader::LoadHuggingFace(path, options);
  char magic[4] = {};
  {
    std::ifstream in(path, std::ios::binary);
    in.read(magic, 4);
  }
  if (std::memcmp(magic, "GGUF", 4) == 0) return loader::LoadGguf(path, options);
  if (path.extension() == ".gguf") {
    return absl::InvalidArgumentError(absl::StrCat(
        path.string(), ": not a GGUF file (wrong magic number; expected \"GGUF\")"));
  }
  if (path.extension() == ".safetensors" || path.filename() == "config.json") {
    return loader::LoadHuggingFace(path.parent_path(), options);
  }
  return loader::LoadLlama2c(path, options);
}

namespace loader {

absl::Status ValidateConfig(const ModelConfig& c, const std::string& source) {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": invalid model configuration: ", what));
  };
  if (c.dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.head_dim <= 0 ||
      c.ffn_dim <= 0 || c.vocab_size <= 0 || c.max_positions <= 0) {
    return bad(absl::StrCat("dimensions must be positive (dim ", c.dim, ", layers ", c.n_layers,
                            ", heads ", c.n_heads, ", kv heads ", c.n_kv_heads, ", head_dim ",
                            c.head_dim, ", ffn ", c.ffn_dim, ", vocab ", c.vocab_size,
                            ", max positions ", c.max_positions, ")"));
  }
  if (c.n_heads % c.n_kv_heads != 0) {
    return bad(absl::StrCat("attention heads (", c.n_heads, ") must be a multiple of kv heads (",
                            c.n_kv_heads, ")"));
  }
  if (c.head_dim % 2 != 0) return bad(absl::StrCat("head_dim ", c.head_dim, " must be even"));
  if (!(c.rms_eps > 0) || !(c.rope_theta > 0)) {
    return bad("rms_norm_eps and rope_theta must be positive");
  }
  if (!c.rope_inv_freq.empty() && c.rope_inv_freq.size() != static_cast<size_t>(c.head_dim / 2)) {
    return bad(absl::StrCat(c.rope_inv_freq.size(), " rotary frequencies for head_dim ", c.head_dim,
                            " (expected ", c.head_dim / 2, ")"));
  }
  for (double f : c.rope_inv_freq) {
    if (!(f > 0) || !std::isfinite(f)) return bad("rotary frequencies must be positive and finite");
  }
  if (c.bos_id < 0 || c.bos_id >= c.vocab_size) {
    return bad(absl::StrCat("bos id ", c.bos_id, " outside the vocabulary [0, ", c.vocab_size, ")"));
  }
  for (int32_t e : c.eos_ids) {
    if (e < 0 || e >= c.vocab_size) {
      return bad(absl::StrCat("eos id ", e, " outside the vocabulary [0, ", c.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

void SetFamily(Model* model, const ModelFamily& family) {
  model->family = &family;
  model->config.family = std::string(family.name());
  model->tensors = family.Tensors(model->config);
}

absl::Status TakeWeights(Model* model, const std::string& source,
                         const std::function<absl::StatusOr<WeightView>(const TensorDesc&)>& take) {
  model->weights.clear();
  for (const TensorDesc& t : model->tensors) {
    TAILOR_ASSIGN_OR_RETURN(WeightView w, take(t));
    model->weights.push_back(w);
  }
  return CheckWeights(*model, source);
}

}  // namespace loader
}  // namespace tailor
