#include "bench/machine_ceilings.h"

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace tailor::bench {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

__attribute__((target("avx512f"))) float SumAvx512(const float* p, size_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 64 <= n; i += 64) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

float SumPortable(const float* p, size_t n) {
  float a[8] = {};
  for (size_t i = 0; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) a[l] += p[i + l];
  return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

__attribute__((target("avx512f"))) float FmaLoopAvx512(long iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], m, a);
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) float FmaLoopAvx2(long iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(0.001f * i);
  const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], m, a);
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

}  // namespace

CeilingMeter::CeilingMeter(int threads, int buffer_mib)
    : threads_(threads), floats_(static_cast<size_t>(buffer_mib) << 18) {
  buf_ = static_cast<float*>(std::aligned_alloc(64, floats_ * sizeof(float)));
  // Touch the buffer from the threads that read it (first-touch placement).
  std::vector<std::thread> ts;
  for (int t = 0; t < threads_; ++t) {
    ts.emplace_back([this, t] {
      size_t b = floats_ / threads_ * t, e = t + 1 == threads_ ? floats_ : floats_ / threads_ * (t + 1);
      for (size_t i = b; i < e; ++i) buf_[i] = 1.0f;
    });
  }
  for (auto& t : ts) t.join();
}

CeilingMeter::~CeilingMeter() { std::free(buf_); }

Ceilings CeilingMeter::Measure() {
  Ceilings c;
  c.threads = threads_;
  const bool avx512 = __builtin_cpu_supports("avx512f");
  volatile float sink = 0;
  const size_t chunk = floats_ / threads_ / 64 * 64;
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<std::thread> ts;
    const double t0 = Now();
    for (int t = 0; t < threads_; ++t) {
      ts.emplace_back([&, t] {
        const float* p = buf_ + chunk * t;
        sink = sink + (avx512 ? SumAvx512(p, chunk) : SumPortable(p, chunk));
      });
    }
    for (auto& t : ts) t.join();
    best = std::min(best, Now() - t0);
  }
  c.read_gb_per_s = static_cast<double>(chunk * threads_) * 4 / best / 1e9;

  const long iters = 20'000'000;
  best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<std::thread> ts;
    const double t0 = Now();
    for (int t = 0; t < threads_; ++t) {
      ts.emplace_back([&] { sink = sink + (avx512 ? FmaLoopAvx512(iters) : FmaLoopAvx2(iters)); });
    }
    for (auto& t : ts) t.join();
    best = std::min(best, Now() - t0);
  }
  c.fma_gflop_per_s = static_cast<double>(iters) * 12 * (avx512 ? 16 : 8) * 2 * threads_ / best / 1e9;
  return c;
}

Ceilings MeasureCeilings(int threads, int buffer_mib) { return CeilingMeter(threads, buffer_mib).Measure(); }

}  // namespace tailor::bench
