// CPU kernels of specialization programs, shared by the native path (runtime shapes) and by
// generated code (every shape a compile-time constant): both instantiate the same templates, so
// they compute the same operations in the same order. The operations over them: cpu_ops.h.
//
// Shapes are passed as "extents": either an int (native) or std::integral_constant (generated).
// Every kernel computes a partition [part_begin, part_end) of one output dimension (-ols), never
// of a summed dimension.
//
// Batch invariance: each output element is computed by the same sequence of operations whatever
// the number of rows, the tile that holds it, the partition or the padding. Dot products use 16
// fused multiply-add lanes over k (missing lanes are zero) and one fixed reduction tree; softmax
// and activations use one exponential of our own (ExpScalar, avx512::Exp), not libm's. The
// AVX-512 and the portable variants of a kernel give bitwise-identical results (same lanes, same
// fused multiply-adds, same tree, same polynomial).
//
// bf16 weights compute in bf16 x bf16 -> fp32: activations are rounded to bf16 (nearest even),
// and lane l of each 32-wide chunk of k accumulates the pair (2l+1, 2l), odd element first, with
// fused multiply-adds. A product of two bf16 values is exact in fp32, so this is exactly what the
// AVX512-BF16 instruction VDPBF16PS computes; CPUs without it emulate it bit for bit. CPUs with
// AMX run every bf16 matmul on AMX tiles instead (amx_kernels.h: its own, also batch-invariant,
// last bits).
//
// This header is self-contained (standard library and compiler intrinsics only): the compiler
// copies it into packages beside the generated sources that include it.
#ifndef TAILOR_KERNELS_CPU_KERNELS_H_
#define TAILOR_KERNELS_CPU_KERNELS_H_

// GCC 12 reports its own _mm512_undefined_* intrinsics as uninitialized; not our code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>

// Entry points of the AVX-512 variant carry the target attribute; helpers are also inlined.
#define TAILOR_AVX512_TARGET __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,f16c")))
#define TAILOR_AVX512_INLINE \
  __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,f16c"), always_inline)) inline

#define TAILOR_AVX512BF16_TARGET \
  __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,f16c,avx512bf16")))
#define TAILOR_AVX512BF16_INLINE \
  __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,f16c,avx512bf16"), always_inline)) inline

