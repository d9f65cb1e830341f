// 8-bit and 4-bit weights (the package formats q8_0 and q4: DType::kQ8, kQ4) times 8-bit
// activations.
//
// Weights: blocks of 32 along k, value = d * q with one f16 scale d per block; q in [-127, 127]
// (q8_0, as GGUF's Q8_0) or [-8, 7] (q4, as GGUF's Q4_0). Packed for the kernels in groups of 16
// rows (n % 16 == 0, k % 32 == 0): group g holds, for each block b in order, a tile of the 16 rows'
// quants, then their 16 f16 scales. q8_0 (544-byte tiles): 512 bytes laid out [quad j < 8][row
// i < 16][4 bytes] (the quant of row 16g+i at k = 32b + 4j + t, stored as the unsigned byte
// q + 128). q4 (288-byte tiles): 256 bytes, [quad pair p < 4][row i][4 bytes], each byte holding
// quad 2p's value (q + 8) in its low nibble and quad 2p+1's in its high one. Either way one quad
// becomes a 64-byte vector of 16 lanes of 4 unsigned bytes, one lane per row, which VPDPBUSD
// multiplies with 4 bytes of an activation row broadcast to every lane; the bias (128 or 8) is
// taken out with the activation block's sum.
//
// Activations are quantized per row and per block of 32 when a matmul runs: d_x = amax / 127,
// q_x = nearest-even(x * (127 / amax)) (0 for an all-zero block), and s_x = sum of the block's q_x.
// Then, for every output (m, n), in block order:
//   isum = sum_i (q_w + bias) * q_x - bias * s_x   (exact in int32)
//   acc  = fma((float) isum, d_w * d_x, acc)     (acc starts at 0)
// Both variants compute exactly this (the integer sums are exact and the float operations are the
// same, in the same order), so their bits agree and an output never depends on the other rows,
// the tile that computed it or the -ols partition: batch invariance by construction.
//
// Self-contained (standard headers and intrinsics): packages carry a copy of it.
#ifndef TAILOR_KERNELS_Q8_KERNELS_H_
#define TAILOR_KERNELS_Q8_KERNELS_H_

#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#define TAILOR_VNNI_TARGET \
  __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,f16c,avx512vnni")))
#define TAILOR_VNNI_INLINE \
  __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,f16c,avx512vnni"), always_inline)) inline

