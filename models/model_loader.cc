#include "models/model_loader.h"

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

absl::StatusOr<std::unique_ptr<LlamaModel>> LoadModel(const std::filesystem::path& path,
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

absl::Status ValidateConfig(const LlamaConfig& c, const std::string& source) {
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

absl::Status CheckShape(const std::string& source, const std::string& tensor, const WeightView& w,
                        int64_t rows, int64_t cols) {
  if (w.rows != rows || w.cols != cols) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": tensor '", tensor, "' has shape [", w.rows, ", ", w.cols,
                     "] but the configuration needs [", rows, ", ", cols, "]"));
  }
  return absl::OkStatus();
}

absl::Status CheckAllShapes(const LlamaModel& m, const std::string& source) {
  const LlamaConfig& c = m.config;
  const LlamaWeights& w = m.weights;
  TAILOR_RETURN_IF_ERROR(CheckShape(source, "token embedding", w.token_embedding, c.vocab_size, c.dim));
  TAILOR_RETURN_IF_ERROR(CheckShape(source, "output norm", w.output_norm, 1, c.dim));
  TAILOR_RETURN_IF_ERROR(CheckShape(source, "output", w.output, c.vocab_size, c.dim));
  if (static_cast<int32_t>(w.layers.size()) != c.n_layers) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": found ", w.layers.size(),
                                                   " layers, expected ", c.n_layers));
  }
  for (int32_t l = 0; l < c.n_layers; ++l) {
    const LlamaLayerWeights& L = w.layers[l];
    std::string p = absl::StrCat("layer ", l, " ");
    TAILOR_RETURN_IF_ERROR(CheckShape(source, p + "attention norm", L.attn_norm, 1, c.dim));
    TAILOR_RETURN_IF_ERROR(CheckShape(source, p + "q projection", L.wq, c.q_dim(), c.dim));
    TAILOR_RETURN_IF_ERROR(CheckShape(source, p + "k projection", L.wk, c.kv_dim(), c.dim));
    TAILOR_RETURN_IF_ERROR(CheckShape(source, p + "v projection", L.wv, c.kv_dim(), c.dim));
    TAILOR_RETURN_IF_ERROR(CheckShape(source, p + "o projection", L.wo, c.dim, c.q_dim()));
    TAILOR_RETURN_IF_ERROR(CheckShape(source, p + "ffn norm", L.ffn_norm, 1, c.dim));
    TAILOR_RETURN_IF_ERROR(CheckShape(source, p + "gate projection", L.w_gate, c.ffn_dim, c.dim));
    TAILOR_RETURN_IF_ERROR(CheckShape(source, p + "up projection", L.w_up, c.ffn_dim, c.dim));
    TAILOR_RETURN_IF_ERROR(CheckShape(source, p + "down projection", L.w_down, c.dim, c.ffn_dim));
  }
  return absl::OkStatus();
}

}  // namespace loader
}  // namespace tailor
