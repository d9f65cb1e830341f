#include "engine/thread_pool.h"

#include <immintrin.h>
#include <time.h>

#include <algorithm>

namespace tailor {
namespace {

constexpr uint64_t kPartsMask = 0xffff;
// A job is "slow" when the caller, done with its own partitions, waited on the others for more
// than this share of its own time plus kSlowFloor (a worker preempted by the OS mid-partition
// costs a scheduler slice: milliseconds; an idle pool's imbalance is a few percent).
constexpr double kSlowShare = 0.25;
constexpr auto kSlowFloor = std::chrono::microseconds(100);
// Windows of parallel jobs: contended when the caller thread ran less than kMinCpuShare of the
// window's wall time (the OS gave its core to someone else: with another busy process, the
// pool's threads and it share what is left) or kSlowJobs jobs were slow. Preemptions alone are
// no sign: a low-priority background job preempts the pool briefly and often, and costs far
// less than running on one thread. A window that spans an idle gap (longer than kMaxWindow) is
// not judged. An idle machine shows none of these (bench/contention_bench).
constexpr auto kWindow = std::chrono::milliseconds(5);
constexpr auto kMaxWindow = std::chrono::milliseconds(20);
constexpr double kMinCpuShare = 0.8;
constexpr int kSlowJobs = 2;
constexpr auto kSoloFirst = std::chrono::milliseconds(20);
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

ThreadPool::ThreadPool(int threads, ThreadPoolOptions options) : options_(options), solo_for_(kSoloFirst) {
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

int ThreadPool::RunClaimed(uint64_t generation) {
  int ran = 0;
  for (int p; (p = Claim(generation)) >= 0;) {
    (*fn_)(p);
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
  if (options_.adaptive && t0 < solo_until_) {
    solo_jobs_.fetch_add(1, std::memory_order_relaxed);
    for (int p = 0; p < parts; ++p) fn(p);
    return;
  }
  fn_ = &fn;
  done_.store(0);
  const uint64_t generation = Generation(job_.load(std::memory_order_relaxed)) + 1;
  job_.store((generation << 32) | (static_cast<uint64_t>(parts) << 16));  // seq_cst: pairs with sleeping_
  if (sleeping_.load() > 0) {
    { std::lock_guard<std::mutex> lock(mu_); }  // a worker between its check and its wait holds mu_
    work_cv_.notify_all();
  }
  const int own = RunClaimed(generation);
  const Clock::time_point t1 = Clock::now();
  const auto finished = [&] { return done_.load() == parts; };
  if (SpinWhile([&] { return !finished(); }, std::chrono::microseconds(options_.spin_us))) {
    std::unique_lock<std::mutex> lock(mu_);
    caller_sleeping_.store(true);
    done_cv_.wait(lock, finished);
    caller_sleeping_.store(false);
  }
  if (options_.adaptive) {
    const Clock::time_point t2 = Clock::now();
    NoteJob(t2, t1 - t0, t2 - t1, own == parts);
  }
}

void ThreadPool::NoteJob(Clock::time_point now, Clock::duration own, Clock::duration waited, bool unhelped) {
  const bool slow = waited > kSlowFloor + std::chrono::duration_cast<Clock::duration>(own * kSlowShare);
  if (slow) slow_waits_.fetch_add(1, std::memory_order_relaxed);
  if (unhelped) unhelped_jobs_.fetch_add(1, std::memory_order_relaxed);
  if (!window_open_) {  // the first parallel job after a solo stretch (or ever) opens a window
    window_ = Window{now, ThreadCpuTime(), 0};
    window_open_ = true;
    return;
  }
  window_.slow += slow ? 1 : 0;
  const Clock::duration wall = now - window_.start;
  if (wall < kWindow) return;
  window_open_ = false;
  if (wall > kMaxWindow) return;  // an idle gap inside: not a measurement
  const double cpu_share = std::chrono::duration<double>(ThreadCpuTime() - window_.cpu_at_start).count() /
                           std::chrono::duration<double>(wall).count();
  if (cpu_share >= kMinCpuShare && window_.slow < kSlowJobs) {
    solo_for_ = kSoloFirst;
    return;
  }
  solo_until_ = now + solo_for_;
  solo_for_ = std::min<Clock::duration>(solo_for_ * 2, kSoloMax);
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
    const int ran = RunClaimed(seen);
    if (ran > 0) parts_by_workers_.fetch_add(ran, std::memory_order_relaxed);
  }
}

}  // namespace tailor
