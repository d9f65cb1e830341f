#include "engine/weight_writer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "engine/profile.h"
#include "engine/smoothquant.h"
#include "kernels/q8_kernels.h"
#include "kernels/reference_kernels.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;

// Quantizes 32 values x to q in [-levels, levels - 1] (levels 8: 4 bits) or [-127, 127] (levels
// 127: 8 bits) with one f16 scale d (returned as f16 bits), value = d * q. 8 bits: d = amax / 127.
// 4 bits: the scale minimizing sum_i weight[i] * (x_i - d q_i)^2 among candidates around
// max / -8 (max: the value of largest magnitude), each refit by weighted least squares.
uint16_t QuantizeBlock(int levels, const float* x, const float* weight, int8_t* q) {
  constexpr int kN = kern::q8::kBlock;
  float max = 0.0f;
  for (int i = 0; i < kN; ++i) max = std::fabs(x[i]) > std::fabs(max) ? x[i] : max;
  if (max == 0.0f) {
    std::fill(q, q + kN, 0);
    return 0;
  }
  const int lo = levels == 127 ? -127 : -levels, hi = levels == 127 ? 127 : levels - 1;
  auto quantize = [&](float inverse, int8_t* out) {
    for (int i = 0; i < kN; ++i) out[i] = static_cast<int8_t>(std::clamp<float>(std::nearbyint(x[i] * inverse), lo, hi));
  };
  float d = levels == 127 ? std::fabs(max) / 127.0f : max / -8.0f;
  if (levels != 127) {  // search the scale
    double best_error = INFINITY;
    int8_t trial[kN];
    for (int t = -20; t <= 20; ++t) {
      quantize(-(8.0f + 0.05f * t) / max, trial);
      double sum_xq = 0, sum_qq = 0;
      for (int i = 0; i < kN; ++i) {
        sum_xq += static_cast<double>(weight[i]) * x[i] * trial[i];
        sum_qq += static_cast<double>(weight[i]) * trial[i] * trial[i];
      }
      if (sum_qq <= 0) continue;
      const double scale = sum_xq / sum_qq;
      double error = 0;
      for (int i = 0; i < kN; ++i) error += weight[i] * (x[i] - scale * trial[i]) * (x[i] - scale * trial[i]);
      if (error < best_error) {
        best_error = error;
        d = static_cast<float>(scale);
      }
    }
  }
  const uint16_t bits = F32ToF16(d);
  const float stored = F16ToF32(bits);
  quantize(stored != 0.0f ? 1.0f / stored : 0.0f, q);
  return bits;
}

// GGUF's Q8_0 and Q4_0 blocks are exactly tailor's q8_0 and q4 values (an f16 scale and quants
// in [-128, 127] / [-8, 7]); their packing differs.
template <class F>
bool RepacksExactly(DType source) {
  return F::kBias == 128 ? source == DType::kQ8_0 : source == DType::kQ4_0;
}

// Row r of a GGUF Q8_0 / Q4_0 tensor as quants and f16 scales (Q4_0: byte j of a block holds
// element j in its low nibble and j + 16 in its high one, both biased by 8).
template <class F>
void RepackRow(const WeightView& src, int64_t r, int8_t* q, uint16_t* scales) {
  const std::byte* row = src.row(r);
  const int64_t block_bytes = BlockBytes(src.dtype), blocks = src.cols / kern::q8::kBlock;
  for (int64_t b = 0; b < blocks; ++b) {
    const auto* block = reinterpret_cast<const uint8_t*>(row + b * block_bytes);
    std::memcpy(&scales[b], block, 2);
    for (int c = 0; c < kern::q8::kBlock; ++c) {
      if constexpr (F::kBias == 128) {
        q[b * kern::q8::kBlock + c] = static_cast<int8_t>(block[2 + c]);
      } else {
        const uint8_t byte = block[2 + c % 16];
        q[b * kern::q8::kBlock + c] = static_cast<int8_t>((c < 16 ? byte & 0x0f : byte >> 4) - 8);
      }
    }
  }
}

