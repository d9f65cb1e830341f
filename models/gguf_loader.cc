// GGUF v3 loader for the architectures of the registered families (llama, qwen2, qwen3):
// F32/F16/BF16 and the block types Q8_0/Q4_0/Q4_K/Q5_K/Q6_K (kept in ggml's layouts; readers
// dequantize rows with ref::DequantizeRow), memory-mapped. Tensor names are the families'
// canonical names.
// ggml's llama rope is on interleaved pairs (converters permute Hugging Face q/k rows); qwen
// keeps Hugging Face's order (NEOX rope).
#include <algorithm>
#include <cstring>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/gguf_file.h"
#include "common/status_macros.h"
#include "models/loader_util.h"

namespace tailor::loader {
namespace {

namespace fs = std::filesystem;

// The ggml tensor types tailor loads, as their DTypes (block layouts kept as the file has them;
// ref::DequantizeRow reads them all).
constexpr struct {
  uint32_t ggml_type;
  DType dtype;
} kGgmlTypes[] = {
    {kGgmlTypeF32, DType::kF32},   {kGgmlTypeF16, DType::kF16},   {kGgmlTypeQ4_0, DType::kQ4_0},
    {kGgmlTypeQ8_0, DType::kQ8_0}, {kGgmlTypeQ4_K, DType::kQ4_K}, {kGgmlTypeQ5_K, DType::kQ5_K},
    {kGgmlTypeQ6_K, DType::kQ6_K}, {kGgmlTypeBF16, DType::kBF16},
};

std::optional<DType> DTypeOfGgmlType(uint32_t ggml_type) {
  for (const auto& t : kGgmlTypes) {
    if (t.ggml_type == ggml_type) return t.dtype;
  }
  return std::nullopt;
}

// "F32 (0), F16 (1), ...".
std::string SupportedGgmlTypes() {
  std::string out;
  for (const auto& t : kGgmlTypes) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", GgmlTypeLabel(t.ggml_type));
  }
  return out;
}

absl::StatusOr<WeightView> TakeTensor(const GgufFile& g, const std::string& name,
                                      const std::string& source) {
  const GgufTensorInfo* t = g.FindTensor(name);
  if (t == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": missing tensor '", name, "'"));
  }
  const std::optional<DType> dtype = DTypeOfGgmlType(t->ggml_type);
  if (!dtype) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": tensor '", name, "' has ggml type ", GgmlTypeLabel(t->ggml_type),
        ", which tailor does not load; supported: ", SupportedGgmlTypes()));
  }
  WeightView v;
  v.dtype = *dtype;
  if (t->dims.empty() || t->dims.size() > 2) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": tensor '", name, "' has ",
                                                   t->dims.size(), " dimensions; expected 1 or 2"));
  }
  v.cols = t->dims[0];
  v.rows = t->dims.size() == 2 ? t->dims[1] : 1;
  if (const int64_t block = BlockElements(v.dtype); v.cols % block != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": tensor '", name, "' is ", GgmlTypeLabel(t->ggml_type), " with rows of ", v.cols,
        " elements, not a multiple of its block of ", block));
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

absl::StatusOr<std::unique_ptr<Model>> LoadGguf(const fs::path& file, const LoadOptions& options) {
  TAILOR_ASSIGN_OR_RETURN(auto g, GgufFile::Open(file));
  return LoadGguf(std::move(g), options);
}

