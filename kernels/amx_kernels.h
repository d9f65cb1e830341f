// AMX variant of the bf16-weight matmul (TDPBF16PS), used for every row count on CPUs with AMX.
// The hardware's accumulation inside one instruction matches none of cpu_kernels.h's variants
// (nor any order of fp32 additions we tried), so these results differ from theirs in the last
// bits; they are batch-invariant in the same way:
// an output element depends only on its x row and weight row, through one fixed sequence of
// instructions (a zeroed accumulator tile, then one TDPBF16PS per 32-wide chunk of k in order),
// whatever the number of rows, the tile group or the partition that computed it.
//
// A weight tile is 16 weight rows x 32 k (the "A" operand), read from the package's row-major
// weights (row stride k * 2 bytes) or from the runtime's tile-blocked copy (PackWeights); x is
// repacked per call as the "B" operand (pairs of k x up to 16 rows: as many columns as there are
// rows up to 16, else 16), and an accumulator tile holds y^T for 16 weight rows x those rows.
// An element's bits do not depend on the tile's column count (tested): decode configures one
// column, so x is k * 2 bytes and y is stored straight from the tile.
// Tiles: 0-3 accumulators, 4-5 weights, 6-7 x. The caller must hold the AMX permission
// (arch_prctl ARCH_REQ_XCOMP_PERM; see HostCpuIsa).
//
// Self-contained like cpu_kernels.h (which it includes): packages carry a copy of it.
#ifndef TAILOR_KERNELS_AMX_KERNELS_H_
#define TAILOR_KERNELS_AMX_KERNELS_H_

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <cpuid.h>

#include "cpu_kernels.h"

