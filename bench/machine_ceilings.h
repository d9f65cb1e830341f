// The machine's own ceilings, measured in the benchmark's run: memory read bandwidth over a
// buffer far larger than the last-level cache (all threads), and peak fp32 FMA throughput.
#ifndef TAILOR_BENCH_MACHINE_CEILINGS_H_
#define TAILOR_BENCH_MACHINE_CEILINGS_H_

namespace tailor::bench {

struct Ceilings {
  int threads = 1;
  double read_gb_per_s = 0;    // 1e9 bytes per second
  double fma_gflop_per_s = 0;  // fp32, 2 flops per fused multiply-add
};

// `buffer_mib` should be many times the last-level cache (default 1 GiB).
Ceilings MeasureCeilings(int threads, int buffer_mib = 1024);

}  // namespace tailor::bench

#endif  // TAILOR_BENCH_MACHINE_CEILINGS_H_
