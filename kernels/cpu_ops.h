// Operations of specialization programs over the kernels of cpu_kernels.h: the calls generated
// code and the native path make, one partition (-ols) at a time. Self-contained like
// cpu_kernels.h (the compiler copies both into packages; this one as tailor_kernels.h).
#ifndef TAILOR_KERNELS_CPU_OPS_H_
#define TAILOR_KERNELS_CPU_OPS_H_

#include "cpu_kernels.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace tailor::kern {

// Pointers one step of a program runs over. Filled by the runtime; read-only for the ops except
// arena (activations), kv_pool (KV writes) and scores (per-partition scratch).
struct OpArgs {
  std::byte* arena;             // activation arena of the program (its memory plan)
  const std::byte* weights;     // the package's weights file, mapped
  void* kv_pool;                // paged KV blocks (see KvWriteOp)
  const int32_t* tokens;        // [batch * seq_len]
  const int32_t* pos;           // [batch * seq_len], -1 for padding
  const int32_t* row_of;        // [batch * seq_len]: batch row of each token row
  const int32_t* tables;        // [batch, max_blocks] block ids
  const int32_t* keep;          // [batch]: token row whose logits are kept, -1 for none
  const float* cos_sin;         // rope table [max_positions, head_dim / 2, 2]
  float* scores;                // [n_parts, ctx_len] attention scratch
};

// Splits [0, total) into `parts` contiguous ranges; returns range `part`.
inline void Partition(int total, int parts, int part, int* begin, int* end) {
  const int base = total / parts, extra = total % parts;
  *begin = part * base + (part < extra ? part : extra);
  *end = *begin + base + (part < extra ? 1 : 0);
}

// ---------------------------------------------------------------------------------------------
// Operations of a program. `Isa` picks portable::, avx512:: or (bf16-weight matmuls only)
// avx512bf16:: or amx:: through a tag; the first three compute the same bits, amx:: its own.
struct PortableIsa {};
struct Avx512Isa {};
struct Avx512Bf16Isa {};
struct AmxIsa {};  // AVX512-BF16 plus AMX tiles; its bf16 matmuls give their own bits (amx::)
template <class Isa>
inline constexpr bool kAvx512 =
    std::is_same_v<Isa, Avx512Isa> || std::is_same_v<Isa, Avx512Bf16Isa> || std::is_same_v<Isa, AmxIsa>;

template <class Isa, int kType, class R, class K>
inline void MatMulOp(R rows, K k, const float* x, const void* w, float* y, int n_total, int n_begin,
                     int n_end) {
  if constexpr (kType == kWBF16 && std::is_same_v<Isa, AmxIsa>) {
    amx::MatMul(rows, k, x, static_cast<int64_t>(k), w, y, n_total, n_begin, n_end);
  } else if constexpr (kType == kWBF16 && std::is_same_v<Isa, Avx512Bf16Isa>) {
    avx512bf16::MatMul(rows, k, x, static_cast<int64_t>(k), w, y, n_total, n_begin, n_end);
  } else if constexpr (kAvx512<Isa>) {
    avx512::MatMul<kType>(rows, k, x, static_cast<int64_t>(k), w, y, n_total, n_begin, n_end);
  } else {
    portable::MatMul<kType>(rows, k, x, static_cast<int64_t>(k), w, y, n_total, n_begin, n_end);
  }
}

template <class Isa, class N>
inline float SumSquaresOp(N n, const float* x) {
  if constexpr (kAvx512<Isa>) {
    return avx512::SumSquares(n, x);
  } else {
    return portable::SumSquares(n, x);
  }
}

template <class Isa, int kType, class N>
inline float DotOp(N n, const float* a, const void* b, int64_t b_off) {
  if constexpr (kAvx512<Isa>) {
    return avx512::Dot<kType>(n, a, b, b_off);
  } else {
    return portable::Dot<kType>(n, a, b, b_off);
  }
}

template <class Isa, int kType, class N>
inline void AxpyOp(N n, float w, const void* b, int64_t b_off, float* o) {
  if constexpr (kAvx512<Isa>) {
    avx512::Axpy<kType>(n, w, b, b_off, o);
  } else {
    for (int d = 0; d < static_cast<int>(n); ++d) o[d] = std::fma(w, LoadScalar<kType>(b, b_off + d), o[d]);
  }
}