namespace tailor::kern {

// Element types of weights and KV blocks (values match tailor::DType for the first three).
// kWQ8, kWQ4: q8_kernels.h's packed int8 / int4 formats (matmuls and embedding lookups only).
enum WeightType : int { kWF32 = 0, kWF16 = 1, kWBF16 = 2, kWQ8 = 3, kWQ4 = 4, kWW8 = 5 /* w8a8 */ };

// KV blocks only, never a weight (cpu_ops.h, KvWriteOp): int8 values, one f32 scale per (slot,
// kv head); an element's value is scale * q, one float multiply.
inline constexpr int kKvI8 = 8;

template <int kV>
using Const = std::integral_constant<int, kV>;

inline float HalfToFloat(uint16_t h) {
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

inline uint16_t FloatToHalf(float f) {  // round to nearest even
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u, abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (abs < 0x38800000u) {
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);
    uint32_t e = abs >> 23, mant = (abs & 0x7fffffu) | 0x800000u, shift = 126 - e;
    uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1u), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = (abs - 0x38000000u) >> 13, rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;
  return static_cast<uint16_t>(sign | half);
}

inline float BF16ToFloat(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t FloatToBF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

// f rounded to the nearest bf16 value (ties to even), as a float.
inline float RoundToBF16(float f) { return BF16ToFloat(FloatToBF16(f)); }

template <int kType>
inline float LoadScalar(const void* base, int64_t i) {
  if constexpr (kType == kWF32) {
    return static_cast<const float*>(base)[i];
  } else {
    uint16_t h = static_cast<const uint16_t*>(base)[i];
    return kType == kWF16 ? HalfToFloat(h) : BF16ToFloat(h);
  }
}

template <int kType>
inline void StoreScalar(void* base, int64_t i, float v) {
  if constexpr (kType == kWF32) {
    static_cast<float*>(base)[i] = v;
  } else {
    static_cast<uint16_t*>(base)[i] = kType == kWF16 ? FloatToHalf(v) : FloatToBF16(v);
  }
}

// The dequantization of one kKvI8 row (one token, one kv head): value = zero + scale * q.
// The float KV types ignore it.
struct KvScale {
  float scale = 1.0f;
  float zero = 0.0f;
};

// Element i of a KV row of kType with parameters s (kKvI8: fma(scale, q, zero), one rounding, the
// same bits as avx512::LoadKvW).
template <int kType>
inline float LoadKv(const void* base, int64_t i, KvScale s) {
  if constexpr (kType == kKvI8) {
    return std::fma(s.scale, static_cast<float>(static_cast<const int8_t*>(base)[i]), s.zero);
  } else {
    return LoadScalar<kType>(base, i);
  }
}

// The KvScale stored at byte offset `at` of an int8 KV pool: f32 scale, then f32 zero (any
// alignment).
inline KvScale LoadKvScale(const void* base, int64_t at) {
  KvScale s;
  std::memcpy(&s.scale, static_cast<const char*>(base) + at, 4);
  std::memcpy(&s.zero, static_cast<const char*>(base) + at + 4, 4);
  return s;
}

// The fixed reduction tree of 16 lanes: (l, l+8), then (l, l+4), (l, l+2), (l, l+1).
inline float ReduceLanes(const float* a) {
  float t8[8], t4[4], t2[2];
  for (int l = 0; l < 8; ++l) t8[l] = a[l] + a[l + 8];
  for (int l = 0; l < 4; ++l) t4[l] = t8[l] + t8[l + 4];
  for (int l = 0; l < 2; ++l) t2[l] = t4[l] + t4[l + 2];
  return t2[0] + t2[1];
}

// e^x in float for softmax and SiLU, the same bits here and in avx512::Exp (lane by lane):
// n = nearest-even(x * log2 e), r = x - n ln2 (two fused steps), a degree-7 Taylor polynomial in
// r by fused Horner steps, scaled by 2^n. x < -87 gives 0 (results stay normal), x > 88.72 +inf,
// NaN stays NaN. Within 2 ulp of e^x elsewhere.
namespace exp_constants {
inline constexpr float kLog2e = 1.44269504f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
inline constexpr float kLow = -87.0f, kHigh = 88.72f;
inline constexpr float kC[8] = {1.0f, 1.0f, 0.5f, 1.0f / 6, 1.0f / 24, 1.0f / 120, 1.0f / 720, 1.0f / 5040};
}  // namespace exp_constants

inline float ExpScalar(float x) {
  using namespace exp_constants;
  if (std::isnan(x)) return x;
  if (x < kLow) return 0.0f;
  if (x > kHigh) return INFINITY;
  const float n = std::nearbyint(x * kLog2e);
  const float r = std::fma(n, -kLn2Lo, std::fma(n, -kLn2Hi, x));
  float p = kC[7];
  for (int i = 6; i >= 0; --i) p = std::fma(p, r, kC[i]);
  return std::ldexp(p, static_cast<int>(n));
}

// ---------------------------------------------------------------------------------------------
// Portable variant: 16 emulated lanes with std::fma.
namespace portable {

// y[m, n] = dot(x[m, :k], w[n, :k]) for m in [0, rows), n in [n_begin, n_end).
// x: [rows, k] floats with row stride ldx; w: [*, k] of kType; y row stride ldy.
template <int kType, class R, class K>
void MatMul(R rows, K k, const float* x, int64_t ldx, const void* w, float* y, int64_t ldy,
            int n_begin, int n_end) {
  for (int n = n_begin; n < n_end; ++n) {
    const int64_t w_off = static_cast<int64_t>(n) * k;
    for (int m = 0; m < static_cast<int>(rows); ++m) {
      const float* xr = x + m * ldx;
      float acc[16] = {};
      if constexpr (kType == kWBF16) {  // pairs (2l+1, 2l) of 32-wide chunks, x rounded to bf16
        for (int c = 0; c < static_cast<int>(k); c += 32) {
          for (int l = 0; l < 16; ++l) {
            for (int i : {c + 2 * l + 1, c + 2 * l}) {
              const bool in = i < static_cast<int>(k);
              acc[l] = std::fma(in ? RoundToBF16(xr[i]) : 0.0f, in ? LoadScalar<kType>(w, w_off + i) : 0.0f,
                                acc[l]);
            }
          }
        }
        y[m * ldy + n] = ReduceLanes(acc);
        continue;
      }
      for (int c = 0; c < static_cast<int>(k); c += 16) {
        for (int l = 0; l < 16; ++l) {
          float a = c + l < static_cast<int>(k) ? LoadScalar<kType>(w, w_off + c + l) : 0.0f;
          float b = c + l < static_cast<int>(k) ? xr[c + l] : 0.0f;
          acc[l] = std::fma(a, b, acc[l]);
        }
      }
      y[m * ldy + n] = ReduceLanes(acc);
    }
  }
}

// Sum of squares of x[0, n) in 16 lanes, reduced with the fixed tree.
template <class N>
float SumSquares(N n, const float* x) {
  float acc[16] = {};
  for (int c = 0; c < static_cast<int>(n); c += 16) {
    for (int l = 0; l < 16; ++l) {
      float v = c + l < static_cast<int>(n) ? x[c + l] : 0.0f;
      acc[l] = std::fma(v, v, acc[l]);
    }
  }
  return ReduceLanes(acc);
}

// Dot product of a float vector and a KV row in 16 lanes (attention scores); b_scale: the row's
// dequantization (kKvI8 only).
template <int kType, class N>
float Dot(N n, const float* a, const void* b, int64_t b_off, KvScale b_scale = {}) {
  float acc[16] = {};
  for (int c = 0; c < static_cast<int>(n); c += 16) {
    for (int l = 0; l < 16; ++l) {
      float va = c + l < static_cast<int>(n) ? a[c + l] : 0.0f;
      float vb = c + l < static_cast<int>(n) ? LoadKv<kType>(b, b_off + c + l, b_scale) : 0.0f;
      acc[l] = std::fma(va, vb, acc[l]);
    }
  }
  return ReduceLanes(acc);
}

}  // namespace portable

// ---------------------------------------------------------------------------------------------
// AVX-512 variant: the same lanes and tree with real vectors.
namespace avx512 {

template <int kType>
TAILOR_AVX512_INLINE __m512 LoadW(const void* base, int64_t i, int count) {
  const __mmask16 mask = count >= 16 ? static_cast<__mmask16>(0xffff)
                                     : static_cast<__mmask16>((1u << count) - 1u);
  if constexpr (kType == kWF32) {
    return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(base) + i);
  } else {
    __m256i h = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(base) + i);
    if constexpr (kType == kWF16) {
      return _mm512_cvtph_ps(h);
    } else {
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
  }
}

// LoadW for KV rows: kKvI8 rows are 16 int8 values dequantized as fma(scale, q, zero) per lane
// (LoadKv's bits; count valid, the rest 0); the float types ignore s.
template <int kType>
TAILOR_AVX512_INLINE __m512 LoadKvW(const void* base, int64_t i, int count, KvScale s) {
  if constexpr (kType == kKvI8) {
    const __mmask16 mask = count >= 16 ? static_cast<__mmask16>(0xffff)
                                       : static_cast<__mmask16>((1u << count) - 1u);
    const __m128i q = _mm_maskz_loadu_epi8(mask, static_cast<const int8_t*>(base) + i);
    return _mm512_maskz_fmadd_ps(mask, _mm512_set1_ps(s.scale), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)),
                                 _mm512_set1_ps(s.zero));
  } else {
    return LoadW<kType>(base, i, count);
  }
}

