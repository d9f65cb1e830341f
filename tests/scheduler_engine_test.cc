// The threaded engine core on the fake executor: submissions from several threads, cancellation
// from other threads and from callbacks, shutdown with requests in flight. Waits on conditions,
// never on sleeps.
#include "scheduler/engine_core.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fake_executor.h"

namespace tailor {
namespace {

using fake::EventCollector;
using fake::FakeExecutor;
using fake::FakeExecutorOptions;
using fake::ReferenceGreedy;
using ::testing::HasSubstr;

constexpr int32_t kVocab = 32;

std::vector<int32_t> Prompt(int32_t seed, int32_t len) {
  std::vector<int32_t> p(len);
  for (int32_t i = 0; i < len; ++i) p[i] = static_cast<int32_t>((seed * 7919 + i * 104729 + i * i) % kVocab);
  return p;
}

SamplingOptions Greedy(int32_t max_tokens) {
  SamplingOptions o;
  o.temperature = 0.0f;
  o.max_tokens = max_tokens;
  return o;
}

FakeExecutorOptions Fake(std::chrono::microseconds latency = std::chrono::microseconds(0)) {
  FakeExecutorOptions o;
  o.shapes = {{4, 8, 128}, {4, 1, 128}, {8, 1, 128}};
  o.costs = {1.0, 0.5, 0.8};
  o.vocab_size = kVocab;
  o.kv_block_size = 4;
  o.num_kv_blocks = 128;
  o.step_latency = latency;
  return o;
}

TEST(EngineCoreTest, RequestsFromManyThreadsMatchTheReference) {
  FakeExecutor executor(Fake(std::chrono::microseconds(100)));
  auto core = EngineCore::Start(executor, {});
  ASSERT_TRUE(core.ok()) << core.status();
  EventCollector events;
  std::mutex mu;
  std::vector<std::pair<RequestId, std::vector<int32_t>>> reqs;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        auto p = Prompt(t * 10 + i, 3 + (t * 5 + i) % 17);
        auto id = (*core)->Submit(p, Greedy(6 + i), events.Callback());
        ASSERT_TRUE(id.ok()) << id.status();
        std::lock_guard<std::mutex> lock(mu);
        reqs.emplace_back(*id, p);
      }
    });
  }
  for (auto& t : threads) t.join();
  events.WaitFinished(20);
  for (const auto& [id, p] : reqs) {
    const auto r = events.Get(id);
    EXPECT_EQ(r.finish, FinishReason::kLength);
    EXPECT_EQ(r.num_final_events, 1);
    EXPECT_EQ(r.tokens, ReferenceGreedy(p, static_cast<int32_t>(r.tokens.size()), kVocab));
  }
  EXPECT_EQ((*core)->stats().kv.used_blocks, 0);
  EXPECT_EQ((*core)->stats().num_finished, 20);
  EXPECT_THAT(executor.errors(), ::testing::IsEmpty());
}

TEST(EngineCoreTest, CancelFromAnotherThreadFreesEveryBlock) {
  FakeExecutor executor(Fake(std::chrono::microseconds(200)));
  auto core = EngineCore::Start(executor, {});
  ASSERT_TRUE(core.ok());
  EventCollector events;
  std::vector<RequestId> ids;
  for (int i = 0; i < 6; ++i) {
    auto id = (*core)->Submit(Prompt(i, 20), Greedy(100), events.Callback());
    ASSERT_TRUE(id.ok());
    ids.push_back(*id);
  }
  events.WaitTokens(ids[0], 2);
  for (RequestId id : ids) (*core)->Cancel(id);
  events.WaitFinished(ids.size());
  for (RequestId id : ids) {
    const auto r = events.Get(id);
    EXPECT_EQ(r.finish, FinishReason::kCancelled);
    EXPECT_EQ(r.num_final_events, 1);
    EXPECT_LT(r.tokens.size(), 100u);
  }
  // The snapshot is published before the last events are delivered.
  EXPECT_EQ((*core)->stats().kv.used_blocks, 0);
  EXPECT_EQ((*core)->stats().num_running + (*core)->stats().num_waiting, 0);
}