// out[m, d] = embedding[token[m], d] for rows [row_begin, row_end); padding rows (pos < 0) get 0.
template <int kType, class D>
inline void EmbedOp(D dim, const int32_t* tokens, const int32_t* pos, const void* table, float* out,
                    int row_begin, int row_end) {
  for (int m = row_begin; m < row_end; ++m) {
    float* o = out + static_cast<int64_t>(m) * dim;
    if (pos[m] < 0) {
      for (int d = 0; d < static_cast<int>(dim); ++d) o[d] = 0.0f;
      continue;
    }
    const int64_t base = static_cast<int64_t>(tokens[m]) * dim;
    for (int d = 0; d < static_cast<int>(dim); ++d) o[d] = LoadScalar<kType>(table, base + d);
  }
}

// out[m] = x[m] * (1 / sqrt(mean(x[m]^2) + eps)) * weight, rows [row_begin, row_end).
template <class Isa, int kType, class D>
inline void RmsNormOp(D dim, const float* x, const void* weight, float eps, float* out,
                      int row_begin, int row_end) {
  for (int m = row_begin; m < row_end; ++m) {
    const float* xr = x + static_cast<int64_t>(m) * dim;
    float* o = out + static_cast<int64_t>(m) * dim;
    const float ss = SumSquaresOp<Isa>(dim, xr);
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(static_cast<int>(dim)) + eps);
    for (int d = 0; d < static_cast<int>(dim); ++d) o[d] = xr[d] * inv * LoadScalar<kType>(weight, d);
  }
}

// Rotates q [rows, n_heads * head_dim] and k [rows, n_kv_heads * head_dim] in place on
// interleaved pairs; cos_sin: [max_positions, head_dim / 2, 2] (cos, sin) floats.
template <class HQ, class HK, class HD>
inline void RopeOp(HQ n_heads, HK n_kv_heads, HD head_dim, float* q, float* k, const int32_t* pos,
                   const float* cos_sin, int row_begin, int row_end) {
  const int half = static_cast<int>(head_dim) / 2;
  for (int m = row_begin; m < row_end; ++m) {
    if (pos[m] < 0) continue;
    const float* cs = cos_sin + static_cast<int64_t>(pos[m]) * half * 2;
    for (int which = 0; which < 2; ++which) {
      const int heads = which == 0 ? static_cast<int>(n_heads) : static_cast<int>(n_kv_heads);
      float* row = (which == 0 ? q : k) + static_cast<int64_t>(m) * heads * head_dim;
      for (int h = 0; h < heads; ++h) {
        float* v = row + h * static_cast<int>(head_dim);
        for (int i = 0; i < half; ++i) {
          const float c = cs[2 * i], s = cs[2 * i + 1];
          const float x0 = v[2 * i], x1 = v[2 * i + 1];
          v[2 * i] = x0 * c - x1 * s;
          v[2 * i + 1] = x0 * s + x1 * c;
        }
      }
    }
  }
}

// Paged KV: block b holds, per layer, K then V as [block_size, kv_dim] of kKv type.
//   element (block b, layer l, kv 0/1, slot s, d) at
//   ((b * n_layers + l) * 2 + kv) * block_size * kv_dim + s * kv_dim + d.
// row_of[m]: which batch row token m belongs to; tables: [batch, max_blocks] block ids.
template <int kKv, class KD, class BS, class MB, class NL>
inline void KvWriteOp(KD kv_dim, BS block_size, MB max_blocks, NL n_layers, int layer,
                      const float* k, const float* v, const int32_t* pos, const int32_t* row_of,
                      const int32_t* tables, void* pool, int row_begin, int row_end) {
  for (int m = row_begin; m < row_end; ++m) {
    if (pos[m] < 0) continue;
    const int32_t block = tables[row_of[m] * static_cast<int>(max_blocks) + pos[m] / static_cast<int>(block_size)];
    const int slot = pos[m] % static_cast<int>(block_size);
    const int64_t base = ((static_cast<int64_t>(block) * n_layers + layer) * 2) * block_size * kv_dim +
                         static_cast<int64_t>(slot) * kv_dim;
    const int64_t v_base = base + static_cast<int64_t>(block_size) * kv_dim;
    for (int d = 0; d < static_cast<int>(kv_dim); ++d) {
      StoreScalar<kKv>(pool, base + d, k[static_cast<int64_t>(m) * kv_dim + d]);
      StoreScalar<kKv>(pool, v_base + d, v[static_cast<int64_t>(m) * kv_dim + d]);
    }
  }
}

