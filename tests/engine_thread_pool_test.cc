// ThreadPool: every partition runs exactly once per Run(), whatever the thread and part counts,
// the spin budget (0: every wait sleeps on the condition variables, the path a lost wake-up
// would hang) and the fallback to the calling thread when workers are slow. Also built with
// -fsanitize=thread (engine_thread_pool_tsan_test).
#include "engine/thread_pool.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace tailor {
namespace {

void ExpectEachPartOnce(ThreadPool& pool, int parts, const char* what) {
  std::vector<std::atomic<int>> runs(parts);
  pool.Run(parts, [&](int p) { runs[p].fetch_add(1); });
  for (int p = 0; p < parts; ++p) ASSERT_EQ(runs[p].load(), 1) << what << ": parts " << parts << " part " << p;
}

TEST(ThreadPool, EveryPartRunsExactlyOnce) {
  for (int threads : {1, 2, 3, 5}) {
    for (int trial = 0; trial < 50; ++trial) {
      ThreadPool pool(threads);  // fresh workers: the start-up race is exercised each time
      for (int parts : {1, 2, 3, 7, 16}) ExpectEachPartOnce(pool, parts, "default options");
    }
  }
}

TEST(ThreadPool, BlockingWaitsLoseNoWakeUp) {
  // spin_us = 0: workers sleep as soon as a job is over and the caller sleeps as soon as its own
  // partitions are; thousands of jobs in a row would hang on one lost notification.
  for (int threads : {2, 3}) {
    ThreadPool pool(threads, ThreadPoolOptions{.spin_us = 0, .adaptive = false});
    for (int job = 0; job < 3000; ++job) ExpectEachPartOnce(pool, 1 + job % 5, "spin_us 0");
    // Gaps between jobs let every worker fall asleep first.
    for (int job = 0; job < 50; ++job) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      ExpectEachPartOnce(pool, threads, "after a gap");
    }
  }
}

TEST(ThreadPool, ShutsDownRightAfterAJob) {
  // A worker that wakes for the last job as the destructor runs must still see the stop (it once
  // took the destructor's wake-up for a job and slept through it: join() hung).
  for (int trial = 0; trial < 2000; ++trial) {
    ThreadPool pool(2 + trial % 2, ThreadPoolOptions{.spin_us = trial % 3 == 0 ? 0 : 5, .adaptive = false});
    ExpectEachPartOnce(pool, 2, "one job");
  }
}

TEST(ThreadPool, WorkersRunPartsWhenTheyAreFree) {
  ThreadPool pool(2, ThreadPoolOptions{.spin_us = 1000, .adaptive = false});
  // Partition 0 waits until another thread ran partition 1 (or gives up after 1 s): only a
  // worker that claims work can make it return early.
  std::atomic<bool> one_done{false};
  int64_t by_workers_before = pool.stats().parts_by_workers;
  for (int job = 0; job < 20; ++job) {
    one_done = false;
    pool.Run(2, [&](int p) {
      if (p == 1) {
        one_done = true;
        return;
      }
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      while (!one_done && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    });
  }
  EXPECT_GT(pool.stats().parts_by_workers, by_workers_before);
}

TEST(ThreadPool, FallsBackToTheCallerWhenWorkersAreSlow) {
  // A partition takes 0.3 ms on the caller and 3 ms on a worker (as if the OS preempted it):
  // after a few such jobs the caller runs jobs alone for a while, and every part still runs
  // exactly once.
  ThreadPool pool(2, ThreadPoolOptions{.spin_us = 50, .adaptive = true});
  const std::thread::id caller = std::this_thread::get_id();
  for (int job = 0; job < 60; ++job) {
    std::vector<std::atomic<int>> runs(2);
    pool.Run(2, [&](int p) {
      std::this_thread::sleep_for(std::chrono::microseconds(std::this_thread::get_id() == caller ? 300 : 3000));
      runs[p].fetch_add(1);
    });
    ASSERT_EQ(runs[0].load(), 1);
    ASSERT_EQ(runs[1].load(), 1);
  }
  const ThreadPoolStats s = pool.stats();
  EXPECT_GE(s.slow_waits, 3);
  EXPECT_GT(s.solo_jobs, 0);
  EXPECT_EQ(s.jobs, 60);
}

TEST(ThreadPool, PausesBetweenJobsAreNoSignOfContention) {
  // Short jobs with the caller asleep in between (a server idle between requests, a benchmark
  // pausing between steps): the caller's CPU time against the wall time of a window with these
  // pauses would say "contended"; judged by the time inside Run() (5 ms of it take hundreds of
  // such jobs) the pool stays parallel, however loaded the machine.
  ThreadPool pool(2, ThreadPoolOptions{.spin_us = 50, .adaptive = true});
  for (int job = 0; job < 200; ++job) {
    std::vector<std::atomic<int>> runs(2);
    pool.Run(2, [&](int p) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(10);
      while (std::chrono::steady_clock::now() < until) {
      }
      runs[p].fetch_add(1);
    });
    ASSERT_EQ(runs[0].load() + runs[1].load(), 2);
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  const ThreadPoolStats s = pool.stats();
  EXPECT_EQ(s.jobs, 200);
  EXPECT_EQ(s.solo_jobs, 0);
}

TEST(ThreadPool, ThreadsForNeverExceedsParts) {
  EXPECT_EQ(ThreadPool::ThreadsFor(1), 1);
  EXPECT_GE(ThreadPool::ThreadsFor(64), 1);
  EXPECT_LE(ThreadPool::ThreadsFor(2), 2);
}

}  // namespace
}  // namespace tailor
