// int8 KV blocks (kern::kKvI8): KvWriteOp's layout, K's rotation and the rounding (against
// ref::HadamardRotate and ref::QuantizeKvI8), and attention over them against the float64
// reference ref::AttendOneHeadKvI8 (float tolerance) and against f32 attention on the unquantized
// values (the quantization bound); the AVX-512 variant bitwise equal to the portable one; a row
// alone, in a head partition, or written in a row partition bitwise equal to the batch.
#include <algorithm>
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
  int64_t plane() const { return static_cast<int64_t>(block) * (kv_dim() + 8 * n_kv_heads); }

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
    return reinterpret_cast<const int8_t*>(bytes.data() + Plane(l, kv, seq, p) +
                                           (static_cast<int64_t>(h) * block + p % block) * head_dim);
  }
  // Which: 0 the scale, 1 the zero.
  float Param(int l, int kv, int seq, int p, int h, int which) const {
    float s;
    std::memcpy(&s, bytes.data() + Plane(l, kv, seq, p) + static_cast<int64_t>(block) * kv_dim() +
                        8 * (h * block + p % block) + 4 * which, 4);
    return s;
  }
  double Dequantized(int l, int kv, int seq, int p, int h, int d) const {
    return Param(l, kv, seq, p, h, 1) + static_cast<double>(Param(l, kv, seq, p, h, 0)) * Q(l, kv, seq, p, h)[d];
  }
  // The head as stored before quantization, in float64: H k for K (ref::HadamardRotate), v for V.
  std::vector<double> Exact(int l, int kv, int seq, int p, int h) const {
    std::vector<double> x(Orig(l, kv, seq, p) + h * head_dim, Orig(l, kv, seq, p) + (h + 1) * head_dim), y(x);
    if (kv == 0) ref::HadamardRotate(x.data(), head_dim, y.data());
    return y;
  }
};

TEST(KvInt8, BlockBytes) {
  // Per layer, K and V: block * kv_dim int8 values and n_kv_heads * block (f32 scale, f32 zero).
  EXPECT_EQ(kern::KvBlockBytes(kKvI8, 12, 16, 12, 64), 12 * 2 * 16 * (768 + 96));
  EXPECT_EQ(kern::KvBlockBytes(kern::kWF16, 12, 16, 12, 64), 12 * 2 * 16 * 768 * 2);
  EXPECT_EQ(kern::KvBlockBytes(kern::kWF32, 5, 16, 4, 8), 5 * 2 * 16 * 32 * 4);
}

// The rotation: kern::RotateKvHead (float butterflies) is ref::HadamardRotate to float rounding,
// blocks of the largest power of two dividing head_dim; H^T H = block * I.
TEST(KvInt8, Rotation) {
  EXPECT_EQ(kern::KvRotationBlock(8), 8);
  EXPECT_EQ(kern::KvRotationBlock(40), 8);
  EXPECT_EQ(kern::KvRotationBlock(144), 16);
  EXPECT_EQ(kern::KvRotationBlock(128), 128);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int head_dim : {2, 8, 40, 64, 128, 144}) {
    const int block = kern::KvRotationBlock(head_dim);
    std::vector<float> x(head_dim), rotated(head_dim), query(head_dim);
    std::vector<double> xd(head_dim), want(head_dim), back(head_dim);
    for (int d = 0; d < head_dim; ++d) xd[d] = x[d] = normal(rng);
    rotated = x;
    kern::RotateKvHead(head_dim, rotated.data());
    kern::RotateKvQuery(head_dim, x.data(), query.data());
    ref::HadamardRotate(xd.data(), head_dim, want.data());
    ref::HadamardRotate(want.data(), head_dim, back.data());
    double l1 = 0;
    for (int d = 0; d < head_dim; ++d) l1 += std::fabs(xd[d]);
    const double tol = std::log2(block) * std::ldexp(l1, -24);  // one rounding per butterfly stage
    for (int d = 0; d < head_dim; ++d) {
      ASSERT_NEAR(rotated[d], want[d], tol) << "head_dim " << head_dim << " d " << d;
      ASSERT_NEAR(query[d], want[d] / block, tol / block) << "head_dim " << head_dim << " d " << d;
      ASSERT_NEAR(back[d], block * xd[d], 1e-9 * block * l1) << "head_dim " << head_dim << " d " << d;
    }
  }
}

