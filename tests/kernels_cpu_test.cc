// The program kernels against the float64 reference kernels, and their invariances: the
// AVX-512 and portable variants agree bitwise (AMX bf16 matmuls: within tolerance); a row's result does not depend on the other rows,
// on the tile that computed it, or on the -ols partition.
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "common/dtype.h"
#include "gtest/gtest.h"
#include "kernels/cpu_ops.h"
#include "kernels/reference_kernels.h"

namespace tailor {
namespace {

using kern::Avx512Isa;
using kern::PortableIsa;

bool HasAvx512() { return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"); }

TAILOR_AVX512_TARGET void ExpLanes(const float* x, float* out) {
  _mm512_storeu_ps(out, kern::avx512::Exp(_mm512_loadu_ps(x)));
}

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Weights of `type` holding (a rounding of) `f`; returns bytes and the exact floats they hold.
std::vector<std::byte> Encode(const std::vector<float>& f, int type, std::vector<float>* exact) {
  std::vector<std::byte> out(f.size() * (type == kern::kWF32 ? 4 : 2));
  exact->resize(f.size());
  for (size_t i = 0; i < f.size(); ++i) {
    if (type == kern::kWF32) {
      std::memcpy(out.data() + 4 * i, &f[i], 4);
      (*exact)[i] = f[i];
    } else {
      uint16_t h = type == kern::kWF16 ? F32ToF16(f[i]) : F32ToBF16(f[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
      (*exact)[i] = type == kern::kWF16 ? F16ToF32(h) : BF16ToF32(h);
    }
  }
  return out;
}

template <class Isa, int kType>
void CheckMatMul(int rows, int k, int n) {
  auto x = Random(static_cast<size_t>(rows) * k, 1);
  std::vector<float> exact;
  auto w = Encode(Random(static_cast<size_t>(n) * k, 2), kType, &exact);
  std::vector<float> y(static_cast<size_t>(rows) * n, NAN);
  kern::MatMulOp<Isa, kType>(rows, k, x.data(), w.data(), y.data(), n, 0, n);
  // Against the reference (bf16 weights multiply activations rounded to bf16).
  MatrixView wv{DType::kF32, n, k, reinterpret_cast<const std::byte*>(exact.data())};
  std::vector<float> ref(n), scratch(k), xr(k);
  for (int m = 0; m < rows; ++m) {
    for (int i = 0; i < k; ++i) {
      const float v = x[static_cast<size_t>(m) * k + i];
      xr[i] = kType == kern::kWBF16 ? BF16ToF32(F32ToBF16(v)) : v;
    }
    ref::MatVec(wv, xr.data(), ref.data(), scratch.data());
    for (int j = 0; j < n; ++j) {
      ASSERT_NEAR(y[m * n + j], ref[j], 1e-4 * std::sqrt(static_cast<float>(k))) << m << "," << j;
    }
  }
  // Batch and partition invariance: each row alone, split in 3 partitions, is bitwise equal.
  for (int m = 0; m < rows; ++m) {
    std::vector<float> one(n, NAN);
    for (int part = 0; part < 3; ++part) {
      int b, e;
      kern::Partition(n, 3, part, &b, &e);
      kern::MatMulOp<Isa, kType>(1, k, x.data() + static_cast<size_t>(m) * k, w.data(), one.data(), n, b, e);
    }
    for (int j = 0; j < n; ++j) ASSERT_EQ(one[j], y[m * n + j]) << m << "," << j;
  }
  // AMX: the tile-blocked copy of the weights gives the same bits, whole or in partitions (whose
  // unaligned starts read the row-major weights).
  if constexpr (std::is_same_v<Isa, kern::AmxIsa>) {
    if (kern::amx::Packable(n, k)) {
      std::vector<uint16_t> packed(static_cast<size_t>(n) * k);
      kern::amx::PackWeights(reinterpret_cast<const uint16_t*>(w.data()), n, k, packed.data());
      for (int parts : {1, 2, 3}) {
        std::vector<float> yp(y.size(), NAN);
        for (int part = 0; part < parts; ++part) {
          int b, e;
          kern::Partition(n, parts, part, &b, &e);
          kern::MatMulOp<Isa, kType>(rows, k, x.data(), w.data(), yp.data(), n, b, e, packed.data());
        }
        for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(yp[i], y[i]) << "packed, " << parts << " parts, " << i;
      }
    }
  }
  // Compile-time extents give the same bits.
  if (k == 37 && n == 9) {
    std::vector<float> fixed(static_cast<size_t>(rows) * n, NAN);
    kern::MatMulOp<Isa, kType>(rows, kern::Const<37>{}, x.data(), w.data(), fixed.data(), n, 0, n);
    for (size_t i = 0; i < fixed.size(); ++i) ASSERT_EQ(fixed[i], y[i]);
  }
}

TEST(CpuKernels, MatMulPortable) {
  for (int rows : {1, 3, 4, 9}) {
    for (auto [k, n] : {std::pair{37, 9}, std::pair{64, 16}, std::pair{128, 5}}) {
      CheckMatMul<PortableIsa, kern::kWF32>(rows, k, n);
      CheckMatMul<PortableIsa, kern::kWF16>(rows, k, n);
      CheckMatMul<PortableIsa, kern::kWBF16>(rows, k, n);
    }
  }
}

TEST(CpuKernels, MatMulAvx512MatchesPortableBitwise) {
  if (!HasAvx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  for (int rows : {1, 3, 4, 9, 13}  /* 13: 8 x 2, 4 x 4 and 1-row tiles */) {
    for (auto [k, n] : {std::pair{37, 9}, std::pair{64, 16}, std::pair{128, 5}}) {
      CheckMatMul<Avx512Isa, kern::kWF32>(rows, k, n);
      CheckMatMul<Avx512Isa, kern::kWBF16>(rows, k, n);
      auto x = Random(static_cast<size_t>(rows) * k, 3);
      std::vector<float> exact;
      auto w = Encode(Random(static_cast<size_t>(n) * k, 4), kern::kWF16, &exact);
      std::vector<float> a(static_cast<size_t>(rows) * n), b(a.size());
      kern::MatMulOp<Avx512Isa, kern::kWF16>(rows, k, x.data(), w.data(), a.data(), n, 0, n);
      kern::MatMulOp<PortableIsa, kern::kWF16>(rows, k, x.data(), w.data(), b.data(), n, 0, n);
      for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << i;
    }
  }
}

bool HasAvx512Bf16() { return HasAvx512() && __builtin_cpu_supports("avx512bf16"); }

// bf16 weights: the portable code, the AVX-512 emulation and the VDPBF16PS kernel give the same
// bits, for k that is and is not a multiple of the 32-wide chunk, and values of any magnitude.
TEST(CpuKernels, Bf16MatMulVariantsAgreeBitwise) {
  if (!HasAvx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  for (int rows : {1, 3, 4, 9, 13}) {
    for (auto [k, n] : {std::pair{37, 9}, std::pair{64, 16}, std::pair{100, 5}, std::pair{768, 8}}) {
      auto x = Random(static_cast<size_t>(rows) * k, 7);
      for (size_t i = 0; i < x.size(); ++i) x[i] *= std::ldexp(1.0f, static_cast<int>(i % 40) - 20);
      std::vector<float> exact;
      auto w = Encode(Random(static_cast<size_t>(n) * k, 8), kern::kWBF16, &exact);
      std::vector<float> a(static_cast<size_t>(rows) * n), b(a.size()), c(a.size());
      kern::MatMulOp<PortableIsa, kern::kWBF16>(rows, k, x.data(), w.data(), a.data(), n, 0, n);
      kern::MatMulOp<Avx512Isa, kern::kWBF16>(rows, k, x.data(), w.data(), b.data(), n, 0, n);
      for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << "emulated, k " << k << " i " << i;
      if (!HasAvx512Bf16()) continue;
      kern::MatMulOp<kern::Avx512Bf16Isa, kern::kWBF16>(rows, k, x.data(), w.data(), c.data(), n, 0, n);
      for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], c[i]) << "vdpbf16ps, k " << k << " i " << i;
    }
  }
  if (!HasAvx512Bf16()) GTEST_SKIP() << "no AVX512-BF16 on this CPU: the instruction path was not compared";
}

TEST(CpuKernels, MatMulAvx512Bf16) {
  if (!HasAvx512Bf16()) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  for (int rows : {1, 3, 4, 9, 13}) {
    for (auto [k, n] : {std::pair{37, 9}, std::pair{64, 16}, std::pair{128, 5}}) {
      CheckMatMul<kern::Avx512Bf16Isa, kern::kWBF16>(rows, k, n);
    }
  }
}

// AMX tiles: within tolerance of the reference, and each row alone (the decode path, four weight
// blocks per group) and in 3 partitions gives the bits of the full batch (the prefill path, 32 x
// 32 groups), including partial tiles of rows, of weight rows and of k (zero-padded copies).
TEST(CpuKernels, MatMulAmx) {
  if (!kern::amx::Available()) GTEST_SKIP() << "no AMX-BF16 on this CPU (or the kernel refused it)";
  for (int rows : {1, 3, 16, 17, 37, 70}) {
    for (auto [k, n] : {std::pair{37, 9}, std::pair{64, 16}, std::pair{128, 5}, std::pair{64, 64},
                        std::pair{128, 130}, std::pair{96, 200}, std::pair{172, 100}, std::pair{64, 128},
                        std::pair{96, 96}}) {
      CheckMatMul<kern::AmxIsa, kern::kWBF16>(rows, k, n);
    }
  }
}

// Attention over paged KV: the AVX-512 variant (vector V accumulation) gives the portable bits,
// for every KV type, with rows at different positions and a padding row.
template <int kKv>
void CheckAttentionVariantsAgree() {
  constexpr int kHeads = 4, kKvHeads = 2, kHeadDim = 40, kBlock = 4, kLayers = 2, kMaxBlocks = 8;
  const int kv_dim = kKvHeads * kHeadDim;
  const auto kv_f = Random(static_cast<size_t>(kMaxBlocks) * 2 * kLayers * 2 * kBlock * kv_dim, 9);
  std::vector<float> kv_exact;
  auto pool = Encode(kv_f, kKv, &kv_exact);
  const auto q = Random(3 * kHeads * kHeadDim, 10);
  const std::vector<int32_t> pos = {5, 30, -1}, row_of = {0, 1, 1};
  std::vector<int32_t> tables(2 * kMaxBlocks);
  for (int i = 0; i < 2 * kMaxBlocks; ++i) tables[i] = (i * 5) % (2 * kMaxBlocks);
  std::vector<float> a(3 * kHeads * kHeadDim, NAN), b(a.size(), NAN), scores(kern::AttentionScratch(31));
  kern::AttentionOp<PortableIsa, kKv>(3, kHeads, kKvHeads, kHeadDim, kBlock, kMaxBlocks, kLayers, 1, q.data(),
                                      pos.data(), row_of.data(), tables.data(), pool.data(), a.data(),
                                      scores.data(), 0, kHeads);
  kern::AttentionOp<Avx512Isa, kKv>(3, kHeads, kKvHeads, kHeadDim, kBlock, kMaxBlocks, kLayers, 1, q.data(),
                                    pos.data(), row_of.data(), tables.data(), pool.data(), b.data(),
                                    scores.data(), 0, kHeads);
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << "kv type " << kKv << " i " << i;
}

TEST(CpuKernels, AttentionAvx512MatchesPortableBitwise) {
  if (!HasAvx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  CheckAttentionVariantsAgree<kern::kWF32>();
  CheckAttentionVariantsAgree<kern::kWF16>();
  CheckAttentionVariantsAgree<kern::kWBF16>();
}

// Paged KV of every type with rows at positions on both sides of 16-position groups and page
// edges: the result of each (row, head) against the float64-accumulating reference, the AVX-512
// variant bitwise equal to the portable one, and each row alone or in a head partition bitwise
// equal to the batch (the per-row invariance prefill and decode rely on).
template <int kKv>
void CheckAttention(int head_dim, int block) {
  constexpr int kHeads = 4, kKvHeads = 2, kLayers = 2, kLayer = 1;
  const std::vector<int32_t> pos = {0, 15, 16, 17, 40, -1, 70};
  const std::vector<int32_t> row_of = {0, 1, 1, 2, 3, 3, 4};
  const int rows = static_cast<int>(pos.size()), n_rows = 5;
  const int max_blocks = 71 / block + 1, n_blocks = n_rows * max_blocks;
  const int kv_dim = kKvHeads * head_dim;
  const auto kv_f = Random(static_cast<size_t>(n_blocks) * kLayers * 2 * block * kv_dim, 9);
  std::vector<float> kv_exact;
  auto pool = Encode(kv_f, kKv, &kv_exact);
  const auto q = Random(static_cast<size_t>(rows) * kHeads * head_dim, 10);
  std::vector<int32_t> tables(static_cast<size_t>(n_rows) * max_blocks);
  for (int i = 0; i < n_blocks; ++i) tables[i] = (i * 7) % n_blocks;  // scattered blocks
  const size_t out_size = static_cast<size_t>(rows) * kHeads * head_dim;
  std::vector<float> a(out_size, NAN), b(out_size, NAN), scores(kern::AttentionScratch(71));
  auto run = [&](auto isa, int n_rows_run, const float* qr, const int32_t* pr, const int32_t* ro,
                 float* out, int hb, int he) {
    kern::AttentionOp<decltype(isa), kKv>(n_rows_run, kHeads, kKvHeads, head_dim, block, max_blocks, kLayers,
                                          kLayer, qr, pr, ro, tables.data(), pool.data(), out, scores.data(),
                                          hb, he);
  };
  run(PortableIsa{}, rows, q.data(), pos.data(), row_of.data(), a.data(), 0, kHeads);
  std::vector<float> keys, values, ref_out(head_dim), ref_scores(71);
  for (int m = 0; m < rows; ++m) {
    for (int h = 0; h < kHeads; ++h) {
      const float* got = a.data() + (static_cast<size_t>(m) * kHeads + h) * head_dim;
      if (pos[m] < 0) {
        for (int d = 0; d < head_dim; ++d) ASSERT_EQ(got[d], 0.0f);
        continue;
      }
      keys.assign(static_cast<size_t>(pos[m] + 1) * head_dim, 0);
      values.assign(keys.size(), 0);
      for (int p = 0; p <= pos[m]; ++p) {
        const int64_t blk = tables[row_of[m] * max_blocks + p / block];
        // The documented plane layout: [kv head, slot, head_dim].
        const int64_t at = ((blk * kLayers + kLayer) * 2) * block * kv_dim +
                           ((h / (kHeads / kKvHeads)) * block + p % block) * head_dim;
        for (int d = 0; d < head_dim; ++d) {
          keys[static_cast<size_t>(p) * head_dim + d] = kv_exact[at + d];
          values[static_cast<size_t>(p) * head_dim + d] = kv_exact[at + static_cast<int64_t>(block) * kv_dim + d];
        }
      }
      ref::AttendOneHead(q.data() + (static_cast<size_t>(m) * kHeads + h) * head_dim, keys.data(), values.data(),
                         head_dim, pos[m] + 1, head_dim, ref_out.data(), ref_scores.data());
      for (int d = 0; d < head_dim; ++d) {
        ASSERT_NEAR(got[d], ref_out[d], 2e-6 * std::sqrt(static_cast<float>(head_dim)))
            << "kv type " << kKv << " head_dim " << head_dim << " row " << m << " head " << h << " d " << d;
      }
    }
  }
  if (HasAvx512()) {
    run(Avx512Isa{}, rows, q.data(), pos.data(), row_of.data(), b.data(), 0, kHeads);
    for (size_t i = 0; i < out_size; ++i) ASSERT_EQ(a[i], b[i]) << "kv type " << kKv << " head_dim " << head_dim;
  }
  for (auto isa : {0, 1}) {
    if (isa == 1 && !HasAvx512()) continue;
    for (int m = 0; m < rows; ++m) {
      std::vector<float> one(static_cast<size_t>(kHeads) * head_dim, NAN);
      const float* qm = q.data() + static_cast<size_t>(m) * kHeads * head_dim;
      for (auto [hb, he] : {std::pair{0, 1}, std::pair{1, 3}, std::pair{3, 4}}) {
        if (isa == 0) run(PortableIsa{}, 1, qm, &pos[m], &row_of[m], one.data(), hb, he);
        if (isa == 1) run(Avx512Isa{}, 1, qm, &pos[m], &row_of[m], one.data(), hb, he);
      }
      for (size_t i = 0; i < one.size(); ++i) {
        ASSERT_EQ(one[i], a[static_cast<size_t>(m) * kHeads * head_dim + i]) << "row " << m << " alone";
      }
    }
  }
}

TEST(CpuKernels, AttentionMatchesReferenceAndIsPerRow) {
  for (int head_dim : {8, 40, 64, 128, 144}) {
    for (int block : {4, 5, 16}) {
      CheckAttention<kern::kWF32>(head_dim, block);
      CheckAttention<kern::kWF16>(head_dim, block);
      CheckAttention<kern::kWBF16>(head_dim, block);
    }
  }
}

// The exponential of softmax and SiLU: within 2 ulp of e^x, its limits, and the vector variant
// bitwise equal lane by lane.
TEST(CpuKernels, ExpIsAccurateAndVariantsAgree) {
  std::vector<float> xs = {0.0f, -0.0f, 1.0f, -1.0f, -87.0f, -86.99f, -87.01f, 88.72f, 88.7f, 88.73f,
                           -INFINITY, INFINITY, NAN, 1e-30f, -1e-30f, 0.5f * 0.6931472f};
  for (int i = 0; i < 20000; ++i) xs.push_back(-100.0f + 200.0f * static_cast<float>(i) / 20000);
  for (float x : Random(4000, 11)) xs.push_back(4 * x);
  for (float x : xs) {
    const float e = kern::ExpScalar(x);
    if (std::isnan(x)) {
      EXPECT_TRUE(std::isnan(e));
    } else if (x < -87.0f) {
      EXPECT_EQ(e, 0.0f) << x;
    } else if (x > 88.72f) {
      EXPECT_EQ(e, INFINITY) << x;
    } else {
      const double ref = std::exp(static_cast<double>(x));
      ASSERT_LE(std::abs(e - ref), 2.0 * ref * std::numeric_limits<float>::epsilon()) << x;
    }
  }
  if (!HasAvx512()) GTEST_SKIP() << "no AVX-512 on this CPU: the vector variant was not compared";
  xs.resize(xs.size() / 16 * 16);
  std::vector<float> got(xs.size());
  for (size_t i = 0; i < xs.size(); i += 16) ExpLanes(xs.data() + i, got.data() + i);
  for (size_t i = 0; i < xs.size(); ++i) {
    const float want = kern::ExpScalar(xs[i]);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got[i]));
    } else {
      ASSERT_EQ(std::memcmp(&got[i], &want, 4), 0) << xs[i] << ": " << got[i] << " vs " << want;
    }
  }
}

TEST(CpuKernels, SwiGluMatchesReferenceAndVariantsAgree) {
  const int ffn = 70, rows = 3;
  auto g = Random(rows * ffn, 12), u = Random(rows * ffn, 13);
  for (auto& x : g) x *= 8;  // reaches the tails of the sigmoid
  g[5] = -200.0f;
  g[6] = 200.0f;
  std::vector<float> ref_out(rows * ffn), a = g;
  ref::SwiGlu(g.data(), u.data(), rows * ffn, ref_out.data());
  kern::SwiGluOp<PortableIsa>(ffn, a.data(), u.data(), 0, rows);
  for (int i = 0; i < rows * ffn; ++i) ASSERT_NEAR(a[i], ref_out[i], 1e-6 * (1 + std::abs(ref_out[i]))) << i;
  if (!HasAvx512()) GTEST_SKIP() << "no AVX-512 on this CPU: the vector variant was not compared";
  std::vector<float> b = g;
  kern::SwiGluOp<Avx512Isa>(ffn, b.data(), u.data(), 0, 1);  // one row, then the others
  kern::SwiGluOp<Avx512Isa>(ffn, b.data(), u.data(), 1, rows);
  for (int i = 0; i < rows * ffn; ++i) ASSERT_EQ(a[i], b[i]) << i;
}

TEST(CpuKernels, RmsNormMatchesReference) {
  const int dim = 70;
  auto x = Random(2 * dim, 5);
  auto w = Random(dim, 6);
  std::vector<float> out(2 * dim), ref_out(dim), scratch(dim);
  kern::RmsNormOp<PortableIsa, kern::kWF32>(dim, x.data(), w.data(), 1e-5f, out.data(), 0, 2);
  MatrixView wv{DType::kF32, 1, dim, reinterpret_cast<const std::byte*>(w.data())};
  for (int m = 0; m < 2; ++m) {
    ref::RmsNorm(x.data() + m * dim, wv, 1e-5f, ref_out.data(), scratch.data());
    for (int d = 0; d < dim; ++d) EXPECT_NEAR(out[m * dim + d], ref_out[d], 1e-5);
  }
  if (HasAvx512()) {
    std::vector<float> out2(2 * dim);
    kern::RmsNormOp<Avx512Isa, kern::kWF32>(dim, x.data(), w.data(), 1e-5f, out2.data(), 0, 2);
    EXPECT_EQ(out, out2);
  }
}

}  // namespace
}  // namespace tailor
