// Slow, obviously-correct fp32 kernels (float64 accumulation): the reference every optimized
// kernel and generated program is tested against. Pure functions over views; no allocation
// except where a scratch size is unknowable to the caller (none today).
#ifndef TAILOR_KERNELS_REFERENCE_KERNELS_H_
#define TAILOR_KERNELS_REFERENCE_KERNELS_H_

#include <cstdint>
#include <span>

#include "kernels/matrix_view.h"

namespace tailor::ref {

// out[0..w.cols) = row r of w converted to float (exact for F32/F16/BF16; d * q for Q8_0).
void DequantizeRow(const MatrixView& w, int64_t r, float* out);

// y[r] = sum_c w[r, c] * x[c] for r in [0, w.rows); x has w.cols floats. `scratch` holds
// w.cols floats (one dequantized row).
void MatVec(const MatrixView& w, const float* x, float* y, float* scratch);

// out = x / sqrt(mean(x^2) + eps) * weight; n = weight.cols; `scratch` holds n floats.
void RmsNorm(const float* x, const MatrixView& weight, float eps, float* out, float* scratch);

// Rotates each of `n_heads` heads of `head_dim` floats in place for position `pos`.
// interleaved: pairs (2i, 2i+1); otherwise pairs (i, i + head_dim/2). Pair i turns by
// pos * inv_freq[i] radians (head_dim / 2 frequencies), computed in float64.
void Rope(float* x, int32_t n_heads, int32_t head_dim, int32_t pos, std::span<const double> inv_freq,
          bool interleaved);

// out[i] = silu(gate[i]) * up[i].
void SwiGlu(const float* gate, const float* up, int64_t n, float* out);

// Causal attention of one query head over `n_pos` cached positions.
//   q: [head_dim]; keys/values: position p's head vector at keys + p * kv_stride.
//   out: [head_dim]; scores: scratch of n_pos floats. Scale 1/sqrt(head_dim).
void AttendOneHead(const float* q, const float* keys, const float* values, int64_t kv_stride,
                   int32_t n_pos, int32_t head_dim, float* out, float* scores);

// int8 KV (kern::kKvI8): one token's head of n values x, quantized by min/max in float64:
// scale = f32((max - min) / 255), zero = f32(min + 128 * scale),
// q[i] = nearest-even((x[i] - zero) / scale) clamped to [-128, 127]; value = zero + scale * q.
// All values equal: scale 0, q 0 (zero = x). A non-finite value: scale and zero NaN, q 0.
void QuantizeKvI8(const float* x, int32_t n, int8_t* q, float* scale, float* zero);

// y = H x (float64), H block-diagonal with blocks of b = the largest power of two dividing n,
// each the Sylvester-Hadamard matrix H_b[i][j] = (-1)^popcount(i & j) (unnormalized: H^T H = b I).
// kKvI8 stores K heads as H k and rotates queries to H q / b.
void HadamardRotate(const double* x, int32_t n, double* y);

// Rows of int8 KV: position p's head_dim values at q + p * stride, dequantized (float64) as
// zero[p] + scale[p] * q.
struct KvI8Rows {
  const int8_t* q;
  int64_t stride;
  const float* scale;  // [n_pos]
  const float* zero;   // [n_pos]
};

// AttendOneHead's math (float64 throughout) over int8 KV as kKvI8 holds it: keys are H k
// (HadamardRotate), so the query is rotated to H q / b first; values are v.
//   q: [head_dim]; out: [head_dim]; scores: scratch of n_pos doubles.
void AttendOneHeadKvI8(const float* q, const KvI8Rows& keys, const KvI8Rows& values, int32_t n_pos,
                       int32_t head_dim, float* out, double* scores);

}  // namespace tailor::ref

#endif  // TAILOR_KERNELS_REFERENCE_KERNELS_H_
