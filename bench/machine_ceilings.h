// The machine's own ceilings, measured in the benchmark's run: memory read bandwidth over a
// buffer far larger than the last-level cache (all threads), and peak fp32 FMA throughput.
#ifndef TAILOR_BENCH_MACHINE_CEILINGS_H_
#define TAILOR_BENCH_MACHINE_CEILINGS_H_

#include <cstddef>

namespace tailor::bench {

struct Ceilings {
  int threads = 1;
  double read_gb_per_s = 0;    // 1e9 bytes per second
  double fma_gflop_per_s = 0;  // fp32, 2 flops per fused multiply-add
};

// Measures the ceilings again and again over one buffer (allocated and first-touched once):
// a benchmark pairs each measurement with the kernels timed right after it. Not thread-safe.
class CeilingMeter {
 public:
  // `buffer_mib` should be many times the last-level cache (default 1 GiB).
  explicit CeilingMeter(int threads, int buffer_mib = 1024);
  ~CeilingMeter();
  CeilingMeter(const CeilingMeter&) = delete;
  CeilingMeter& operator=(const CeilingMeter&) = delete;

  // About a second: the best of 5 reads of the buffer and of 3 FMA loops.
  Ceilings Measure();

 private:
  int threads_;
  size_t floats_;
  float* buf_;  // owned, floats_ floats
};

Ceilings MeasureCeilings(int threads, int buffer_mib = 1024);  // one CeilingMeter's Measure()

}  // namespace tailor::bench

#endif  // TAILOR_BENCH_MACHINE_CEILINGS_H_