// Weight rows are read once per call, in address order: the tiles prefetch this far ahead of
// their loads (past the end of a matrix it only fetches unused lines; prefetches never fault),
// into L2, not L1: L1 keeps the x rows and the weight lines a second row tile reads again
// (measured on one core: batch-8 GEMVs 10-30% faster, single rows the same or up to 10%).
constexpr int64_t kPrefetchBytes = 16384;

TAILOR_AVX512_INLINE float Reduce(__m512 a) {
  __m256 t8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
  __m128 t4 = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));
  __m128 t2 = _mm_add_ps(t4, _mm_movehl_ps(t4, t4));
  __m128 t1 = _mm_add_ss(t2, _mm_shuffle_ps(t2, t2, 1));
  return _mm_cvtss_f32(t1);
}

// Lane j of the result is Reduce(a[j]) (the tree of ReduceLanes) for 16 vectors at once:
// 256-bit halves, then 128-bit blocks, then pairs, then neighbours. The inputs go in in the
// order 0, 4, 8, 12, 1, 5, ... so that the results come out in lane order.
TAILOR_AVX512_INLINE __m512 Reduce16(const __m512* a) {
  __m512 b[8], c[4], d[2];
  for (int k = 0; k < 8; ++k) {
    const __m512 x = a[(2 * k) % 4 * 4 + (2 * k) / 4], y = a[(2 * k + 1) % 4 * 4 + (2 * k + 1) / 4];
    b[k] = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x44), _mm512_shuffle_f32x4(x, y, 0xee));
  }
  for (int k = 0; k < 4; ++k) {
    c[k] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * k], b[2 * k + 1], 0x88),
                         _mm512_shuffle_f32x4(b[2 * k], b[2 * k + 1], 0xdd));
  }
  for (int k = 0; k < 2; ++k) {
    const __m512d x = _mm512_castps_pd(c[2 * k]), y = _mm512_castps_pd(c[2 * k + 1]);
    d[k] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  return _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], 0x88), _mm512_shuffle_ps(d[0], d[1], 0xdd));
}

