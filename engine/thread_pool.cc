#include "engine/thread_pool.h"

#include <immintrin.h>
#include <time.h>

#include <algorithm>

namespace tailor {
namespace {

constexpr uint64_t kPartsMask = 0xffff;
// A job is "slow" when a worker's partition took longer than the caller's partitions (each, on
// average) by more than this share plus kSlowFloor: a worker preempted by the OS mid-partition
// costs a scheduler slice (milliseconds); an idle pool's imbalance is a few percent. A worker
// that only started late (woken from its sleep: 50-200 us on a VM) is no sign: judged by the
// caller's wait instead, such late claims sent an idle pool solo for 7-36% of its jobs.
constexpr double kSlowShare = 0.25;
constexpr auto kSlowFloor = std::chrono::microseconds(100);
// Windows of parallel jobs: contended when the caller thread's CPU time over the window was less
// than kMinCpuShare of the wall time it spent inside Run() (the OS gave its core to someone else:
// with another busy process, the pool's threads and it share what is left) or kSlowJobs jobs were
// slow. The time between jobs is left out (a server idle between requests, a benchmark pausing
// between steps: the caller sleeps there, which is no sign of contention; measured against the
// window's wall time instead, such gaps sent an idle pool solo for 11-82% of its jobs in
// package_bench). Preemptions alone are no sign either: a low-priority background job preempts
// the pool briefly and often, and costs far less than running on one thread. An idle machine
// shows none of these (bench/contention_bench).
constexpr auto kWindow = std::chrono::milliseconds(5);  // of time inside Run()
constexpr double kMinCpuShare = 0.8;
constexpr int kSlowJobs = 2;
constexpr auto kSoloMax = std::chrono::milliseconds(1000);

// CPU time of the calling thread so far.
std::chrono::nanoseconds ThreadCpuTime() {
  timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return std::chrono::nanoseconds(0);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

uint64_t Generation(uint64_t job) { return job >> 32; }
int Parts(uint64_t job) { return static_cast<int>((job >> 16) & kPartsMask); }
int Next(uint64_t job) { return static_cast<int>(job & kPartsMask); }

// Spins (pause) while pred() holds, for at most `budget`; returns pred()'s last value.
template <typename Pred>
bool SpinWhile(Pred pred, std::chrono::microseconds budget) {
  if (!pred()) return false;
  if (budget.count() <= 0) return true;
  const auto deadline = std::chrono::steady_clock::now() + budget;
  for (int i = 1;; ++i) {
    _mm_pause();
    if (!pred()) return false;
    if ((i & 63) == 0 && std::chrono::steady_clock::now() >= deadline) return true;
  }
}

}  // namespace

int ThreadPool::ThreadsFor(int max_parts) {
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, std::min(max_parts, hw));
}

ThreadPool::ThreadPool(int threads, ThreadPoolOptions options) : options_(options) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    job_.store((Generation(job_.load()) + 1) << 32);  // wakes spinners; nothing to claim
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

ThreadPoolStats ThreadPool::stats() const {
  return ThreadPoolStats{jobs_.load(std::memory_order_relaxed), solo_jobs_.load(std::memory_order_relaxed),
                         parts_by_workers_.load(std::memory_order_relaxed),
                         slow_waits_.load(std::memory_order_relaxed), unhelped_jobs_.load(std::memory_order_relaxed)};
}

int ThreadPool::Claim(uint64_t generation) {
  uint64_t w = job_.load(std::memory_order_acquire);
  while (Generation(w) == generation && Next(w) < Parts(w)) {
    if (job_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel, std::memory_order_acquire)) return Next(w);
  }
  return -1;
}

int ThreadPool::RunClaimed(uint64_t generation, bool worker) {
  int ran = 0;
  for (int p; (p = Claim(generation)) >= 0;) {
    if (worker) {
      const Clock::time_point start = Clock::now();
      (*fn_)(p);
      const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
      int64_t seen = worker_part_ns_.load(std::memory_order_relaxed);
      while (ns > seen && !worker_part_ns_.compare_exchange_weak(seen, ns, std::memory_order_relaxed)) {
      }
    } else {
      (*fn_)(p);
    }
    ++ran;
    const int parts = Parts(job_.load(std::memory_order_relaxed));  // same job: it cannot end before done_
    if (done_.fetch_add(1) + 1 == parts && caller_sleeping_.load()) {
      std::lock_guard<std::mutex> lock(mu_);
      done_cv_.notify_one();
    }
  }
  return ran;
}