namespace tailor::kern::q8 {

inline constexpr int kBlock = 32;      // k per scale
inline constexpr int kGroup = 16;      // weight rows packed together

// The two weight formats: bytes of one block of one group, where its scales start, the bias of
// the stored quants.
struct Int8Weights {
  static constexpr int kTileBytes = 544, kScaleOffset = 512, kBias = 128;
};
struct Int4Weights {
  static constexpr int kTileBytes = 288, kScaleOffset = 256, kBias = 8;
};
inline constexpr int kMaxK = 1 << 15;  // longest row (k) an int8 matmul takes
// Weight bytes the matmuls prefetch ahead of their loads (into L2; past a matrix's end it only
// fetches unused lines, and prefetches never fault).
inline constexpr int64_t kPrefetchBytes = 16384;

// Rows of activations quantized at once: every weight tile loaded is used for all of them (a
// decode batch of up to 16 rows reads the weights once).
inline constexpr int kChunkRows = 16;

// Groups of outputs a matmul of `rows` rows runs at a time: with more rows than one chunk,
// slices of about 1 MiB of weights (kept in L2; a multiple of 4 groups) over which every chunk
// of rows runs before the next slice (each chunk's rows quantized again per slice, a small cost
// next to the products), so the weights stream from memory once, not once per chunk; else all.
inline int SliceGroups(int rows, int64_t group_bytes, int groups) {
  if (rows <= kChunkRows) return groups > 0 ? groups : 1;
  const int64_t slice = ((int64_t{1} << 20) / group_bytes + 3) / 4 * 4;
  return static_cast<int>(slice > 4 ? slice : 4);
}

// Calls chunk(m0, mc, s0, s_end) for every slice [s0, s_end) of the groups holding outputs
// [n_begin, n_end) (SliceGroups) and, within it, every chunk of rows [m0, m0 + mc), mc <= kChunkRows.
template <class Chunk>
inline void ForSlicesAndChunks(int rows, int64_t group_bytes, int n_begin, int n_end, Chunk chunk) {
  const int g_begin = n_begin / kGroup, g_end = (n_end + kGroup - 1) / kGroup;
  const int slice = SliceGroups(rows, group_bytes, g_end - g_begin);
  for (int s0 = g_begin; s0 < g_end; s0 += slice) {
    const int s_end = g_end < s0 + slice ? g_end : s0 + slice;
    for (int m0 = 0; m0 < rows; m0 += kChunkRows) chunk(m0, rows - m0 < kChunkRows ? rows - m0 : kChunkRows, s0, s_end);
  }
}

inline float HalfBitsToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {
      exp = 113;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Quantizes one activation row (k % 32 == 0): q[k], d[k/32], s[k/32].
inline void QuantizeRow(int k, const float* x, int8_t* q, float* d, int32_t* s) {
  for (int b = 0; b < k / kBlock; ++b) {
    const float* xb = x + b * kBlock;
    float amax = 0.0f;
    for (int i = 0; i < kBlock; ++i) amax = std::fabs(xb[i]) > amax ? std::fabs(xb[i]) : amax;
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    d[b] = amax / 127.0f;
    int32_t sum = 0;
    for (int i = 0; i < kBlock; ++i) {
      const int v = static_cast<int>(std::nearbyint(xb[i] * id));
      q[b * kBlock + i] = static_cast<int8_t>(v);
      sum += v;
    }
    s[b] = sum;
  }
}

// Weight quant of row i of a group at k index c, as stored (q + bias), and the row's scale of
// block b.
template <class F = Int8Weights>
inline int StoredQuant(const uint8_t* group, int i, int c) {
  const uint8_t* tile = group + static_cast<int64_t>(c / kBlock) * F::kTileBytes;
  const int j = (c % kBlock) / 4, t = c % 4;
  if constexpr (F::kBias == 128) {
    return tile[j * 64 + i * 4 + t];
  } else {
    const uint8_t byte = tile[(j / 2) * 64 + i * 4 + t];
    return j % 2 == 0 ? byte & 0x0f : byte >> 4;
  }
}
template <class F = Int8Weights>
inline float Scale(const uint8_t* group, int i, int b) {
  uint16_t h;
  std::memcpy(&h, group + static_cast<int64_t>(b) * F::kTileBytes + F::kScaleOffset + 2 * i, 2);
  return HalfBitsToFloat(h);
}
// The value of row r, column c of a packed matrix with `k` columns.
template <class F>
inline float WeightValue(const uint8_t* w, int k, int64_t r, int c) {
  const uint8_t* group = w + (r / kGroup) * static_cast<int64_t>(k / kBlock) * F::kTileBytes;
  const int i = static_cast<int>(r % kGroup);
  return Scale<F>(group, i, c / kBlock) * static_cast<float>(StoredQuant<F>(group, i, c) - F::kBias);
}

// Activations of up to kChunkRows rows, quantized: a matmul's scratch (one per partition running
// at once; owned by the caller).
struct QuantizedRows {
  int8_t q[kChunkRows][kMaxK];
  float d[kChunkRows][kMaxK / kBlock];
  int32_t s[kChunkRows][kMaxK / kBlock];
};

namespace portable {

// y[m, n] = x[m] . w[n] for rows m < rows and outputs n in [n_begin, n_end) (row stride of y:
// n_total), k <= kMaxK.
template <class F, class R, class K>
void MatMul(R rows_e, K k_e, const float* x, int64_t ldx, const void* w, float* y, int64_t ldy, int n_begin,
            int n_end, QuantizedRows& qx) {
  const int rows = static_cast<int>(rows_e), k = static_cast<int>(k_e), blocks = k / kBlock;
  const auto* wb = static_cast<const uint8_t*>(w);
  const int64_t group_bytes = static_cast<int64_t>(blocks) * F::kTileBytes;
  for (int m0 = 0; m0 < rows; m0 += kChunkRows) {
    const int mc = rows - m0 < kChunkRows ? rows - m0 : kChunkRows;
    for (int r = 0; r < mc; ++r) QuantizeRow(k, x + (m0 + r) * ldx, qx.q[r], qx.d[r], qx.s[r]);
    for (int n = n_begin; n < n_end; ++n) {
      const uint8_t* group = wb + (n / kGroup) * group_bytes;
      const int i = n % kGroup;
      for (int r = 0; r < mc; ++r) {
        float acc = 0.0f;
        for (int b = 0; b < blocks; ++b) {
          int32_t dp = 0;
          for (int c = b * kBlock; c < (b + 1) * kBlock; ++c) dp += StoredQuant<F>(group, i, c) * qx.q[r][c];
          const int32_t isum = dp - F::kBias * qx.s[r][b];
          acc = std::fma(static_cast<float>(isum), Scale<F>(group, i, b) * qx.d[r][b], acc);
        }
        y[(m0 + r) * ldy + n] = acc;
      }
    }
  }
}

}  // namespace portable

namespace vnni {

// QuantizeRow with AVX-512: the same operations per element (max of |x|, one multiply, round to
// nearest even), so the same bits.
TAILOR_VNNI_TARGET inline void QuantizeRow(int k, const float* x, int8_t* q, float* d, int32_t* s) {
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int b = 0; b < k / kBlock; ++b) {
    const __m512 v0 = _mm512_loadu_ps(x + b * kBlock), v1 = _mm512_loadu_ps(x + b * kBlock + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(v0, abs_mask), _mm512_and_ps(v1, abs_mask)));
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    d[b] = amax / 127.0f;
    const __m512 vid = _mm512_set1_ps(id);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, vid));  // MXCSR: round to nearest even
    const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, vid));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kBlock), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kBlock + 16), _mm512_cvtepi32_epi8(q1));
    s[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
  }
}