// y[(m0 + i) * ldy + n0 + j] = Reduce(acc[kTm][kTn]) for a tile's accumulators: a 4 x 4 tile
// reduces all 16 at once (Reduce16, the same tree, so the same bits), others one by one.
template <int kTm, int kTn>
TAILOR_AVX512_INLINE void StoreReduced(const __m512 (&acc)[kTm][kTn], float* y, int64_t ldy, int m0, int n0) {
  if constexpr (kTm == 4 && kTn == 4) {
    const __m512 r = Reduce16(&acc[0][0]);  // lane 4 i + j
    _mm_storeu_ps(y + (m0 + 0) * ldy + n0, _mm512_extractf32x4_ps(r, 0));
    _mm_storeu_ps(y + (m0 + 1) * ldy + n0, _mm512_extractf32x4_ps(r, 1));
    _mm_storeu_ps(y + (m0 + 2) * ldy + n0, _mm512_extractf32x4_ps(r, 2));
    _mm_storeu_ps(y + (m0 + 3) * ldy + n0, _mm512_extractf32x4_ps(r, 3));
  } else if constexpr (kTm * kTn == 16) {
    alignas(64) float r[16];
    _mm512_store_ps(r, Reduce16(&acc[0][0]));
    for (int i = 0; i < kTm; ++i)
      for (int j = 0; j < kTn; ++j) y[(m0 + i) * ldy + n0 + j] = r[i * kTn + j];
  } else {
    for (int i = 0; i < kTm; ++i)
      for (int j = 0; j < kTn; ++j) y[(m0 + i) * ldy + n0 + j] = Reduce(acc[i][j]);
  }
}

// ExpScalar in 16 lanes.
TAILOR_AVX512_INLINE __m512 Exp(__m512 x) {
  using namespace exp_constants;
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kLn2Hi), x);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kC[7]);
  for (int i = 6; i >= 0; --i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC[i]));
  __m512 e = _mm512_scalef_ps(p, n);
  e = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(x, _mm512_set1_ps(kLow), _CMP_LT_OQ), _mm512_setzero_ps());
  e = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(x, _mm512_set1_ps(kHigh), _CMP_GT_OQ),
                         _mm512_set1_ps(INFINITY));
  return _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

// Tiles of kTm rows x kTn weight rows, kTm * kTn accumulators.
template <int kType, int kTm, int kTn, class K>
TAILOR_AVX512_INLINE void Tile(K k, const float* x, int64_t ldx, const void* w, float* y,
                                      int64_t ldy, int m0, int n0) {
  __m512 acc[kTm][kTn];
  for (int i = 0; i < kTm; ++i)
    for (int j = 0; j < kTn; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int c = 0; c < static_cast<int>(k); c += 16) {
    const int count = static_cast<int>(k) - c;
    const __mmask16 mask = count >= 16 ? static_cast<__mmask16>(0xffff)
                                       : static_cast<__mmask16>((1u << count) - 1u);
    __m512 wv[kTn];
    for (int j = 0; j < kTn; ++j) {
      const int64_t at = static_cast<int64_t>(n0 + j) * k + c;
      wv[j] = LoadW<kType>(w, at, count);
      _mm_prefetch(static_cast<const char*>(w) + at * (kType == kWF32 ? 4 : 2) + kPrefetchBytes, _MM_HINT_T1);
    }
    for (int i = 0; i < kTm; ++i) {
      __m512 xv = _mm512_maskz_loadu_ps(mask, x + (m0 + i) * ldx + c);
      for (int j = 0; j < kTn; ++j) acc[i][j] = _mm512_fmadd_ps(wv[j], xv, acc[i][j]);
    }
  }
  StoreReduced(acc, y, ldy, m0, n0);
}