// Causal attention over paged KV for heads [head_begin, head_end), every token row m with
// pos[m] >= 0 attending positions [0, pos[m]] of its batch row. Cost grows with the positions
// used, not with ctx_len. scores: scratch of (max position + 1) floats per calling thread.
template <class Isa, int kKv, class HQ, class HK, class HD, class BS, class MB, class NL>
inline void AttentionOp(int rows, HQ n_heads, HK n_kv_heads, HD head_dim, BS block_size,
                        MB max_blocks, NL n_layers, int layer, const float* q, const int32_t* pos,
                        const int32_t* row_of, const int32_t* tables, const void* pool, float* out,
                        float* scores, int head_begin, int head_end) {
  const int group = static_cast<int>(n_heads) / static_cast<int>(n_kv_heads);
  const int kv_dim = static_cast<int>(n_kv_heads) * static_cast<int>(head_dim);
  const float scale = 1.0f / std::sqrt(static_cast<float>(static_cast<int>(head_dim)));
  const int64_t layer_stride = static_cast<int64_t>(block_size) * kv_dim;
  for (int m = 0; m < rows; ++m) {
    for (int h = head_begin; h < head_end; ++h) {
      float* o = out + (static_cast<int64_t>(m) * n_heads + h) * head_dim;
      if (pos[m] < 0) {
        for (int d = 0; d < static_cast<int>(head_dim); ++d) o[d] = 0.0f;
        continue;
      }
      const float* qh = q + (static_cast<int64_t>(m) * n_heads + h) * head_dim;
      const int kvh = h / group;
      const int32_t* table = tables + row_of[m] * static_cast<int>(max_blocks);
      const int n_pos = pos[m] + 1;
      float max_score = -INFINITY;
      for (int p = 0; p < n_pos; ++p) {
        const int64_t kb = ((static_cast<int64_t>(table[p / static_cast<int>(block_size)]) * n_layers + layer) * 2) *
                               layer_stride +
                           static_cast<int64_t>(p % static_cast<int>(block_size)) * kv_dim + kvh * static_cast<int>(head_dim);
        scores[p] = DotOp<Isa, kKv>(head_dim, qh, pool, kb) * scale;
        max_score = scores[p] > max_score ? scores[p] : max_score;
      }
      float sum = 0.0f;
      for (int p = 0; p < n_pos; ++p) {
        scores[p] = std::exp(scores[p] - max_score);
        sum += scores[p];
      }
      const float inv = 1.0f / sum;
      for (int d = 0; d < static_cast<int>(head_dim); ++d) o[d] = 0.0f;
      for (int p = 0; p < n_pos; ++p) {
        const int64_t vb = ((static_cast<int64_t>(table[p / static_cast<int>(block_size)]) * n_layers + layer) * 2 + 1) *
                               layer_stride +
                           static_cast<int64_t>(p % static_cast<int>(block_size)) * kv_dim + kvh * static_cast<int>(head_dim);
        AxpyOp<Isa, kKv>(head_dim, scores[p] * inv, pool, vb, o);
      }
    }
  }
}

// x[m] += y[m] for rows [row_begin, row_end).
template <class D>
inline void AddOp(D dim, float* x, const float* y, int row_begin, int row_end) {
  for (int64_t i = static_cast<int64_t>(row_begin) * dim; i < static_cast<int64_t>(row_end) * dim; ++i) {
    x[i] += y[i];
  }
}

// g[m] = silu(g[m]) * u[m] for rows [row_begin, row_end).
template <class F>
inline void SwiGluOp(F ffn, float* g, const float* u, int row_begin, int row_end) {
  for (int64_t i = static_cast<int64_t>(row_begin) * ffn; i < static_cast<int64_t>(row_end) * ffn; ++i) {
    g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }
}

// out[r] = x[index[r]] (index < 0: zeros) for rows [row_begin, row_end).
template <class D>
inline void GatherOp(D dim, const float* x, const int32_t* index, float* out, int row_begin,
                     int row_end) {
  for (int r = row_begin; r < row_end; ++r) {
    float* o = out + static_cast<int64_t>(r) * dim;
    if (index[r] < 0) {
      for (int d = 0; d < static_cast<int>(dim); ++d) o[d] = 0.0f;
    } else {
      std::memcpy(o, x + static_cast<int64_t>(index[r]) * dim, sizeof(float) * static_cast<int>(dim));
    }
  }
}

}  // namespace tailor::kern

#pragma GCC diagnostic pop

#endif  // TAILOR_KERNELS_CPU_OPS_H_
