// int8 KV blocks (kern::kKvI8): KvWriteOp's layout and rounding, and attention over them against
// the float64 reference on the dequantized values (float tolerance) and on the unquantized values
// (the quantization bound); the AVX-512 variant bitwise equal to the portable one; a row alone,
// in a head partition, or written in a row partition bitwise equal to the batch.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu_ops.h"
#include "kernels/reference_kernels.h"

namespace tailor {
namespace {

using kern::Avx512Isa;
using kern::kKvI8;
using kern::PortableIsa;

bool HasAvx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
}

constexpr int kLayers = 2, kLayer = 1;

// A paged int8 KV pool holding `n_seqs` sequences of `len` positions (both layers), written by
// KvWriteOp from random floats whose magnitude varies by head and position, with outliers and an
// all-zero head. Keeps the floats written (orig) for comparisons.
struct Pool {
  int n_kv_heads, head_dim, block, max_blocks, n_seqs, len;
  int kv_dim() const { return n_kv_heads * head_dim; }
  std::vector<int32_t> tables;           // [n_seqs, max_blocks], scattered block ids
  std::vector<float> orig;               // [layer, kv 0/1, seq, pos, kv_dim]
  std::vector<std::byte> bytes;          // the pool
  int64_t plane() const { return static_cast<int64_t>(block) * (kv_dim() + 4 * n_kv_heads); }

