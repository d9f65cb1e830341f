#include "models/reference_forward.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "kernels/reference_kernels.h"
#include "models/family.h"

namespace tailor {
namespace {

using Kind = ReferenceForward::Op::Kind;

// Records a family's ops for one token row at a time.
class Recorder final : public GraphBuilder {
 public:
  Recorder(const Model& m, std::vector<ReferenceForward::Op>* ops, std::vector<int32_t>* widths, int32_t* logits)
      : m_(m), ops_(ops), widths_(widths), logits_(logits) {}

  Value Embed(int32_t t) override { return Record(Kind::kEmbed, {}, {}, t, Cols(t)); }
  Value RmsNorm(Value x, int32_t w) override { return Record(Kind::kRmsNorm, x, {}, w, x.width); }
  void HeadRmsNorm(Value x, int32_t w) override { InPlace(Kind::kHeadRmsNorm, x, {}, w); }
  Value MatMul(Value x, int32_t w) override { return Record(Kind::kMatMul, x, {}, w, Rows(w)); }
  void AddBias(Value x, int32_t b) override { InPlace(Kind::kAddBias, x, {}, b); }
  void Rope(Value q, Value k) override { InPlace(Kind::kRope, q, k, -1); }
  Value Attention(int32_t layer, Value q, Value k, Value v) override {
    ReferenceForward::Op op{Kind::kAttention, q.id, k.id, v.id, NewValue(m_.config.q_dim()), -1, layer};
    ops_->push_back(op);
    return {op.out, m_.config.q_dim()};
  }
  void Add(Value acc, Value x) override { InPlace(Kind::kAdd, acc, x, -1); }
  void SwiGlu(Value gate, Value up) override { InPlace(Kind::kSwiGlu, gate, up, -1); }
  Value LastTokens(Value x) override { return Record(Kind::kLastTokens, x, {}, -1, x.width); }
  void Output(Value logits) override { *logits_ = logits.id; }

 private:
  int32_t Rows(int32_t t) const { return static_cast<int32_t>(m_.weights[t].rows); }
  int32_t Cols(int32_t t) const { return static_cast<int32_t>(m_.weights[t].cols); }
  int32_t NewValue(int32_t width) {
    widths_->push_back(width);
    return static_cast<int32_t>(widths_->size() - 1);
  }
  Value Record(Kind kind, Value a, Value b, int32_t tensor, int32_t width) {
    const int32_t out = NewValue(width);
    ops_->push_back({kind, a.id, b.id, -1, out, tensor, -1});
    return {out, width};
  }
  void InPlace(Kind kind, Value a, Value b, int32_t tensor) { ops_->push_back({kind, a.id, b.id, -1, a.id, tensor, -1}); }

  const Model& m_;
  std::vector<ReferenceForward::Op>* ops_;
  std::vector<int32_t>* widths_;
  int32_t* logits_;
};

}  // namespace

void ReferenceKvCache::Clear() {
  for (auto& k : k_) k.clear();
  for (auto& v : v_) v.clear();
  length_ = 0;
}

ReferenceForward::ReferenceForward(const Model& model) : model_(model), inv_freq_(RopeInvFreq(model.config)) {
  Recorder recorder(model, &ops_, &widths_, &logits_);
  model.family->EmitGraph(model.config, model.tensors, recorder);
}

absl::StatusOr<std::vector<std::vector<float>>> ReferenceForward::Run(std::span<const ReferenceRow> rows) const {
  const ModelConfig& c = model_.config;
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
  const ModelConfig& c = model_.config;
  const int32_t pos = cache.length_;
  const int32_t H = c.head_dim, KV = c.kv_dim();
  const int32_t group = c.n_heads / c.n_kv_heads;
  const bool interleaved = c.rope_layout == RopeLayout::kInterleaved;
  std::vector<std::vector<float>> v(widths_.size());
  for (size_t i = 0; i < widths_.size(); ++i) v[i].assign(widths_[i], 0.0f);
  int64_t widest = 0;
  for (const WeightView& w : model_.weights) widest = std::max(widest, w.cols);
  std::vector<float> scratch(widest), scores(pos + 1);

  for (const Op& op : ops_) {
    float* out = op.out >= 0 ? v[op.out].data() : nullptr;
    const WeightView* w = op.tensor >= 0 ? &model_.weights[op.tensor] : nullptr;
    switch (op.kind) {
      case Kind::kEmbed:
        ref::DequantizeRow(*w, token, out);
        break;
      case Kind::kRmsNorm:
        ref::RmsNorm(v[op.a].data(), *w, c.rms_eps, out, scratch.data());
        break;
      case Kind::kHeadRmsNorm:  // per head, in place
        for (int32_t h = 0; h < widths_[op.a] / H; ++h) ref::RmsNorm(out + h * H, *w, c.rms_eps, out + h * H, scratch.data());
        break;
      case Kind::kMatMul:
        ref::MatVec(*w, v[op.a].data(), out, scratch.data());
        break;
      case Kind::kAddBias:
        ref::DequantizeRow(*w, 0, scratch.data());
        for (int32_t i = 0; i < widths_[op.a]; ++i) out[i] = static_cast<float>(static_cast<double>(out[i]) + scratch[i]);
        break;
      case Kind::kRope:
        ref::Rope(v[op.a].data(), c.n_heads, H, pos, inv_freq_, interleaved);
        ref::Rope(v[op.b].data(), c.n_kv_heads, H, pos, inv_freq_, interleaved);
        break;
      case Kind::kAttention: {
        auto& kc = cache.k_[op.layer];
        auto& vc = cache.v_[op.layer];
        kc.resize(static_cast<size_t>(pos + 1) * KV);
        vc.resize(static_cast<size_t>(pos + 1) * KV);
        std::copy(v[op.b].begin(), v[op.b].end(), kc.begin() + static_cast<int64_t>(pos) * KV);
        std::copy(v[op.c].begin(), v[op.c].end(), vc.begin() + static_cast<int64_t>(pos) * KV);
        for (int32_t h = 0; h < c.n_heads; ++h) {
          const int32_t kvh = h / group;
          ref::AttendOneHead(v[op.a].data() + h * H, kc.data() + kvh * H, vc.data() + kvh * H, KV, pos + 1, H,
                             out + h * H, scores.data());
        }
        break;
      }
      case Kind::kAdd:
        for (int32_t i = 0; i < widths_[op.a]; ++i) out[i] += v[op.b][i];
        break;
      case Kind::kSwiGlu:
        ref::SwiGlu(out, v[op.b].data(), widths_[op.a], out);
        break;
      case Kind::kLastTokens:  // one token per step: its own row
        std::copy(v[op.a].begin(), v[op.a].end(), out);
        break;
    }
  }
  std::copy(v[logits_].begin(), v[logits_].end(), logits);
  cache.length_ = pos + 1;
}

}  // namespace tailor