// Masks of a 32-wide chunk of k with `count` valid elements: the two float halves and the pairs.
TAILOR_AVX512_INLINE __mmask16 HalfMask(int count) {
  return count >= 16 ? static_cast<__mmask16>(0xffff)
                     : count <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << count) - 1u);
}
TAILOR_AVX512_INLINE __mmask32 PairMask(int count) {
  return count >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << count) - 1u);
}

// x[c, c + 32) rounded to bf16 (nearest even), as even-index and odd-index float vectors.
TAILOR_AVX512_INLINE void LoadXPairs(const float* x, int count, __m512* even, __m512* odd) {
  const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
  const __m512i keep = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  __m512i h[2];
  for (int half = 0; half < 2; ++half) {
    __m512i b = _mm512_castps_si512(_mm512_maskz_loadu_ps(HalfMask(count - 16 * half), x + 16 * half));
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), one);
    h[half] = _mm512_and_si512(_mm512_add_epi32(_mm512_add_epi32(b, bias), lsb), keep);
  }
  const __m512i even_idx = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd_idx = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  *even = _mm512_castsi512_ps(_mm512_permutex2var_epi32(h[0], even_idx, h[1]));
  *odd = _mm512_castsi512_ps(_mm512_permutex2var_epi32(h[0], odd_idx, h[1]));
}

// bf16 weights without the BF16 instruction: its arithmetic with two fused multiply-adds per lane.
template <int kTm, int kTn, class K>
TAILOR_AVX512_INLINE void TileBf16(K k, const float* x, int64_t ldx, const void* w, float* y,
                                   int64_t ldy, int m0, int n0) {
  __m512 acc[kTm][kTn];
  for (int i = 0; i < kTm; ++i)
    for (int j = 0; j < kTn; ++j) acc[i][j] = _mm512_setzero_ps();
  const __m512i keep = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  for (int c = 0; c < static_cast<int>(k); c += 32) {
    const int count = static_cast<int>(k) - c;
    __m512 w_even[kTn], w_odd[kTn];
    for (int j = 0; j < kTn; ++j) {
      const uint16_t* at = static_cast<const uint16_t*>(w) + static_cast<int64_t>(n0 + j) * k + c;
      __m512i v = _mm512_maskz_loadu_epi16(PairMask(count), at);
      _mm_prefetch(reinterpret_cast<const char*>(at) + kPrefetchBytes, _MM_HINT_T1);
      w_even[j] = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
      w_odd[j] = _mm512_castsi512_ps(_mm512_and_si512(v, keep));
    }
    for (int i = 0; i < kTm; ++i) {
      __m512 x_even, x_odd;
      LoadXPairs(x + (m0 + i) * ldx + c, count, &x_even, &x_odd);
      for (int j = 0; j < kTn; ++j) {
        acc[i][j] = _mm512_fmadd_ps(x_odd, w_odd[j], acc[i][j]);
        acc[i][j] = _mm512_fmadd_ps(x_even, w_even[j], acc[i][j]);
      }
    }
  }
  StoreReduced(acc, y, ldy, m0, n0);
}

// Either tile kind, chosen by the weight type.
template <int kType, int kTm, int kTn, class K>
TAILOR_AVX512_INLINE void AnyTile(K k, const float* x, int64_t ldx, const void* w, float* y,
                                  int64_t ldy, int m0, int n0) {
  if constexpr (kType == kWBF16) {
    TileBf16<kTm, kTn>(k, x, ldx, w, y, ldy, m0, n0);
  } else {
    Tile<kType, kTm, kTn>(k, x, ldx, w, y, ldy, m0, n0);
  }
}