absl::StatusOr<std::unique_ptr<Model>> LoadGguf(std::unique_ptr<GgufFile> g, const LoadOptions& options) {
  const fs::path file = g->path();
  const std::string source = file.string();
  const std::string arch = g->GetString("general.architecture").value_or("");
  const ModelFamily* family = FamilyForGgufArchitecture(arch);
  if (family == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": unsupported architecture '", arch,
                                                   "' (supported: ", SupportedGgufArchitectures(), ")"));
  }
  auto refuse = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", what, " is not implemented by tailor; refusing to load"));
  };
  const std::string a = arch + ".";
  if (auto n = g->GetInt(a + "expert_count"); n && *n > 0) {
    return refuse(absl::StrCat("mixture of experts (", *n, " experts)"));
  }

  auto model = std::make_unique<Model>();
  model->format = ModelFormat::kGguf;
  model->source = file;
  ModelConfig& c = model->config;
  c.architecture = arch;
  c.name = g->GetString("general.name").value_or(file.stem().string());
  TAILOR_ASSIGN_OR_RETURN(c.dim, RequiredInt(*g, a + "embedding_length", source));
  TAILOR_ASSIGN_OR_RETURN(c.n_layers, RequiredInt(*g, a + "block_count", source));
  TAILOR_ASSIGN_OR_RETURN(c.ffn_dim, RequiredInt(*g, a + "feed_forward_length", source));
  TAILOR_ASSIGN_OR_RETURN(c.n_heads, RequiredInt(*g, a + "attention.head_count", source));
  TAILOR_ASSIGN_OR_RETURN(c.max_positions, RequiredInt(*g, a + "context_length", source));
  c.n_kv_heads = static_cast<int32_t>(g->GetInt(a + "attention.head_count_kv").value_or(c.n_heads));
  c.head_dim = c.n_heads > 0 ? c.dim / c.n_heads : 0;
  if (auto kl = g->GetInt(a + "attention.key_length")) c.head_dim = static_cast<int32_t>(*kl);
  if (auto rd = g->GetInt(a + "rope.dimension_count"); rd && *rd != c.head_dim) {
    return refuse(absl::StrCat("partial rope (rope dimension ", *rd, " of head_dim ", c.head_dim, ")"));
  }
  c.rope_theta = static_cast<float>(g->GetFloat(a + "rope.freq_base").value_or(10000.0));
  c.rms_eps = static_cast<float>(g->GetFloat(a + "attention.layer_norm_rms_epsilon").value_or(1e-5));
  c.rope_layout = family->gguf_rope_layout();
  if (c.head_dim <= 0 || c.head_dim % 2 != 0 || c.head_dim > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": head_dim ", c.head_dim, " must be even and in [2, 4096]"));
  }
  // Rope scaling: linear in the metadata; Llama 3's as per-frequency divisors in rope_freqs.
  const std::string scaling = g->GetString(a + "rope.scaling.type").value_or("none");
  std::vector<double> inv = DefaultRopeInvFreq(c.rope_theta, c.head_dim);
  bool scaled = false;
  if (scaling == "linear") {
    const double factor = g->GetFloat(a + "rope.scaling.factor").value_or(0.0);
    if (!(factor > 0)) return absl::InvalidArgumentError(absl::StrCat(source, ": linear rope scaling needs a positive rope.scaling.factor"));
    for (double& f : inv) f /= factor;
    scaled = true;
  } else if (scaling != "none") {
    return refuse(absl::StrCat("rope scaling '", scaling, "'"));
  }
  if (g->FindTensor("rope_freqs.weight") != nullptr) {
    TAILOR_ASSIGN_OR_RETURN(WeightView factors, TakeTensor(*g, "rope_freqs.weight", source));
    if (factors.dtype != DType::kF32 || factors.rows * factors.cols != static_cast<int64_t>(inv.size())) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": rope_freqs.weight must hold ", inv.size(),
                                                     " F32 factors (head_dim / 2)"));
    }
    for (size_t i = 0; i < inv.size(); ++i) {
      float f;
      std::memcpy(&f, factors.data + 4 * i, 4);
      if (!(f > 0)) return absl::InvalidArgumentError(absl::StrCat(source, ": rope_freqs.weight has a factor <= 0"));
      inv[i] /= f;
    }
    scaled = true;
  }
  if (scaled) c.rope_inv_freq = std::move(inv);

  const GgufTensorInfo* embd = g->FindTensor("token_embd.weight");
  c.vocab_size = static_cast<int32_t>(g->GetInt(a + "vocab_size").value_or(embd && embd->dims.size() == 2 ? embd->dims[1] : 0));
  // Special tokens and BOS: SentencePiece vocabularies add BOS unless told otherwise; byte-level
  // BPE (gpt2) ones only when told (as llama.cpp reads these files).
  const bool spm = g->GetString("tokenizer.ggml.model").value_or("llama") == "llama";
  c.bos_id = static_cast<int32_t>(g->GetInt("tokenizer.ggml.bos_token_id").value_or(1));
  c.eos_ids = {static_cast<int32_t>(g->GetInt("tokenizer.ggml.eos_token_id").value_or(2))};
  for (const char* key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    if (auto id = g->GetInt(key); id && std::find(c.eos_ids.begin(), c.eos_ids.end(), *id) == c.eos_ids.end()) {
      c.eos_ids.push_back(static_cast<int32_t>(*id));
    }
  }
  c.add_bos = g->GetBool("tokenizer.ggml.add_bos_token").value_or(spm);
  model->chat_template = g->GetString("tokenizer.chat_template").value_or("");
  if (auto tokens = g->GetStringArray("tokenizer.ggml.tokens")) {
    auto text = [&](int32_t id) { return id >= 0 && id < static_cast<int32_t>(tokens->size()) ? (*tokens)[id] : std::string(); };
    model->bos_token = text(c.bos_id);
    model->eos_token = text(c.eos_ids[0]);
  }
  c.tied_embeddings = g->FindTensor("output.weight") == nullptr;
  TAILOR_RETURN_IF_ERROR(ValidateConfig(c, source));

  SetFamily(model.get(), *family);
  TAILOR_RETURN_IF_ERROR(TakeWeights(model.get(), source, [&](const TensorDesc& t) {
    return TakeTensor(*g, t.name, source);
  }));
  model->files.push_back(g->file());
  model->tokenizer_path = options.tokenizer ? *options.tokenizer : file;
  return model;
}

}  // namespace tailor::loader
