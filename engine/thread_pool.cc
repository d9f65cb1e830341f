#include "engine/thread_pool.h"

#include <immintrin.h>

#include <algorithm>

namespace tailor {
namespace {

constexpr int kSpins = 20000;  // ~ tens of microseconds of pause instructions

}  // namespace

int ThreadPool::ThreadsFor(int max_parts) {
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, std::min(max_parts, hw));
}

ThreadPool::ThreadPool(int threads) {
  // The count is passed in: a worker may start before workers_ holds every thread.
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i, threads] { WorkerLoop(i, threads); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_release);
    work_.fetch_add(uint64_t{1} << 16, std::memory_order_acq_rel);
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::Run(int parts, const std::function<void(int)>& fn) {
  const int threads = this->threads();
  if (parts <= 1 || threads == 1) {
    for (int p = 0; p < parts; ++p) fn(p);
    return;
  }
  const int helpers = std::min(parts, threads) - 1;
  fn_ = &fn;
  pending_.store(helpers, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);  // pairs with sleepers' predicate check
    const uint64_t generation = (work_.load(std::memory_order_relaxed) >> 16) + 1;
    work_.store((generation << 16) | static_cast<uint64_t>(parts), std::memory_order_release);
  }
  cv_.notify_all();
  for (int p = 0; p < parts; p += threads) fn(p);
  for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < kSpins) {
      _mm_pause();
    } else {
      std::this_thread::yield();
    }
  }
}

void ThreadPool::WorkerLoop(int index, int threads) {
  uint64_t seen = 0;  // the generation before any Run()
  while (true) {
    uint64_t w = work_.load(std::memory_order_acquire);
    for (int spins = 0; (w >> 16) == seen && spins < kSpins; ++spins) {
      _mm_pause();
      w = work_.load(std::memory_order_acquire);
    }
    if ((w >> 16) == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return (work_.load(std::memory_order_acquire) >> 16) != seen; });
      w = work_.load(std::memory_order_acquire);
    }
    seen = w >> 16;
    if (stop_.load(std::memory_order_acquire)) return;
    const int parts = static_cast<int>(w & 0xffff);
    if (index < parts) {
      for (int p = index; p < parts; p += threads) (*fn_)(p);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
}

}  // namespace tailor