// Outputs of kT groups (16 rows each) for kR activation rows: per block, 8 VPDPBUSD per (row,
// group) into exact int32 lanes, then the row's correction, conversion and one fma per lane.
// The stored quants of quad j of a tile as 16 lanes of 4 unsigned bytes.
template <class F>
TAILOR_VNNI_INLINE __m512i LoadQuad(const uint8_t* tile, int j) {
  if constexpr (F::kBias == 128) {
    return _mm512_loadu_si512(tile + 64 * j);
  } else {
    const __m512i v = _mm512_loadu_si512(tile + 64 * (j / 2));
    const __m512i low = _mm512_set1_epi8(0x0f);
    return j % 2 == 0 ? _mm512_and_si512(v, low) : _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
  }
}

// dp[r][t] += the 16 lanes' exact int32 dot products of block b: the stored weight quants of
// group t's tile (at groups[t] + b * tile_bytes) with row r0 + r's activation quants, 8 VPDPBUSD
// per (row, group).
template <class F, int kR, int kT>
TAILOR_VNNI_INLINE void BlockDots(const uint8_t* const* groups, int64_t tile_bytes, const QuantizedRows& qx, int r0,
                                  int b, __m512i (*dp)[kT]) {
  // The weights stream once per call in address order (a group's tiles, then the next
  // group's): fetch kPrefetchBytes ahead into L2, as the float kernels do.
#pragma GCC unroll 2
  for (int t = 0; t < kT; ++t) {
    const char* ahead = reinterpret_cast<const char*>(groups[t] + b * tile_bytes) + kPrefetchBytes;
    for (int64_t line = 0; line < tile_bytes; line += 64) _mm_prefetch(ahead + line, _MM_HINT_T1);
  }
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) {
    __m512i wv[kT];
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) wv[t] = LoadQuad<F>(groups[t] + b * tile_bytes, j);
#pragma GCC unroll 4
    for (int r = 0; r < kR; ++r) {
      int32_t quad;
      std::memcpy(&quad, qx.q[r0 + r] + b * kBlock + 4 * j, 4);
      const __m512i xv = _mm512_set1_epi32(quad);
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) dp[r][t] = _mm512_dpbusd_epi32(dp[r][t], wv[t], xv);
    }
  }
}

template <class F, int kR, int kT>
TAILOR_VNNI_INLINE void Tile(int blocks, const QuantizedRows& qx, int r0, const uint8_t* const* groups,
                             __m512* out) {
  __m512 acc[kR][kT];
#pragma GCC unroll 4
  for (int r = 0; r < kR; ++r) {
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) acc[r][t] = _mm512_setzero_ps();
  }
  for (int b = 0; b < blocks; ++b) {
    __m512i dp[kR][kT];
#pragma GCC unroll 4
    for (int r = 0; r < kR; ++r) {
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) dp[r][t] = _mm512_setzero_si512();
    }
    BlockDots<F, kR, kT>(groups, F::kTileBytes, qx, r0, b, dp);
    __m512 dw[kT];
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) {
      dw[t] = _mm512_cvtph_ps(_mm256_loadu_si256(
          reinterpret_cast<const __m256i*>(groups[t] + static_cast<int64_t>(b) * F::kTileBytes + F::kScaleOffset)));
    }