TEST(EngineCoreTest, ACallbackMayCancelItsOwnRequest) {
  FakeExecutor executor(Fake());
  auto core = EngineCore::Start(executor, {});
  ASSERT_TRUE(core.ok());
  EventCollector events;
  auto collect = events.Callback();
  EngineCore* c = core->get();
  auto id = c->Submit(Prompt(5, 6), Greedy(50), [&, c](const TokenEvent& e) {
    collect(e);
    if (e.index == 2 && e.token >= 0) c->Cancel(e.id);
  });
  ASSERT_TRUE(id.ok());
  events.WaitFinished(1);
  const auto r = events.Get(*id);
  EXPECT_EQ(r.finish, FinishReason::kCancelled);
  EXPECT_EQ(r.tokens.size(), 3u);  // the cancel is applied before the next round
}

TEST(EngineCoreTest, ShutdownDrainFinishesRequestsInFlight) {
  FakeExecutor executor(Fake(std::chrono::microseconds(100)));
  auto core = EngineCore::Start(executor, {});
  ASSERT_TRUE(core.ok());
  EventCollector events;
  std::vector<std::pair<RequestId, std::vector<int32_t>>> reqs;
  for (int i = 0; i < 10; ++i) {
    auto p = Prompt(100 + i, 5 + i);
    auto id = (*core)->Submit(p, Greedy(8), events.Callback());
    ASSERT_TRUE(id.ok());
    reqs.emplace_back(*id, p);
  }
  (*core)->Shutdown(ShutdownMode::kDrain);
  EXPECT_EQ(events.finished(), 10u);
  for (const auto& [id, p] : reqs) {
    EXPECT_EQ(events.Get(id).finish, FinishReason::kLength);
    EXPECT_EQ(events.Get(id).tokens, ReferenceGreedy(p, 8, kVocab));
  }
  auto late = (*core)->Submit(Prompt(1, 3), Greedy(2), events.Callback());
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition);
  (*core)->Shutdown(ShutdownMode::kCancel);  // idempotent
}

TEST(EngineCoreTest, ShutdownCancelAbortsRequestsInFlight) {
  FakeExecutor executor(Fake(std::chrono::microseconds(300)));
  auto core = EngineCore::Start(executor, {});
  ASSERT_TRUE(core.ok());
  EventCollector events;
  std::vector<RequestId> ids;
  for (int i = 0; i < 12; ++i) {  // more than the largest batch: some wait
    auto id = (*core)->Submit(Prompt(200 + i, 10), Greedy(100), events.Callback());
    ASSERT_TRUE(id.ok());
    ids.push_back(*id);
  }
  events.WaitTokens(ids[0], 1);
  (*core)->Shutdown(ShutdownMode::kCancel);
  EXPECT_EQ(events.finished(), ids.size());
  for (RequestId id : ids) {
    EXPECT_EQ(events.Get(id).finish, FinishReason::kAborted);
    EXPECT_EQ(events.Get(id).num_final_events, 1);
  }
  EXPECT_EQ((*core)->stats().kv.used_blocks, 0);
}

TEST(EngineCoreTest, DestroyingTheCoreWithRequestsInFlightEndsThemAll) {
  FakeExecutor executor(Fake(std::chrono::microseconds(100)));
  EventCollector events;
  {
    auto core = EngineCore::Start(executor, {});
    ASSERT_TRUE(core.ok());
    for (int i = 0; i < 5; ++i) ASSERT_TRUE((*core)->Submit(Prompt(300 + i, 8), Greedy(60), events.Callback()).ok());
  }
  EXPECT_EQ(events.finished(), 5u);
}

TEST(EngineCoreTest, OversizedRequestsAreRefusedAtSubmission) {
  FakeExecutor executor(Fake());
  auto core = EngineCore::Start(executor, {});
  ASSERT_TRUE(core.ok());
  auto id = (*core)->Submit(Prompt(1, 100), Greedy(50), nullptr);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(id.status().message()), HasSubstr("100 tokens"));
  EXPECT_THAT(std::string(id.status().message()), HasSubstr("(128)"));
  EXPECT_EQ((*core)->limits().max_ctx_len, 128);
}

}  // namespace
}  // namespace tailor
