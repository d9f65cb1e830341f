// ThreadPool: every partition runs exactly once per Run(), whatever the thread and part counts,
// including pools whose workers start while the constructor is still adding threads.
#include "engine/thread_pool.h"

#include <atomic>
#include <vector>

#include "gtest/gtest.h"

namespace tailor {
namespace {

TEST(ThreadPool, EveryPartRunsExactlyOnce) {
  for (int threads : {1, 2, 3, 5}) {
    for (int trial = 0; trial < 50; ++trial) {
      ThreadPool pool(threads);  // fresh workers: the start-up race is exercised each time
      for (int parts : {1, 2, 3, 7, 16}) {
        std::vector<std::atomic<int>> runs(parts);
        pool.Run(parts, [&](int p) { runs[p].fetch_add(1); });
        for (int p = 0; p < parts; ++p) {
          ASSERT_EQ(runs[p].load(), 1) << "threads " << threads << " parts " << parts << " part " << p;
        }
      }
    }
  }
}

TEST(ThreadPool, ThreadsForNeverExceedsParts) {
  EXPECT_EQ(ThreadPool::ThreadsFor(1), 1);
  EXPECT_GE(ThreadPool::ThreadsFor(64), 1);
  EXPECT_LE(ThreadPool::ThreadsFor(2), 2);
}

}  // namespace
}  // namespace tailor