// Package row r of a tensor, as floats: the source row row_map(r), its package column c taken
// from source column col_map(c) (null maps: the identity), times input_scale[c] and the output
// feature's feature_scale (w8a8's smoothing; empty: 1).
struct RowSource {
  const WeightView& src;
  std::function<int64_t(int64_t)> row_map, col_map;
  const std::vector<float>& input_scale;
  const std::vector<float>& feature_scale;
  bool vector = false;  // features are columns

  bool plain() const { return !col_map && input_scale.empty() && feature_scale.empty(); }
  int64_t SourceRow(int64_t r) const { return row_map ? row_map(r) : r; }
  void Get(int64_t r, float* source_row, float* row) const {
    ref::DequantizeRow(src, SourceRow(r), source_row);
    for (int64_t c = 0; c < src.cols; ++c) {
      float v = source_row[col_map ? col_map(c) : c];
      if (!input_scale.empty()) v *= input_scale[c];
      if (!feature_scale.empty()) v *= feature_scale[vector ? c : r];
      row[c] = v;
    }
  }
};

// Writes weights.bin: each tensor converted to its package dtype, 64-byte aligned.
class WeightWriter {
 public:
  explicit WeightWriter(const fs::path& path) : out_(path, std::ios::binary | std::ios::trunc) {}
  bool ok() const { return static_cast<bool>(out_); }
  int64_t size() const { return offset_; }

  // Converts to a float `dtype`.
  TensorRef Write(const RowSource& s, DType dtype) {
    Pad();
    TensorRef t{dtype, offset_, s.src.rows, s.src.cols};
    std::vector<float> source_row(s.src.cols), row(s.src.cols);
    std::vector<char> bytes(RowBytes(dtype, s.src.cols));
    for (int64_t r = 0; r < s.src.rows; ++r) {
      s.Get(r, source_row.data(), row.data());
      for (int64_t c = 0; c < s.src.cols; ++c) {
        if (dtype == DType::kF32) {
          std::memcpy(bytes.data() + 4 * c, &row[c], 4);
        } else {
          uint16_t h = dtype == DType::kF16 ? F32ToF16(row[c]) : F32ToBF16(row[c]);
          std::memcpy(bytes.data() + 2 * c, &h, 2);
        }
      }
      Emit(bytes.data(), bytes.size());
    }
    return t;
  }
  // Quantizes to one of tailor's packed int8 formats (kern::q8's layouts) block by block
  // (QuantizeBlock), 16 rows at a time. `importance`: per input column, how much its error
  // counts (a profile's mean squares); null: equally.
  template <class F>
  TensorRef WriteQuantized(DType dtype, const RowSource& s, const std::vector<float>* importance) {
    namespace q8 = kern::q8;
    Pad();
    TensorRef t{dtype, offset_, s.src.rows, s.src.cols};
    const int64_t k = s.src.cols, blocks = k / q8::kBlock;
    std::vector<float> source_row(k), row(k), weights(k);
    std::vector<int8_t> quants(q8::kGroup * k);
    std::vector<uint16_t> scales(q8::kGroup * blocks);
    std::vector<uint8_t> packed(static_cast<size_t>(blocks) * F::kTileBytes);
    for (int64_t g = 0; g < s.src.rows / q8::kGroup; ++g) {
      for (int64_t i = 0; i < q8::kGroup; ++i) {
        const int64_t r = g * q8::kGroup + i;
        if (RepacksExactly<F>(s.src.dtype) && s.plain()) {  // GGUF's blocks as they are
          RepackRow<F>(s.src, s.SourceRow(r), quants.data() + i * k, scales.data() + i * blocks);
          continue;
        }
        s.Get(r, source_row.data(), row.data());
        // Each value's error counts by its input channel's importance (or 1) times
        // sqrt(sigma^2 + x^2), sigma^2 the row's mean square: larger weights matter more.
        double sigma2 = 0;
        for (int64_t c = 0; c < k; ++c) sigma2 += static_cast<double>(row[c]) * row[c];
        sigma2 /= static_cast<double>(k);
        for (int64_t c = 0; c < k; ++c) {
          weights[c] = (importance != nullptr ? (*importance)[c] : 1.0f) *
                       static_cast<float>(std::sqrt(sigma2 + static_cast<double>(row[c]) * row[c]));
        }
        for (int64_t b = 0; b < blocks; ++b) {
          scales[i * blocks + b] = QuantizeBlock(F::kBias == 128 ? 127 : 8, row.data() + b * q8::kBlock,
                                                 weights.data() + b * q8::kBlock, quants.data() + i * k + b * q8::kBlock);
        }
      }
      q8::Pack<F>(q8::kGroup, static_cast<int>(k), quants.data(), scales.data(), packed.data());
      Emit(packed.data(), packed.size());
    }
    return t;
  }
  // w8a8: per row, q = nearest-even(w / d) with d = max|w| / 127 (f32), 16 rows at a time
  // (kern::q8::w8's layout); `act_scale` goes to the manifest.
  TensorRef WriteW8(const RowSource& s, float act_scale) {
    namespace w8 = kern::q8::w8;
    Pad();
    TensorRef t{DType::kW8, offset_, s.src.rows, s.src.cols};
    t.act_scale = act_scale;
    const int64_t k = s.src.cols;
    std::vector<float> source_row(k), row(k), scales(kern::q8::kGroup);
    std::vector<int8_t> quants(kern::q8::kGroup * k);
    std::vector<uint8_t> packed(w8::GroupBytes(static_cast<int>(k)));
    for (int64_t g = 0; g < s.src.rows / kern::q8::kGroup; ++g) {
      for (int64_t i = 0; i < kern::q8::kGroup; ++i) {
        s.Get(g * kern::q8::kGroup + i, source_row.data(), row.data());
        float amax = 0;
        for (int64_t c = 0; c < k; ++c) amax = std::max(amax, std::fabs(row[c]));
        scales[i] = amax / 127.0f;
        const float inverse = amax > 0 ? 127.0f / amax : 0.0f;
        for (int64_t c = 0; c < k; ++c) {
          quants[i * k + c] = static_cast<int8_t>(std::clamp(std::nearbyint(row[c] * inverse), -127.0f, 127.0f));
        }
      }
      w8::Pack(kern::q8::kGroup, static_cast<int>(k), quants.data(), scales.data(), packed.data());
      Emit(packed.data(), packed.size());
    }
    return t;
  }

