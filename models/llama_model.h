// The llama family (Llama, Mistral, TinyLlama, llama2.c stories): configuration and weight views.
// A LlamaModel is immutable after loading; weights are views into memory-mapped files (or into
// buffers the model owns where a format needs conversion). Safe to share across threads.
#ifndef TAILOR_MODELS_LLAMA_MODEL_H_
#define TAILOR_MODELS_LLAMA_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/mapped_file.h"
#include "kernels/matrix_view.h"

namespace tailor {

// Where the weights came from; decides conventions such as the rope layout and stop tokens.
enum class ModelFormat { kHuggingFace, kGguf, kLlama2c };
const char* ModelFormatName(ModelFormat f);

// Rotary embedding layout of q/k rows within a head.
//   kInterleaved: rotates pairs (2i, 2i+1)          (llama2.c, GGUF/ggml "normal" rope)
//   kHalf:        rotates pairs (i, i + head_dim/2)  (Hugging Face "rotate_half")
enum class RopeLayout { kInterleaved, kHalf };

struct LlamaConfig {
  std::string name;  // a short model name (directory or file stem)
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
    bool operator==(const SamplingDefaults&) const = default;
  } sampling_defaults;

  int32_t q_dim() const { return n_heads * head_dim; }
  int32_t kv_dim() const { return n_kv_heads * head_dim; }
};

using WeightView = MatrixView;

struct LlamaLayerWeights {
  WeightView attn_norm;  // [1, dim]
  WeightView wq;         // [q_dim, dim]
  WeightView wk;         // [kv_dim, dim]
  WeightView wv;         // [kv_dim, dim]
  WeightView wo;         // [dim, q_dim]
  WeightView ffn_norm;   // [1, dim]
  WeightView w_gate;     // [ffn_dim, dim]
  WeightView w_up;       // [ffn_dim, dim]
  WeightView w_down;     // [dim, ffn_dim]
};

struct LlamaWeights {
  WeightView token_embedding;  // [vocab, dim]
  std::vector<LlamaLayerWeights> layers;
  WeightView output_norm;  // [1, dim]
  WeightView output;       // [vocab, dim]; equals token_embedding when tied
};

// Everything the loaders produce. Owns the mappings/buffers that the views point into.
struct LlamaModel {
  LlamaConfig config;
  LlamaWeights weights;
  ModelFormat format = ModelFormat::kHuggingFace;
  std::filesystem::path source;          // the path the user gave
  std::filesystem::path tokenizer_path;  // .model, llama2.c tokenizer .bin, or the .gguf itself
  std::string chat_template;             // from tokenizer_config.json / GGUF metadata, may be empty
  std::vector<std::shared_ptr<const MappedFile>> files;  // keep mappings alive
  std::vector<std::unique_ptr<std::byte[]>> owned;        // converted or realigned weights
};

}  // namespace tailor

#endif  // TAILOR_MODELS_LLAMA_MODEL_H_
