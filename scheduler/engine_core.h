// The engine core that the front ends share: a Scheduler driven by one step-loop thread that
// owns the Executor. Requests are submitted and cancelled from any thread; tokens stream back
// through each request's callback, called on the step-loop thread (see TokenCallback).
//
//   auto core = EngineCore::Start(runtime, {});
//   auto id = (*core)->Submit(prompt_ids, sampling, [](const TokenEvent& e) { ... });
//   (*core)->Cancel(*id);                      // any time; frees every block of the request
//   (*core)->Shutdown(ShutdownMode::kDrain);   // or kCancel; also done (kCancel) by ~EngineCore
//
// Every request gets exactly one last event (finish != kNone): finished, cancelled, aborted at
// shutdown, or failed. Thread-safe, except that Shutdown() must not be called from a callback
// (it would wait for itself; from a callback it only asks the loop to stop).
#ifndef TAILOR_SCHEDULER_ENGINE_CORE_H_
#define TAILOR_SCHEDULER_ENGINE_CORE_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/executor.h"
#include "scheduler/request.h"
#include "scheduler/sampler.h"
#include "scheduler/scheduler.h"

namespace tailor {

struct EngineOptions {
  SchedulerOptions scheduler;
  // Receives errors of steps (already reported to the requests concerned). Loop thread.
  std::function<void(const std::string&)> log;
};

enum class ShutdownMode {
  kDrain,   // refuse new requests, finish every request in flight, then stop
  kCancel,  // refuse new requests, end every request in flight with kAborted, then stop
};

class EngineCore {
 public:
  // Starts the step loop. `executor` must outlive the EngineCore and is used only by its loop.
  static absl::StatusOr<std::unique_ptr<EngineCore>> Start(Executor& executor, EngineOptions options);
  ~EngineCore();  // Shutdown(kCancel)

  EngineCore(const EngineCore&) = delete;
  EngineCore& operator=(const EngineCore&) = delete;

  // Validates and queues a request; returns its id. InvalidArgument (naming the parameter and
  // the limit) for a request that can never run; FailedPrecondition after Shutdown().
  absl::StatusOr<RequestId> Submit(std::vector<int32_t> prompt, SamplingOptions options, TokenCallback callback);

  // Ends the request with kCancelled (unless it already finished). Returns at once; the last
  // event follows on the loop thread, after the request's blocks are freed.
  void Cancel(RequestId id);

  // Stops the loop as `mode` says and waits for it. Idempotent; later Submit()s fail.
  void Shutdown(ShutdownMode mode);

  // A snapshot taken after the loop's latest round or cancellation, before the callbacks of
  // its events run (so a last event's blocks are already freed here).
  SchedulerStats stats() const;
  const RequestLimits& limits() const { return limits_; }

 private:
  struct Incoming {
    RequestId id;
    std::vector<int32_t> prompt;
    SamplingOptions options;
    TokenCallback callback;
  };

  EngineCore(std::unique_ptr<Scheduler> scheduler, EngineOptions options);
  void Loop();
  void PublishStats();

  std::unique_ptr<Scheduler> scheduler_;  // loop thread only
  const EngineOptions options_;
  const RequestLimits limits_;
  std::atomic<RequestId> next_id_{1};

  std::mutex mu_;  // guards the fields below
  std::condition_variable cv_;
  std::vector<Incoming> incoming_;
  std::vector<RequestId> cancels_;
  bool stopping_ = false;
  ShutdownMode mode_ = ShutdownMode::kCancel;

  mutable std::mutex stats_mu_;
  SchedulerStats stats_;

  std::mutex join_mu_;  // serialises joining
  std::thread loop_;
  std::thread::id loop_id_;
};

}  // namespace tailor

#endif  // TAILOR_SCHEDULER_ENGINE_CORE_H_