// Each (slot, kv head): the stored values, scale and zero are ref::QuantizeKvI8's of the head as
// KvWriteOp sees it (K rotated by kern::RotateKvHead, V as is); scale = (max - min) / 255 and
// |x - (zero + scale q)| <= scale / 2 (with float rounding) against the exact H k or v; constant
// heads exact; nothing else written.
TEST(KvInt8, WriteLayoutAndRounding) {
  for (int head_dim : {8, 40, 64}) {
    const Pool pool(3, head_dim, 5, 2, 23, 1);
    int zero_heads = 0;
    std::vector<float> x(head_dim);
    std::vector<int8_t> want_q(head_dim);
    for (int l = 0; l < kLayers; ++l) {
      for (int kv = 0; kv < 2; ++kv) {
        for (int s = 0; s < pool.n_seqs; ++s) {
          for (int p = 0; p < pool.len; ++p) {
            for (int h = 0; h < pool.n_kv_heads; ++h) {
              std::copy_n(pool.Orig(l, kv, s, p) + h * head_dim, head_dim, x.begin());
              if (kv == 0) kern::RotateKvHead(head_dim, x.data());
              float want_scale, want_zero;
              ref::QuantizeKvI8(x.data(), head_dim, want_q.data(), &want_scale, &want_zero);
              const float scale = pool.Param(l, kv, s, p, h, 0), zero = pool.Param(l, kv, s, p, h, 1);
              ASSERT_EQ(scale, want_scale);
              ASSERT_EQ(zero, want_zero);
              const int8_t* q = pool.Q(l, kv, s, p, h);
              for (int d = 0; d < head_dim; ++d) ASSERT_EQ(q[d], want_q[d]) << "d " << d;
              const std::vector<double> exact = pool.Exact(l, kv, s, p, h);
              const auto [lo, hi] = std::minmax_element(exact.begin(), exact.end());
              zero_heads += *hi == *lo;
              // The rotation's float rounding moves min and max by a few ulp of the head's l1 norm.
              double l1 = 0;
              for (double e : exact) l1 += std::fabs(e);
              const double slack = 8 * std::ldexp(l1, -24);
              ASSERT_NEAR(scale, (*hi - *lo) / 255, slack / 255 + std::ldexp(scale, -23));
              for (int d = 0; d < head_dim; ++d) {
                const double got = pool.Dequantized(l, kv, s, p, h, d);
                ASSERT_LE(std::fabs(exact[d] - got), scale * (0.5 + 1e-5) + slack + std::ldexp(std::fabs(zero), -24))
                    << "x " << exact[d] << " scale " << scale;
              }
            }
          }
        }
      }
    }
    EXPECT_GT(zero_heads, 0) << "the all-zero case was not exercised";
  }
  kern::KvScale s;
  int8_t q[4];
  const float tie[4] = {0.0f, 255.0f, 2.5f, 3.5f};  // scale 1, zero 128: ties go to even
  kern::QuantizeKvHead(4, tie, q, &s);
  EXPECT_EQ(s.scale, 1.0f);
  EXPECT_EQ(s.zero, 128.0f);
  EXPECT_EQ(q[0], -128);
  EXPECT_EQ(q[1], 127);
  EXPECT_EQ(q[2], -126);  // -125.5
  EXPECT_EQ(q[3], -124);  // -124.5
  const float flat[3] = {-1.25f, -1.25f, -1.25f};  // scale 0: exact
  kern::QuantizeKvHead(3, flat, q, &s);
  EXPECT_EQ(s.scale, 0.0f);
  EXPECT_EQ(s.zero, -1.25f);
  EXPECT_EQ(q[0], 0);
  const float bad[2] = {1.0f, NAN};
  kern::QuantizeKvHead(2, bad, q, &s);
  EXPECT_TRUE(std::isnan(s.scale));
  EXPECT_TRUE(std::isnan(s.zero));
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
  const int rot_block = kern::KvRotationBlock(head_dim);
  std::vector<int8_t> kq, vq;
  std::vector<float> k_scale, k_zero, v_scale, v_zero, keys_f, values_f, ref_out(head_dim), ref_f(head_dim);
  std::vector<double> ref_scores(72), qd(head_dim), q_rot(head_dim);
  for (int m = 0; m < rows; ++m) {
    for (int h = 0; h < n_heads; ++h) {
      const float* got = a.data() + (static_cast<size_t>(m) * n_heads + h) * head_dim;
      if (pos[m] < 0) {
        for (int d = 0; d < head_dim; ++d) ASSERT_EQ(got[d], 0.0f);
        continue;
      }
      const int n = pos[m] + 1, kvh = h / group, s = row_of[m];
      kq.assign(static_cast<size_t>(n) * head_dim, 0);
      vq.assign(kq.size(), 0);
      keys_f.assign(kq.size(), 0);
      values_f.assign(kq.size(), 0);
      k_scale.assign(n, 0);
      k_zero.assign(n, 0);
      v_scale.assign(n, 0);
      v_zero.assign(n, 0);
      const float* qh = q.data() + (static_cast<size_t>(m) * n_heads + h) * head_dim;
      for (int d = 0; d < head_dim; ++d) qd[d] = qh[d];
      ref::HadamardRotate(qd.data(), head_dim, q_rot.data());
      double q_l1 = 0, q_rot_l1 = 0;  // |q|_1 and |H q / block|_1
      for (int d = 0; d < head_dim; ++d) {
        q_rot[d] /= rot_block;
        q_l1 += std::fabs(qd[d]);
        q_rot_l1 += std::fabs(q_rot[d]);
      }
      // vmax: max |v|; k_err, v_err: max quantization error of H k and of v; qk: the scores' float
      // rounding scale, max_p sum |q_rot k_p| / sqrt(head_dim) plus the rotated query's rounding
      // (log2(block) roundings of |q|_1 / block per element) times |k_p|_1.
      double vmax = 0, k_err = 0, v_err = 0, qk = 0;
      for (int p = 0; p < n; ++p) {
        k_scale[p] = pool.Param(kLayer, 0, s, p, kvh, 0);
        k_zero[p] = pool.Param(kLayer, 0, s, p, kvh, 1);
        v_scale[p] = pool.Param(kLayer, 1, s, p, kvh, 0);
        v_zero[p] = pool.Param(kLayer, 1, s, p, kvh, 1);
        const std::vector<double> k_exact = pool.Exact(kLayer, 0, s, p, kvh);
        double sum = 0, k_l1 = 0;
        for (int d = 0; d < head_dim; ++d) {
          const size_t i = static_cast<size_t>(p) * head_dim + d;
          kq[i] = pool.Q(kLayer, 0, s, p, kvh)[d];
          vq[i] = pool.Q(kLayer, 1, s, p, kvh)[d];
          keys_f[i] = pool.Orig(kLayer, 0, s, p)[kvh * head_dim + d];
          values_f[i] = pool.Orig(kLayer, 1, s, p)[kvh * head_dim + d];
          const double k = pool.Dequantized(kLayer, 0, s, p, kvh, d), v = pool.Dequantized(kLayer, 1, s, p, kvh, d);
          vmax = std::max({vmax, std::fabs(v), std::fabs(static_cast<double>(values_f[i]))});
          k_err = std::max(k_err, std::fabs(k - k_exact[d]));
          v_err = std::max(v_err, std::fabs(v - values_f[i]));
          sum += std::fabs(q_rot[d] * k);
          k_l1 += std::fabs(k);
        }
        qk = std::max(qk, (sum + std::log2(rot_block) * q_l1 / rot_block * k_l1) / std::sqrt(head_dim));
      }
      const ref::KvI8Rows k_rows{kq.data(), head_dim, k_scale.data(), k_zero.data()};
      const ref::KvI8Rows v_rows{vq.data(), head_dim, v_scale.data(), v_zero.data()};
      ref::AttendOneHeadKvI8(qh, k_rows, v_rows, n, head_dim, ref_out.data(), ref_scores.data());
      std::vector<float> f_scores(n);
      ref::AttendOneHead(qh, keys_f.data(), values_f.data(), head_dim, n, head_dim, ref_f.data(), f_scores.data());
      // Float rounding of the kernel: scores carry a few ulp (2^-24) of qk, which moves each
      // softmax weight by that relative amount, the output by that times max |v| (allowed: 4).
      const double float_tol = 4 * std::ldexp(1.0, -24) * (1 + qk) * std::max(1.0, vmax);
      // Quantization: every score moves by at most eps = |H q / block|_1 * k_err / sqrt(head_dim),
      // so each weight by a factor within e^(+-2 eps); the output by (e^(2 eps) - 1) max |v| + v_err.
      const double eps = q_rot_l1 * k_err / std::sqrt(static_cast<double>(head_dim));
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