#pragma GCC unroll 4
    for (int r = 0; r < kR; ++r) {
      const __m512i corr = _mm512_set1_epi32(F::kBias * qx.s[r0 + r][b]);
      const __m512 dx = _mm512_set1_ps(qx.d[r0 + r][b]);
#pragma GCC unroll 4
      for (int t = 0; t < kT; ++t) {
        const __m512 isum = _mm512_cvtepi32_ps(_mm512_sub_epi32(dp[r][t], corr));
        acc[r][t] = _mm512_fmadd_ps(isum, _mm512_mul_ps(dw[t], dx), acc[r][t]);
      }
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < kR; ++r) {
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) out[r * kT + t] = acc[r][t];
  }
}

// Stores lanes [lo, hi) of the 16 outputs of group g (rows 16g + lane) into y row m.
TAILOR_VNNI_INLINE void StoreLanes(__m512 v, float* y_row, int g, int lo, int hi) {
  const __mmask16 mask = static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
  _mm512_mask_storeu_ps(y_row + g * kGroup, mask, v);
}

// Stores the kR rows' outputs of group g (row m + r of y; only outputs in [n_begin, n_end)).
template <int kR>
TAILOR_VNNI_INLINE void StoreGroup(const __m512* out, int stride, float* y, int64_t ldy, int m, int g, int n_begin,
                                   int n_end) {
  const int lo = g * kGroup < n_begin ? n_begin - g * kGroup : 0;
  const int hi = (g + 1) * kGroup > n_end ? n_end - g * kGroup : kGroup;
#pragma GCC unroll 4
  for (int r = 0; r < kR; ++r) StoreLanes(out[r * stride], y + (m + r) * ldy, g, lo, hi);
}

// kT groups starting at g for rows r0 .. r0 + kR - 1 of the chunk (rows m + r0 .. of y).
template <class F, int kR, int kT>
TAILOR_VNNI_INLINE void Groups(int blocks, const QuantizedRows& qx, int r0, const uint8_t* w, int64_t group_bytes,
                               int g, float* y, int64_t ldy, int m, int n_begin, int n_end) {
  const uint8_t* groups[kT];
#pragma GCC unroll 2
  for (int t = 0; t < kT; ++t) groups[t] = w + (g + t) * group_bytes;
  __m512 out[kR * kT];
  Tile<F, kR, kT>(blocks, qx, r0, groups, out);
#pragma GCC unroll 2
  for (int t = 0; t < kT; ++t) StoreGroup<kR>(out + t, kT, y, ldy, m + r0, g + t, n_begin, n_end);
}

// kT groups starting at g for every row of the chunk, four rows at a time (the groups' tiles
// stay in cache between the row sets).
template <class F, int kT>
TAILOR_VNNI_INLINE void AllRows(int rows, int blocks, const QuantizedRows& qx, const uint8_t* w, int64_t group_bytes,
                                int g, float* y, int64_t ldy, int m, int n_begin, int n_end) {
  int r0 = 0;
  for (; r0 + 4 <= rows; r0 += 4) Groups<F, 4, kT>(blocks, qx, r0, w, group_bytes, g, y, ldy, m, n_begin, n_end);
  switch (rows - r0) {
    case 3: Groups<F, 3, kT>(blocks, qx, r0, w, group_bytes, g, y, ldy, m, n_begin, n_end); break;
    case 2: Groups<F, 2, kT>(blocks, qx, r0, w, group_bytes, g, y, ldy, m, n_begin, n_end); break;
    case 1: Groups<F, 1, kT>(blocks, qx, r0, w, group_bytes, g, y, ldy, m, n_begin, n_end); break;
    default: break;
  }
}

template <class F, class R, class K>
TAILOR_VNNI_TARGET void MatMul(R rows_e, K k_e, const float* x, int64_t ldx, const void* w, float* y, int64_t ldy,
                               int n_begin, int n_end, QuantizedRows& qx) {
  const int rows = static_cast<int>(rows_e), k = static_cast<int>(k_e), blocks = k / kBlock;
  const auto* wb = static_cast<const uint8_t*>(w);
  const int64_t group_bytes = static_cast<int64_t>(blocks) * F::kTileBytes;
  ForSlicesAndChunks(rows, group_bytes, n_begin, n_end, [&](int m0, int mc, int s0, int s_end) TAILOR_VNNI_TARGET {
    for (int r = 0; r < mc; ++r) QuantizeRow(k, x + (m0 + r) * ldx, qx.q[r], qx.d[r], qx.s[r]);
    int g = s0;
    for (; g + 2 <= s_end; g += 2) AllRows<F, 2>(mc, blocks, qx, wb, group_bytes, g, y, ldy, m0, n_begin, n_end);
    if (g < s_end) AllRows<F, 1>(mc, blocks, qx, wb, group_bytes, g, y, ldy, m0, n_begin, n_end);
  });
}

}  // namespace vnni