namespace tailor::kern {

// Bit `bit` of CPUID leaf `leaf`, subleaf `subleaf`, register `reg` (0 EAX .. 3 EDX). F16C,
// AVX512-BF16 and AMX are read here rather than with __builtin_cpu_supports, which has no names
// for them in clang 14 (the fuzz build's compiler). The OS's consent is checked apart (AVX state by
// __builtin_cpu_supports("avx2"/"avx512f"), AMX tile data by arch_prctl in amx::Available).
inline bool CpuidBit(unsigned leaf, unsigned subleaf, int reg, int bit) {
  unsigned r[4] = {};
  if (!__get_cpuid_count(leaf, subleaf, &r[0], &r[1], &r[2], &r[3])) return false;
  return (r[reg] >> bit) & 1u;
}
inline bool CpuHasF16c() { return __builtin_cpu_supports("avx") && CpuidBit(1, 0, 2, 29); }
inline bool CpuHasAvx512Bf16() { return __builtin_cpu_supports("avx512f") && CpuidBit(7, 1, 0, 5); }

#define TAILOR_AMX_TARGET \
  __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,f16c,avx512bf16,amx-tile,amx-bf16")))
#define TAILOR_AMX_INLINE \
  __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,f16c,avx512bf16,amx-tile,amx-bf16"), always_inline)) inline

namespace amx {

// Whether this CPU has AMX-BF16 and Linux lets this process use the tiles (it enables tile data
// per process on request: ARCH_REQ_XCOMP_PERM for XTILEDATA; asking again is harmless).
inline bool Available() {
  if (!CpuidBit(7, 0, 3, 24) || !CpuidBit(7, 0, 3, 22)) return false;  // AMX-TILE, AMX-BF16
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

// Whether the int8 tile instructions (q8_kernels.h's w8::amx) are usable too.
inline bool Int8Available() { return CpuidBit(7, 0, 3, 25) && Available(); }  // AMX-INT8

struct alignas(64) TileConfig {  // the LDTILECFG memory operand (palette 1)
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

constexpr int kTileWords = 256;  // one 16 x 64-byte tile in uint32 (bf16 pairs or floats)

// Packs x[rows, k] (row stride ldx floats) as B tiles: tile (mb, s) at xp + (mb * steps + s) *
// kTileWords holds in word [kp * 16 + m] the pair (x[16 mb + m][32 s + 2 kp], ... + 1) rounded
// to bf16 (nearest even, as VCVTNE2PS2BF16); rows >= `rows` and k >= `k` are zero.
TAILOR_AMX_INLINE void PackX(int rows, int k, const float* x, int64_t ldx, int m_blocks, int steps,
                             uint32_t* xp) {
  std::memset(xp, 0, sizeof(uint32_t) * kTileWords * m_blocks * steps);
  alignas(64) uint32_t pairs[16];
  for (int m = 0; m < rows; ++m) {
    uint32_t* tiles = xp + static_cast<int64_t>(m / 16) * steps * kTileWords + m % 16;
    for (int s = 0; s < steps; ++s) {
      const int count = k - 32 * s;
      const float* xr = x + m * ldx + 32 * s;
      const __m512bh v = avx512bf16::ToBf16Pairs(xr, count);
      _mm512_store_si512(pairs, (__m512i)v);
      uint32_t* tile = tiles + static_cast<int64_t>(s) * kTileWords;
      for (int kp = 0; kp < 16; ++kp) tile[kp * 16] = pairs[kp];
    }
  }
}

// y[m0 + m, n0 + i] = c[i][m] for i < n_count, m < m_count (c: an accumulator tile, stored):
// a 16 x 16 transpose in registers (pairs, quads, then 128-bit lanes), one masked row store per m.
TAILOR_AMX_INLINE void StoreTile(const float (*c)[16], float* y, int64_t ldy, int n0, int n_count, int m0,
                                 int m_count) {
  if (m_count == 1) {  // one column (the last block of 17, 33, ... rows)
    for (int i = 0; i < n_count; ++i) y[m0 * ldy + n0 + i] = c[i][0];
    return;
  }
  __m512 a[16], b[16], t[16];
  for (int i = 0; i < 8; ++i) {
    const __m512 r0 = _mm512_load_ps(c[2 * i]), r1 = _mm512_load_ps(c[2 * i + 1]);
    a[2 * i] = _mm512_unpacklo_ps(r0, r1);
    a[2 * i + 1] = _mm512_unpackhi_ps(r0, r1);
  }
  for (int j = 0; j < 4; ++j) {  // b[4 j + q], 128-bit lane l: c[4 j .. 4 j + 3][4 l + q]
    b[4 * j] = _mm512_shuffle_ps(a[4 * j], a[4 * j + 2], 0x44);
    b[4 * j + 1] = _mm512_shuffle_ps(a[4 * j], a[4 * j + 2], 0xee);
    b[4 * j + 2] = _mm512_shuffle_ps(a[4 * j + 1], a[4 * j + 3], 0x44);
    b[4 * j + 3] = _mm512_shuffle_ps(a[4 * j + 1], a[4 * j + 3], 0xee);
  }
  for (int q = 0; q < 4; ++q) {  // t[m] = column m: lanes l of b[q], b[4 + q], b[8 + q], b[12 + q]
    const __m512 e0 = _mm512_shuffle_f32x4(b[q], b[4 + q], 0x88), e1 = _mm512_shuffle_f32x4(b[q], b[4 + q], 0xdd);
    const __m512 e2 = _mm512_shuffle_f32x4(b[8 + q], b[12 + q], 0x88),
                 e3 = _mm512_shuffle_f32x4(b[8 + q], b[12 + q], 0xdd);
    t[q] = _mm512_shuffle_f32x4(e0, e2, 0x88);
    t[8 + q] = _mm512_shuffle_f32x4(e0, e2, 0xdd);
    t[4 + q] = _mm512_shuffle_f32x4(e1, e3, 0x88);
    t[12 + q] = _mm512_shuffle_f32x4(e1, e3, 0xdd);
  }
  const __mmask16 mask = avx512::HalfMask(n_count);
  for (int m = 0; m < m_count; ++m) _mm512_mask_storeu_ps(y + (m0 + m) * ldy + n0, mask, t[m]);
}

// Tile-blocked weights: a copy of w[n, k] (Packable) in which the weight tile of rows
// [16 j, 16 j + 16) and k [32 s, 32 s + 32) is 1 KiB at element (j * k / 32 + s) * 512, its rows
// 64 bytes apart. Tile loads then read contiguous memory (one prefetchable stream per block
// instead of 16 rows); MatMul computes the same tiles, so the same bits, from either layout.
inline bool Packable(int64_t n, int64_t k) { return n % 16 == 0 && k % 32 == 0; }

inline void PackWeights(const uint16_t* w, int64_t n, int64_t k, uint16_t* out) {
  const int64_t steps = k / 32;
  for (int64_t j = 0; j < n / 16; ++j) {
    for (int64_t r = 0; r < 16; ++r) {
      for (int64_t s = 0; s < steps; ++s) {
        std::memcpy(out + (j * steps + s) * 512 + r * 32, w + (16 * j + r) * k + 32 * s, 64);
      }
    }
  }
}

// Where MatMul finds the weight tile of block row n0 (a multiple of 16 when packed) and k step
// s: base + n0 * k + s * step, rows stride bytes apart (the row-major or the blocked layout).
struct WeightTiles {
  const uint16_t* base;
  int64_t k, step, stride;
  const uint16_t* At(int n0, int s) const { return base + n0 * k + s * step; }
};

// One block of 16 weight rows (tile of k step s at block + s * step, rows stride bytes apart)
// against every x block into y columns [n0, n0 + n_count): accumulator tile 0.
TAILOR_AMX_INLINE void OneBlock(const uint16_t* block, int64_t step, int64_t stride, const uint32_t* xp,
                                int m_blocks, int steps, int rows, float* y, int64_t ldy, int n0, int n_count) {
  alignas(64) float c[16][16];
  for (int mb = 0; mb < m_blocks; ++mb) {
    _tile_zero(0);
    for (int s = 0; s < steps; ++s) {
      _tile_loadd(4, block + s * step, stride);
      _tile_loadd(6, xp + (static_cast<int64_t>(mb) * steps + s) * kTileWords, 64);
      _tile_dpbf16ps(0, 4, 6);
    }
    _tile_stored(0, c, 64);
    StoreTile(c, y, ldy, n0, n_count, 16 * mb, rows - 16 * mb < 16 ? rows - 16 * mb : 16);
  }
}

// Runs block(tiles, stride_bytes, n, count) for the weight rows [n, n_end) 16 at a time through
// zero-padded copies (tile s of the copy at tiles + 32 s), so no tile load reads past a weight
// row or past the matrix: the rows left over, or every block when k is not a multiple of 32.
template <class Block>
TAILOR_AMX_INLINE void PaddedBlocks(const uint16_t* w, int k, int steps, int n, int n_end, Block block) {
  const int64_t ldp = static_cast<int64_t>(steps) * 32;  // elements
  std::unique_ptr<uint16_t[]> pad(new uint16_t[16 * ldp]);
  for (; n < n_end; n += 16) {
    const int count = n_end - n < 16 ? n_end - n : 16;
    std::memset(pad.get(), 0, sizeof(uint16_t) * 16 * ldp);
    for (int i = 0; i < count; ++i) {
      std::memcpy(pad.get() + i * ldp, w + static_cast<int64_t>(n + i) * k, sizeof(uint16_t) * k);
    }
    block(pad.get(), ldp * 2, n, count);
  }
}

// Up to 16 rows (decode, small batches): x as a B tile of `rows` columns, word [kp * rows + m]
// of tile s (at xp + s * 16 * rows) the pair (x[m][32 s + 2 kp], ... + 1) in bf16; k >= `k` zero.
TAILOR_AMX_INLINE void PackFewX(int rows, int k, const float* x, int64_t ldx, int steps, uint32_t* xp) {
  alignas(64) uint32_t pairs[16];
  for (int m = 0; m < rows; ++m) {
    for (int s = 0; s < steps; ++s) {
      const int count = k - 32 * s;
      const float* xr = x + m * ldx + 32 * s;
      const __m512bh v = avx512bf16::ToBf16Pairs(xr, count);
      uint32_t* tile = xp + static_cast<int64_t>(s) * 16 * rows + m;
      if (rows == 1) {
        _mm512_storeu_si512(tile, (__m512i)v);
        continue;
      }
      _mm512_store_si512(pairs, (__m512i)v);
      for (int kp = 0; kp < 16; ++kp) tile[kp * rows] = pairs[kp];
    }
  }
}

// y[m, n0 + i] for m < rows, i < count from an accumulator tile stored as c[i * rows + m].
TAILOR_AMX_INLINE void StoreFew(const float* c, int rows, float* y, int64_t ldy, int n0, int count) {
  const __mmask16 mask = avx512::HalfMask(count);
  const __m512i index = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(rows));
  for (int m = 0; m < rows; ++m) {
    const __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, index, c + m, 4);
    _mm512_mask_storeu_ps(y + m * ldy + n0, mask, v);
  }
}

// One block of 16 weight rows against the few x rows into y columns [n0, n0 + count).
TAILOR_AMX_INLINE void OneBlockFew(const uint16_t* block, int64_t step, int64_t stride, const uint32_t* xp,
                                   int steps, int rows, float* y, int64_t ldy, int n0, int count) {
  alignas(64) float c[256];
  _tile_zero(0);
  for (int s = 0; s < steps; ++s) {
    _tile_loadd(4, block + s * step, stride);
    _tile_loadd(6, xp + static_cast<int64_t>(s) * 16 * rows, 4 * rows);
    _tile_dpbf16ps(0, 4, 6);
  }
  _tile_stored(0, c, 4 * rows);
  StoreFew(c, rows, y, ldy, n0, count);
}

// MatMul for rows <= 16: tiles 0-3 accumulate 16 weight rows x `rows` columns, tile 6 holds x
// (`rows` columns). Each y element is the same sequence of TDPBF16PS steps over the same
// operands as in a 16-column tile, so the same bits as MatMul's wider groups.
TAILOR_AMX_INLINE void MatMulFew(int rows, int k, const float* x, int64_t ldx, const uint16_t* w, WeightTiles wt,
                                 bool packed, float* y, int64_t ldy, int n_begin, int n_end) {
  const int steps = (k + 31) / 32;
  const int64_t xstep = 16 * rows;  // words per x tile
  std::unique_ptr<uint32_t[]> xp(new uint32_t[static_cast<size_t>(steps) * xstep]);
  PackFewX(rows, k, x, ldx, steps, xp.get());
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = t == 4 || t == 5 ? 64 : 4 * rows;
  }
  asm volatile("" : : "r"(&cfg) : "memory");  // see MatMul
  _tile_loadconfig(&cfg);
  alignas(64) float c[256];
  int n = n_begin;
  if (k % 32 == 0) {
    // Four weight blocks share each x tile. Blocked weights are four streams, fetched four
    // tiles ahead (the tile loads alone keep too few lines in flight).
    for (; n + 64 <= n_end; n += 64) {
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int s = 0; s < steps; ++s) {
        if (packed) {
          for (int b = 0; b < 4; ++b) {
            const char* ahead = reinterpret_cast<const char*>(wt.At(n + 16 * b, s + 4));
            for (int line = 0; line < 16; ++line) _mm_prefetch(ahead + 64 * line, _MM_HINT_T0);
          }
        }
        _tile_loadd(6, xp.get() + s * xstep, 4 * rows);
        _tile_loadd(4, wt.At(n, s), wt.stride);
        _tile_dpbf16ps(0, 4, 6);
        _tile_loadd(5, wt.At(n + 16, s), wt.stride);
        _tile_dpbf16ps(1, 5, 6);
        _tile_loadd(4, wt.At(n + 32, s), wt.stride);
        _tile_dpbf16ps(2, 4, 6);
        _tile_loadd(5, wt.At(n + 48, s), wt.stride);
        _tile_dpbf16ps(3, 5, 6);
      }
      if (rows == 1) {  // y is contiguous: store the accumulators in place
        _tile_stored(0, y + n, 4);
        _tile_stored(1, y + n + 16, 4);
        _tile_stored(2, y + n + 32, 4);
        _tile_stored(3, y + n + 48, 4);
        continue;
      }
      _tile_stored(0, c, 4 * rows);
      StoreFew(c, rows, y, ldy, n, 16);
      _tile_stored(1, c, 4 * rows);
      StoreFew(c, rows, y, ldy, n + 16, 16);
      _tile_stored(2, c, 4 * rows);
      StoreFew(c, rows, y, ldy, n + 32, 16);
      _tile_stored(3, c, 4 * rows);
      StoreFew(c, rows, y, ldy, n + 48, 16);
    }
    for (; n + 16 <= n_end; n += 16) {
      OneBlockFew(wt.At(n, 0), wt.step, wt.stride, xp.get(), steps, rows, y, ldy, n, 16);
    }
  }
  PaddedBlocks(w, k, steps, n, n_end, [&](const uint16_t* tiles, int64_t stride, int n0, int count) TAILOR_AMX_TARGET {
    OneBlockFew(tiles, 32, stride, xp.get(), steps, rows, y, ldy, n0, count);
  });
  _tile_release();
}

