// The int8 matmuls (q8_0, q4 and w8a8 weights, kernels/q8_kernels.h) against a plain restatement of
// their definition: exact integer block sums, then one fma per block in order. The VNNI variant agrees
// bitwise with the portable one; a row's outputs do not depend on the other rows or on the -ols
// partition; dequantization is scale x q; the result is close to the float64 product.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "common/dtype.h"
#include "gtest/gtest.h"
#include "kernels/cpu_ops.h"
#include "kernels/reference_kernels.h"

namespace tailor {
namespace {

namespace q8 = kern::q8;

bool HasVnni() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

// A random [n, k] matrix of quants (in [-127, 127], or [-8, 7] for q4), f16 scales, and its
// packed form.
struct Weights {
  int n = 0, k = 0;
  bool q4 = false;
  std::vector<int8_t> q;
  std::vector<uint16_t> d;
  std::vector<uint8_t> packed;
  float Value(int r, int c) const { return F16ToF32(d[r * (k / 32) + c / 32]) * q[r * k + c]; }
};

Weights MakeWeights(int n, int k, uint32_t seed, bool q4) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> qd(q4 ? -8 : -127, q4 ? 7 : 127);
  std::uniform_real_distribution<float> sd(1e-4f, 2e-2f);
  Weights w;
  w.n = n;
  w.k = k;
  w.q4 = q4;
  for (int i = 0; i < n * k; ++i) w.q.push_back(static_cast<int8_t>(qd(rng)));
  for (int i = 0; i < n * k / 32; ++i) w.d.push_back(F32ToF16(sd(rng)));
  const int tile = q4 ? q8::Int4Weights::kTileBytes : q8::Int8Weights::kTileBytes;
  w.packed.resize(static_cast<size_t>(n / 16) * (k / 32) * tile);
  if (q4) {
    q8::Pack<q8::Int4Weights>(n, k, w.q.data(), w.d.data(), w.packed.data());
  } else {
    q8::Pack<q8::Int8Weights>(n, k, w.q.data(), w.d.data(), w.packed.data());
  }
  return w;
}

std::vector<float> Activations(int rows, int k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows) * k);
  for (auto& v : x) v = dist(rng);
  for (int c = 0; c < 32 && c < k; ++c) x[c] = 0.0f;  // an all-zero block
  if (x.size() > 40) x[40] = 37.5f;                    // an outlier
  return x;
}

// The definition, written out: per block, the exact integer dot of weight and activation quants,
// then acc = fma(isum, d_w * d_x, acc).
float Definition(const Weights& w, int row, const int8_t* xq, const float* xd) {
  float acc = 0.0f;
  for (int b = 0; b < w.k / 32; ++b) {
    int32_t isum = 0;
    for (int c = b * 32; c < (b + 1) * 32; ++c) isum += static_cast<int32_t>(w.q[row * w.k + c]) * xq[c];
    acc = std::fma(static_cast<float>(isum), F16ToF32(w.d[row * (w.k / 32) + b]) * xd[b], acc);
  }
  return acc;
}

std::vector<float> MatMul(bool vnni, const Weights& w, const std::vector<float>& x, int rows, int n_begin, int n_end) {
  std::vector<float> y(static_cast<size_t>(rows) * w.n, NAN);
  auto scratch = std::make_unique<q8::QuantizedRows>();
  auto run = [&]<class Isa, int kType>() {
    kern::MatMulOp<Isa, kType>(rows, w.k, x.data(), w.packed.data(), y.data(), w.n, n_begin, n_end, nullptr,
                               scratch.get());
  };
  if (vnni && w.q4) run.template operator()<kern::Avx512Bf16Isa, kern::kWQ4>();
  if (vnni && !w.q4) run.template operator()<kern::Avx512Bf16Isa, kern::kWQ8>();
  if (!vnni && w.q4) run.template operator()<kern::PortableIsa, kern::kWQ4>();
  if (!vnni && !w.q4) run.template operator()<kern::PortableIsa, kern::kWQ8>();
  return y;
}

