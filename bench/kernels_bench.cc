// Google benchmark of the program kernels, one thread, against this machine's ceilings measured
// in the same run (read bandwidth of one thread over a buffer far larger than the last-level
// cache, and one core's fp32 FMA peak; printed first and attached to every row as counters).
//   build/kernels_bench [--benchmark_filter=MatMul] [--benchmark_format=json]
// MatMul/<type>/<rows>/<k>: y[rows, 2048] = x[rows, k] . w[2048, k]^T over weights that are
// cycled through a 600 MB pool, so decode rows (rows = 1) stream from memory as they do in a
// model; counters: GB/s of weights, fraction of the bandwidth, GFLOP/s, fraction of the FMA peak.
// Attention/<positions>: one token, 32 heads of 64, over paged f32 KV (cost grows with positions).
// AttentionDecodeBatch/<kv type>/<sequences>/<positions>: a 110M decode batch's attention, all 12
// layers, over a shuffled paged pool far larger than the cache (KV_GB/s against bw_GB/s).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <type_traits>
#include <vector>

#include "bench/machine_ceilings.h"
#include "engine/ops.h"
#include "kernels/cpu_ops.h"
#include "kernels/sampling.h"

namespace tailor::bench {
namespace {

constexpr int kN = 2048;
constexpr size_t kPoolBytes = size_t{600} << 20;

const Ceilings& OneCore() {
  static const Ceilings c = MeasureCeilings(/*threads=*/1);
  return c;
}

// kPacked: the AMX runtime's tile-blocked copy of the weights (amx::PackWeights).
template <class Isa, int kType, bool kPacked = false>
void MatMul(benchmark::State& state) {
  if (std::is_same_v<Isa, kern::Avx512Bf16Isa> && HostCpuIsa() < CpuIsa::kAvx512Bf16) {
    state.SkipWithError("this CPU lacks AVX512-BF16");
    return;
  }
  if (std::is_same_v<Isa, kern::AmxIsa> && HostCpuIsa() != CpuIsa::kAmx) {
    state.SkipWithError("this CPU lacks AMX-BF16");
    return;
  }
  const int rows = static_cast<int>(state.range(0)), k = static_cast<int>(state.range(1));
  const size_t elem = kType == kern::kWF32 ? 4 : 2;
  const size_t matrix_bytes = size_t{kN} * k * elem;
  const size_t matrices = std::max<size_t>(1, kPoolBytes / matrix_bytes);
  std::vector<std::byte> pool(matrices * matrix_bytes);
  std::mt19937 rng(1);
  for (size_t i = 0; i < pool.size(); i += 2) {  // small normal-ish values in every type
    const uint16_t h = static_cast<uint16_t>(0x3000 + rng() % 0x0c00);
    std::memcpy(&pool[i], &h, 2);
  }
  std::vector<std::byte> packed(kPacked ? pool.size() : 0);
  for (size_t i = 0; kPacked && i < matrices; ++i) {
    kern::amx::PackWeights(reinterpret_cast<const uint16_t*>(pool.data() + i * matrix_bytes), kN, k,
                           reinterpret_cast<uint16_t*>(packed.data() + i * matrix_bytes));
  }
  std::vector<float> x(static_cast<size_t>(rows) * k, 0.25f), y(static_cast<size_t>(rows) * kN);
  size_t m = 0;
  for (auto _ : state) {
    kern::MatMulOp<Isa, kType>(rows, k, x.data(), pool.data() + m * matrix_bytes, y.data(), kN, 0, kN,
                               kPacked ? packed.data() + m * matrix_bytes : nullptr);
    benchmark::DoNotOptimize(y.data());
    m = (m + 1) % matrices;
  }
  const double iters = static_cast<double>(state.iterations());
  const Ceilings& c = OneCore();
  state.counters["GB/s"] = benchmark::Counter(iters * matrix_bytes / 1e9, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(iters * 2.0 * rows * k * kN / 1e9, benchmark::Counter::kIsRate);
  state.counters["bw_GB/s"] = c.read_gb_per_s;
  state.counters["peak_GFLOP/s"] = c.fma_gflop_per_s;
}

// `rows` query rows of one sequence ending at position `positions` - 1 (rows 1: decode; 64: a
// prefill chunk), 32 heads of 64 over f32 KV.
void Attention(benchmark::State& state) {
  const int positions = static_cast<int>(state.range(0)), rows = static_cast<int>(state.range(1));
  constexpr int kHeads = 32, kHeadDim = 64, kBlock = 16, kLayers = 1;
  const int blocks = (positions + kBlock - 1) / kBlock;
  std::vector<float> pool(static_cast<size_t>(blocks) * kLayers * 2 * kBlock * kHeads * kHeadDim, 0.01f);
  std::vector<float> q(static_cast<size_t>(rows) * kHeads * kHeadDim, 0.1f), out(q.size()), scores(kern::AttentionScratch(positions));
  std::vector<int32_t> table(blocks), pos(rows), row_of(rows, 0);
  for (int b = 0; b < blocks; ++b) table[b] = b;
  double pairs = 0;  // (row, position) pairs attended, per head
  for (int m = 0; m < rows; ++m) {
    pos[m] = positions - rows + m;
    pairs += pos[m] + 1;
  }
  for (auto _ : state) {
    kern::AttentionOp<kern::Avx512Isa, kern::kWF32>(rows, kHeads, kHeads, kHeadDim, kBlock, blocks, kLayers, 0,
                                                    q.data(), pos.data(), row_of.data(), table.data(), pool.data(),
                                                    out.data(), scores.data(), 0, kHeads);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["KV_GB/s"] = benchmark::Counter(
      state.iterations() * 2.0 * positions * kHeads * kHeadDim * 4 / 1e9, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(state.iterations() * 4.0 * pairs * kHeads * kHeadDim / 1e9,
                                                 benchmark::Counter::kIsRate);
  state.counters["peak_GFLOP/s"] = OneCore().fma_gflop_per_s;
}

// A decode batch as a 110M model reads it: range(0) sequences, one token each at position
// range(1) - 1, 12 heads of 64 (no GQA), every layer of 12 in turn, over a paged pool of 16-slot
// blocks handed out in a shuffled order (as the KV-cache manager's free list does after a while);
// KV type kKv. The pool holds the batch's blocks only, far larger than the last-level cache at
// real sizes (b8 at 256 positions: 151 MB of f32, 42 MB of int8). KV_GB/s counts the K and V
// bytes attention must read (int8: values and scales).
template <int kKv>
void AttentionDecodeBatch(benchmark::State& state) {
  const int seqs = static_cast<int>(state.range(0)), positions = static_cast<int>(state.range(1));
  constexpr int kHeads = 12, kHeadDim = 64, kBlock = 16, kLayers = 12;
  const int per_seq = (positions + kBlock - 1) / kBlock, blocks = seqs * per_seq;
  std::vector<std::byte> pool(static_cast<size_t>(kern::KvBlockBytes(kKv, kLayers, kBlock, kHeads, kHeadDim)) * blocks);
  std::mt19937 rng(7);
  for (size_t i = 0; i < pool.size(); i += 4) {  // finite values in every KV type (int8 scales included)
    const uint32_t v = 0x3c003c00u + (rng() & 0x00ff00ffu);
    std::memcpy(&pool[i], &v, 4);
  }
  std::vector<int32_t> table(blocks);
  for (int b = 0; b < blocks; ++b) table[b] = b;
  std::shuffle(table.begin(), table.end(), rng);
  std::vector<float> q(static_cast<size_t>(seqs) * kHeads * kHeadDim, 0.1f), out(q.size());
  std::vector<float> scores(kern::AttentionScratch(positions));
  std::vector<int32_t> pos(seqs, positions - 1), row_of(seqs);
  for (int m = 0; m < seqs; ++m) row_of[m] = m;
  for (auto _ : state) {
    for (int layer = 0; layer < kLayers; ++layer) {
      kern::AttentionOp<kern::Avx512Isa, kKv>(seqs, kHeads, kHeads, kHeadDim, kBlock, per_seq, kLayers, layer, q.data(),
                                              pos.data(), row_of.data(), table.data(), pool.data(), out.data(),
                                              scores.data(), 0, kHeads);
    }
    benchmark::DoNotOptimize(out.data());
  }
  const double row_bytes = kKv == kern::kKvI8 ? kHeadDim + kern::kKvScaleBytes : kHeadDim * (kKv == kern::kWF32 ? 4.0 : 2.0);
  state.counters["KV_GB/s"] = benchmark::Counter(
      state.iterations() * 2.0 * seqs * positions * kHeads * kLayers * row_bytes / 1e9, benchmark::Counter::kIsRate);
  state.counters["bw_GB/s"] = OneCore().read_gb_per_s;
}

void MatMulArgs(benchmark::internal::Benchmark* b) {
  for (int rows : {1, 8, 64}) {
    for (int k : {768, 2048}) b->Args({rows, k});
  }
}

BENCHMARK(MatMul<kern::Avx512Isa, kern::kWF32>)->Name("MatMul/f32")->Apply(MatMulArgs)->UseRealTime();
BENCHMARK(MatMul<kern::Avx512Isa, kern::kWF16>)->Name("MatMul/f16")->Apply(MatMulArgs)->UseRealTime();
BENCHMARK(MatMul<kern::Avx512Isa, kern::kWBF16>)->Name("MatMul/bf16_emulated")->Apply(MatMulArgs)->UseRealTime();
BENCHMARK(MatMul<kern::Avx512Bf16Isa, kern::kWBF16>)->Name("MatMul/bf16")->Apply(MatMulArgs)->UseRealTime();
BENCHMARK(MatMul<kern::AmxIsa, kern::kWBF16>)->Name("MatMul/bf16_amx")->Apply(MatMulArgs)->UseRealTime();
BENCHMARK(MatMul<kern::AmxIsa, kern::kWBF16, true>)->Name("MatMul/bf16_amx_packed")->Apply(MatMulArgs)->UseRealTime();
// One sampled token from a vocabulary of range(0) logits (model-like: a few likely tokens, a
// long tail), at temperature 1 with range(1) = 0: no truncation, 1: top_p 0.9, 2: top_k 40.
void SampleTokenBench(benchmark::State& state) {
  const auto vocab = static_cast<size_t>(state.range(0));
  std::vector<float> logits(vocab);
  std::mt19937 gen(3);
  std::normal_distribution<float> noise(0.0f, 2.0f);
  for (float& x : logits) x = noise(gen);
  for (size_t i = 0; i < 8; ++i) logits[i * 97 % vocab] += 12.0f;
  SamplingParams p;
  if (state.range(1) == 1) p.top_p = 0.9f;
  if (state.range(1) == 2) p.top_k = 40;
  Rng rng(5);
  std::vector<std::pair<float, int32_t>> scratch;
  for (auto _ : state) benchmark::DoNotOptimize(SampleToken(logits, p, rng, scratch));
}

BENCHMARK(SampleTokenBench)->Name("SampleToken")->ArgsProduct({{512, 32000, 128256}, {0, 1, 2}});
BENCHMARK(Attention)->Args({64, 1})->Args({256, 1})->Args({1024, 1})->Args({320, 64})->UseRealTime();
BENCHMARK(AttentionDecodeBatch<kern::kWF32>)->Name("AttentionDecodeBatch/f32")->Args({1, 256})->Args({8, 256})->UseRealTime();
BENCHMARK(AttentionDecodeBatch<kern::kWF16>)->Name("AttentionDecodeBatch/f16")->Args({1, 256})->Args({8, 256})->UseRealTime();
BENCHMARK(AttentionDecodeBatch<kern::kKvI8>)->Name("AttentionDecodeBatch/int8")->Args({1, 256})->Args({8, 256})->UseRealTime();

}  // namespace
}  // namespace tailor::bench

int main(int argc, char** argv) {
  if (tailor::HostCpuIsa() == tailor::CpuIsa::kPortable) {
    std::fprintf(stderr, "kernels_bench: this CPU lacks AVX-512; the benchmarks here time the AVX-512 kernels\n");
    return 2;
  }
  const bool bf16 = tailor::HostCpuIsa() >= tailor::CpuIsa::kAvx512Bf16;
  const tailor::bench::Ceilings& c = tailor::bench::OneCore();
  std::printf("one core: read bandwidth %.1f GB/s, fp32 FMA peak %.1f GFLOP/s%s\n", c.read_gb_per_s,
              c.fma_gflop_per_s, bf16 ? "" : " (no AVX512-BF16: MatMul/bf16 is skipped)");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
