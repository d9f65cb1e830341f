// A loaded model: its configuration, its family (models/family.h) and one weight view per tensor
// the family names. A Model is immutable after loading; weights are views into memory-mapped
// files (or into buffers the model owns where a format needs conversion). Safe to share across
// threads.
#ifndef TAILOR_MODELS_MODEL_H_
#define TAILOR_MODELS_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/dtype.h"
#include "common/mapped_file.h"
#include "kernels/matrix_view.h"

namespace tailor {

class ModelFamily;

// Where the weights came from; decides conventions such as the rope layout and stop tokens.
enum class ModelFormat { kHuggingFace, kGguf, kLlama2c };
const char* ModelFormatName(ModelFormat f);

// Rotary embedding layout of q/k features within a head.
//   kInterleaved: rotates pairs (2i, 2i+1)          (llama2.c, GGUF llama: ggml "normal" rope)
//   kHalf:        rotates pairs (i, i + head_dim/2)  (Hugging Face "rotate_half", GGUF qwen: NEOX)
enum class RopeLayout { kInterleaved, kHalf };

struct ModelConfig {
  std::string name;          // a short model name (directory or file stem)
  std::string family;        // ModelFamily::name(): "llama", "qwen2", "qwen3"
  std::string architecture;  // as the source names it: "LlamaForCausalLM", GGUF "llama", ...
  int32_t dim = 0;
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t ffn_dim = 0;
  int32_t vocab_size = 0;
  int32_t max_positions = 0;
  float rms_eps = 1e-5f;
  float rope_theta = 10000.0f;
  // Rotary frequencies per pair i < head_dim / 2 (radians per position), scaling applied
  // (Llama 3's rope_scaling, linear scaling, GGUF rope_freqs). Empty: theta^(-2i/head_dim).
  std::vector<double> rope_inv_freq;
  RopeLayout rope_layout = RopeLayout::kInterleaved;
  bool tied_embeddings = false;
  int32_t bos_id = 1;
  std::vector<int32_t> eos_ids = {2};  // generation stops at any of these
  bool add_bos = true;
  // Sampling defaults from generation_config.json (front ends use them when a request sets
  // nothing); unset fields mean the engine's own defaults. do_sample false means greedy.
  struct SamplingDefaults {
    std::optional<bool> do_sample;
    std::optional<float> temperature;
    std::optional<float> top_p;
    std::optional<int32_t> top_k;
    std::optional<float> repetition_penalty;
    std::optional<int32_t> max_new_tokens;  // the default generated-token limit (>= 1)
    bool operator==(const SamplingDefaults&) const = default;
  } sampling_defaults;

  int32_t q_dim() const { return n_heads * head_dim; }
  int32_t kv_dim() const { return n_kv_heads * head_dim; }
};

// theta^(-2i/head_dim) for i < head_dim / 2, in float64: the unscaled rotary frequencies.
std::vector<double> DefaultRopeInvFreq(double theta, int32_t head_dim);
// config.rope_inv_freq, or the default frequencies when it is empty.
std::vector<double> RopeInvFreq(const ModelConfig& config);
// Llama 3's rope scaling (transformers' "llama3" rope_type) applied to `inv_freq`: frequencies
// whose wavelength exceeds original_max / low_freq_factor are divided by `factor`, those below
// original_max / high_freq_factor kept, and those between interpolated smoothly.
std::vector<double> Llama3ScaledInvFreq(std::vector<double> inv_freq, double factor, double low_freq_factor,
                                        double high_freq_factor, double original_max_positions);

// How a tensor is stored in packages: matrices in the package's weight dtype; the embedding and
// the output projection too, but kept at bf16 by quantized packages unless asked; vectors (norm
// weights, biases) in f32.
enum class TensorKind { kEmbedding, kMatrix, kOutput, kVector };

// One tensor a family names for a configuration. The list (ModelFamily::Tensors) is the one
// enumeration that loaders, the compiler, package manifests and package checks all use.
struct TensorDesc {
  std::string name;     // canonical (GGUF's) name: "blk.0.attn_q.weight"
  std::string hf_name;  // Hugging Face's: "model.layers.0.self_attn.q_proj.weight"
  int64_t rows = 0;     // output features; 1 for a vector
  int64_t cols = 0;     // input features (contiguous)
  TensorKind kind = TensorKind::kMatrix;
  // The output features (a matrix's rows, a vector's entries) are rotary heads of head_dim:
  // q/k projections, their biases and per-head norms. Their order inside a head follows the
  // source's RopeLayout; packages store them for interleaved pairs.
  bool rope_features = false;
  // The k or v projection (what the KV cache stores): 4-bit packages keep it at 8 bits.
  bool kv_projection = false;
};

using WeightView = MatrixView;

// Everything the loaders produce. Owns the mappings/buffers that the views point into.
struct Model {
  ModelConfig config;
  const ModelFamily* family = nullptr;
  std::vector<TensorDesc> tensors;  // family->Tensors(config)
  std::vector<WeightView> weights;  // one per tensor, same order
  ModelFormat format = ModelFormat::kHuggingFace;
  std::filesystem::path source;          // the path the user gave
  std::filesystem::path tokenizer_path;  // .model, tokenizer.json, llama2.c .bin, or the .gguf itself
  std::string chat_template;             // from tokenizer_config.json / GGUF metadata, may be empty
  std::string bos_token, eos_token;      // their text (tokenizer_config.json), for chat templates
  std::vector<std::shared_ptr<const MappedFile>> files;  // keep mappings alive
  std::vector<std::unique_ptr<std::byte[]>> owned;        // converted or realigned weights

  // The weight of tensor `name`; nullptr if the family names no such tensor.
  const WeightView* Weight(std::string_view name) const;
};

}  // namespace tailor

#endif  // TAILOR_MODELS_MODEL_H_
