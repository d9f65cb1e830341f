// Operations of specialization programs over the kernels of cpu_kernels.h: the calls generated
// code and the native path make, one partition (-ols) at a time. Self-contained like
// cpu_kernels.h (the compiler copies both into packages; this one as tailor_kernels.h).
#ifndef TAILOR_KERNELS_CPU_OPS_H_
#define TAILOR_KERNELS_CPU_OPS_H_

#include "amx_kernels.h"  // and cpu_kernels.h
#include "q8_kernels.h"

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
  float* scores;                // [n_parts, AttentionScratch(ctx_len)] attention scratch
  const std::byte* packed;      // null, or at a weight's offset its amx::PackWeights copy (AMX
                                // runtimes, bf16 matmul weights that are Packable)
  q8::QuantizedRows* q8_scratch;  // [n_parts] activations quantized by int8 matmuls
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

// w_packed: null or the amx::PackWeights copy of w (read by AMX bf16 matmuls only); q8_scratch:
// the partition's scratch for int8 matmuls (kWQ8 weights, q8_kernels.h; VNNI wherever AVX512-BF16 is).
template <class Isa, int kType, class R, class K>
inline void MatMulOp(R rows, K k, const float* x, const void* w, float* y, int n_total, int n_begin,
                     int n_end, const void* w_packed = nullptr, q8::QuantizedRows* q8_scratch = nullptr,
                     float act_scale = 0.0f) {
  if constexpr (kType == kWW8) {  // static activation scale `act_scale`; every variant gives the same bits
    if constexpr (std::is_same_v<Isa, AmxIsa>) {
      if (static_cast<int>(rows) >= q8::w8::kAmxMinRows) {
        q8::w8::amx::MatMul(rows, k, x, static_cast<int64_t>(k), w, y, n_total, n_begin, n_end, act_scale, *q8_scratch);
      } else {
        q8::w8::vnni::MatMul(rows, k, x, static_cast<int64_t>(k), w, y, n_total, n_begin, n_end, act_scale, *q8_scratch);
      }
    } else if constexpr (std::is_same_v<Isa, Avx512Bf16Isa>) {
      q8::w8::vnni::MatMul(rows, k, x, static_cast<int64_t>(k), w, y, n_total, n_begin, n_end, act_scale, *q8_scratch);
    } else {
      q8::w8::portable::MatMul(rows, k, x, static_cast<int64_t>(k), w, y, n_total, n_begin, n_end, act_scale,
                               *q8_scratch);
    }
  } else if constexpr (kType == kWQ8 || kType == kWQ4) {
    using F = std::conditional_t<kType == kWQ8, q8::Int8Weights, q8::Int4Weights>;
    if constexpr (std::is_same_v<Isa, Avx512Bf16Isa> || std::is_same_v<Isa, AmxIsa>) {
      q8::vnni::MatMul<F>(rows, k, x, static_cast<int64_t>(k), w, y, n_total, n_begin, n_end, *q8_scratch);
    } else {
      q8::portable::MatMul<F>(rows, k, x, static_cast<int64_t>(k), w, y, n_total, n_begin, n_end, *q8_scratch);
    }
  } else if constexpr (kType == kWBF16 && std::is_same_v<Isa, AmxIsa>) {
    amx::MatMul(rows, k, x, static_cast<int64_t>(k), w, y, n_total, n_begin, n_end, w_packed);
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

// b: a KV row of kType; b_scale: its dequantization (kKvI8 only).
template <class Isa, int kType, class N>
inline float DotOp(N n, const float* a, const void* b, int64_t b_off, KvScale b_scale = {}) {
  if constexpr (kAvx512<Isa>) {
    return avx512::Dot<kType>(n, a, b, b_off, b_scale);
  } else {
    return portable::Dot<kType>(n, a, b, b_off, b_scale);
  }
}

template <class Isa, int kType, class N>
inline void AxpyOp(N n, float w, const void* b, int64_t b_off, float* o, KvScale b_scale = {}) {
  if constexpr (kAvx512<Isa>) {
    avx512::Axpy<kType>(n, w, b, b_off, o, b_scale);
  } else {
    for (int d = 0; d < static_cast<int>(n); ++d) o[d] = std::fma(w, LoadKv<kType>(b, b_off + d, b_scale), o[d]);
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
    if constexpr (kType == kWW8) {
      const auto* w = static_cast<const uint8_t*>(table);
      for (int d = 0; d < static_cast<int>(dim); ++d) o[d] = q8::w8::WeightValue(w, static_cast<int>(dim), tokens[m], d);
    } else if constexpr (kType == kWQ8 || kType == kWQ4) {  // q8_kernels.h's packed groups of 16 rows
      using F = std::conditional_t<kType == kWQ8, q8::Int8Weights, q8::Int4Weights>;
      const auto* w = static_cast<const uint8_t*>(table);
      for (int d = 0; d < static_cast<int>(dim); ++d) o[d] = q8::WeightValue<F>(w, static_cast<int>(dim), tokens[m], d);
    } else {
      const int64_t base = static_cast<int64_t>(tokens[m]) * dim;
      for (int d = 0; d < static_cast<int>(dim); ++d) o[d] = LoadScalar<kType>(table, base + d);
    }
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

// Paged KV: block b holds, per layer l, K then V, each a "plane" of its block_size slots:
//   plane (b, l, kv 0/1) at ((b * n_layers + l) * 2 + kv) * KvPlane(...) units of the KV type
//   (elements; bytes for kKvI8), so a block is self-contained (the scheduler moves block ids).
// f32/f16/bf16: a plane is [n_kv_heads, block_size, head_dim] elements; (kv head h, slot s, d)
//   at (h * block_size + s) * head_dim + d: head-major, so that attention, which reads one kv
//   head's rows position after position, streams one contiguous run per block (slot-major rows
//   were kv_dim apart, a stride the hardware prefetchers do not follow: measured 2-4x slower).
// kKvI8: a plane is [n_kv_heads, block_size, head_dim] int8 values q (the same places, in
//   bytes), then [n_kv_heads, block_size] KvScales (f32 scale, f32 zero: 8 bytes each, at
//   block_size * kv_dim + 8 * (h * block_size + s): a head's scales share cache lines, as
//   attention reads them one head at a time): 1 + 8 / head_dim bytes per element. Per (slot,
//   kv head), over the head's head_dim values x (QuantizeKvHead): min/max quantization, value = zero + scale * q with
//   q in [-128, 127]. K heads are stored rotated: x = RotateKvHead(k) (a Hadamard transform,
//   which spreads K's outlier dimensions over the head); attention rotates each query the same
//   way (RotateKvQuery), so q . k is unchanged in exact arithmetic. V is stored as is.
// row_of[m]: which batch row token m belongs to; tables: [batch, max_blocks] block ids.
inline constexpr int kKvScaleBytes = 8;  // KvScale: f32 scale, f32 zero
inline constexpr int kKvMaxHeadDim = 4096;  // the loaders' bound on head_dim

// Units (elements of kKv; bytes for kKvI8) of one plane.
template <int kKv>
inline int64_t KvPlane(int block_size, int n_kv_heads, int head_dim) {
  const int64_t values = static_cast<int64_t>(block_size) * n_kv_heads * head_dim;
  return kKv == kKvI8 ? values + static_cast<int64_t>(block_size) * n_kv_heads * kKvScaleBytes : values;
}

// Bytes of one KV block (every layer, K and V) of kv_type (kWF32, kWF16, kWBF16 or kKvI8).
inline int64_t KvBlockBytes(int kv_type, int n_layers, int block_size, int n_kv_heads, int head_dim) {
  const int64_t planes = static_cast<int64_t>(n_layers) * 2;
  if (kv_type == kKvI8) return planes * KvPlane<kKvI8>(block_size, n_kv_heads, head_dim);
  return planes * KvPlane<kWF32>(block_size, n_kv_heads, head_dim) * (kv_type == kWF32 ? 4 : 2);
}

// kKvI8's rotation block: the largest power of two dividing head_dim (8 for 8, 40, 72; 128 for 128).
inline int KvRotationBlock(int head_dim) { return head_dim & -head_dim; }

// x[0, head_dim) = H x in place, H block-diagonal with Sylvester-Hadamard blocks of
// KvRotationBlock(head_dim) (entries +-1, unnormalized: H^T H = block * I), by the in-place
// butterfly (x[j], x[j + len]) = (x[j] + x[j + len], x[j] - x[j + len]), len = 1, 2, 4, ...
inline void RotateKvHead(int head_dim, float* x) {
  const int block = KvRotationBlock(head_dim);
  for (int b0 = 0; b0 < head_dim; b0 += block) {
    for (int len = 1; len < block; len *= 2) {
      for (int i = b0; i < b0 + block; i += 2 * len) {
        for (int j = i; j < i + len; ++j) {
          const float a = x[j], b = x[j + len];
          x[j] = a + b;
          x[j + len] = a - b;
        }
      }
    }
  }
}

// out[0, head_dim) = H q / block (RotateKvHead's H; dividing by a power of two is exact), so
// out . (H k) = q . k in exact arithmetic.
inline void RotateKvQuery(int head_dim, const float* q, float* out) {
  for (int d = 0; d < head_dim; ++d) out[d] = q[d];
  RotateKvHead(head_dim, out);
  const float inv = 1.0f / static_cast<float>(KvRotationBlock(head_dim));
  for (int d = 0; d < head_dim; ++d) out[d] *= inv;
}

// The int8 values and KvScale of one (slot, kv head) from x[0, head_dim) (kKvI8 above), in
// float64 from the floats: scale = f32((max - min) / 255), zero = f32(min + 128 scale),
// q = nearest-even((x - zero) / scale) clamped to [-128, 127]; the error |x - (zero + scale q)|
// is at most scale / 2 plus float rounding. All equal values (scale 0) give q = 0 and zero = x
// (exact); a non-finite value makes scale and zero NaN (as f32 KV would carry it) and q 0.
inline void QuantizeKvHead(int head_dim, const float* x, int8_t* q, KvScale* s) {
  double lo = x[0], hi = x[0];
  bool finite = true;
  for (int d = 0; d < head_dim; ++d) {
    finite = finite && std::isfinite(x[d]);
    lo = x[d] < lo ? x[d] : lo;
    hi = x[d] > hi ? x[d] : hi;
  }
  if (!finite) {
    s->scale = s->zero = NAN;
    for (int d = 0; d < head_dim; ++d) q[d] = 0;
    return;
  }
  s->scale = static_cast<float>((hi - lo) / 255.0);
  s->zero = static_cast<float>(lo + 128.0 * s->scale);
  for (int d = 0; d < head_dim; ++d) {
    double r = s->scale > 0.0f ? std::nearbyint((x[d] - static_cast<double>(s->zero)) / s->scale) : 0.0;
    r = r > 127.0 ? 127.0 : r < -128.0 ? -128.0 : r;
    q[d] = static_cast<int8_t>(r);
  }
}

template <int kKv, class HK, class HD, class BS, class MB, class NL>
inline void KvWriteOp(HK n_kv_heads, HD head_dim, BS block_size, MB max_blocks, NL n_layers, int layer,
                      const float* k, const float* v, const int32_t* pos, const int32_t* row_of,
                      const int32_t* tables, void* pool, int row_begin, int row_end) {
  const int hd = static_cast<int>(head_dim), kv_dim = static_cast<int>(n_kv_heads) * hd;
  const int64_t plane = KvPlane<kKv>(static_cast<int>(block_size), static_cast<int>(n_kv_heads), hd);
  for (int m = row_begin; m < row_end; ++m) {
    if (pos[m] < 0) continue;
    const int32_t block = tables[row_of[m] * static_cast<int>(max_blocks) + pos[m] / static_cast<int>(block_size)];
    const int slot = pos[m] % static_cast<int>(block_size);
    for (int which = 0; which < 2; ++which) {
      const float* src = (which == 0 ? k : v) + static_cast<int64_t>(m) * kv_dim;
      const int64_t at = ((static_cast<int64_t>(block) * n_layers + layer) * 2 + which) * plane;
      if constexpr (kKv == kKvI8) {
        auto* bytes = static_cast<char*>(pool) + at;
        for (int h = 0; h < static_cast<int>(n_kv_heads); ++h) {
          const int64_t row = (static_cast<int64_t>(h) * block_size + slot) * hd;
          float rotated[kKvMaxHeadDim];
          const float* x = src + h * hd;
          if (which == 0) {
            for (int d = 0; d < hd; ++d) rotated[d] = x[d];
            RotateKvHead(hd, rotated);
            x = rotated;
          }
          KvScale s;
          QuantizeKvHead(hd, x, reinterpret_cast<int8_t*>(bytes) + row, &s);
          char* param = bytes + static_cast<int64_t>(block_size) * kv_dim +
                        (static_cast<int64_t>(h) * block_size + slot) * kKvScaleBytes;
          std::memcpy(param, &s.scale, 4);
          std::memcpy(param + 4, &s.zero, 4);
        }
      } else {
        for (int h = 0; h < static_cast<int>(n_kv_heads); ++h) {
          const int64_t row = at + (static_cast<int64_t>(h) * block_size + slot) * hd;
          for (int d = 0; d < hd; ++d) StoreScalar<kKv>(pool, row + d, src[h * hd + d]);
        }
      }
    }
  }
}

// Where position p of a batch row's KV lives: offset (units of the KV type) of its K row for
// layer `layer`, kv head `kvh`, and for kKvI8 the byte offset of its scale (V's are v_shift
// further). See KvWriteOp for the layout.
struct KvCursor {
  const int32_t* table;  // block ids of the batch row
  int64_t block_stride;  // units per KV block (all layers, K and V)
  int64_t base;          // offset of this layer's K and this kv head inside a block
  int64_t v_shift;       // V row minus K row (one plane)
  int block_size, head_dim;  // head_dim: units from one slot's row to the next
  int64_t scale_base = 0;  // kKvI8: offset of this layer's K scale of slot 0, this kv head
  int64_t K(int p) const {
    return table[p / block_size] * block_stride + base + static_cast<int64_t>(p % block_size) * head_dim;
  }
  int64_t Scale(int p) const {
    return table[p / block_size] * block_stride + scale_base + static_cast<int64_t>(p % block_size) * kKvScaleBytes;
  }
};

// The KvScale of position p's K (v false) or V row: kKvI8's, or the identity (unused) for the
// float types.
template <int kKv>
inline KvScale RowScale(const void* pool, const KvCursor& kv, int p, bool v) {
  if constexpr (kKv == kKvI8) {
    return LoadKvScale(pool, kv.Scale(p) + (v ? kv.v_shift : 0));
  } else {
    return {};
  }
}

// Visits K rows of positions p, p + 1, ... in order without a division per position.
struct KvWalk {
  const int32_t* table;
  int64_t block_stride, base, head_dim, scale_base;
  int block_size, page = 0, slot = 0;
  int64_t page_block;  // offset of the current block
  KvWalk(const KvCursor& c, int p)
      : table(c.table), block_stride(c.block_stride), base(c.base), head_dim(c.head_dim), scale_base(c.scale_base),
        block_size(c.block_size), page(p / c.block_size), slot(p % c.block_size),
        page_block(c.table[page] * c.block_stride) {}
  int64_t Next() {  // K row of the next position (reads no table entry past it)
    if (slot == block_size) {
      slot = 0;
      ++page;
      page_block = table[page] * block_stride;
    }
    return page_block + base + slot++ * head_dim;
  }
  int64_t LastScale() const {  // kKvI8: the scale of the row Next() returned last
    return page_block + scale_base + static_cast<int64_t>(slot - 1) * kKvScaleBytes;
  }
};

namespace attention {

// Softmax weights of one query: scores[p] = q . k_p * scale for p < n (each a 16-lane dot product
// with the fixed tree), then e_p = Exp(scores[p] - max) summed in 16 lanes by p mod 16 and
// reduced with the tree; returns 1 / sum. scores[p] holds e_p afterwards.
template <int kKv, class HD>
inline float Weights(HD head_dim, const float* qh, const void* pool, const KvCursor& kv, int n,
                     float scale, float* scores) {
  float max_score = -INFINITY;
  for (int p = 0; p < n; ++p) {
    scores[p] = portable::Dot<kKv>(head_dim, qh, pool, kv.K(p), RowScale<kKv>(pool, kv, p, false)) * scale;
    max_score = scores[p] > max_score ? scores[p] : max_score;
  }
  float lanes[16] = {};
  for (int p = 0; p < n; ++p) {
    scores[p] = ExpScalar(scores[p] - max_score);
    lanes[p % 16] += scores[p];
  }
  return 1.0f / ReduceLanes(lanes);
}

// The AVX-512 path: a set of up to kQueries queries over the same K and V rows (rows of one
// sequence, heads of one kv head) walks the positions in tiles of kTile, each tile's K (then V)
// rows reused by every query while in L1. Per query it computes exactly what Weights and the
// position-ordered weighted sum of V compute: 16 positions per step, their dot products reduced
// together by Reduce16 (the tree of Reduce), Exp in lanes.
inline constexpr int kQueries = 16, kTile = 32;

struct Query {
  const float* q;  // [head_dim]
  float* out;      // [head_dim]
  int n;           // positions attended: [0, n)
};

// Rows read straight from the pool (kType = the KV type) or from a tile copied by CopyTile
// (kType = kWF32, rows of kC * 16 floats). LastScale: the scale of the row Next() returned last
// (read for kKvI8 pools only).
struct PoolRows {
  KvWalk walk;
  int64_t shift;  // 0 for K, v_shift for V
  int64_t Next() { return walk.Next() + shift; }
  KvScale LastScale(const void* pool) const { return LoadKvScale(pool, walk.LastScale() + shift); }
};
struct TileRows {
  int64_t next, stride;
  int64_t Next() { return (next += stride) - stride; }
  KvScale LastScale(const void*) const { return {}; }  // float tiles have none
};

// buf[p - p_begin] = K (or V) row of p as floats, for p in [p_begin, p_end); lanes past head_dim 0.
// kKvI8 rows are dequantized here (zero + scale * q per element, LoadKv's bits).
template <int kKv, int kC>
TAILOR_AVX512_INLINE void CopyTile(int head_dim, const void* pool, const KvCursor& kv, bool v, int p_begin,
                                   int p_end, float* buf) {
  KvWalk walk(kv, p_begin);
  const int64_t shift = v ? kv.v_shift : 0;
  for (int p = p_begin; p < p_end; ++p) {
    const int64_t at = walk.Next() + shift;
    const KvScale row_scale = kKv == kKvI8 ? LoadKvScale(pool, walk.LastScale() + shift) : KvScale{};
#pragma GCC unroll 8
    for (int c = 0; c < kC; ++c) {
      _mm512_storeu_ps(buf + (p - p_begin) * kC * 16 + 16 * c,
                       avx512::LoadKvW<kKv>(pool, at + 16 * c, head_dim - 16 * c, row_scale));
    }
  }
}

// Prefetches into L2 the K (or V) rows of positions [p_begin, p_end), every cache line of each
// row (kKvI8: and its scale line). A head's rows are contiguous within a block, but blocks are
// wherever the KV-cache manager put them, so a walk's stream breaks every block_size positions;
// prefetching the next tile while one is computed keeps the reads at the machine's bandwidth
// (measured, 110M shape, b8 decode at 256 positions, one core: f32 KV 17 -> 7-9.5 ms, f16
// 8.3 -> 4.2-5.3 ms; into L1 instead it stalls on the fill buffers and gains little).
template <int kKv>
TAILOR_AVX512_INLINE void PrefetchTile(int head_dim, const void* pool, const KvCursor& kv, bool v, int p_begin,
                                       int p_end) {
  constexpr int kUnit = kKv == kWF32 ? 4 : kKv == kKvI8 ? 1 : 2;  // bytes per element
  const char* base = static_cast<const char*>(pool);
  const int64_t shift = v ? kv.v_shift : 0;
  KvWalk walk(kv, p_begin);
  for (int p = p_begin; p < p_end; ++p) {
    const char* row = base + (walk.Next() + shift) * kUnit;
    for (int b = 0; b < head_dim * kUnit; b += 64) _mm_prefetch(row + b, _MM_HINT_T1);
    if constexpr (kKv == kKvI8) _mm_prefetch(base + walk.LastScale() + shift, _MM_HINT_T1);
  }
}

// scores[p] = q . k_p * scale for p in [p_begin, p_end) (p_begin a multiple of 16), K rows from
// `rows`; *vmax holds the running maximum in lanes.
template <int kType, int kC, class Rows>
TAILOR_AVX512_INLINE void ScoreTile(int head_dim, const float* qh, const void* src, Rows rows,
                                    int p_begin, int p_end, float scale, float* scores, __m512* vmax) {
  __m512 q[kC];
#pragma GCC unroll 8
  for (int c = 0; c < kC; ++c) q[c] = avx512::LoadW<kWF32>(qh, 16 * c, head_dim - 16 * c);
  for (int p0 = p_begin; p0 < p_end; p0 += 16) {
    const int count = p_end - p0 < 16 ? p_end - p0 : 16;
    __m512 acc[16];
#pragma GCC unroll 16
    for (int t = 0; t < 16; ++t) {
      acc[t] = _mm512_setzero_ps();
      if (t >= count) continue;
      const int64_t at = rows.Next();
      const KvScale row_scale = kType == kKvI8 ? rows.LastScale(src) : KvScale{};
#pragma GCC unroll 8
      for (int c = 0; c < kC; ++c) {
        const __m512 k = avx512::LoadKvW<kType>(src, at + 16 * c, head_dim - 16 * c, row_scale);
        acc[t] = _mm512_fmadd_ps(q[c], k, acc[t]);
      }
    }
    const __mmask16 mask = avx512::HalfMask(count);
    const __m512 s = _mm512_mul_ps(avx512::Reduce16(acc), _mm512_set1_ps(scale));
    _mm512_mask_storeu_ps(scores + p0, mask, s);
    *vmax = _mm512_mask_max_ps(*vmax, mask, *vmax, s);
  }
}

// scores[p] = Exp(scores[p] - max) for p < n, summed in lanes by p mod 16; returns 1 / sum.
TAILOR_AVX512_INLINE float ExpSum(int n, __m512 vmax, float* scores) {
  const __m512 max_score = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
  __m512 lanes = _mm512_setzero_ps();
  for (int p0 = 0; p0 < n; p0 += 16) {
    const __mmask16 mask = avx512::HalfMask(n - p0);
    const __m512 s = _mm512_maskz_loadu_ps(mask, scores + p0);
    const __m512 e = _mm512_maskz_mov_ps(mask, avx512::Exp(_mm512_sub_ps(s, max_score)));
    _mm512_mask_storeu_ps(scores + p0, mask, e);
    lanes = _mm512_add_ps(lanes, e);
  }
  return 1.0f / avx512::Reduce(lanes);
}

// o = fma(scores[p] * inv, v_p, o) for p in [p_begin, p_end) in order; o starts at zero when
// p_begin is 0, else continues from out.
template <int kType, int kC, class Rows>
TAILOR_AVX512_INLINE void MixTile(int head_dim, const void* src, Rows rows, int p_begin, int p_end,
                                  const float* scores, float inv, float* out) {
  __m512 acc[kC];
  int count[kC];
#pragma GCC unroll 8
  for (int c = 0; c < kC; ++c) {
    count[c] = head_dim - 16 * c;
    acc[c] = p_begin == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(avx512::HalfMask(count[c]), out + 16 * c);
  }
  for (int p = p_begin; p < p_end; ++p) {
    const __m512 w = _mm512_set1_ps(scores[p] * inv);
    const int64_t at = rows.Next();
    const KvScale row_scale = kType == kKvI8 ? rows.LastScale(src) : KvScale{};
#pragma GCC unroll 8
    for (int c = 0; c < kC; ++c) {
      acc[c] = _mm512_fmadd_ps(w, avx512::LoadKvW<kType>(src, at + 16 * c, count[c], row_scale), acc[c]);
    }
  }
#pragma GCC unroll 8
  for (int c = 0; c < kC; ++c) _mm512_mask_storeu_ps(out + 16 * c, avx512::HalfMask(count[c]), acc[c]);
}

// Attends `nq` (<= kQueries) queries over kv; scores: nq * (max n) floats. With several queries
// each tile of K (then V) rows is first copied to a float buffer in L1, whatever the KV type
// (kKvI8 rows dequantized by CopyTile); a single query reads the pool's rows, dequantizing each
// element as it loads it (LoadKvW: the same bits either way).
template <int kKv, int kC>
TAILOR_AVX512_TARGET inline void AttendSet(int head_dim, const Query* qs, int nq, const void* pool,
                                           const KvCursor& kv, float scale, float* scores) {
  int stride = 0;
  for (int i = 0; i < nq; ++i) stride = qs[i].n > stride ? qs[i].n : stride;
  __m512 vmax[kQueries];
  float inv[kQueries];
  alignas(64) float buf[kTile * kC * 16];
  auto tile_end = [stride](int t0) { return stride < t0 + kTile ? stride : t0 + kTile; };
  for (int i = 0; i < nq; ++i) vmax[i] = _mm512_set1_ps(-INFINITY);
  for (int v = 0; v < 2; ++v) {
    if (v == 1) {
      for (int i = 0; i < nq; ++i) inv[i] = ExpSum(qs[i].n, vmax[i], scores + i * stride);
    }
    if (v == 0) PrefetchTile<kKv>(head_dim, pool, kv, false, 0, tile_end(0));
    for (int t0 = 0; t0 < stride; t0 += kTile) {
      const int t_end = tile_end(t0);
      // The next tile's rows, or after K's last tile V's first.
      if (t_end < stride) {
        PrefetchTile<kKv>(head_dim, pool, kv, v == 1, t_end, tile_end(t_end));
      } else if (v == 0) {
        PrefetchTile<kKv>(head_dim, pool, kv, true, 0, tile_end(0));
      }
      if (nq > 1) CopyTile<kKv, kC>(head_dim, pool, kv, v == 1, t0, t_end, buf);
      for (int i = 0; i < nq; ++i) {
        const int end = qs[i].n < t_end ? qs[i].n : t_end;
        if (end <= t0) continue;
        float* si = scores + i * stride;
        if (nq > 1) {
          const TileRows rows{0, kC * 16};
          if (v == 0) ScoreTile<kWF32, kC>(head_dim, qs[i].q, buf, rows, t0, end, scale, si, &vmax[i]);
          if (v == 1) MixTile<kWF32, kC>(head_dim, buf, rows, t0, end, si, inv[i], qs[i].out);
        } else {
          const PoolRows rows{KvWalk(kv, t0), v == 1 ? kv.v_shift : 0};
          if (v == 0) ScoreTile<kKv, kC>(head_dim, qs[i].q, pool, rows, t0, end, scale, si, &vmax[i]);
          if (v == 1) MixTile<kKv, kC>(head_dim, pool, rows, t0, end, si, inv[i], qs[i].out);
        }
      }
    }
  }
}

template <int kKv>
inline void AttendSetAnyDim(int head_dim, const Query* qs, int nq, const void* pool, const KvCursor& kv,
                            float scale, float* scores) {
  switch ((head_dim + 15) / 16) {
    case 1: return AttendSet<kKv, 1>(head_dim, qs, nq, pool, kv, scale, scores);
    case 2: return AttendSet<kKv, 2>(head_dim, qs, nq, pool, kv, scale, scores);
    case 3: return AttendSet<kKv, 3>(head_dim, qs, nq, pool, kv, scale, scores);
    case 4: return AttendSet<kKv, 4>(head_dim, qs, nq, pool, kv, scale, scores);
    case 5: return AttendSet<kKv, 5>(head_dim, qs, nq, pool, kv, scale, scores);
    case 6: return AttendSet<kKv, 6>(head_dim, qs, nq, pool, kv, scale, scores);
    case 7: return AttendSet<kKv, 7>(head_dim, qs, nq, pool, kv, scale, scores);
    default: return AttendSet<kKv, 8>(head_dim, qs, nq, pool, kv, scale, scores);
  }
}

}  // namespace attention

// Causal attention over paged KV for heads [head_begin, head_end), every token row m with
// pos[m] >= 0 attending positions [0, pos[m]] of its batch row. Cost grows with the positions
// used, not with ctx_len. scores: scratch of AttentionScratch(ctx_len) floats per calling thread.
// Each (row, head) is computed alone by attention::Weights and a weighted sum of V rows in
// position order, so its bits do not depend on the other rows or heads; the AVX-512 path
// (head_dim up to 128) computes the same operations for sets of queries sharing K and V.
inline int64_t AttentionScratch(int ctx_len) { return static_cast<int64_t>(attention::kQueries) * ctx_len; }

template <class Isa, int kKv, class HQ, class HK, class HD, class BS, class MB, class NL>
inline void AttentionOp(int rows, HQ n_heads, HK n_kv_heads, HD head_dim, BS block_size,
                        MB max_blocks, NL n_layers, int layer, const float* q, const int32_t* pos,
                        const int32_t* row_of, const int32_t* tables, const void* pool, float* out,
                        float* scores, int head_begin, int head_end) {
  const int group = static_cast<int>(n_heads) / static_cast<int>(n_kv_heads);
  const int hd = static_cast<int>(head_dim);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  KvCursor kv;
  kv.block_size = static_cast<int>(block_size);
  kv.head_dim = hd;
  kv.v_shift = KvPlane<kKv>(kv.block_size, static_cast<int>(n_kv_heads), hd);
  kv.block_stride = static_cast<int64_t>(n_layers) * 2 * kv.v_shift;
  // kKvI8: the scales of kv head kvh follow the plane's values (KvWriteOp).
  auto set_head = [&](int kvh) {
    kv.base = static_cast<int64_t>(layer) * 2 * kv.v_shift + static_cast<int64_t>(kvh) * kv.block_size * hd;
    kv.scale_base = static_cast<int64_t>(layer) * 2 * kv.v_shift +
                    static_cast<int64_t>(kv.block_size) * (static_cast<int64_t>(n_kv_heads) * hd + kvh * kKvScaleBytes);
  };
  auto at = [&](auto* base, int m, int h) { return base + (static_cast<int64_t>(m) * n_heads + h) * hd; };
  // kKvI8: K is stored rotated, so each query is rotated first (RotateKvQuery).
  if constexpr (kAvx512<Isa>) {
    if (hd <= 128) {
      attention::Query set[attention::kQueries];
      alignas(64) float rotated[kKv == kKvI8 ? attention::kQueries : 1][128];
      for (int kvh = head_begin / group; kvh * group < head_end; ++kvh) {
        set_head(kvh);
        const int hb = head_begin > kvh * group ? head_begin : kvh * group;
        const int he = head_end < (kvh + 1) * group ? head_end : (kvh + 1) * group;
        for (int m0 = 0; m0 < rows;) {  // runs of rows of one sequence share K and V
          int m1 = m0 + 1;
          while (m1 < rows && row_of[m1] == row_of[m0]) ++m1;
          kv.table = tables + row_of[m0] * static_cast<int>(max_blocks);
          int nq = 0;
          for (int m = m0; m < m1; ++m) {
            for (int h = hb; h < he; ++h) {
              if (pos[m] < 0) {
                for (int d = 0; d < hd; ++d) at(out, m, h)[d] = 0.0f;
                continue;
              }
              const float* qh = at(q, m, h);
              if constexpr (kKv == kKvI8) {
                RotateKvQuery(hd, qh, rotated[nq]);
                qh = rotated[nq];
              }
              set[nq++] = {qh, at(out, m, h), pos[m] + 1};
              if (nq == attention::kQueries) {
                attention::AttendSetAnyDim<kKv>(hd, set, nq, pool, kv, scale, scores);
                nq = 0;
              }
            }
          }
          if (nq > 0) attention::AttendSetAnyDim<kKv>(hd, set, nq, pool, kv, scale, scores);
          m0 = m1;
        }
      }
      return;
    }
  }
  for (int h = head_begin; h < head_end; ++h) {
    for (int m = 0; m < rows; ++m) {
      float* o = at(out, m, h);
      if (pos[m] < 0) {
        for (int d = 0; d < hd; ++d) o[d] = 0.0f;
        continue;
      }
      kv.table = tables + row_of[m] * static_cast<int>(max_blocks);
      set_head(h / group);
      const float* qh = at(q, m, h);
      float rotated[kKv == kKvI8 ? kKvMaxHeadDim : 1];
      if constexpr (kKv == kKvI8) {
        RotateKvQuery(hd, qh, rotated);
        qh = rotated;
      }
      const float inv = attention::Weights<kKv>(head_dim, qh, pool, kv, pos[m] + 1, scale, scores);
      for (int d = 0; d < hd; ++d) o[d] = 0.0f;
      for (int p = 0; p <= pos[m]; ++p) {
        AxpyOp<Isa, kKv>(head_dim, scores[p] * inv, pool, kv.K(p) + kv.v_shift, o, RowScale<kKv>(pool, kv, p, true));
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

// g[m] = silu(g[m]) * u[m] = g / (1 + e^-g) * u for rows [row_begin, row_end), e^x by ExpScalar
// (avx512::Exp in lanes: the same bits).
template <class Isa, class F>
inline void SwiGluOp(F ffn, float* g, const float* u, int row_begin, int row_end) {
  int64_t i = static_cast<int64_t>(row_begin) * ffn;
  const int64_t end = static_cast<int64_t>(row_end) * ffn;
  if constexpr (kAvx512<Isa>) {
    if (i < end) avx512::SwiGlu(end - i, g + i, u + i);
    return;
  }
  for (; i < end; ++i) g[i] = g[i] / (1.0f + ExpScalar(-g[i])) * u[i];
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
