#include "engine/program.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace tailor {
namespace {

constexpr int64_t kAlign = 64;

int64_t AlignUp(int64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

// Lowers a family's graph: one buffer per value, ops in emission order.
class ProgramBuilder final : public GraphBuilder {
 public:
  ProgramBuilder(const ModelConfig& c, const WeightLayout& w, Program* p) : c_(c), w_(w), p_(p) {}

  Value Embed(int32_t t) override {
    const Value x = NewValue("embed", p_->token_rows, static_cast<int32_t>(Tensor(t).cols));
    Emit(RowOp(kern::kOpEmbed, x, -1, -1, x.id), t);
    return x;
  }
  Value RmsNorm(Value x, int32_t t) override {
    const Value out = NewValue("norm", Rows(x), x.width);
    Emit(RowOp(kern::kOpRmsNorm, x, x.id, -1, out.id), t);
    return out;
  }
  void HeadRmsNorm(Value x, int32_t t) override {  // rows of head_dim: one per (row, head)
    Op op = RowOp(kern::kOpRmsNorm, x, x.id, -1, x.id);
    op.rows = Rows(x) * (x.width / c_.head_dim);
    op.n = c_.head_dim;
    op.split = op.rows;
    Emit(op, t);
  }
  Value MatMul(Value x, int32_t t) override {
    const TensorRef& w = Tensor(t);
    const Value out = NewValue("matmul", Rows(x), static_cast<int32_t>(w.rows));
    Op op;
    op.kind = kern::kOpMatMul;
    op.rows = Rows(x);
    op.k = static_cast<int32_t>(w.cols);
    op.n = static_cast<int32_t>(w.rows);
    op.in = x.id;
    op.out = out.id;
    op.split = op.n;
    Emit(op, t);
    return out;
  }
  void AddBias(Value x, int32_t t) override { Emit(RowOp(kern::kOpAddBias, x, x.id, -1, x.id), t); }
  void Rope(Value q, Value k) override { Emit(RowOp(kern::kOpRope, q, q.id, k.id, -1), -1); }
  Value Attention(int32_t layer, Value q, Value k, Value v) override {
    Op write = RowOp(kern::kOpKvWrite, k, k.id, v.id, -1);
    write.layer = layer;
    Emit(write, -1);
    const Value out = NewValue("attention", Rows(q), q.width);
    Op attn = RowOp(kern::kOpAttention, q, q.id, -1, out.id);
    attn.layer = layer;
    attn.split = c_.n_heads;
    Emit(attn, -1);
    return out;
  }
  void Add(Value acc, Value x) override { Emit(RowOp(kern::kOpAdd, acc, acc.id, x.id, acc.id), -1); }
  void SwiGlu(Value gate, Value up) override { Emit(RowOp(kern::kOpSwiGlu, gate, gate.id, up.id, gate.id), -1); }
  Value LastTokens(Value x) override {
    const Value out = NewValue("kept", p_->keep_rows, x.width);
    Op op = RowOp(kern::kOpGather, out, x.id, -1, out.id);
    Emit(op, -1);
    return out;
  }
  void Output(Value logits) override { p_->logits_buffer = logits.id; }

 private:
  const TensorRef& Tensor(int32_t t) const { return w_.tensors.at(static_cast<size_t>(t)); }
  int32_t Rows(Value v) const { return rows_[v.id]; }

  Value NewValue(const char* what, int32_t rows, int32_t width) {
    p_->buffers.push_back(Buffer{absl::StrCat(what, ".", p_->buffers.size()), int64_t{rows} * width * 4, -1, -1, 0});
    rows_.push_back(rows);
    return {static_cast<int32_t>(p_->buffers.size() - 1), width};
  }

  // An op over every row of `shape` (width shape.width), partitioned by rows.
  Op RowOp(OpKind kind, Value shape, int32_t in, int32_t in2, int32_t out) const {
    Op op;
    op.kind = kind;
    op.rows = Rows(shape);
    op.n = shape.width;
    op.in = in;
    op.in2 = in2;
    op.out = out;
    op.split = op.rows;
    return op;
  }

  void Emit(Op op, int32_t tensor) {
    if (tensor >= 0) op.weight = Tensor(tensor);
    const int32_t index = static_cast<int32_t>(p_->ops.size());
    for (int32_t b : {op.in, op.in2, op.out}) {
      if (b < 0) continue;
      Buffer& buf = p_->buffers[b];
      if (buf.first_op < 0) buf.first_op = index;
      buf.last_op = index;
    }
    if (op.kind == kern::kOpMatMul) {
      p_->weight_bytes_read += op.weight.bytes();
      p_->flops += 2.0 * op.rows * op.k * op.n;
    } else if (op.weight.offset >= 0 && op.kind != kern::kOpEmbed) {
      p_->weight_bytes_read += op.weight.bytes();
    }
    p_->ops.push_back(op);
  }

  const ModelConfig& c_;
  const WeightLayout& w_;
  Program* p_;
  std::vector<int32_t> rows_;  // per buffer
};

}  // namespace

const char* OpKindName(OpKind k) { return k >= 0 && k < kern::kNumOpKinds ? kern::kOpKinds[k].name : "?"; }

Program LowerProgram(const ModelConfig& c, const ModelFamily& family, const WeightLayout& w,
                     const Specialization& spec, int32_t kv_block) {
  Program p;
  p.spec = spec;
  p.token_rows = spec.shape.batch_size * spec.shape.seq_len;
  p.keep_rows = spec.shape.batch_size;
  p.max_blocks = (spec.shape.ctx_len + kv_block - 1) / kv_block;
  ProgramBuilder builder(c, w, &p);
  family.EmitGraph(c, family.Tensors(c), builder);
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