  void Pad() {
    static const char zeros[64] = {};
    Emit(zeros, static_cast<size_t>((64 - offset_ % 64) % 64));
  }

 private:
  void Emit(const void* bytes, size_t size) {
    out_.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(size));
    offset_ += static_cast<int64_t>(size);
  }

  std::ofstream out_;
  int64_t offset_ = 0;
};

// The dtype a tensor gets in a package of `dtype`: vectors f32; quantized formats (q8_0, q4,
// w8a8) only where the blocks fit (rows % 16, cols % 32; else bf16) and, for the embedding and
// the output projection, only when asked; q4's k/v projections q8_0.
DType TensorDType(const TensorDesc& t, DType source, const CompileOptions& o) {
  if (t.kind == TensorKind::kVector) return DType::kF32;
  const bool fits = t.rows % kern::q8::kGroup == 0 && t.cols % kern::q8::kBlock == 0;
  if (o.keep_source_formats && source != DType::kF32 && source != DType::kF16 && source != DType::kBF16) {
    // A quantized GGUF tensor keeps its format where tailor has it (Q8_0, Q4_0: repacked
    // exactly); K-quants become q8_0 (their values need more than 4 bits per block).
    if (!fits) return DType::kBF16;
    return source == DType::kQ4_0 ? DType::kQ4 : DType::kQ8;
  }
  const DType dtype = o.weight_dtype;
  const bool quantize_embeddings = o.quantize_embeddings;
  if (dtype != DType::kQ8 && dtype != DType::kQ4 && dtype != DType::kW8) return dtype;
  const bool embedding = t.kind == TensorKind::kEmbedding || t.kind == TensorKind::kOutput;
  if (!fits || (embedding && !quantize_embeddings)) return DType::kBF16;
  // q4 keeps the k and v projections at 8 bits, as llama.cpp's Q4_K_M keeps attn_v at 6: what
  // they write to the KV cache is read by every later token, and under grouped-query attention
  // they are a few percent of the weights (stories260K: PPL ratio 1.033 -> 1.007, KLD 0.031 ->
  // 0.007 against the f32 package).
  if (dtype == DType::kQ4 && t.kv_projection) return DType::kQ8;
  return dtype;
}

}  // namespace

