#include "engine/program.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace tailor {
namespace {

constexpr int64_t kAlign = 64;

int64_t AlignUp(int64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

class Builder {
 public:
  explicit Builder(Program* p) : p_(p) {}

  int32_t NewBuffer(std::string name, int64_t floats) {
    p_->buffers.push_back(Buffer{std::move(name), floats * 4, -1, -1, 0});
    return static_cast<int32_t>(p_->buffers.size() - 1);
  }

  void Add(Op op) {
    const int32_t index = static_cast<int32_t>(p_->ops.size());
    for (int32_t b : {op.in, op.in2, op.out}) {
      if (b < 0) continue;
      Buffer& buf = p_->buffers[b];
      if (buf.first_op < 0) buf.first_op = index;
      buf.last_op = index;
    }
    if (op.kind == OpKind::kMatMul) {
      p_->weight_bytes_read += op.weight.bytes();
      p_->flops += 2.0 * op.rows * op.k * op.n;
    } else if (op.weight.offset >= 0 && op.kind != OpKind::kEmbed) {
      p_->weight_bytes_read += op.weight.bytes();
    }
    p_->ops.push_back(op);
  }

  Op MatMul(int32_t rows, const TensorRef& w, int32_t in, int32_t out) {
    Op op;
    op.kind = OpKind::kMatMul;
    op.rows = rows;
    op.k = static_cast<int32_t>(w.cols);
    op.n = static_cast<int32_t>(w.rows);
    op.weight = w;
    op.in = in;
    op.out = out;
    op.split = op.n;
    return op;
  }

  Op RowOp(OpKind kind, int32_t rows, int32_t width, int32_t in, int32_t in2, int32_t out) {
    Op op;
    op.kind = kind;
    op.rows = rows;
    op.n = width;
    op.in = in;
    op.in2 = in2;
    op.out = out;
    op.split = rows;
    return op;
  }

 private:
  Program* p_;
};

}  // namespace

const char* OpKindName(OpKind k) {
  switch (k) {
    case OpKind::kEmbed: return "embed";
    case OpKind::kRmsNorm: return "rmsnorm";
    case OpKind::kMatMul: return "matmul";
    case OpKind::kRope: return "rope";
    case OpKind::kKvWrite: return "kv_write";
    case OpKind::kAttention: return "attention";
    case OpKind::kAdd: return "add";
    case OpKind::kSwiGlu: return "swiglu";
    case OpKind::kGather: return "gather";
  }
  return "?";
}

Program LowerProgram(const LlamaConfig& c, const WeightLayout& w, const Specialization& spec,
                     int32_t kv_block) {
  Program p;
  p.spec = spec;
  const int32_t M = spec.shape.batch_size * spec.shape.seq_len;
  const int32_t R = spec.shape.batch_size;
  p.token_rows = M;
  p.keep_rows = R;
  p.max_blocks = (spec.shape.ctx_len + kv_block - 1) / kv_block;
  const int32_t D = c.dim, Q = c.q_dim(), KV = c.kv_dim(), F = c.ffn_dim;
  Builder b(&p);

  const int32_t x = b.NewBuffer("x", int64_t{M} * D);
  Op embed = b.RowOp(OpKind::kEmbed, M, D, -1, -1, x);
  embed.weight = w.token_embedding;
  b.Add(embed);
  for (int32_t l = 0; l < c.n_layers; ++l) {
    const LayerTensors& L = w.layers[l];
    const std::string s = absl::StrCat(".", l);
    const int32_t xn = b.NewBuffer("attn_in" + s, int64_t{M} * D);
    const int32_t q = b.NewBuffer("q" + s, int64_t{M} * Q);
    const int32_t k = b.NewBuffer("k" + s, int64_t{M} * KV);
    const int32_t v = b.NewBuffer("v" + s, int64_t{M} * KV);
    const int32_t att = b.NewBuffer("attn" + s, int64_t{M} * Q);
    const int32_t o = b.NewBuffer("attn_out" + s, int64_t{M} * D);
    const int32_t fn = b.NewBuffer("ffn_in" + s, int64_t{M} * D);
    const int32_t g = b.NewBuffer("gate" + s, int64_t{M} * F);
    const int32_t u = b.NewBuffer("up" + s, int64_t{M} * F);
    const int32_t d = b.NewBuffer("ffn_out" + s, int64_t{M} * D);

    Op norm = b.RowOp(OpKind::kRmsNorm, M, D, x, -1, xn);
    norm.weight = L.attn_norm;
    b.Add(norm);
    b.Add(b.MatMul(M, L.wq, xn, q));
    b.Add(b.MatMul(M, L.wk, xn, k));
    b.Add(b.MatMul(M, L.wv, xn, v));
    b.Add(b.RowOp(OpKind::kRope, M, Q, q, k, -1));
    Op kvw = b.RowOp(OpKind::kKvWrite, M, KV, k, v, -1);
    kvw.layer = l;
    b.Add(kvw);
    Op attn = b.RowOp(OpKind::kAttention, M, Q, q, -1, att);
    attn.layer = l;
    attn.split = c.n_heads;
    b.Add(attn);
    b.Add(b.MatMul(M, L.wo, att, o));
    b.Add(b.RowOp(OpKind::kAdd, M, D, x, o, x));
    Op norm2 = b.RowOp(OpKind::kRmsNorm, M, D, x, -1, fn);
    norm2.weight = L.ffn_norm;
    b.Add(norm2);
    b.Add(b.MatMul(M, L.w_gate, fn, g));
    b.Add(b.MatMul(M, L.w_up, fn, u));
    b.Add(b.RowOp(OpKind::kSwiGlu, M, F, g, u, g));
    b.Add(b.MatMul(M, L.w_down, g, d));
    b.Add(b.RowOp(OpKind::kAdd, M, D, x, d, x));
  }
  const int32_t last = b.NewBuffer("kept", int64_t{R} * D);
  const int32_t last_n = b.NewBuffer("kept_norm", int64_t{R} * D);
  p.logits_buffer = b.NewBuffer("logits", int64_t{R} * c.vocab_size);
  b.Add(b.RowOp(OpKind::kGather, R, D, x, -1, last));
  Op fnorm = b.RowOp(OpKind::kRmsNorm, R, D, last, -1, last_n);
  fnorm.weight = w.output_norm;
  b.Add(fnorm);
  b.Add(b.MatMul(R, w.output, last_n, p.logits_buffer));
  // The logits are read after the last op: keep them live to the end (they are already last).
  p.arena_bytes = PlanMemory(p.buffers);
  return p;
}

int64_t PlanMemory(std::vector<Buffer>& buffers) {
  std::vector<size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return buffers[a].bytes > buffers[b].bytes; });
  std::vector<size_t> placed;
  int64_t arena = 0;
  for (size_t i : order) {
    Buffer& buf = buffers[i];
    if (buf.first_op < 0) continue;  // never used
    // Address ranges of placed buffers whose lifetimes overlap this one, sorted by offset.
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (size_t j : placed) {
      const Buffer& o = buffers[j];
      if (o.first_op <= buf.last_op && buf.first_op <= o.last_op) {
        busy.emplace_back(o.offset, o.offset + AlignUp(o.bytes));
      }
    }
    std::sort(busy.begin(), busy.end());
    int64_t offset = 0;
    for (const auto& [begin, end] : busy) {
      if (offset + AlignUp(buf.bytes) <= begin) break;
      offset = std::max(offset, end);
    }
    buf.offset = offset;
    arena = std::max(arena, offset + AlignUp(buf.bytes));
    placed.push_back(i);
  }
  return arena;
}

}  // namespace tailor