TEST(Q8, QuantizeRowVariantsAgreeAndRoundTrip) {
  for (int k : {32, 96, 2048}) {
    std::vector<float> x = Activations(1, k, 3);
    std::vector<int8_t> q(k), qv(k);
    std::vector<float> d(k / 32), dv(k / 32);
    std::vector<int32_t> s(k / 32), sv(k / 32);
    q8::QuantizeRow(k, x.data(), q.data(), d.data(), s.data());
    for (int b = 0; b < k / 32; ++b) {
      int32_t sum = 0;
      for (int c = b * 32; c < (b + 1) * 32; ++c) {
        EXPECT_LE(std::abs(q[c]), 127);
        EXPECT_LE(std::fabs(d[b] * q[c] - x[c]), d[b] * 0.5f * (1 + 1e-5f)) << c;
        sum += q[c];
      }
      EXPECT_EQ(s[b], sum);
    }
    EXPECT_EQ(d[0], 0.0f) << "an all-zero block has scale 0";
    if (HasVnni()) {
      q8::vnni::QuantizeRow(k, x.data(), qv.data(), dv.data(), sv.data());
      EXPECT_EQ(q, qv);
      EXPECT_EQ(std::memcmp(d.data(), dv.data(), d.size() * 4), 0);
      EXPECT_EQ(s, sv);
    }
  }
}

class Formats : public ::testing::TestWithParam<bool> {};  // q4?

TEST_P(Formats, MatMulIsItsDefinitionAndBatchInvariant) {
  // 1536 x 1024 with 21 rows: more than 1 MiB of weights and more than one chunk of rows, which
  // run in slices of the outputs (two here).
  for (auto [n, k] : {std::pair{16, 32}, {48, 96}, {64, 160}, {32, 2048}, {1536, 1024}}) {
    const Weights w = MakeWeights(n, k, static_cast<uint32_t>(n + k), GetParam());
    const int rows = n > 64 ? 21 : 9;
    const std::vector<float> x = Activations(rows, k, static_cast<uint32_t>(k));
    const std::vector<float> y = MatMul(false, w, x, rows, 0, n);
    std::vector<int8_t> xq(k);
    std::vector<float> xd(k / 32);
    std::vector<int32_t> xs(k / 32);
    for (int m = 0; m < rows; ++m) {
      q8::QuantizeRow(k, x.data() + m * k, xq.data(), xd.data(), xs.data());
      for (int r = 0; r < n; ++r) {
        ASSERT_EQ(y[m * n + r], Definition(w, r, xq.data(), xd.data())) << n << "x" << k << " row " << m << " out " << r;
        // Close to the float64 product of the dequantized weights and the unquantized x: within
        // the activations' rounding (half a step of each block's scale) plus float rounding.
        double want = 0, bound = 0;
        for (int c = 0; c < k; ++c) {
          want += static_cast<double>(w.Value(r, c)) * x[m * k + c];
          bound += std::fabs(w.Value(r, c)) * (xd[c / 32] * 0.5 + 1e-6 * std::fabs(x[m * k + c]));
        }
        EXPECT_NEAR(y[m * n + r], want, bound + 1e-6);
      }
    }
    // Each row alone, and the outputs split at arbitrary places (-ols partitions), give the same bits.
    for (int m = 0; m < rows; ++m) {
      std::vector<float> one(x.begin() + m * k, x.begin() + (m + 1) * k);
      const std::vector<float> alone = MatMul(false, w, one, 1, 0, n);
      for (int r = 0; r < n; ++r) ASSERT_EQ(alone[r], y[m * n + r]);
    }
    std::vector<float> split(static_cast<size_t>(rows) * n);
    for (auto [b, e] : {std::pair{0, 7}, {7, n / 2 + 1}, {n / 2 + 1, n}}) {
      const std::vector<float> part = MatMul(false, w, x, rows, b, e);
      for (int m = 0; m < rows; ++m) {
        for (int r = b; r < e; ++r) split[m * n + r] = part[m * n + r];
      }
    }
    EXPECT_EQ(split, y);
    if (HasVnni()) {
      EXPECT_EQ(MatMul(true, w, x, rows, 0, n), y) << "VNNI and portable disagree at " << n << "x" << k;
      for (int m = 0; m < rows; ++m) {
        std::vector<float> one(x.begin() + m * k, x.begin() + (m + 1) * k);
        const std::vector<float> alone = MatMul(true, w, one, 1, 3, n);
        for (int r = 3; r < n; ++r) ASSERT_EQ(alone[r], y[m * n + r]);
      }
    }
  }
}

