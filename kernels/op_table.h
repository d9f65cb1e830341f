// The op table: every kind of operation a specialization's program runs, described once. An op
// is data (OpDesc: its kind, element types, shapes and where its operands live) and RunOp runs
// it. The native path calls RunOp with a descriptor read at run time (shapes are ints);
// generated code calls it with the descriptor as a template argument, so that every shape is a
// compile-time constant (Const<N>) inside the same kernel templates. Adding an op kind means an
// OpKind, an OpKindInfo row and one branch of RunKind; adding a weight type means a WeightType
// and the kernels' support for it. Self-contained like cpu_kernels.h (copied into packages).
#ifndef TAILOR_KERNELS_OP_TABLE_H_
#define TAILOR_KERNELS_OP_TABLE_H_

#include "cpu_ops.h"

namespace tailor::kern {

enum OpKind : int {
  kOpEmbed,      // out[m] = table[token[m]]                         rows: token rows; split: rows
  kOpRmsNorm,    // out[m] = rmsnorm(in[m]) * weight, width n         split: rows
  kOpMatMul,     // out[rows, n] = in[rows, k] x weight[n, k]^T       split: n
  kOpAddBias,    // out[m] += weight (a [n] vector), out == in        split: rows
  kOpRope,       // rotates in (q) and in2 (k) in place               split: rows
  kOpKvWrite,    // writes in (k) and in2 (v) into layer's paged KV   split: rows
  kOpAttention,  // out = attention(in (q), layer's KV)               split: heads
  kOpAdd,        // out (== in) += in2                                split: rows
  kOpSwiGlu,     // out (== in) = silu(in) * in2                      split: rows
  kOpGather,     // out[r] = in[keep[r]]                              split: rows (kept)
  kNumOpKinds,
};

struct OpKindInfo {
  const char* name;
  bool weight_typed;  // instantiated per weight element type (OpDesc::wtype)
  bool kv_typed;      // instantiated per KV element type (OpDesc::kvtype)
  bool quantized;     // also takes quantized weights (kWQ8, kWQ4)
};
inline constexpr OpKindInfo kOpKinds[kNumOpKinds] = {
    {"embed", true, false, true},   {"rmsnorm", true, false, false},  {"matmul", true, false, true},
    {"add_bias", true, false, false}, {"rope", false, false, false},   {"kv_write", false, true, false},
    {"attention", false, true, false}, {"add", false, false, false},   {"swiglu", false, false, false},
    {"gather", false, false, false},
};
// The weight element types ops are instantiated for, in WeightType order; the quantized ones
// only where OpKindInfo::quantized.
inline constexpr int kWeightTypes[] = {kWF32, kWF16, kWBF16, kWQ8, kWQ4, kWW8};
inline constexpr bool IsQuantized(int type) { return type == kWQ8 || type == kWQ4 || type == kWW8; }
// The KV element types kv-typed ops are instantiated for: the float types and kKvI8, which is
// never a weight type (as the quantized weight types are never KV types).
inline constexpr int kKvTypes[] = {kWF32, kWF16, kWBF16, kKvI8};

// One op of a program. A structural type: generated code passes it as a template argument.
struct OpDesc {
  int kind = kOpEmbed;
  int wtype = kWF32;   // element type of the op's weight
  int kvtype = kWF32;  // element type of the KV pool
  int layer = -1;      // KvWrite, Attention
  int rows = 0;        // rows the op covers (token rows, or kept rows)
  int k = 0;           // MatMul: the summed dimension
  int n = 0;           // MatMul: output features; other ops: row width
  int split = 0;       // extent of the dimension -ols partitions
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int kv_block = 0, max_blocks = 0, n_layers = 0;  // paged KV: positions per block, blocks per row
  int ctx_len = 0;     // attention scratch per partition
  float eps = 0;       // RmsNorm
  int64_t in = -1, in2 = -1, out = -1;  // byte offsets of operands in the arena
  int64_t weight = -1;                  // byte offset of the weight in the weights file
  float scale = 0;                      // MatMul of w8a8 weights: the static activation scale
};

// Shapes of a descriptor at run time: ints.
struct RuntimeShapes {
  const OpDesc& d;
  const OpDesc& desc() const { return d; }
  int rows() const { return d.rows; }
  int k() const { return d.k; }
  int n() const { return d.n; }
  int n_heads() const { return d.n_heads; }
  int n_kv_heads() const { return d.n_kv_heads; }
  int head_dim() const { return d.head_dim; }
  int kv_dim() const { return d.n_kv_heads * d.head_dim; }
  int kv_block() const { return d.kv_block; }
  int max_blocks() const { return d.max_blocks; }
  int n_layers() const { return d.n_layers; }
};

// Shapes of a descriptor known at compile time: Const<N>.
template <OpDesc D>
struct FixedShapes {
  static constexpr const OpDesc& desc() { return D; }
  static constexpr Const<D.rows> rows() { return {}; }
  static constexpr Const<D.k> k() { return {}; }
  static constexpr Const<D.n> n() { return {}; }
  static constexpr Const<D.n_heads> n_heads() { return {}; }
  static constexpr Const<D.n_kv_heads> n_kv_heads() { return {}; }
  static constexpr Const<D.head_dim> head_dim() { return {}; }
  static constexpr Const<D.n_kv_heads * D.head_dim> kv_dim() { return {}; }
  static constexpr Const<D.kv_block> kv_block() { return {}; }
  static constexpr Const<D.max_blocks> max_blocks() { return {}; }
  static constexpr Const<D.n_layers> n_layers() { return {}; }
};

// x[m] += bias for rows [row_begin, row_end); bias: [n] of kType.
template <int kType, class N>
inline void AddBiasOp(N n, float* x, const void* bias, int row_begin, int row_end) {
  for (int m = row_begin; m < row_end; ++m) {
    float* row = x + static_cast<int64_t>(m) * n;
    for (int d = 0; d < static_cast<int>(n); ++d) row[d] += LoadScalar<kType>(bias, d);
  }
}

// Runs partition [b, e) of op kind kKind's split dimension (partition `part`).
template <int kKind, class Isa, int kW, int kKv, class S>
inline void RunKind(const S& s, const OpArgs& a, int part, int b, int e) {
  const OpDesc& d = s.desc();
  float* out = reinterpret_cast<float*>(a.arena + d.out);
  float* in = reinterpret_cast<float*>(a.arena + d.in);
  float* in2 = reinterpret_cast<float*>(a.arena + d.in2);
  const std::byte* w = a.weights + d.weight;
  if constexpr (kKind == kOpEmbed) {
    EmbedOp<kW>(s.n(), a.tokens, a.pos, w, out, b, e);
  } else if constexpr (kKind == kOpRmsNorm) {
    RmsNormOp<Isa, kW>(s.n(), in, w, d.eps, out, b, e);
  } else if constexpr (kKind == kOpMatMul) {
    MatMulOp<Isa, kW>(s.rows(), s.k(), in, w, out, d.n, b, e, a.packed != nullptr ? a.packed + d.weight : nullptr,
                      a.q8_scratch != nullptr ? a.q8_scratch + part : nullptr, d.scale);
  } else if constexpr (kKind == kOpAddBias) {
    AddBiasOp<kW>(s.n(), in, w, b, e);
  } else if constexpr (kKind == kOpRope) {
    RopeOp(s.n_heads(), s.n_kv_heads(), s.head_dim(), in, in2, a.pos, a.cos_sin, b, e);
  } else if constexpr (kKind == kOpKvWrite) {
    KvWriteOp<kKv>(s.n_kv_heads(), s.head_dim(), s.kv_block(), s.max_blocks(), s.n_layers(), d.layer, in, in2,
                   a.pos, a.row_of, a.tables, a.kv_pool, b, e);
  } else if constexpr (kKind == kOpAttention) {
    AttentionOp<Isa, kKv>(d.rows, s.n_heads(), s.n_kv_heads(), s.head_dim(), s.kv_block(), s.max_blocks(),
                          s.n_layers(), d.layer, in, a.pos, a.row_of, a.tables, a.kv_pool, out,
                          a.scores + part * AttentionScratch(d.ctx_len), b, e);
  } else if constexpr (kKind == kOpAdd) {
    AddOp(s.n(), in, in2, b, e);
  } else if constexpr (kKind == kOpSwiGlu) {
    SwiGluOp<Isa>(s.n(), in, in2, b, e);
  } else if constexpr (kKind == kOpGather) {
    GatherOp(s.n(), in, a.keep, out, b, e);
  } else {
    static_assert(kKind < kNumOpKinds, "an op kind without a branch in RunKind");
  }
}

// Generated code: partition `part` of `parts` of the op D, every shape a constant.
template <class Isa, OpDesc D>
inline void RunFixed(const OpArgs& a, int part, int parts) {
  int b, e;
  Partition(D.split, parts, part, &b, &e);
  RunKind<D.kind, Isa, D.wtype, D.kvtype>(FixedShapes<D>{}, a, part, b, e);
}

}  // namespace tailor::kern

#endif  // TAILOR_KERNELS_OP_TABLE_H_
