// Building blocks of llama-style decoders (pre-norm residual layers: rotary self-attention with
// grouped KV heads, SwiGLU MLP), from which family files (models/*_family.cc) compose their
// tensor lists and graphs. Pure functions.
#ifndef TAILOR_MODELS_DECODER_BLOCKS_H_
#define TAILOR_MODELS_DECODER_BLOCKS_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "models/family.h"

namespace tailor::blocks {

// "blk.<layer>.<suffix>" and "model.layers.<layer>.<hf_suffix>".
std::string LayerName(int32_t layer, const char* suffix);
std::string HfLayerName(int32_t layer, const char* hf_suffix);

// token_embd.weight [vocab, dim].
void AppendEmbedding(const ModelConfig& c, std::vector<TensorDesc>* out);
// Per layer: attn_norm, attn_q/k/v/output; then ffn_norm, ffn_gate/up/down.
void AppendAttention(const ModelConfig& c, int32_t layer, std::vector<TensorDesc>* out);
void AppendMlp(const ModelConfig& c, int32_t layer, std::vector<TensorDesc>* out);
// attn_q/k/v.bias [1, q_dim or kv_dim] (Qwen2).
void AppendQkvBiases(const ModelConfig& c, int32_t layer, std::vector<TensorDesc>* out);
// attn_q_norm/attn_k_norm.weight [1, head_dim] (Qwen3).
void AppendQkNorms(const ModelConfig& c, int32_t layer, std::vector<TensorDesc>* out);
// output_norm.weight, and output.weight [vocab, dim] unless the embeddings are tied.
void AppendHead(const ModelConfig& c, std::vector<TensorDesc>* out);

// The tensors of a llama-style decoder: the embedding; per layer the attention block's,
// `extra` ones (e.g. AppendQkvBiases) and the MLP's; the head's.
using AppendLayerTensors = void (*)(const ModelConfig& c, int32_t layer, std::vector<TensorDesc>* out);
std::vector<TensorDesc> DecoderTensors(const ModelConfig& c, AppendLayerTensors extra = nullptr);

// Tensor indices of one attention block; -1 for what the family does not have.
struct AttentionTensors {
  int32_t norm = -1, wq = -1, wk = -1, wv = -1, wo = -1;
  int32_t bq = -1, bk = -1, bv = -1;  // biases added after the projections
  int32_t q_norm = -1, k_norm = -1;   // per-head RMSNorm before rope
};
AttentionTensors FindAttention(const TensorIds& ids, int32_t layer);  // every field it finds

// x += wo(attention(rope(qk_norm(bias(wq/wk/wv(rmsnorm(x))))))).
void EmitAttention(GraphBuilder& b, int32_t layer, Value x, const AttentionTensors& t);
// x += down(silu(gate(n)) * up(n)), n = rmsnorm(x).
void EmitMlp(GraphBuilder& b, const TensorIds& ids, int32_t layer, Value x);

// A llama-style decoder family: the embedding lookup; per layer EmitAttention (with whichever
// biases and q/k norms the family's tensor list names) and EmitMlp; the head: logits of each
// sequence's last token through output_norm and output (or the tied embedding). Families
// derived from it name their tensors and identity; one with another layer structure overrides
// EmitGraph.
class DecoderFamily : public ModelFamily {
 public:
  void EmitGraph(const ModelConfig& c, std::span<const TensorDesc> tensors, GraphBuilder& b) const override;
};

}  // namespace tailor::blocks

#endif  // TAILOR_MODELS_DECODER_BLOCKS_H_