// The reference kernels (and the embedding lookup) read the packed layout as scale x q.
TEST_P(Formats, DequantizationIsScaleTimesQuant) {
  const Weights w = MakeWeights(32, 96, 5, GetParam());
  MatrixView view{GetParam() ? DType::kQ4 : DType::kQ8, 32, 96, reinterpret_cast<const std::byte*>(w.packed.data())};
  EXPECT_EQ(view.bytes(), static_cast<int64_t>(w.packed.size()));
  std::vector<float> row(96);
  std::vector<int32_t> tokens = {0, 17, 31};
  std::vector<int32_t> pos = {0, 1, 2};
  std::vector<float> embedded(3 * 96);
  if (GetParam()) {
    kern::EmbedOp<kern::kWQ4>(96, tokens.data(), pos.data(), w.packed.data(), embedded.data(), 0, 3);
  } else {
    kern::EmbedOp<kern::kWQ8>(96, tokens.data(), pos.data(), w.packed.data(), embedded.data(), 0, 3);
  }
  for (int r = 0; r < 32; ++r) {
    ref::DequantizeRow(view, r, row.data());
    for (int c = 0; c < 96; ++c) ASSERT_EQ(row[c], w.Value(r, c)) << r << " " << c;
  }
  for (int t = 0; t < 3; ++t) {
    for (int c = 0; c < 96; ++c) ASSERT_EQ(embedded[t * 96 + c], w.Value(tokens[t], c));
  }
}

INSTANTIATE_TEST_SUITE_P(Q8AndQ4, Formats, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "q4" : "q8_0"; });

// w8a8 (q8::w8): int8 rows with one f32 scale each, activations quantized with a static scale.
struct W8Weights {
  int n = 0, k = 0;
  std::vector<int8_t> q;
  std::vector<float> scale;
  std::vector<uint8_t> packed;
  float Value(int r, int c) const { return scale[r] * q[r * k + c]; }
};

W8Weights MakeW8(int n, int k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> qd(-127, 127);
  std::uniform_real_distribution<float> sd(1e-4f, 2e-2f);
  W8Weights w;
  w.n = n;
  w.k = k;
  for (int i = 0; i < n * k; ++i) w.q.push_back(static_cast<int8_t>(qd(rng)));
  for (int i = 0; i < n; ++i) w.scale.push_back(sd(rng));
  w.packed.resize(static_cast<size_t>(n / 16) * q8::w8::GroupBytes(k));
  q8::w8::Pack(n, k, w.q.data(), w.scale.data(), w.packed.data());
  return w;
}

// Which int8 kernel runs a w8a8 matmul: the portable loop, VNNI or AMX-INT8.
enum class W8Isa { kPortable, kVnni, kAmx };

std::vector<float> W8MatMul(W8Isa isa, const W8Weights& w, const std::vector<float>& x, int rows, float act_scale,
                            int n_begin, int n_end) {
  std::vector<float> y(static_cast<size_t>(rows) * w.n, NAN);
  auto scratch = std::make_unique<q8::QuantizedRows>();
  auto run = [&]<class Isa>() {
    kern::MatMulOp<Isa, kern::kWW8>(rows, w.k, x.data(), w.packed.data(), y.data(), w.n, n_begin, n_end, nullptr,
                                    scratch.get(), act_scale);
  };
  if (isa == W8Isa::kPortable) run.template operator()<kern::PortableIsa>();
  if (isa == W8Isa::kVnni) run.template operator()<kern::Avx512Bf16Isa>();
  if (isa == W8Isa::kAmx) run.template operator()<kern::AmxIsa>();
  return y;
}