// [0, rows) x [n_begin, n_end) in tiles of 8 x 2 and up to 4 x 4 (a tile never changes a
// result). For decode batches (up to 16 rows) 8 x 2 tiles use each weight line for 8 rows in
// one pass, so the weights stream while the rows compute (two 4 x 4 tiles stream them during
// the first pass only): batch 8 with two threads, k 768, +10-20%. f16 weights take them only
// while 8 rows of x fit in L1 (k <= 1024: at k 2048 they were 10% slower; f32 weights gain at
// every k measured). Prefill chunks keep 4 x 4 tiles (fewer loads per FMA; 8 x 2 ran f32
// prefill 8% slower in generated code).
template <int kType, class R, class K>
TAILOR_AVX512_TARGET void MatMul(R rows, K k, const float* x, int64_t ldx, const void* w,
                                        float* y, int64_t ldy, int n_begin, int n_end) {
  const int m_count = static_cast<int>(rows);
  const bool eight = m_count <= 16 && (kType == kWF32 || (kType == kWF16 && static_cast<int>(k) <= 1024));
  int n = n_begin;
  for (; n + 4 <= n_end; n += 4) {
    int m = 0;
    if (eight) {
      for (; m + 8 <= m_count; m += 8) {
        Tile<kType, 8, 2>(k, x, ldx, w, y, ldy, m, n);
        Tile<kType, 8, 2>(k, x, ldx, w, y, ldy, m, n + 2);
      }
    }
    for (; m + 4 <= m_count; m += 4) AnyTile<kType, 4, 4>(k, x, ldx, w, y, ldy, m, n);
    for (; m < m_count; ++m) AnyTile<kType, 1, 4>(k, x, ldx, w, y, ldy, m, n);
  }
  for (; n < n_end; ++n) {
    int m = 0;
    for (; m + 4 <= m_count; m += 4) AnyTile<kType, 4, 1>(k, x, ldx, w, y, ldy, m, n);
    for (; m < m_count; ++m) AnyTile<kType, 1, 1>(k, x, ldx, w, y, ldy, m, n);
  }
}

template <class N>
TAILOR_AVX512_TARGET float SumSquares(N n, const float* x) {
  __m512 acc = _mm512_setzero_ps();
  for (int c = 0; c < static_cast<int>(n); c += 16) {
    __m512 v = LoadW<kWF32>(x, c, static_cast<int>(n) - c);
    acc = _mm512_fmadd_ps(v, v, acc);
  }
  return Reduce(acc);
}

template <int kType, class N>
TAILOR_AVX512_TARGET float Dot(N n, const float* a, const void* b, int64_t b_off, KvScale b_scale = {}) {
  __m512 acc = _mm512_setzero_ps();
  for (int c = 0; c < static_cast<int>(n); c += 16) {
    const int count = static_cast<int>(n) - c;
    acc = _mm512_fmadd_ps(LoadW<kWF32>(a, c, count), LoadKvW<kType>(b, b_off + c, count, b_scale), acc);
  }
  return Reduce(acc);
}

// g[i] = g[i] / (1 + Exp(-g[i])) * u[i] for i in [0, n).
TAILOR_AVX512_TARGET inline void SwiGlu(int64_t n, float* g, const float* u) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mask = HalfMask(n - i < 16 ? static_cast<int>(n - i) : 16);
    const __m512 gv = _mm512_maskz_loadu_ps(mask, g + i);
    const __m512 e = Exp(_mm512_xor_ps(gv, _mm512_set1_ps(-0.0f)));
    const __m512 s = _mm512_div_ps(gv, _mm512_add_ps(one, e));
    _mm512_mask_storeu_ps(g + i, mask, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(mask, u + i)));
  }
}

// o[d] = fma(w, b[b_off + d], o[d]) for d in [0, n): one fused multiply-add per element, so
// the same bits as the portable loop. b: a KV row, b_scale its dequantization (kKvI8 only).
template <int kType, class N>
TAILOR_AVX512_TARGET void Axpy(N n, float w, const void* b, int64_t b_off, float* o, KvScale b_scale = {}) {
  const __m512 wv = _mm512_set1_ps(w);
  for (int c = 0; c < static_cast<int>(n); c += 16) {
    const int count = static_cast<int>(n) - c;
    const __mmask16 mask = HalfMask(count);
    const __m512 ov = _mm512_maskz_loadu_ps(mask, o + c);
    _mm512_mask_storeu_ps(o + c, mask, _mm512_fmadd_ps(wv, LoadKvW<kType>(b, b_off + c, count, b_scale), ov));
  }
}

}  // namespace avx512

