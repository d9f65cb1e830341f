#include "models/decoder_blocks.h"

#include "absl/strings/str_cat.h"

namespace tailor::blocks {
namespace {

TensorDesc Tensor(std::string name, std::string hf_name, int64_t rows, int64_t cols, TensorKind kind,
                  bool rope = false, bool kv = false) {
  return TensorDesc{std::move(name), std::move(hf_name), rows, cols, kind, rope, kv};
}

}  // namespace

std::string LayerName(int32_t layer, const char* suffix) { return absl::StrCat("blk.", layer, ".", suffix); }
std::string HfLayerName(int32_t layer, const char* hf_suffix) {
  return absl::StrCat("model.layers.", layer, ".", hf_suffix);
}

void AppendEmbedding(const ModelConfig& c, std::vector<TensorDesc>* out) {
  out->push_back(Tensor("token_embd.weight", "model.embed_tokens.weight", c.vocab_size, c.dim, TensorKind::kEmbedding));
}

void AppendAttention(const ModelConfig& c, int32_t l, std::vector<TensorDesc>* out) {
  const int64_t D = c.dim, Q = c.q_dim(), KV = c.kv_dim();
  out->push_back(Tensor(LayerName(l, "attn_norm.weight"), HfLayerName(l, "input_layernorm.weight"), 1, D, TensorKind::kVector));
  out->push_back(Tensor(LayerName(l, "attn_q.weight"), HfLayerName(l, "self_attn.q_proj.weight"), Q, D, TensorKind::kMatrix, true));
  out->push_back(Tensor(LayerName(l, "attn_k.weight"), HfLayerName(l, "self_attn.k_proj.weight"), KV, D, TensorKind::kMatrix, true, true));
  out->push_back(Tensor(LayerName(l, "attn_v.weight"), HfLayerName(l, "self_attn.v_proj.weight"), KV, D, TensorKind::kMatrix, false, true));
  out->push_back(Tensor(LayerName(l, "attn_output.weight"), HfLayerName(l, "self_attn.o_proj.weight"), D, Q, TensorKind::kMatrix));
}

void AppendMlp(const ModelConfig& c, int32_t l, std::vector<TensorDesc>* out) {
  const int64_t D = c.dim, F = c.ffn_dim;
  out->push_back(Tensor(LayerName(l, "ffn_norm.weight"), HfLayerName(l, "post_attention_layernorm.weight"), 1, D, TensorKind::kVector));
  out->push_back(Tensor(LayerName(l, "ffn_gate.weight"), HfLayerName(l, "mlp.gate_proj.weight"), F, D, TensorKind::kMatrix));
  out->push_back(Tensor(LayerName(l, "ffn_up.weight"), HfLayerName(l, "mlp.up_proj.weight"), F, D, TensorKind::kMatrix));
  out->push_back(Tensor(LayerName(l, "ffn_down.weight"), HfLayerName(l, "mlp.down_proj.weight"), D, F, TensorKind::kMatrix));
}

void AppendQkvBiases(const ModelConfig& c, int32_t l, std::vector<TensorDesc>* out) {
  out->push_back(Tensor(LayerName(l, "attn_q.bias"), HfLayerName(l, "self_attn.q_proj.bias"), 1, c.q_dim(), TensorKind::kVector, true));
  out->push_back(Tensor(LayerName(l, "attn_k.bias"), HfLayerName(l, "self_attn.k_proj.bias"), 1, c.kv_dim(), TensorKind::kVector, true));
  out->push_back(Tensor(LayerName(l, "attn_v.bias"), HfLayerName(l, "self_attn.v_proj.bias"), 1, c.kv_dim(), TensorKind::kVector));
}

void AppendQkNorms(const ModelConfig& c, int32_t l, std::vector<TensorDesc>* out) {
  out->push_back(Tensor(LayerName(l, "attn_q_norm.weight"), HfLayerName(l, "self_attn.q_norm.weight"), 1, c.head_dim, TensorKind::kVector, true));
  out->push_back(Tensor(LayerName(l, "attn_k_norm.weight"), HfLayerName(l, "self_attn.k_norm.weight"), 1, c.head_dim, TensorKind::kVector, true));
}

void AppendHead(const ModelConfig& c, std::vector<TensorDesc>* out) {
  out->push_back(Tensor("output_norm.weight", "model.norm.weight", 1, c.dim, TensorKind::kVector));
  if (!c.tied_embeddings) out->push_back(Tensor("output.weight", "lm_head.weight", c.vocab_size, c.dim, TensorKind::kOutput));
}

std::vector<TensorDesc> DecoderTensors(const ModelConfig& c, AppendLayerTensors extra) {
  std::vector<TensorDesc> t;
  AppendEmbedding(c, &t);
  for (int32_t l = 0; l < c.n_layers; ++l) {
    AppendAttention(c, l, &t);
    if (extra != nullptr) extra(c, l, &t);
    AppendMlp(c, l, &t);
  }
  AppendHead(c, &t);
  return t;
}

AttentionTensors FindAttention(const TensorIds& ids, int32_t l) {
  AttentionTensors t;
  t.norm = ids(LayerName(l, "attn_norm.weight"));
  t.wq = ids(LayerName(l, "attn_q.weight"));
  t.wk = ids(LayerName(l, "attn_k.weight"));
  t.wv = ids(LayerName(l, "attn_v.weight"));
  t.wo = ids(LayerName(l, "attn_output.weight"));
  t.bq = ids(LayerName(l, "attn_q.bias"));
  t.bk = ids(LayerName(l, "attn_k.bias"));
  t.bv = ids(LayerName(l, "attn_v.bias"));
  t.q_norm = ids(LayerName(l, "attn_q_norm.weight"));
  t.k_norm = ids(LayerName(l, "attn_k_norm.weight"));
  return t;
}

void EmitAttention(GraphBuilder& b, int32_t layer, Value x, const AttentionTensors& t) {
  const Value xn = b.RmsNorm(x, t.norm);
  const Value q = b.MatMul(xn, t.wq);
  const Value k = b.MatMul(xn, t.wk);
  const Value v = b.MatMul(xn, t.wv);
  if (t.bq >= 0) b.AddBias(q, t.bq);
  if (t.bk >= 0) b.AddBias(k, t.bk);
  if (t.bv >= 0) b.AddBias(v, t.bv);
  if (t.q_norm >= 0) b.HeadRmsNorm(q, t.q_norm);
  if (t.k_norm >= 0) b.HeadRmsNorm(k, t.k_norm);
  b.Rope(q, k);
  const Value att = b.Attention(layer, q, k, v);
  b.Add(x, b.MatMul(att, t.wo));
}

void EmitMlp(GraphBuilder& b, const TensorIds& ids, int32_t l, Value x) {
  const Value n = b.RmsNorm(x, ids(LayerName(l, "ffn_norm.weight")));
  const Value gate = b.MatMul(n, ids(LayerName(l, "ffn_gate.weight")));
  const Value up = b.MatMul(n, ids(LayerName(l, "ffn_up.weight")));
  b.SwiGlu(gate, up);
  b.Add(x, b.MatMul(gate, ids(LayerName(l, "ffn_down.weight"))));
}

void DecoderFamily::EmitGraph(const ModelConfig& c, std::span<const TensorDesc> tensors,
                              GraphBuilder& b) const {
  const TensorIds ids(tensors);
  const Value x = b.Embed(ids("token_embd.weight"));
  for (int32_t l = 0; l < c.n_layers; ++l) {
    EmitAttention(b, l, x, FindAttention(ids, l));
    EmitMlp(b, ids, l, x);
  }
  const Value normed = b.RmsNorm(b.LastTokens(x), ids("output_norm.weight"));
  b.Output(b.MatMul(normed, c.tied_embeddings ? ids("token_embd.weight") : ids("output.weight")));
}

}  // namespace tailor::blocks
