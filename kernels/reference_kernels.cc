#include "kernels/reference_kernels.h"

#include <cmath>
#include <cstring>

namespace tailor::ref {

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

}  // namespace tailor::ref