// w8a8 (DType::kW8): int8 weights with one f32 scale per row (no block scales), activations
// quantized with one static scale per tensor (from a calibration profile: s_x = clip / 127,
// q_x = nearest-even(x / s_x) clamped to [-127, 127]). A group of 16 rows holds, for each block
// of 32 in order, a 512-byte tile as q8_0's (stored q + 128), then the 16 rows' f32 scales. For
// every output (m, n):  isum = sum_k (q_w + 128) * q_x - 128 * sum_k q_x  (exact in int32:
// k < 2^16), y = (float) isum * (s_w * s_x): one integer chain over the whole row, so prefill
// runs VPDPBUSD without per-block float work.
namespace w8 {

inline constexpr int kTileBytes = 512;
inline constexpr int kAmxMinRows = 2;  // fewer rows run on VNNI where AMX is (the same bits)
inline int64_t GroupBytes(int k) { return static_cast<int64_t>(k / kBlock) * kTileBytes + 4 * kGroup; }

inline float RowScale(const uint8_t* group, int k, int i) {
  float s;
  std::memcpy(&s, group + static_cast<int64_t>(k / kBlock) * kTileBytes + 4 * i, 4);
  return s;
}
inline float WeightValue(const uint8_t* w, int k, int64_t r, int c) {
  const uint8_t* group = w + (r / kGroup) * GroupBytes(k);
  const int i = static_cast<int>(r % kGroup);
  const int stored = group[static_cast<int64_t>(c / kBlock) * kTileBytes + ((c % kBlock) / 4) * 64 + i * 4 + c % 4];
  return RowScale(group, k, i) * static_cast<float>(stored - 128);
}

// One activation row quantized with the static scale: q[k] and their sum (stored in s[0]).
inline void QuantizeRowStatic(int k, const float* x, float inverse_scale, int8_t* q, int32_t* s) {
  int32_t sum = 0;
  for (int c = 0; c < k; ++c) {
    float v = std::nearbyint(x[c] * inverse_scale);
    v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
    q[c] = static_cast<int8_t>(v);
    sum += static_cast<int>(v);
  }
  *s = sum;
}

namespace portable {

template <class R, class K>
void MatMul(R rows_e, K k_e, const float* x, int64_t ldx, const void* w, float* y, int64_t ldy, int n_begin,
            int n_end, float act_scale, QuantizedRows& qx) {
  const int rows = static_cast<int>(rows_e), k = static_cast<int>(k_e);
  const auto* wb = static_cast<const uint8_t*>(w);
  const float inverse = act_scale > 0 ? 1.0f / act_scale : 0.0f;
  for (int m0 = 0; m0 < rows; m0 += kChunkRows) {
    const int mc = rows - m0 < kChunkRows ? rows - m0 : kChunkRows;
    for (int r = 0; r < mc; ++r) QuantizeRowStatic(k, x + (m0 + r) * ldx, inverse, qx.q[r], qx.s[r]);
    for (int n = n_begin; n < n_end; ++n) {
      const uint8_t* group = wb + (n / kGroup) * GroupBytes(k);
      const int i = n % kGroup;
      for (int r = 0; r < mc; ++r) {
        int32_t dp = 0;
        for (int c = 0; c < k; ++c) {
          dp += group[static_cast<int64_t>(c / kBlock) * kTileBytes + ((c % kBlock) / 4) * 64 + i * 4 + c % 4] *
                qx.q[r][c];
        }
        const int32_t isum = dp - 128 * qx.s[r][0];
        y[(m0 + r) * ldy + n] = static_cast<float>(isum) * (RowScale(group, k, i) * act_scale);
      }
    }
  }
}

}  // namespace portable

namespace vnni {

TAILOR_VNNI_TARGET inline void QuantizeRowStatic(int k, const float* x, float inverse_scale, int8_t* q, int32_t* s) {
  const __m512 inv = _mm512_set1_ps(inverse_scale), hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
  __m512i sum = _mm512_setzero_si512();
  for (int c = 0; c < k; c += 16) {  // k % 32 == 0
    const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_roundscale_ps(_mm512_mul_ps(_mm512_loadu_ps(x + c), inv),
                                                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                                 lo),
                                   hi);
    const __m512i qi = _mm512_cvtps_epi32(v);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + c), _mm512_cvtepi32_epi8(qi));
    sum = _mm512_add_epi32(sum, qi);
  }
  *s = _mm512_reduce_add_epi32(sum);
}

