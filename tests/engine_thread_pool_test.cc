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

// ContentionJudge, driven with made-up times: one job per Note(), `now` and the caller's CPU time
// advanced by the test.
struct JudgeClock {
  ContentionJudge::Clock::time_point now{};
  std::chrono::nanoseconds cpu{0};
  // A job of `wall` inside Run() during which the caller got `cpu_used` of CPU time and slept
  // `slept`; then `gap` outside Run() with no CPU time (asleep). Returns Note()'s "slow".
  bool Job(ContentionJudge& judge, std::chrono::microseconds wall, std::chrono::microseconds cpu_used,
           std::chrono::microseconds gap, std::chrono::microseconds own_part = std::chrono::microseconds(100),
           std::chrono::microseconds worker_part = std::chrono::microseconds(100),
           std::chrono::microseconds slept = std::chrono::microseconds(0)) {
    now += wall;
    cpu += cpu_used;
    const bool slow = judge.Note(now, wall, own_part, worker_part, slept, [this] { return cpu; });
    now += gap;
    return slow;
  }
};

using std::chrono::microseconds;

TEST(ContentionJudge, PausesBetweenJobsAreNoSignOfContention) {
  // 20 us jobs on a caller that has its CPU throughout, 3 ms asleep between them (a server idle
  // between requests, a benchmark pausing between steps): judged by wall time these windows
  // would show a CPU share under 1%; inside Run() it is 100%.
  ContentionJudge judge;
  JudgeClock c;
  for (int job = 0; job < 2000; ++job) {
    c.Job(judge, microseconds(20), microseconds(20), microseconds(3000));
    ASSERT_FALSE(judge.Solo(c.now)) << "job " << job;
  }
}

TEST(ContentionJudge, CallerPreemptedInsideRunGoesSolo) {
  // 1 ms jobs in which the caller ran half the time: the first full window (5 ms inside Run())
  // sends the caller solo, for 20 ms, then 40 ms while it lasts.
  ContentionJudge judge;
  JudgeClock c;
  int job = 0;
  while (!judge.Solo(c.now) && job < 20) {
    c.Job(judge, microseconds(1000), microseconds(500), microseconds(0));
    ++job;
  }
  ASSERT_TRUE(judge.Solo(c.now)) << "never solo";
  EXPECT_LE(job, 7);
  c.now += std::chrono::milliseconds(19);
  EXPECT_TRUE(judge.Solo(c.now));
  c.now += std::chrono::milliseconds(2);
  EXPECT_FALSE(judge.Solo(c.now));
  for (int i = 0; i < 7 && !judge.Solo(c.now); ++i) c.Job(judge, microseconds(1000), microseconds(500), microseconds(0));
  ASSERT_TRUE(judge.Solo(c.now));
  c.now += std::chrono::milliseconds(39);
  EXPECT_TRUE(judge.Solo(c.now)) << "the second stretch doubles";
}

TEST(ContentionJudge, SleepWhileWaitingOnWorkersIsNotLostCpu) {
  // The caller blocks 500 us of each 1 ms job waiting on the workers (its partition 400 us, the
  // workers' 550 us, having started late): no CPU then, and no contention.
  ContentionJudge judge;
  JudgeClock c;
  for (int job = 0; job < 100; ++job) {
    c.Job(judge, microseconds(1000), microseconds(500), microseconds(0), microseconds(400), microseconds(550),
          microseconds(500));
    ASSERT_FALSE(judge.Solo(c.now)) << "job " << job;
  }
}

TEST(ContentionJudge, PreemptedWorkersAreSlowLateOnesAreNot) {
  ContentionJudge judge;
  JudgeClock c;
  // A worker that started late (the job's wall is long) but whose partition took what the
  // caller's did: not slow, however long the caller waited.
  for (int job = 0; job < 50; ++job) {
    ASSERT_FALSE(c.Job(judge, microseconds(2000), microseconds(2000), microseconds(0), microseconds(300),
                       microseconds(320)));
    ASSERT_FALSE(judge.Solo(c.now));
  }
  // Partitions of 3 ms on a worker against 300 us on the caller (preempted mid-partition): slow,
  // and two in a window send the caller solo.
  int job = 0;
  while (!judge.Solo(c.now) && job < 10) {
    EXPECT_TRUE(c.Job(judge, microseconds(3100), microseconds(3100), microseconds(0), microseconds(300),
                      microseconds(3000)));
    ++job;
  }
  EXPECT_TRUE(judge.Solo(c.now));
}

TEST(ThreadPool, ThreadsForNeverExceedsParts) {
  EXPECT_EQ(ThreadPool::ThreadsFor(1), 1);
  EXPECT_GE(ThreadPool::ThreadsFor(64), 1);
  EXPECT_LE(ThreadPool::ThreadsFor(2), 2);
}

}  // namespace
}  // namespace tailor
