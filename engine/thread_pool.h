// A fixed pool of worker threads that runs the partitions of one operation at a time.
// Run() is called from one thread at a time (the runtime's step); it blocks until every
// partition finished. The calling thread runs partition 0 itself.
#ifndef TAILOR_ENGINE_THREAD_POOL_H_
#define TAILOR_ENGINE_THREAD_POOL_H_

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
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(part) for part in [0, parts); parts <= threads().
  void Run(int parts, const std::function<void(int)>& fn);

 private:
  void WorkerLoop(int index);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  const std::function<void(int)>* fn_ = nullptr;  // guarded by mu_
  int parts_ = 0;                                  // guarded by mu_
  uint64_t generation_ = 0;                        // guarded by mu_
  int pending_ = 0;                                // guarded by mu_
  bool stop_ = false;                              // guarded by mu_
};

}  // namespace tailor

#endif  // TAILOR_ENGINE_THREAD_POOL_H_