// y[m, n] = dot(bf16(x[m, :k]), w[n, :k]) for m in [0, rows), n in [n_begin, n_end);
// w: [ldy, k] bf16 row-major; w_packed: null or its PackWeights copy (used when Packable and
// n_begin is a multiple of 16; the bits are the same either way).
template <class R, class K>
TAILOR_AMX_TARGET void MatMul(R rows_e, K k_e, const float* x, int64_t ldx, const void* w_v, float* y,
                              int64_t ldy, int n_begin, int n_end, const void* w_packed = nullptr) {
  const int rows = static_cast<int>(rows_e), k = static_cast<int>(k_e);
  if (rows <= 0 || n_end <= n_begin) return;
  const int steps = (k + 31) / 32, m_blocks = (rows + 15) / 16;
  const int m_pairs = (m_blocks + 1) / 2;
  const int64_t ldw = static_cast<int64_t>(k) * 2;  // bytes
  const uint16_t* w = static_cast<const uint16_t*>(w_v);
  const bool packed = w_packed != nullptr && Packable(ldy, k) && n_begin % 16 == 0;
  const WeightTiles wt = packed ? WeightTiles{static_cast<const uint16_t*>(w_packed), k, 512, 64}
                                : WeightTiles{w, k, 32, ldw};
  if (rows <= 16) return MatMulFew(rows, k, x, ldx, w, wt, packed, y, ldy, n_begin, n_end);
  // Owned scratch: x tiles (an even number of x blocks) and 16 zero-padded weight rows.
  std::unique_ptr<uint32_t[]> xp(new uint32_t[static_cast<size_t>(2 * m_pairs) * steps * kTileWords]);
  PackX(rows, k, x, ldx, 2 * m_pairs, steps, xp.get());
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  // GCC 12 does not treat LDTILECFG as reading the whole struct and may drop the stores above:
  // make them visible first.
  asm volatile("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
  alignas(64) float c[16][16];  // an accumulator tile on its way to y
  int n = n_begin;
  const bool k_whole = k % 32 == 0;  // otherwise every block goes through the padded copy
  if (k_whole) {
    // More than 16 rows (prefill): 32 weight rows x 32 x rows per group; the weight rows stay in
    // cache across x.
    for (; n + 32 <= n_end; n += 32) {
      for (int mp = 0; mp < m_pairs; ++mp) {
        const uint32_t* x0 = xp.get() + static_cast<int64_t>(2 * mp) * steps * kTileWords;
        const uint32_t* x1 = x0 + static_cast<int64_t>(steps) * kTileWords;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int s = 0; s < steps; ++s) {
          _tile_loadd(4, wt.At(n, s), wt.stride);
          _tile_loadd(6, x0 + static_cast<int64_t>(s) * kTileWords, 64);
          _tile_dpbf16ps(0, 4, 6);
          _tile_loadd(7, x1 + static_cast<int64_t>(s) * kTileWords, 64);
          _tile_dpbf16ps(1, 4, 7);
          _tile_loadd(5, wt.At(n + 16, s), wt.stride);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
        }
        const int m0 = 32 * mp, left = rows - m0;
        _tile_stored(0, c, 64);
        StoreTile(c, y, ldy, n, 16, m0, left < 16 ? left : 16);
        _tile_stored(2, c, 64);
        StoreTile(c, y, ldy, n + 16, 16, m0, left < 16 ? left : 16);
        if (left > 16) {
          _tile_stored(1, c, 64);
          StoreTile(c, y, ldy, n, 16, m0 + 16, left - 16 < 16 ? left - 16 : 16);
          _tile_stored(3, c, 64);
          StoreTile(c, y, ldy, n + 16, 16, m0 + 16, left - 16 < 16 ? left - 16 : 16);
        }
      }
    }
    for (; n + 16 <= n_end; n += 16) {
      OneBlock(wt.At(n, 0), wt.step, wt.stride, xp.get(), m_blocks, steps, rows, y, ldy, n, 16);
    }
  }
  PaddedBlocks(w, k, steps, n, n_end, [&](const uint16_t* tiles, int64_t stride, int n0, int count) TAILOR_AMX_TARGET {
    OneBlock(tiles, 32, stride, xp.get(), m_blocks, steps, rows, y, ldy, n0, count);
  });
  _tile_release();
}

}  // namespace amx

}  // namespace tailor::kern

#pragma GCC diagnostic pop

#endif  // TAILOR_KERNELS_AMX_KERNELS_H_