// kR rows x kT groups: one exact int32 chain per output over all of k, then one multiply.
template <int kR, int kT>
TAILOR_VNNI_INLINE void Tile(int k, const QuantizedRows& qx, int r0, const uint8_t* const* groups, float act_scale,
                             __m512* out) {
  __m512i dp[kR][kT];
#pragma GCC unroll 4
  for (int r = 0; r < kR; ++r) {
#pragma GCC unroll 2
    for (int t = 0; t < kT; ++t) dp[r][t] = _mm512_setzero_si512();
  }
  // q8_0's quads, without its scales between tiles: one int32 chain over every block.
  for (int b = 0; b < k / kBlock; ++b) q8::vnni::BlockDots<Int8Weights, kR, kT>(groups, kTileBytes, qx, r0, b, dp);
#pragma GCC unroll 2
  for (int t = 0; t < kT; ++t) {
    const __m512 scale = _mm512_mul_ps(
        _mm512_loadu_ps(reinterpret_cast<const float*>(groups[t] + static_cast<int64_t>(k / kBlock) * kTileBytes)),
        _mm512_set1_ps(act_scale));
#pragma GCC unroll 4
    for (int r = 0; r < kR; ++r) {
      const __m512i isum = _mm512_sub_epi32(dp[r][t], _mm512_set1_epi32(128 * qx.s[r0 + r][0]));
      out[r * kT + t] = _mm512_mul_ps(_mm512_cvtepi32_ps(isum), scale);
    }
  }
}

template <int kR, int kT>
TAILOR_VNNI_INLINE void Groups(int k, const QuantizedRows& qx, int r0, const uint8_t* w, int g, float act_scale,
                               float* y, int64_t ldy, int m, int n_begin, int n_end) {
  const uint8_t* groups[kT];
#pragma GCC unroll 2
  for (int t = 0; t < kT; ++t) groups[t] = w + (g + t) * GroupBytes(k);
  __m512 out[kR * kT];
  Tile<kR, kT>(k, qx, r0, groups, act_scale, out);
#pragma GCC unroll 2
  for (int t = 0; t < kT; ++t) q8::vnni::StoreGroup<kR>(out + t, kT, y, ldy, m + r0, g + t, n_begin, n_end);
}

template <int kT>
TAILOR_VNNI_INLINE void AllRows(int rows, int k, const QuantizedRows& qx, const uint8_t* w, int g, float act_scale,
                                float* y, int64_t ldy, int m, int n_begin, int n_end) {
  int r0 = 0;
  for (; r0 + 4 <= rows; r0 += 4) Groups<4, kT>(k, qx, r0, w, g, act_scale, y, ldy, m, n_begin, n_end);
  switch (rows - r0) {
    case 3: Groups<3, kT>(k, qx, r0, w, g, act_scale, y, ldy, m, n_begin, n_end); break;
    case 2: Groups<2, kT>(k, qx, r0, w, g, act_scale, y, ldy, m, n_begin, n_end); break;
    case 1: Groups<1, kT>(k, qx, r0, w, g, act_scale, y, ldy, m, n_begin, n_end); break;
    default: break;
  }
}

template <class R, class K>
TAILOR_VNNI_TARGET void MatMul(R rows_e, K k_e, const float* x, int64_t ldx, const void* w, float* y, int64_t ldy,
                               int n_begin, int n_end, float act_scale, QuantizedRows& qx) {
  const int rows = static_cast<int>(rows_e), k = static_cast<int>(k_e);
  const auto* wb = static_cast<const uint8_t*>(w);
  const float inverse = act_scale > 0 ? 1.0f / act_scale : 0.0f;
  ForSlicesAndChunks(rows, GroupBytes(k), n_begin, n_end, [&](int m0, int mc, int s0, int s_end) TAILOR_VNNI_TARGET {
    for (int r = 0; r < mc; ++r) QuantizeRowStatic(k, x + (m0 + r) * ldx, inverse, qx.q[r], qx.s[r]);
    int g = s0;
    for (; g + 2 <= s_end; g += 2) AllRows<2>(mc, k, qx, wb, g, act_scale, y, ldy, m0, n_begin, n_end);
    if (g < s_end) AllRows<1>(mc, k, qx, wb, g, act_scale, y, ldy, m0, n_begin, n_end);
  });
}

}  // namespace vnni

