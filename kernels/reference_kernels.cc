#include "kernels/reference_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/q8_kernels.h"

namespace tailor::ref {
namespace {

// GGUF's block formats (ggml's block_q4_0, block_q4_K, block_q5_K, block_q6_K), decoded from
// their definitions. Every product below is exact in float (an f16 scale has 11 significant
// bits, a 6-bit scale or an int8 scale at most 7, a quant at most 6), so each value is rounded
// once at most (K-quants' "d * q - m"): the results are the same bits as ggml's and gguf-py's.
// Each function reads one block at `b` and writes its BlockElements(dtype) floats to `y`.

float HalfAt(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return F16ToF32(h);
}

// Q4_0, 18 bytes: f16 d, then 16 bytes qs. Element i < 16 is the low nibble of qs[i], element
// 16 + i its high nibble; value = d * (nibble - 8).
void DequantizeQ4_0Block(const uint8_t* b, float* y) {
  const float d = HalfAt(b);
  const uint8_t* qs = b + 2;
  for (int i = 0; i < 16; ++i) y[i] = d * static_cast<float>((qs[i] & 0x0F) - 8);
  for (int i = 0; i < 16; ++i) y[i + 16] = d * static_cast<float>((qs[i] >> 4) - 8);
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block, from its 12 packed
// bytes: sub-blocks 0..3 keep theirs in the low 6 bits of bytes j (scale) and j + 4 (min);
// sub-blocks 4..7 in the nibbles of byte j + 4, with their top 2 bits in the top 2 bits of bytes
// j - 4 (scale) and j (min).
void ScaleMinK4(int j, const uint8_t* q, int* scale, int* min) {
  if (j < 4) {
    *scale = q[j] & 0x3F;
    *min = q[j + 4] & 0x3F;
  } else {
    *scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Q4_K, 144 bytes: f16 d, f16 dmin, 12 bytes of packed scales/mins, 128 bytes qs. Eight
// sub-blocks of 32; sub-blocks 2k and 2k + 1 take the low and high nibbles of qs[32k, 32k + 32).
// value = (d * scale) * q - (dmin * min).
void DequantizeQ4KBlock(const uint8_t* b, float* y) {
  const float d = HalfAt(b), dmin = HalfAt(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qs = b + 16;
  for (int s = 0; s < 8; ++s) {
    int sc, m;
    ScaleMinK4(s, scales, &sc, &m);
    const float ds = d * static_cast<float>(sc), ms = dmin * static_cast<float>(m);
    const uint8_t* q = qs + 32 * (s / 2);
    const int shift = 4 * (s % 2);
    for (int l = 0; l < 32; ++l) {
      y[32 * s + l] = ds * static_cast<float>((q[l] >> shift) & 0x0F) - ms;
    }
  }
}

// Q5_K, 176 bytes: f16 d, f16 dmin, 12 bytes of packed scales/mins, 32 bytes qh, 128 bytes qs.
// As Q4_K, plus a fifth bit: bit s of qh[l] is bit 4 of element l of sub-block s.
void DequantizeQ5KBlock(const uint8_t* b, float* y) {
  const float d = HalfAt(b), dmin = HalfAt(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + 48;
  for (int s = 0; s < 8; ++s) {
    int sc, m;
    ScaleMinK4(s, scales, &sc, &m);
    const float ds = d * static_cast<float>(sc), ms = dmin * static_cast<float>(m);
    const uint8_t* q = qs + 32 * (s / 2);
    const int shift = 4 * (s % 2);
    for (int l = 0; l < 32; ++l) {
      const int v = ((q[l] >> shift) & 0x0F) | (((qh[l] >> s) & 1) << 4);
      y[32 * s + l] = ds * static_cast<float>(v) - ms;
    }
  }
}

// Q6_K, 210 bytes: 128 bytes ql, 64 bytes qh, 16 int8 scales, f16 d. Two halves of 128; in half
// h, element 32k + l (k = 0..3, l = 0..31) takes the low (k < 2) or high (k >= 2) nibble of
// ql[64h + 32(k % 2) + l] and bits 2k, 2k + 1 of qh[32h + l] as its top two bits; it is offset by
// -32, and element e of the block has scale scales[e / 16]: value = (d * scale) * q.
void DequantizeQ6KBlock(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const auto* scales = reinterpret_cast<const int8_t*>(b + 192);
  const float d = HalfAt(b + 208);
  for (int h = 0; h < 2; ++h) {
    for (int k = 0; k < 4; ++k) {
      const uint8_t* lo = ql + 64 * h + 32 * (k % 2);
      const uint8_t* hi = qh + 32 * h;
      const int shift = 4 * (k / 2);
      float* out = y + 128 * h + 32 * k;
      for (int half16 = 0; half16 < 2; ++half16) {
        const float ds = d * static_cast<float>(scales[8 * h + 2 * k + half16]);
        for (int l = 16 * half16; l < 16 * half16 + 16; ++l) {
          const int q = (((lo[l] >> shift) & 0x0F) | (((hi[l] >> (2 * k)) & 3) << 4)) - 32;
          out[l] = ds * static_cast<float>(q);
        }
      }
    }
  }
}

// Applies `block_fn` to each of the row's blocks of `dtype`.
template <typename BlockFn>
void DequantizeBlocks(const std::byte* row, int64_t cols, DType dtype, BlockFn block_fn,
                      float* out) {
  const int64_t n = BlockElements(dtype), bytes = BlockBytes(dtype);
  const auto* p = reinterpret_cast<const uint8_t*>(row);
  for (int64_t b = 0; b < cols / n; ++b) block_fn(p + b * bytes, out + b * n);
}

}  // namespace

void DequantizeRow(const MatrixView& w, int64_t r, float* out) {
  const std::byte* row = w.row(r);
  switch (w.dtype) {
    case DType::kF32:
      std::memcpy(out, row, static_cast<size_t>(w.cols) * sizeof(float));
      return;
    case DType::kF16:
    case DType::kBF16: {
      for (int64_t c = 0; c < w.cols; ++c) {
        uint16_t h;
        std::memcpy(&h, row + 2 * c, 2);
        out[c] = w.dtype == DType::kF16 ? F16ToF32(h) : BF16ToF32(h);
      }
      return;
    }
    case DType::kQ8:  // groups of 16 rows (kern::q8's layouts): scale * (stored - bias)
      for (int64_t c = 0; c < w.cols; ++c) {
        out[c] = kern::q8::WeightValue<kern::q8::Int8Weights>(reinterpret_cast<const uint8_t*>(w.data),
                                                              static_cast<int>(w.cols), r, static_cast<int>(c));
      }
      return;
    case DType::kW8:
      for (int64_t c = 0; c < w.cols; ++c) {
        out[c] = kern::q8::w8::WeightValue(reinterpret_cast<const uint8_t*>(w.data), static_cast<int>(w.cols), r,
                                           static_cast<int>(c));
      }
      return;
    case DType::kQ4:
      for (int64_t c = 0; c < w.cols; ++c) {
        out[c] = kern::q8::WeightValue<kern::q8::Int4Weights>(reinterpret_cast<const uint8_t*>(w.data),
                                                              static_cast<int>(w.cols), r, static_cast<int>(c));
      }
      return;
    case DType::kQ8_0: {
      for (int64_t b = 0; b < w.cols / kQ8_0BlockSize; ++b) {
        const std::byte* block = row + b * kQ8_0BlockBytes;
        uint16_t h;
        std::memcpy(&h, block, 2);
        float d = F16ToF32(h);
        for (int i = 0; i < kQ8_0BlockSize; ++i) {
          auto q = static_cast<int8_t>(block[2 + i]);
          out[b * kQ8_0BlockSize + i] = d * static_cast<float>(q);
        }
      }
      return;
    }
    case DType::kI8:  // a KV cache type, never a weight: NaN makes a misuse visible
      std::fill(out, out + w.cols, std::numeric_limits<float>::quiet_NaN());
      return;
    case DType::kQ4_0:
      DequantizeBlocks(row, w.cols, w.dtype, DequantizeQ4_0Block, out);
      return;
    case DType::kQ4_K:
      DequantizeBlocks(row, w.cols, w.dtype, DequantizeQ4KBlock, out);
      return;
    case DType::kQ5_K:
      DequantizeBlocks(row, w.cols, w.dtype, DequantizeQ5KBlock, out);
      return;
    case DType::kQ6_K:
      DequantizeBlocks(row, w.cols, w.dtype, DequantizeQ6KBlock, out);
      return;
  }
}

void MatVec(const MatrixView& w, const float* x, float* y, float* scratch) {
  for (int64_t r = 0; r < w.rows; ++r) {
    DequantizeRow(w, r, scratch);
    double acc = 0.0;
    for (int64_t c = 0; c < w.cols; ++c) acc += static_cast<double>(scratch[c]) * x[c];
    y[r] = static_cast<float>(acc);
  }
}

void RmsNorm(const float* x, const MatrixView& weight, float eps, float* out, float* scratch) {
  const int64_t n = weight.cols;
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  double inv = 1.0 / std::sqrt(ss / static_cast<double>(n) + static_cast<double>(eps));
  DequantizeRow(weight, 0, scratch);
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(x[i] * inv * scratch[i]);
}

void Rope(float* x, int32_t n_heads, int32_t head_dim, int32_t pos, std::span<const double> inv_freq,
          bool interleaved) {
  const int32_t half = head_dim / 2;
  for (int32_t i = 0; i < half; ++i) {
    double angle = static_cast<double>(pos) * inv_freq[i];
    double c = std::cos(angle), s = std::sin(angle);
    for (int32_t h = 0; h < n_heads; ++h) {
      float* head = x + static_cast<int64_t>(h) * head_dim;
      int32_t a = interleaved ? 2 * i : i;
      int32_t b = interleaved ? 2 * i + 1 : i + half;
      double x0 = head[a], x1 = head[b];
      head[a] = static_cast<float>(x0 * c - x1 * s);
      head[b] = static_cast<float>(x0 * s + x1 * c);
    }
  }
}

void SwiGlu(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    double g = gate[i];
    out[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
  }
}

void AttendOneHead(const float* q, const float* keys, const float* values, int64_t kv_stride,
                   int32_t n_pos, int32_t head_dim, float* out, float* scores) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  double max_score = -INFINITY;
  for (int32_t p = 0; p < n_pos; ++p) {
    const float* k = keys + p * kv_stride;
    double dot = 0.0;
    for (int32_t d = 0; d < head_dim; ++d) dot += static_cast<double>(q[d]) * k[d];
    scores[p] = static_cast<float>(dot * scale);
    if (scores[p] > max_score) max_score = scores[p];
  }
  double sum = 0.0;
  for (int32_t p = 0; p < n_pos; ++p) sum += std::exp(scores[p] - max_score);
  for (int32_t p = 0; p < n_pos; ++p) {
    scores[p] = static_cast<float>(std::exp(scores[p] - max_score) / sum);  // probabilities
  }
  for (int32_t d = 0; d < head_dim; ++d) {
    double acc = 0.0;
    for (int32_t p = 0; p < n_pos; ++p) acc += static_cast<double>(scores[p]) * values[p * kv_stride + d];
    out[d] = static_cast<float>(acc);
  }
}

void QuantizeKvI8(const float* x, int32_t n, int8_t* q, float* scale, float* zero) {
  double lo = x[0], hi = x[0];
  bool finite = true;
  for (int32_t i = 0; i < n; ++i) {
    finite = finite && std::isfinite(x[i]);
    lo = std::min(lo, static_cast<double>(x[i]));
    hi = std::max(hi, static_cast<double>(x[i]));
  }
  if (!finite) {
    *scale = *zero = std::numeric_limits<float>::quiet_NaN();
    std::fill(q, q + n, 0);
    return;
  }
  *scale = static_cast<float>((hi - lo) / 255.0);
  *zero = static_cast<float>(lo + 128.0 * static_cast<double>(*scale));
  for (int32_t i = 0; i < n; ++i) {
    double r = 0.0;
    if (*scale > 0.0f) r = std::nearbyint((static_cast<double>(x[i]) - *zero) / static_cast<double>(*scale));
    q[i] = static_cast<int8_t>(std::clamp(r, -128.0, 127.0));
  }
}

void HadamardRotate(const double* x, int32_t n, double* y) {
  const int32_t b = n & -n;
  for (int32_t i = 0; i < n; ++i) {
    const int32_t b0 = i - i % b;
    double acc = 0.0;
    for (int32_t j = 0; j < b; ++j) acc += (__builtin_popcount((i - b0) & j) % 2 ? -1.0 : 1.0) * x[b0 + j];
    y[i] = acc;
  }
}

void AttendOneHeadKvI8(const float* q, const KvI8Rows& keys, const KvI8Rows& values, int32_t n_pos,
                       int32_t head_dim, float* out, double* scores) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  const double inv_block = 1.0 / static_cast<double>(head_dim & -head_dim);
  auto value = [](const KvI8Rows& r, int32_t p, int32_t d) {
    return r.zero[p] + static_cast<double>(r.scale[p]) * r.q[p * r.stride + d];
  };
  constexpr int32_t kMaxDim = 4096;
  double qd[kMaxDim] = {}, qr[kMaxDim];
  for (int32_t d = 0; d < head_dim; ++d) qd[d] = q[d];
  HadamardRotate(qd, head_dim, qr);
  double max_score = -INFINITY;
  for (int32_t p = 0; p < n_pos; ++p) {
    double dot = 0.0;
    for (int32_t d = 0; d < head_dim; ++d) dot += qr[d] * inv_block * value(keys, p, d);
    scores[p] = dot * scale;
    max_score = std::max(max_score, scores[p]);
  }
  double sum = 0.0;
  for (int32_t p = 0; p < n_pos; ++p) sum += std::exp(scores[p] - max_score);
  for (int32_t p = 0; p < n_pos; ++p) scores[p] = std::exp(scores[p] - max_score) / sum;
  for (int32_t d = 0; d < head_dim; ++d) {
    double acc = 0.0;
    for (int32_t p = 0; p < n_pos; ++p) acc += scores[p] * value(values, p, d);
    out[d] = static_cast<float>(acc);
  }
}

}  // namespace tailor::ref