absl::StatusOr<WeightLayout> WriteWeights(const Model& model, const CompileOptions& o, const fs::path& path) {
  const ModelConfig& c = model.config;
  WeightWriter w(path);
  if (!w.ok()) return absl::InternalError(absl::StrCat(path.string(), ": cannot write"));
  // Rotary features ordered for rotate-half rope (Hugging Face, GGUF qwen) are stored for
  // interleaved pairs: package feature 2i + j of a head is source feature i + j * head_dim / 2.
  const bool permute = c.rope_layout == RopeLayout::kHalf;
  const int64_t hd = c.head_dim, half = c.head_dim / 2;
  const std::function<int64_t(int64_t)> rope_map = [&](int64_t f) {
    const int64_t head = f / hd, i = (f % hd) / 2, j = f % 2;
    return head * hd + i + j * half;
  };
  std::vector<DType> dtypes;
  for (size_t i = 0; i < model.tensors.size(); ++i) dtypes.push_back(TensorDType(model.tensors[i], model.weights[i].dtype, o));
  W8a8Plan w8a8;
  w8a8.input_scale.resize(dtypes.size());
  w8a8.feature_scale.resize(dtypes.size());
  if (std::find(dtypes.begin(), dtypes.end(), DType::kW8) != dtypes.end()) {
    if (o.calibration == nullptr) {
      return absl::InvalidArgumentError(
          "w8a8 needs a calibration profile for its static activation scales (-load-profile=FILE; make one with "
          "-dump-profile)");
    }
    TAILOR_ASSIGN_OR_RETURN(w8a8, PlanW8a8(model, dtypes, *o.calibration, o.smoothquant_alpha));
  }
  WeightLayout L;
  for (size_t i = 0; i < model.tensors.size(); ++i) {
    const TensorDesc& t = model.tensors[i];
    const bool rope = permute && t.rope_features;
    const bool vector = t.kind == TensorKind::kVector;
    const RowSource source{model.weights[i],       rope && !vector ? rope_map : nullptr,
                           rope && vector ? rope_map : nullptr, w8a8.input_scale[i],
                           w8a8.feature_scale[i], vector};
    const DType dtype = dtypes[i];
    // 4-bit weights weigh each input channel's error by its mean square in the profile (the
    // activations that channel multiplies), as llama.cpp's importance matrix does.
    const std::vector<float>* importance = nullptr;
    if (dtype == DType::kQ4 && o.calibration != nullptr) {
      TAILOR_ASSIGN_OR_RETURN(const TensorCalibration* cal, o.calibration->ForTensor(t.name));
      if (static_cast<int64_t>(cal->channel_mean_square.size()) != t.cols) {
        return absl::InvalidArgumentError(absl::StrCat("the calibration profile has ", cal->channel_mean_square.size(),
                                                       " channels for ", t.name, ", which has ", t.cols));
      }
      importance = &cal->channel_mean_square;
    }
    if (dtype == DType::kQ8) {
      L.tensors.push_back(w.WriteQuantized<kern::q8::Int8Weights>(dtype, source, nullptr));
    } else if (dtype == DType::kQ4) {
      L.tensors.push_back(w.WriteQuantized<kern::q8::Int4Weights>(dtype, source, importance));
    } else if (dtype == DType::kW8) {
      L.tensors.push_back(w.WriteW8(source, w8a8.act_scale[i]));
    } else {
      L.tensors.push_back(w.Write(source, dtype));
    }
  }
  w.Pad();
  L.total_bytes = w.size();
  if (!w.ok()) return absl::InternalError(absl::StrCat(path.string(), ": write failed (disk full?)"));
  return L;
}

}  // namespace tailor