void ThreadPool::Run(int parts, const std::function<void(int)>& fn) {
  if (parts <= 1 || workers_.empty()) {
    for (int p = 0; p < parts; ++p) fn(p);
    return;
  }
  jobs_.fetch_add(1, std::memory_order_relaxed);
  const Clock::time_point t0 = Clock::now();
  if (options_.adaptive && judge_.Solo(t0)) {
    solo_jobs_.fetch_add(1, std::memory_order_relaxed);
    for (int p = 0; p < parts; ++p) fn(p);
    return;
  }
  fn_ = &fn;
  done_.store(0);
  worker_part_ns_.store(0, std::memory_order_relaxed);  // published by job_'s store below
  const uint64_t generation = Generation(job_.load(std::memory_order_relaxed)) + 1;
  job_.store((generation << 32) | (static_cast<uint64_t>(parts) << 16));  // seq_cst: pairs with sleeping_
  if (sleeping_.load() > 0) {
    { std::lock_guard<std::mutex> lock(mu_); }  // a worker between its check and its wait holds mu_
    work_cv_.notify_all();
  }
  const int own = RunClaimed(generation, /*worker=*/false);
  const Clock::time_point t1 = Clock::now();
  const auto finished = [&] { return done_.load() == parts; };
  Clock::duration slept{};
  if (SpinWhile([&] { return !finished(); }, std::chrono::microseconds(options_.spin_us))) {
    const Clock::time_point sleep_from = Clock::now();
    std::unique_lock<std::mutex> lock(mu_);
    caller_sleeping_.store(true);
    done_cv_.wait(lock, finished);
    caller_sleeping_.store(false);
    slept = Clock::now() - sleep_from;
  }
  if (options_.adaptive) {
    const Clock::time_point t2 = Clock::now();
    // The workers' partitions happen-before done_ reached parts: worker_part_ns_ is theirs.
    const auto longest = std::chrono::nanoseconds(worker_part_ns_.load(std::memory_order_relaxed));
    if (judge_.Note(t2, t2 - t0, own > 0 ? (t1 - t0) / own : Clock::duration::zero(), longest, slept, ThreadCpuTime)) {
      slow_waits_.fetch_add(1, std::memory_order_relaxed);
    }
    if (own == parts) unhelped_jobs_.fetch_add(1, std::memory_order_relaxed);
  }
}

bool ContentionJudge::Note(Clock::time_point now, Clock::duration wall, Clock::duration own_part,
                           Clock::duration worker_part, Clock::duration slept,
                           absl::FunctionRef<std::chrono::nanoseconds()> cpu_time) {
  const bool slow = own_part > Clock::duration::zero() &&
                    worker_part > kSlowFloor + std::chrono::duration_cast<Clock::duration>(own_part * (1 + kSlowShare));
  if (!window_open_) {  // the first parallel job after a solo stretch (or ever) opens a window
    window_ = Window{cpu_time(), Clock::duration::zero(), 0};
    window_open_ = true;
    return slow;
  }
  window_.slow += slow ? 1 : 0;
  window_.in_run += wall - slept;
  if (window_.in_run < kWindow) return slow;
  window_open_ = false;
  // The CPU time counts the caller's work between jobs too, which only errs towards "calm".
  const double cpu_share = std::chrono::duration<double>(cpu_time() - window_.cpu_at_start).count() /
                           std::chrono::duration<double>(window_.in_run).count();
  if (cpu_share >= kMinCpuShare && window_.slow < kSlowJobs) {
    solo_for_ = kSoloFirst;
    return slow;
  }
  solo_until_ = now + solo_for_;
  solo_for_ = std::min<Clock::duration>(solo_for_ * 2, kSoloMax);
  return slow;
}

void ThreadPool::WorkerLoop() {
  uint64_t seen = 0;  // the generation before any Run()
  const auto budget = std::chrono::microseconds(options_.spin_us);
  while (true) {
    const auto same = [&] { return Generation(job_.load(std::memory_order_acquire)) == seen; };
    if (SpinWhile(same, budget)) {
      std::unique_lock<std::mutex> lock(mu_);
      sleeping_.fetch_add(1);  // seq_cst, then job_ re-read in the predicate: no lost wake-up
      work_cv_.wait(lock, [&] { return Generation(job_.load()) != seen; });
      sleeping_.fetch_sub(1);
    }
    // The generation first: the destructor sets stop_ before its last bump, so a worker that
    // takes that bump for a job also sees stop_ (checking stop_ first could miss it, then sleep
    // through the destructor's only notification).
    seen = Generation(job_.load(std::memory_order_acquire));
    if (stop_.load()) return;
    const int ran = RunClaimed(seen, /*worker=*/true);
    if (ran > 0) parts_by_workers_.fetch_add(ran, std::memory_order_relaxed);
  }
}

}  // namespace tailor
