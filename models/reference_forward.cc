#include "models/reference_forward.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "kernels/reference_kernels.h"

namespace tailor {

void ReferenceKvCache::Clear() {
  for (auto& k : k_) k.clear();
  for (auto& v : v_) v.clear();
  length_ = 0;
}

absl::StatusOr<std::vector<std::vector<float>>> ReferenceForward::Run(
    std::span<const ReferenceRow> rows) const {
  const LlamaConfig& c = model_.config;
  for (size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].cache == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("row ", r, ": no KV cache"));
    }
    for (int32_t t : rows[r].tokens) {
      if (t < 0 || t >= c.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            "row ", r, ": token id ", t, " outside the vocabulary [0, ", c.vocab_size, ")"));
      }
    }
    const int64_t end = rows[r].cache->length() + static_cast<int64_t>(rows[r].tokens.size());
    if (end > c.max_positions) {
      return absl::InvalidArgumentError(absl::StrCat("row ", r, ": ", end,
                                                     " positions exceed the model's maximum ",
                                                     c.max_positions));
    }
  }
  std::vector<std::vector<float>> out(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    out[r].resize(rows[r].tokens.size() * static_cast<size_t>(c.vocab_size));
    for (size_t i = 0; i < rows[r].tokens.size(); ++i) {
      Step(rows[r].tokens[i], *rows[r].cache, out[r].data() + i * c.vocab_size);
    }
  }
  return out;
}

void ReferenceForward::Step(int32_t token, ReferenceKvCache& cache, float* logits) const {
  const LlamaConfig& c = model_.config;
  const LlamaWeights& w = model_.weights;
  const int32_t pos = cache.length_;
  const int32_t D = c.dim, Q = c.q_dim(), KV = c.kv_dim(), F = c.ffn_dim, H = c.head_dim;
  const int32_t group = c.n_heads / c.n_kv_heads;
  const bool interleaved = c.rope_layout == RopeLayout::kInterleaved;

  const int64_t widest = std::max<int64_t>({D, Q, F});
  std::vector<float> x(D), xn(D), q(Q), attn(Q), proj(D), gate(F), up(F), act(F);
  std::vector<float> scratch(widest), scores(pos + 1);
  ref::DequantizeRow(w.token_embedding, token, x.data());

  for (int32_t l = 0; l < c.n_layers; ++l) {
    const LlamaLayerWeights& L = w.layers[l];
    auto& kc = cache.k_[l];
    auto& vc = cache.v_[l];
    kc.resize(static_cast<size_t>(pos + 1) * KV);
    vc.resize(static_cast<size_t>(pos + 1) * KV);
    float* k_new = kc.data() + static_cast<size_t>(pos) * KV;
    float* v_new = vc.data() + static_cast<size_t>(pos) * KV;

    ref::RmsNorm(x.data(), L.attn_norm, c.rms_eps, xn.data(), scratch.data());
    ref::MatVec(L.wq, xn.data(), q.data(), scratch.data());
    ref::MatVec(L.wk, xn.data(), k_new, scratch.data());
    ref::MatVec(L.wv, xn.data(), v_new, scratch.data());
    ref::Rope(q.data(), c.n_heads, H, pos, c.rope_theta, interleaved);
    ref::Rope(k_new, c.n_kv_heads, H, pos, c.rope_theta, interleaved);
    for (int32_t h = 0; h < c.n_heads; ++h) {
      const int32_t kvh = h / group;
      ref::AttendOneHead(q.data() + h * H, kc.data() + kvh * H, vc.data() + kvh * H, KV, pos + 1,
                         H, attn.data() + h * H, scores.data());
    }
    ref::MatVec(L.wo, attn.data(), proj.data(), scratch.data());
    for (int32_t i = 0; i < D; ++i) x[i] += proj[i];

    ref::RmsNorm(x.data(), L.ffn_norm, c.rms_eps, xn.data(), scratch.data());
    ref::MatVec(L.w_gate, xn.data(), gate.data(), scratch.data());
    ref::MatVec(L.w_up, xn.data(), up.data(), scratch.data());
    ref::SwiGlu(gate.data(), up.data(), F, act.data());
    ref::MatVec(L.w_down, act.data(), proj.data(), scratch.data());
    for (int32_t i = 0; i < D; ++i) x[i] += proj[i];
  }
  ref::RmsNorm(x.data(), w.output_norm, c.rms_eps, xn.data(), scratch.data());
  ref::MatVec(w.output, xn.data(), logits, scratch.data());
  cache.length_ = pos + 1;
}

}  // namespace tailor
