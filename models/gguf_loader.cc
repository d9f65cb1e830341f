// GGUF v3 loader for general.architecture = llama: F32/F16/BF16/Q8_0 tensors, memory-mapped.
// ggml's llama rope is on interleaved pairs (converters un-permute Hugging Face q/k rows).
#include "absl/strings/str_cat.h"
#include "common/gguf_file.h"
#include "common/status_macros.h"
#include "models/loader_util.h"

namespace tailor::loader {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<WeightView> TakeTensor(const GgufFile& g, const std::string& name,
                                      const std::string& source) {
  const GgufTensorInfo* t = g.FindTensor(name);
  if (t == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": missing tensor '", name, "'"));
  }
  WeightView v;
  switch (t->ggml_type) {
    case 0: v.dtype = DType::kF32; break;
    case 1: v.dtype = DType::kF16; break;
    case 8: v.dtype = DType::kQ8_0; break;
    case 30: v.dtype = DType::kBF16; break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": tensor '", name, "' has ggml type ", t->ggml_type,
          "; supported: F32 (0), F16 (1), Q8_0 (8), BF16 (30)"));
  }
  if (t->dims.empty() || t->dims.size() > 2) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": tensor '", name, "' has ",
                                                   t->dims.size(), " dimensions; expected 1 or 2"));
  }
  v.cols = t->dims[0];
  v.rows = t->dims.size() == 2 ? t->dims[1] : 1;
  if (v.dtype == DType::kQ8_0 && v.cols % kQ8_0BlockSize != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": tensor '", name, "' is Q8_0 with ", v.cols, " columns, not a multiple of 32"));
  }
  if (static_cast<int64_t>(t->nbytes) != v.bytes()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": tensor '", name, "' holds ",
                                                   t->nbytes, " bytes, expected ", v.bytes()));
  }
  v.data = t->data;
  return v;
}

absl::StatusOr<int32_t> RequiredInt(const GgufFile& g, const std::string& key,
                                    const std::string& source) {
  auto v = g.GetInt(key);
  if (!v) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": missing metadata '", key, "'"));
  }
  return static_cast<int32_t>(*v);
}

}  // namespace

absl::StatusOr<std::unique_ptr<LlamaModel>> LoadGguf(const fs::path& file,
                                                     const LoadOptions& options) {
  const std::string source = file.string();
  TAILOR_ASSIGN_OR_RETURN(auto g, GgufFile::Open(file));
  std::string arch = g->GetString("general.architecture").value_or("");
  if (arch != "llama") {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": unsupported architecture '", arch, "' (supported: llama)"));
  }
  auto refuse = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", what, " is not implemented by tailor; refusing to load"));
  };
  if (auto t = g->GetString("llama.rope.scaling.type"); t && *t != "none") {
    return refuse(absl::StrCat("rope scaling '", *t, "'"));
  }
  if (auto n = g->GetInt("llama.expert_count"); n && *n > 0) {
    return refuse(absl::StrCat("mixture of experts (", *n, " experts)"));
  }

  auto model = std::make_unique<LlamaModel>();
  model->format = ModelFormat::kGguf;
  model->source = file;
  LlamaConfig& c = model->config;
  c.name = g->GetString("general.name").value_or(file.stem().string());
  TAILOR_ASSIGN_OR_RETURN(c.dim, RequiredInt(*g, "llama.embedding_length", source));
  TAILOR_ASSIGN_OR_RETURN(c.n_layers, RequiredInt(*g, "llama.block_count", source));
  TAILOR_ASSIGN_OR_RETURN(c.ffn_dim, RequiredInt(*g, "llama.feed_forward_length", source));
  TAILOR_ASSIGN_OR_RETURN(c.n_heads, RequiredInt(*g, "llama.attention.head_count", source));
  TAILOR_ASSIGN_OR_RETURN(c.max_positions, RequiredInt(*g, "llama.context_length", source));
  c.n_kv_heads = static_cast<int32_t>(g->GetInt("llama.attention.head_count_kv").value_or(c.n_heads));
  c.head_dim = c.n_heads > 0 ? c.dim / c.n_heads : 0;
  if (auto kl = g->GetInt("llama.attention.key_length")) c.head_dim = static_cast<int32_t>(*kl);
  if (auto rd = g->GetInt("llama.rope.dimension_count"); rd && *rd != c.head_dim) {
    return refuse(absl::StrCat("partial rope (rope dimension ", *rd, " of head_dim ", c.head_dim, ")"));
  }
  c.rope_theta = static_cast<float>(g->GetFloat("llama.rope.freq_base").value_or(10000.0));
  c.rms_eps = static_cast<float>(g->GetFloat("llama.attention.layer_norm_rms_epsilon").value_or(1e-5));
  c.rope_layout = RopeLayout::kInterleaved;

  LlamaWeights& w = model->weights;
  TAILOR_ASSIGN_OR_RETURN(w.token_embedding, TakeTensor(*g, "token_embd.weight", source));
  c.vocab_size = static_cast<int32_t>(
      g->GetInt("llama.vocab_size").value_or(w.token_embedding.rows));
  c.bos_id = static_cast<int32_t>(g->GetInt("tokenizer.ggml.bos_token_id").value_or(1));
  c.eos_ids = {static_cast<int32_t>(g->GetInt("tokenizer.ggml.eos_token_id").value_or(2))};
  c.add_bos = g->GetBool("tokenizer.ggml.add_bos_token").value_or(true);
  model->chat_template = g->GetString("tokenizer.chat_template").value_or("");
  TAILOR_RETURN_IF_ERROR(ValidateConfig(c, source));

  TAILOR_ASSIGN_OR_RETURN(w.output_norm, TakeTensor(*g, "output_norm.weight", source));
  if (g->FindTensor("output.weight") != nullptr) {
    TAILOR_ASSIGN_OR_RETURN(w.output, TakeTensor(*g, "output.weight", source));
  } else {
    c.tied_embeddings = true;
    w.output = w.token_embedding;
  }
  for (int32_t l = 0; l < c.n_layers; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    LlamaLayerWeights L;
    TAILOR_ASSIGN_OR_RETURN(L.attn_norm, TakeTensor(*g, p + "attn_norm.weight", source));
    TAILOR_ASSIGN_OR_RETURN(L.wq, TakeTensor(*g, p + "attn_q.weight", source));
    TAILOR_ASSIGN_OR_RETURN(L.wk, TakeTensor(*g, p + "attn_k.weight", source));
    TAILOR_ASSIGN_OR_RETURN(L.wv, TakeTensor(*g, p + "attn_v.weight", source));
    TAILOR_ASSIGN_OR_RETURN(L.wo, TakeTensor(*g, p + "attn_output.weight", source));
    TAILOR_ASSIGN_OR_RETURN(L.ffn_norm, TakeTensor(*g, p + "ffn_norm.weight", source));
    TAILOR_ASSIGN_OR_RETURN(L.w_gate, TakeTensor(*g, p + "ffn_gate.weight", source));
    TAILOR_ASSIGN_OR_RETURN(L.w_up, TakeTensor(*g, p + "ffn_up.weight", source));
    TAILOR_ASSIGN_OR_RETURN(L.w_down, TakeTensor(*g, p + "ffn_down.weight", source));
    w.layers.push_back(L);
  }
  TAILOR_RETURN_IF_ERROR(CheckAllShapes(*model, source));
  model->files.push_back(g->file());
  model->tokenizer_path = options.tokenizer ? *options.tokenizer : file;
  return model;
}

}  // namespace tailor::loader