// AMX-INT8: the same exact int32 dot products by TDPBSUD (x quants signed, the stored weights
// unsigned), then the same float epilogue as vnni::, so the bits agree with both other variants
// (tested). The weights' 512-byte block tiles are already the B operand's layout ([k / 4][16
// rows][4 bytes]): two consecutive blocks are one 16 x 64-byte B tile. x quants are the A
// operand, read in place from the scratch (row stride kMaxK). Tiles: 0-3 accumulators (one
// group of 16 outputs each), 4 A (64 k), 5 A (32 k, an odd block at the end), 6 B, 7 B (32 k).
// The caller must hold the AMX permission (see amx::Available in amx_kernels.h).
namespace amx {

#define TAILOR_AMX8_TARGET                                                                   \
  __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,f16c,avx512vnni,amx-tile," \
                        "amx-int8")))
#define TAILOR_AMX8_INLINE                                                                   \
  __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,f16c,avx512vnni,amx-tile," \
                        "amx-int8"),                                                        \
                 always_inline)) inline

struct alignas(64) TileConfig {  // LDTILECFG's operand, palette 1
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// kT groups from g for the chunk's `rows` rows: accumulate, store, scale, write y.
template <int kT>
TAILOR_AMX8_INLINE void Groups(int rows, int k, const QuantizedRows& qx, const uint8_t* w, int g, float act_scale,
                               float* y, int64_t ldy, int m, int n_begin, int n_end) {
  const uint8_t* groups[kT];
  for (int t = 0; t < kT; ++t) groups[t] = w + (g + t) * GroupBytes(k);
  if constexpr (kT > 0) _tile_zero(0);
  if constexpr (kT > 1) _tile_zero(1);
  if constexpr (kT > 2) _tile_zero(2);
  if constexpr (kT > 3) _tile_zero(3);
  const int k64 = k / 64 * 64;
  for (int c = 0; c < k64; c += 64) {
    _tile_loadd(4, qx.q[0] + c, kMaxK);
    const int64_t at = static_cast<int64_t>(c / kBlock) * kTileBytes;
    if constexpr (kT > 0) { _tile_loadd(6, groups[0] + at, 64); _tile_dpbsud(0, 4, 6); }
    if constexpr (kT > 1) { _tile_loadd(6, groups[1] + at, 64); _tile_dpbsud(1, 4, 6); }
    if constexpr (kT > 2) { _tile_loadd(6, groups[2] + at, 64); _tile_dpbsud(2, 4, 6); }
    if constexpr (kT > 3) { _tile_loadd(6, groups[3] + at, 64); _tile_dpbsud(3, 4, 6); }
  }
  if (k64 < k) {  // one block of 32 left
    _tile_loadd(5, qx.q[0] + k64, kMaxK);
    const int64_t at = static_cast<int64_t>(k64 / kBlock) * kTileBytes;
    if constexpr (kT > 0) { _tile_loadd(7, groups[0] + at, 64); _tile_dpbsud(0, 5, 7); }
    if constexpr (kT > 1) { _tile_loadd(7, groups[1] + at, 64); _tile_dpbsud(1, 5, 7); }
    if constexpr (kT > 2) { _tile_loadd(7, groups[2] + at, 64); _tile_dpbsud(2, 5, 7); }
    if constexpr (kT > 3) { _tile_loadd(7, groups[3] + at, 64); _tile_dpbsud(3, 5, 7); }
  }
  alignas(64) int32_t c[kT][kGroup][kGroup];  // [group][row][output]
  if constexpr (kT > 0) _tile_stored(0, c[0], 64);
  if constexpr (kT > 1) _tile_stored(1, c[1], 64);
  if constexpr (kT > 2) _tile_stored(2, c[2], 64);
  if constexpr (kT > 3) _tile_stored(3, c[3], 64);
  for (int t = 0; t < kT; ++t) {
    const __m512 scale = _mm512_mul_ps(
        _mm512_loadu_ps(reinterpret_cast<const float*>(groups[t] + static_cast<int64_t>(k / kBlock) * kTileBytes)),
        _mm512_set1_ps(act_scale));
    const int lo = (g + t) * kGroup < n_begin ? n_begin - (g + t) * kGroup : 0;
    const int hi = (g + t + 1) * kGroup > n_end ? n_end - (g + t) * kGroup : kGroup;
    for (int r = 0; r < rows; ++r) {
      const __m512i isum = _mm512_sub_epi32(_mm512_load_si512(c[t][r]), _mm512_set1_epi32(128 * qx.s[r][0]));
      q8::vnni::StoreLanes(_mm512_mul_ps(_mm512_cvtepi32_ps(isum), scale), y + (m + r) * ldy, g + t, lo, hi);
    }
  }
}

template <class R, class K>
TAILOR_AMX8_TARGET void MatMul(R rows_e, K k_e, const float* x, int64_t ldx, const void* w, float* y, int64_t ldy,
                               int n_begin, int n_end, float act_scale, QuantizedRows& qx) {
  const int rows = static_cast<int>(rows_e), k = static_cast<int>(k_e);
  const auto* wb = static_cast<const uint8_t*>(w);
  const float inverse = act_scale > 0 ? 1.0f / act_scale : 0.0f;
  int configured = 0;
  ForSlicesAndChunks(rows, GroupBytes(k), n_begin, n_end, [&](int m0, int mc, int s0, int s_end) TAILOR_AMX8_TARGET {
    for (int r = 0; r < mc; ++r) vnni::QuantizeRowStatic(k, x + (m0 + r) * ldx, inverse, qx.q[r], qx.s[r]);
    if (mc != configured) {
      TileConfig cfg;
      for (int t = 0; t < 4; ++t) {
        cfg.rows[t] = static_cast<uint8_t>(mc);
        cfg.colsb[t] = 64;
      }
      cfg.rows[4] = cfg.rows[5] = static_cast<uint8_t>(mc);
      cfg.colsb[4] = 64;
      cfg.colsb[5] = 32;
      cfg.rows[6] = 16;
      cfg.rows[7] = 8;
      cfg.colsb[6] = cfg.colsb[7] = 64;
      _tile_loadconfig(&cfg);
      configured = mc;
    }
    int g = s0;
    for (; g + 4 <= s_end; g += 4) Groups<4>(mc, k, qx, wb, g, act_scale, y, ldy, m0, n_begin, n_end);
    switch (s_end - g) {
      case 3: Groups<3>(mc, k, qx, wb, g, act_scale, y, ldy, m0, n_begin, n_end); break;
      case 2: Groups<2>(mc, k, qx, wb, g, act_scale, y, ldy, m0, n_begin, n_end); break;
      case 1: Groups<1>(mc, k, qx, wb, g, act_scale, y, ldy, m0, n_begin, n_end); break;
      default: break;
    }
  });
  _tile_release();
}

}  // namespace amx

// Packs row-major quants q[r * k + c] in [-127, 127] and f32 row scales into the layout above.
inline void Pack(int n, int k, const int8_t* q, const float* scales, uint8_t* out) {
  for (int g = 0; g < n / kGroup; ++g) {
    uint8_t* group = out + g * GroupBytes(k);
    for (int b = 0; b < k / kBlock; ++b) {
      for (int i = 0; i < kGroup; ++i) {
        for (int c = 0; c < kBlock; ++c) {
          group[static_cast<int64_t>(b) * kTileBytes + (c / 4) * 64 + i * 4 + c % 4] =
              static_cast<uint8_t>(q[(static_cast<int64_t>(g) * kGroup + i) * k + b * kBlock + c] + 128);
        }
      }
    }
    std::memcpy(group + static_cast<int64_t>(k / kBlock) * kTileBytes, scales + g * kGroup, 4 * kGroup);
  }
}

}  // namespace w8