  Pool(int n_kv_heads_, int head_dim_, int block_, int n_seqs_, int len_, uint32_t seed)
      : n_kv_heads(n_kv_heads_), head_dim(head_dim_), block(block_), max_blocks((len_ + block_ - 1) / block_),
        n_seqs(n_seqs_), len(len_) {
    const int n_blocks = n_seqs * max_blocks;
    tables.resize(static_cast<size_t>(n_blocks));
    for (int i = 0; i < n_blocks; ++i) tables[i] = (i * 7 + 3) % n_blocks;
    bytes.assign(static_cast<size_t>(kern::KvBlockBytes(kKvI8, kLayers, block, n_kv_heads, head_dim)) * n_blocks,
                 std::byte{0x5a});  // garbage: every byte read must have been written
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_real_distribution<float> mag(0.05f, 3.0f);
    orig.resize(static_cast<size_t>(kLayers) * 2 * n_seqs * len * kv_dim());
    for (size_t i = 0; i < orig.size(); i += head_dim) {
      const float m = mag(rng);
      for (int d = 0; d < head_dim; ++d) orig[i + d] = m * normal(rng);
      if (rng() % 7 == 0) orig[i + rng() % head_dim] *= 8.0f;  // an outlier sets the scale
      if (rng() % 29 == 0) std::fill(orig.begin() + i, orig.begin() + i + head_dim, 0.0f);
    }
    // Every (seq, pos) of a layer in one call, K and V side by side.
    std::vector<int32_t> pos, row_of;
    for (int s = 0; s < n_seqs; ++s) {
      for (int p = 0; p < len; ++p) {
        pos.push_back(p);
        row_of.push_back(s);
      }
    }
    for (int l = 0; l < kLayers; ++l) {
      kern::KvWriteOp<kKvI8>(n_kv_heads, head_dim, block, max_blocks, kLayers, l, Orig(l, 0, 0, 0), Orig(l, 1, 0, 0),
                             pos.data(), row_of.data(), tables.data(), bytes.data(), 0, static_cast<int>(pos.size()));
    }
  }
  const float* Orig(int l, int kv, int seq, int p) const {
    return orig.data() + ((((static_cast<size_t>(l) * 2 + kv) * n_seqs + seq) * len + p) * kv_dim());
  }
  // Byte offsets of (layer, kv, seq, pos, kv head)'s values and scale, from the documented layout.
  int64_t Plane(int l, int kv, int seq, int p) const {
    const int64_t blk = tables[static_cast<size_t>(seq) * max_blocks + p / block];
    return ((blk * kLayers + l) * 2 + kv) * plane();
  }
  const int8_t* Q(int l, int kv, int seq, int p, int h) const {
    return reinterpret_cast<const int8_t*>(bytes.data() + Plane(l, kv, seq, p) + (p % block) * kv_dim() +
                                           h * head_dim);
  }
  float Scale(int l, int kv, int seq, int p, int h) const {
    float s;
    std::memcpy(&s, bytes.data() + Plane(l, kv, seq, p) + static_cast<int64_t>(block) * kv_dim() +
                        4 * (h * block + p % block), 4);
    return s;
  }
  float Dequantized(int l, int kv, int seq, int p, int h, int d) const {
    return Scale(l, kv, seq, p, h) * static_cast<float>(Q(l, kv, seq, p, h)[d]);
  }
};

TEST(KvInt8, BlockBytes) {
  // Per layer, K and V: block * kv_dim int8 values and n_kv_heads * block f32 scales.
  EXPECT_EQ(kern::KvBlockBytes(kKvI8, 12, 16, 12, 64), 12 * 2 * 16 * (768 + 48));
  EXPECT_EQ(kern::KvBlockBytes(kern::kWF16, 12, 16, 12, 64), 12 * 2 * 16 * 768 * 2);
  EXPECT_EQ(kern::KvBlockBytes(kern::kWF32, 5, 16, 4, 8), 5 * 2 * 16 * 32 * 4);
}

// Each (slot, kv head): scale = max |x| / 127, q = nearest-even(x / scale), |x - scale q| <=
// scale / 2 (with float rounding), all-zero heads give scale 0 and q 0; nothing else written.
TEST(KvInt8, WriteLayoutAndRounding) {
  for (int head_dim : {8, 40, 64}) {
    const Pool pool(3, head_dim, 5, 2, 23, 1);
    int zero_heads = 0;
    for (int l = 0; l < kLayers; ++l) {
      for (int kv = 0; kv < 2; ++kv) {
        for (int s = 0; s < pool.n_seqs; ++s) {
          for (int p = 0; p < pool.len; ++p) {
            for (int h = 0; h < pool.n_kv_heads; ++h) {
              const float* x = pool.Orig(l, kv, s, p) + h * head_dim;
              double absmax = 0;
              for (int d = 0; d < head_dim; ++d) absmax = std::max(absmax, std::fabs(static_cast<double>(x[d])));
              const float scale = pool.Scale(l, kv, s, p, h);
              ASSERT_EQ(scale, static_cast<float>(absmax) / 127.0f);
              zero_heads += absmax == 0;
              const int8_t* q = pool.Q(l, kv, s, p, h);
              for (int d = 0; d < head_dim; ++d) {
                if (absmax == 0) {
                  ASSERT_EQ(q[d], 0);
                  continue;
                }
                // Nearest, ties to even, by double arithmetic on the float quotient.
                const double r = static_cast<double>(x[d] / scale);
                double want = std::floor(r + 0.5);
                if (want - r == 0.5 && std::fmod(want, 2.0) != 0) want -= 1;
                ASSERT_EQ(q[d], static_cast<int>(want)) << "x " << x[d] << " scale " << scale;
                ASSERT_LE(std::fabs(x[d] - static_cast<double>(scale) * q[d]), scale * (0.5 + 1e-5));
              }
            }
          }
        }
      }
    }
    EXPECT_GT(zero_heads, 0) << "the all-zero case was not exercised";
  }
  float scale;
  int8_t q[4];
  const float tie[4] = {2.5f, 127.0f, -1.5f, 0.5f};  // scale 1: ties go to even
  kern::QuantizeKvHead(4, tie, q, &scale);
  EXPECT_EQ(scale, 1.0f);
  EXPECT_EQ(q[0], 2);
  EXPECT_EQ(q[1], 127);
  EXPECT_EQ(q[2], -2);
  EXPECT_EQ(q[3], 0);
  const float bad[2] = {1.0f, NAN};
  kern::QuantizeKvHead(2, bad, q, &scale);
  EXPECT_TRUE(std::isnan(scale));
  EXPECT_EQ(q[0], 0);
}

// Rows written in partitions (any split of the token rows) give the same pool bytes.
TEST(KvInt8, WritePartitionsAgree) {
  const int n_kv_heads = 2, head_dim = 40, block = 4, max_blocks = 4, rows = 9;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> k(static_cast<size_t>(rows) * n_kv_heads * head_dim), v(k.size());
  for (auto& x : k) x = normal(rng);
  for (auto& x : v) x = normal(rng);
  const std::vector<int32_t> pos = {0, 1, 2, 3, 4, -1, 5, 9, 15}, row_of = {0, 0, 0, 0, 0, 0, 1, 1, 1};
  const std::vector<int32_t> tables = {6, 2, 7, 0, 1, 3, 5, 4};
  const size_t bytes = kern::KvBlockBytes(kKvI8, kLayers, block, n_kv_heads, head_dim) * 8;
  std::vector<std::byte> whole(bytes), parts(bytes);
  kern::KvWriteOp<kKvI8>(n_kv_heads, head_dim, block, max_blocks, kLayers, kLayer, k.data(), v.data(), pos.data(),
                         row_of.data(), tables.data(), whole.data(), 0, rows);
  for (int parts_n : {2, 3, 9}) {
    std::fill(parts.begin(), parts.end(), std::byte{0});
    for (int part = 0; part < parts_n; ++part) {
      int b, e;
      kern::Partition(rows, parts_n, part, &b, &e);
      kern::KvWriteOp<kKvI8>(n_kv_heads, head_dim, block, max_blocks, kLayers, kLayer, k.data(), v.data(),
                             pos.data(), row_of.data(), tables.data(), parts.data(), b, e);
    }
    ASSERT_EQ(whole, parts) << parts_n << " partitions";
  }
}

// Attention of 7 token rows (sequences at positions on both sides of 16-position groups and
// page edges, one padding row, a prompt chunk of 3 rows of one sequence) over int8 KV.
void CheckAttention(int head_dim, int block, int n_heads, int n_kv_heads) {
  const Pool pool(n_kv_heads, head_dim, block, 5, 72, 9);
  const std::vector<int32_t> pos = {0, 15, 16, 17, 40, -1, 70, 71};
  const std::vector<int32_t> row_of = {0, 1, 1, 1, 3, 3, 4, 2};
  const int rows = static_cast<int>(pos.size()), group = n_heads / n_kv_heads;
  std::vector<float> q(static_cast<size_t>(rows) * n_heads * head_dim);
  std::mt19937 rng(10);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto& x : q) x = normal(rng);
  const size_t out_size = q.size();
  std::vector<float> a(out_size, NAN), b(out_size, NAN), scores(kern::AttentionScratch(72));
  auto run = [&](auto isa, int n_rows, const float* qr, const int32_t* pr, const int32_t* ro, float* out, int hb,
                 int he) {
    kern::AttentionOp<decltype(isa), kKvI8>(n_rows, n_heads, n_kv_heads, head_dim, block, pool.max_blocks, kLayers,
                                            kLayer, qr, pr, ro, pool.tables.data(), pool.bytes.data(), out,
                                            scores.data(), hb, he);
  };
  run(PortableIsa{}, rows, q.data(), pos.data(), row_of.data(), a.data(), 0, n_heads);
  const std::string where = "head_dim " + std::to_string(head_dim) + " block " + std::to_string(block) + " heads " +
                            std::to_string(n_heads) + "/" + std::to_string(n_kv_heads);
  std::vector<float> keys, values, keys_f, values_f, ref_out(head_dim), ref_f(head_dim), ref_scores(72);
  for (int m = 0; m < rows; ++m) {
    for (int h = 0; h < n_heads; ++h) {
      const float* got = a.data() + (static_cast<size_t>(m) * n_heads + h) * head_dim;
      if (pos[m] < 0) {
        for (int d = 0; d < head_dim; ++d) ASSERT_EQ(got[d], 0.0f);
        continue;
      }
      const int n = pos[m] + 1, kvh = h / group, s = row_of[m];
      keys.assign(static_cast<size_t>(n) * head_dim, 0);
      values.assign(keys.size(), 0);
      keys_f.assign(keys.size(), 0);
      values_f.assign(keys.size(), 0);
      double vmax = 0, k_err = 0, v_err = 0;  // max |v|; max quantization error of K and of V
      for (int p = 0; p < n; ++p) {
        for (int d = 0; d < head_dim; ++d) {
          const size_t i = static_cast<size_t>(p) * head_dim + d;
          keys[i] = pool.Dequantized(kLayer, 0, s, p, kvh, d);
          values[i] = pool.Dequantized(kLayer, 1, s, p, kvh, d);
          keys_f[i] = pool.Orig(kLayer, 0, s, p)[kvh * head_dim + d];
          values_f[i] = pool.Orig(kLayer, 1, s, p)[kvh * head_dim + d];
          vmax = std::max({vmax, std::fabs(static_cast<double>(values[i])),
                           std::fabs(static_cast<double>(values_f[i]))});
          k_err = std::max(k_err, std::fabs(static_cast<double>(keys[i]) - keys_f[i]));
          v_err = std::max(v_err, std::fabs(static_cast<double>(values[i]) - values_f[i]));
        }
      }
      const float* qh = q.data() + (static_cast<size_t>(m) * n_heads + h) * head_dim;
      ref::AttendOneHead(qh, keys.data(), values.data(), head_dim, n, head_dim, ref_out.data(), ref_scores.data());
      ref::AttendOneHead(qh, keys_f.data(), values_f.data(), head_dim, n, head_dim, ref_f.data(), ref_scores.data());
      // Float rounding of the kernel: scores carry a few ulp (2^-24) of max_p sum |q k_p| /
      // sqrt(head_dim), which moves each softmax weight by that relative amount, the output by
      // that times max |v| (measured: under 0.5 ulp of it; allowed: 4).
      double qk = 0;
      for (int p = 0; p < n; ++p) {
        double sum = 0;
        for (int d = 0; d < head_dim; ++d) sum += std::fabs(qh[d] * keys[static_cast<size_t>(p) * head_dim + d]);
        qk = std::max(qk, sum / std::sqrt(static_cast<double>(head_dim)));
      }
      const double float_tol = 4 * std::ldexp(1.0, -24) * (1 + qk) * std::max(1.0, vmax);
      // Quantization: every score moves by at most eps = sum |q| * k_err / sqrt(head_dim), so each
      // weight by a factor within e^(+-2 eps); the output by (e^(2 eps) - 1) max |v| + v_err.
      double q_l1 = 0;
      for (int d = 0; d < head_dim; ++d) q_l1 += std::fabs(qh[d]);
      const double eps = q_l1 * k_err / std::sqrt(static_cast<double>(head_dim));
      const double quant_bound = std::expm1(2 * eps) * vmax + v_err + float_tol;
      for (int d = 0; d < head_dim; ++d) {
        ASSERT_NEAR(got[d], ref_out[d], float_tol) << where << " row " << m << " head " << h << " d " << d;
        ASSERT_NEAR(got[d], ref_f[d], quant_bound) << where << " row " << m << " head " << h << " d " << d;
      }
    }
  }
  if (HasAvx512()) {
    run(Avx512Isa{}, rows, q.data(), pos.data(), row_of.data(), b.data(), 0, n_heads);
    for (size_t i = 0; i < out_size; ++i) ASSERT_EQ(a[i], b[i]) << where << " avx512 vs portable, i " << i;
  }
  // Each row alone, its heads in three partitions; and the batch in head partitions.
  std::vector<std::pair<int, int>> splits = {{0, 1}, {1, n_heads - 1}, {n_heads - 1, n_heads}};
  for (int isa = 0; isa < 2; ++isa) {
    if (isa == 1 && !HasAvx512()) continue;
    for (int m = 0; m < rows; ++m) {
      std::vector<float> one(static_cast<size_t>(n_heads) * head_dim, NAN);
      const float* qm = q.data() + static_cast<size_t>(m) * n_heads * head_dim;
      for (auto [hb, he] : splits) {
        if (isa == 0) run(PortableIsa{}, 1, qm, &pos[m], &row_of[m], one.data(), hb, he);
        if (isa == 1) run(Avx512Isa{}, 1, qm, &pos[m], &row_of[m], one.data(), hb, he);
      }
      for (size_t i = 0; i < one.size(); ++i) {
        ASSERT_EQ(one[i], a[static_cast<size_t>(m) * n_heads * head_dim + i]) << where << " row " << m << " alone";
      }
    }
    std::vector<float> split(out_size, NAN);
    for (auto [hb, he] : splits) {
      if (isa == 0) run(PortableIsa{}, rows, q.data(), pos.data(), row_of.data(), split.data(), hb, he);
      if (isa == 1) run(Avx512Isa{}, rows, q.data(), pos.data(), row_of.data(), split.data(), hb, he);
    }
    for (size_t i = 0; i < out_size; ++i) ASSERT_EQ(split[i], a[i]) << where << " head partitions, i " << i;
  }
}

TEST(KvInt8, AttentionMatchesReferenceAndIsPerRow) {
  for (int head_dim : {8, 40, 64, 128, 144}) {  // 144: the AVX-512 variant's per-head path
    for (int block : {4, 5, 16}) {
      CheckAttention(head_dim, block, 4, 2);
    }
  }
  CheckAttention(64, 16, 6, 6);   // one query per set in decode (110M's shape)
  CheckAttention(16, 16, 16, 1);  // 16 heads of one kv head: full query sets
}

}  // namespace
}  // namespace tailor