// The definition: q_x = nearest-even(x / s_x) clamped to [-127, 127]; one exact integer dot over
// the whole row; y = (float) isum * (s_w * s_x).
TEST(W8a8, MatMulIsItsDefinitionAndBatchInvariant) {
  // 1536 x 1024: more than 1 MiB of weights, which AMX runs in slices (two here).
  for (auto [n, k] : {std::pair{16, 32}, {48, 96}, {64, 160}, {32, 2048}, {1536, 1024}}) {
    const W8Weights w = MakeW8(n, k, static_cast<uint32_t>(3 * n + k));
    const int rows = 21;  // more than one chunk of 16 rows
    const std::vector<float> x = Activations(rows, k, static_cast<uint32_t>(k + 1));
    const float act_scale = 4.0f / 127.0f;  // clips the outlier (37.5) and the normal tail beyond 4
    const std::vector<float> y = W8MatMul(W8Isa::kPortable, w, x, rows, act_scale, 0, n);
    for (int m = 0; m < rows; ++m) {
      std::vector<int> xq(k);
      for (int c = 0; c < k; ++c) {
        xq[c] = static_cast<int>(std::clamp(std::nearbyint(x[m * k + c] / act_scale), -127.0f, 127.0f));
      }
      for (int r = 0; r < n; ++r) {
        int64_t isum = 0;
        double want = 0, magnitude = 0;
        for (int c = 0; c < k; ++c) {
          isum += static_cast<int64_t>(w.q[r * k + c]) * xq[c];
          want += static_cast<double>(w.Value(r, c)) * xq[c] * act_scale;
          magnitude += std::fabs(static_cast<double>(w.Value(r, c)) * xq[c] * act_scale);
        }
        ASSERT_EQ(y[m * n + r], static_cast<float>(isum) * (w.scale[r] * act_scale)) << n << "x" << k << " " << m;
        // Float rounding only: the integer sum is exact; its conversion and two products round.
        EXPECT_NEAR(y[m * n + r], want, 3e-7 * magnitude + 1e-12);
      }
    }
    for (W8Isa isa : {W8Isa::kPortable, W8Isa::kVnni, W8Isa::kAmx}) {
      if (isa == W8Isa::kVnni && !HasVnni()) continue;
      if (isa == W8Isa::kAmx && !kern::amx::Int8Available()) continue;
      EXPECT_EQ(W8MatMul(isa, w, x, rows, act_scale, 0, n), y) << "isa " << static_cast<int>(isa) << " " << n << "x" << k;
      // Each row alone, and the outputs split at arbitrary places (-ols partitions): same bits.
      for (int m = 0; m < rows; ++m) {
        std::vector<float> one(x.begin() + m * k, x.begin() + (m + 1) * k);
        const std::vector<float> alone = W8MatMul(isa, w, one, 1, act_scale, 3, n);
        for (int r = 3; r < n; ++r) ASSERT_EQ(alone[r], y[m * n + r]) << static_cast<int>(isa);
      }
      std::vector<float> split(static_cast<size_t>(rows) * n);
      for (auto [b, e] : {std::pair{0, 7}, {7, n / 2 + 1}, {n / 2 + 1, n}}) {
        const std::vector<float> part = W8MatMul(isa, w, x, rows, act_scale, b, e);
        for (int m = 0; m < rows; ++m) {
          for (int r = b; r < e; ++r) split[m * n + r] = part[m * n + r];
        }
      }
      EXPECT_EQ(split, y) << static_cast<int>(isa);
    }
  }
}

TEST(W8a8, DequantizationIsScaleTimesQuant) {
  const W8Weights w = MakeW8(32, 96, 9);
  MatrixView view{DType::kW8, 32, 96, reinterpret_cast<const std::byte*>(w.packed.data())};
  EXPECT_EQ(view.bytes(), static_cast<int64_t>(w.packed.size()));
  std::vector<float> row(96);
  std::vector<int32_t> tokens = {0, 17, 31};
  std::vector<int32_t> pos = {0, 1, 2};
  std::vector<float> embedded(3 * 96);
  kern::EmbedOp<kern::kWW8>(96, tokens.data(), pos.data(), w.packed.data(), embedded.data(), 0, 3);
  for (int r = 0; r < 32; ++r) {
    ref::DequantizeRow(view, r, row.data());
    for (int c = 0; c < 96; ++c) ASSERT_EQ(row[c], w.Value(r, c)) << r << " " << c;
  }
  for (int t = 0; t < 3; ++t) {
    for (int c = 0; c < 96; ++c) ASSERT_EQ(embedded[t * 96 + c], w.Value(tokens[t], c));
  }
}

}  // namespace
}  // namespace tailor