// Packs a row-major [n, k] matrix's quants q[r * k + c] (in [-127, 127] for Int8Weights, [-8, 7]
// for Int4Weights) and f16 scales d[r * (k / 32) + b] into the grouped layout above (n % 16 == 0,
// k % 32 == 0).
template <class F = Int8Weights>
inline void Pack(int n, int k, const int8_t* q, const uint16_t* d, uint8_t* out) {
  const int blocks = k / kBlock;
  for (int g = 0; g < n / kGroup; ++g) {
    for (int b = 0; b < blocks; ++b) {
      uint8_t* tile = out + (static_cast<int64_t>(g) * blocks + b) * F::kTileBytes;
      std::memset(tile, 0, F::kScaleOffset);
      for (int i = 0; i < kGroup; ++i) {
        const int64_t row = static_cast<int64_t>(g) * kGroup + i;
        for (int c = 0; c < kBlock; ++c) {
          const auto stored = static_cast<uint8_t>(q[row * k + b * kBlock + c] + F::kBias);
          const int j = c / 4, t = c % 4;
          if constexpr (F::kBias == 128) {
            tile[j * 64 + i * 4 + t] = stored;
          } else {
            tile[(j / 2) * 64 + i * 4 + t] |= static_cast<uint8_t>(j % 2 == 0 ? stored : stored << 4);
          }
        }
        std::memcpy(tile + F::kScaleOffset + 2 * i, &d[row * blocks + b], 2);
      }
    }
  }
}

}  // namespace tailor::kern::q8

#endif  // TAILOR_KERNELS_Q8_KERNELS_H_
