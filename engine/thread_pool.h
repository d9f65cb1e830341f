// A fixed pool of worker threads that runs the partitions of one operation at a time.
// Programs run many small operations per step, so workers spin briefly on an atomic generation
// counter before sleeping on a condition variable. Run() is called from one thread at a time
// (the runtime's step loop); it blocks until every partition finished. The calling thread runs
// partition 0 itself.
#ifndef TAILOR_ENGINE_THREAD_POOL_H_
#define TAILOR_ENGINE_THREAD_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tailor {

class ThreadPool {
 public:
  // `threads` >= 1 counts the calling thread: threads - 1 workers are started.
  explicit ThreadPool(int threads);
  // Threads for partitions up to `max_parts`: never more than the hardware runs at once.
  static int ThreadsFor(int max_parts);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(part) for part in [0, parts); thread t runs parts t, t + threads(), ...
  void Run(int parts, const std::function<void(int)>& fn);

 private:
  void WorkerLoop(int index, int threads);

  std::vector<std::thread> workers_;
  // Published by Run() before work_ changes (release), read after (acquire); stays valid
  // until every participating worker decremented pending_.
  const std::function<void(int)>* fn_ = nullptr;
  // (generation << 16) | parts of the current Run(): one atomic word, so a worker never pairs
  // one generation with another's partition count.
  std::atomic<uint64_t> work_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;  // only for sleeping workers
  std::condition_variable cv_;
};

}  // namespace tailor

#endif  // TAILOR_ENGINE_THREAD_POOL_H_
