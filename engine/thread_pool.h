// A fixed pool of worker threads that runs the partitions of one operation at a time.
//
// Programs run many small operations per step (tens of microseconds each), so an idle worker
// spins for a short, bounded time (`spin_us`) on the job word before it sleeps on a condition
// variable: it never burns a core for longer than that once work stops coming.
//
// Partitions are claimed, not assigned: the calling thread and the workers take the next
// unclaimed partition of the current job from one atomic word. A worker that is asleep or
// descheduled by the OS therefore never holds up a step; the caller runs the partitions nobody
// took. Which thread runs a partition never changes its result (kernels write per-partition
// outputs and use per-partition scratch), so this keeps batch invariance.
//
// Contention: when another busy process takes a core, the pool's threads share what is left:
// the caller loses CPU time to its own spinning or working helpers, and a worker that claimed a
// partition may be preempted in the middle of it. The pool watches for that (the caller's CPU
// time against wall time, waits on preempted workers) and then runs jobs on the calling thread
// alone for a while, probing again at growing intervals, so that a -ols=2 program under
// contention costs about what the -ols=1 program costs.
//
// Thread-safety: Run() is called from one thread at a time (the runtime's step loop).
#ifndef TAILOR_ENGINE_THREAD_POOL_H_
#define TAILOR_ENGINE_THREAD_POOL_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"

namespace tailor {

struct ThreadPoolOptions {
  // How long an idle thread spins before it sleeps (the worker waiting for a job, the caller
  // waiting for claimed partitions), in microseconds. bench/contention_bench measures it.
  int spin_us = 50;
  // Fall back to the calling thread alone while the workers are slow (see above).
  bool adaptive = true;
};

// Counters for benchmarks and tests (a snapshot; safe to read between Run() calls).
struct ThreadPoolStats {
  int64_t jobs = 0;           // Run() calls with more than one partition
  int64_t solo_jobs = 0;      // of those, run by the caller alone because workers were slow
  int64_t parts_by_workers = 0;
  int64_t slow_waits = 0;     // jobs where the caller waited on a preempted worker
  int64_t unhelped_jobs = 0;  // jobs whose partitions the caller ran all alone (workers late)
};

// The pool's contention detector, apart from the clocks (tests drive it with made-up times).
// Parallel jobs are judged in windows of a few milliseconds spent inside Run(): a caller thread
// that got less than its share of CPU time there (another process took its core), or jobs whose
// worker partitions ran much longer than the caller's (a worker preempted mid-partition), mark a
// window contended, and the caller then runs alone for a while (20 ms, doubling while contention
// lasts, up to 1 s; back to 20 ms after a calm window). Not thread-safe: the caller's alone.
class ContentionJudge {
 public:
  using Clock = std::chrono::steady_clock;
  // After a parallel job that ended at `now` after `wall` inside Run(): the caller's partitions
  // took `own_part` each (zero if it ran none), the workers' longest `worker_part`; `slept` of the
  // wall time the caller was asleep waiting for the workers (no CPU time then, and no sign of
  // contention). `cpu_time` reads the caller thread's CPU time (called only when a window opens
  // or closes: it is a system call). Returns whether the job was slow.
  bool Note(Clock::time_point now, Clock::duration wall, Clock::duration own_part, Clock::duration worker_part,
            Clock::duration slept, absl::FunctionRef<std::chrono::nanoseconds()> cpu_time);
  // Whether jobs starting at `now` should run on the caller alone.
  bool Solo(Clock::time_point now) const { return now < solo_until_; }

 private:
  struct Window {
    std::chrono::nanoseconds cpu_at_start{0};  // the caller's CPU time when the window opened
    Clock::duration in_run{};                  // wall time inside Run() since then, not asleep
    int slow = 0;
  };
  Window window_;
  bool window_open_ = false;
  Clock::time_point solo_until_{};
  static constexpr Clock::duration kSoloFirst = std::chrono::milliseconds(20);
  Clock::duration solo_for_ = kSoloFirst;
};

class ThreadPool {
 public:
  // `threads` >= 1 counts the calling thread: threads - 1 workers are started.
  explicit ThreadPool(int threads, ThreadPoolOptions options = {});
  // Threads for partitions up to `max_parts`: never more than the hardware runs at once.
  static int ThreadsFor(int max_parts);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  ThreadPoolStats stats() const;

  // Runs fn(part) exactly once for each part in [0, parts) (parts < 65536), on any of the
  // pool's threads, and returns when all finished.
  void Run(int parts, const std::function<void(int)>& fn);

 private:
  using Clock = std::chrono::steady_clock;
  void WorkerLoop();
  // Claims the next partition of job `generation`; -1 when none is left or the job is over.
  int Claim(uint64_t generation);
  // Runs partitions of job `generation` until none is left; returns how many it ran. A worker
  // records its longest partition's time in worker_part_ns_.
  int RunClaimed(uint64_t generation, bool worker);

  const ThreadPoolOptions options_;
  std::vector<std::thread> workers_;
  // The job: (generation << 32) | (parts << 16) | next unclaimed partition. A claim is a CAS
  // that keeps the generation, so a worker that wakes late cannot take a later job's partition.
  std::atomic<uint64_t> job_{0};
  // Published before job_ changes (release), read after a successful claim (acquire); stays
  // valid until done_ reaches the job's partition count.
  const std::function<void(int)>* fn_ = nullptr;
  std::atomic<int> done_{0};        // partitions of the current job finished
  std::atomic<int64_t> worker_part_ns_{0};  // the current job's longest partition run by a worker
  std::atomic<bool> stop_{false};
  std::atomic<int> sleeping_{0};    // workers asleep on work_cv_
  std::atomic<bool> caller_sleeping_{false};
  std::mutex mu_;                   // guards the sleeps (predicates are the atomics above)
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;

  ContentionJudge judge_;  // caller-only (Run() is single-threaded)
  std::atomic<int64_t> jobs_{0}, solo_jobs_{0}, parts_by_workers_{0}, slow_waits_{0}, unhelped_jobs_{0};
};

}  // namespace tailor

#endif  // TAILOR_ENGINE_THREAD_POOL_H_