// ---------------------------------------------------------------------------------------------
// AVX512-BF16 variant of the bf16-weight matmul: VDPBF16PS on x converted by VCVTNE2PS2BF16.
namespace avx512bf16 {

// xr[0, 32) rounded to bf16 (VCVTNE2PS2BF16, nearest even) as 16 pairs; elements from `count`
// on are zero.
TAILOR_AVX512BF16_INLINE __m512bh ToBf16Pairs(const float* xr, int count) {
  return _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(avx512::HalfMask(count - 16), xr + 16),
                             _mm512_maskz_loadu_ps(avx512::HalfMask(count), xr));
}

// xb: activations already rounded to bf16, rows of ldxb (a multiple of 32) zero-padded elements.
template <int kTm, int kTn, class K>
TAILOR_AVX512BF16_INLINE void Tile(K k, const uint16_t* xb, int64_t ldxb, const void* w, float* y,
                                   int64_t ldy, int m0, int n0) {
  __m512 acc[kTm][kTn];
  for (int i = 0; i < kTm; ++i)
    for (int j = 0; j < kTn; ++j) acc[i][j] = _mm512_setzero_ps();
  const uint16_t* wr = static_cast<const uint16_t*>(w) + static_cast<int64_t>(n0) * k;
  for (int c = 0; c < static_cast<int>(k); c += 32) {
    const __mmask32 mask = avx512::PairMask(static_cast<int>(k) - c);
    __m512bh wv[kTn];
    for (int j = 0; j < kTn; ++j) {
      wv[j] = (__m512bh)_mm512_maskz_loadu_epi16(mask, wr + static_cast<int64_t>(j) * k + c);
      _mm_prefetch(reinterpret_cast<const char*>(wr + static_cast<int64_t>(j) * k + c) + avx512::kPrefetchBytes,
                   _MM_HINT_T1);
    }
    for (int i = 0; i < kTm; ++i) {
      const __m512bh xv = (__m512bh)_mm512_loadu_si512(xb + (m0 + i) * ldxb + c);
      for (int j = 0; j < kTn; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv, wv[j]);
    }
  }
  avx512::StoreReduced(acc, y, ldy, m0, n0);
}

// Rounds the rows of x to bf16 once (VCVTNE2PS2BF16, nearest even), then runs the tiles over
// them: 8 x 2 tiles for each 8 rows, prefill chunks too (batch 8, two threads, k 768 to 5632:
// +17-35%; 64 rows, one thread: +9%), then 4 x 4 and one-row tiles.
template <class R, class K>
TAILOR_AVX512BF16_TARGET void MatMul(R rows, K k, const float* x, int64_t ldx, const void* w, float* y,
                                     int64_t ldy, int n_begin, int n_end) {
  const int m_count = static_cast<int>(rows);
  const int64_t ldxb = (static_cast<int64_t>(k) + 31) / 32 * 32;
  std::unique_ptr<uint16_t[]> xb(new uint16_t[m_count * ldxb]);  // owned scratch, [rows, ldxb]
  for (int m = 0; m < m_count; ++m) {
    for (int c = 0; c < static_cast<int>(k); c += 32) {
      const int count = static_cast<int>(k) - c;
      const float* xr = x + m * ldx + c;
      const __m512bh v = ToBf16Pairs(xr, count);
      _mm512_storeu_si512(xb.get() + m * ldxb + c, (__m512i)v);
    }
  }
  int n = n_begin;
  for (; n + 4 <= n_end; n += 4) {
    int m = 0;
    for (; m + 8 <= m_count; m += 8) {
      Tile<8, 2>(k, xb.get(), ldxb, w, y, ldy, m, n);
      Tile<8, 2>(k, xb.get(), ldxb, w, y, ldy, m, n + 2);
    }
    for (; m + 4 <= m_count; m += 4) Tile<4, 4>(k, xb.get(), ldxb, w, y, ldy, m, n);
    for (; m < m_count; ++m) Tile<1, 4>(k, xb.get(), ldxb, w, y, ldy, m, n);
  }
  for (; n < n_end; ++n) {
    int m = 0;
    for (; m + 4 <= m_count; m += 4) Tile<4, 1>(k, xb.get(), ldxb, w, y, ldy, m, n);
    for (; m < m_count; ++m) Tile<1, 1>(k, xb.get(), ldxb, w, y, ldy, m, n);
  }
}

}  // namespace avx512bf16

}  // namespace tailor::kern

#pragma GCC diagnostic pop

#endif  // TAILOR_KERNELS_CPU_KERNELS_H_
