#include "scheduler/engine_core.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace tailor {

absl::StatusOr<std::unique_ptr<EngineCore>> EngineCore::Start(Executor& executor, EngineOptions options) {
  auto scheduler = Scheduler::Create(executor, options.scheduler);
  if (!scheduler.ok()) return scheduler.status();
  std::unique_ptr<EngineCore> core(new EngineCore(std::move(*scheduler), std::move(options)));
  core->PublishStats();
  core->loop_ = std::thread([c = core.get()] { c->Loop(); });
  // Written before any other thread can see `core`; read by callbacks on the loop thread, which
  // run only after a Submit() that synchronises through mu_.
  core->loop_id_ = core->loop_.get_id();
  return core;
}

EngineCore::EngineCore(std::unique_ptr<Scheduler> scheduler, EngineOptions options)
    : scheduler_(std::move(scheduler)), options_(std::move(options)), limits_(scheduler_->limits()) {}

EngineCore::~EngineCore() { Shutdown(ShutdownMode::kCancel); }

absl::StatusOr<RequestId> EngineCore::Submit(std::vector<int32_t> prompt, SamplingOptions options,
                                             TokenCallback callback) {
  // Checked here too, so that the caller hears of a bad request at once.
  if (absl::Status s = ValidateRequest(limits_, prompt, options); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return absl::FailedPreconditionError("the engine is shutting down: no new requests");
  const RequestId id = next_id_++;
  incoming_.push_back(Incoming{id, std::move(prompt), std::move(options), std::move(callback)});
  cv_.notify_one();
  return id;
}

void EngineCore::Cancel(RequestId id) {
  std::lock_guard<std::mutex> lock(mu_);
  cancels_.push_back(id);
  cv_.notify_one();
}

void EngineCore::Shutdown(ShutdownMode mode) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      stopping_ = true;
      mode_ = mode;
    } else if (mode == ShutdownMode::kCancel) {
      mode_ = mode;  // a drain in progress may be cut short
    }
    cv_.notify_one();
  }
  if (std::this_thread::get_id() == loop_id_) return;  // from a callback: the destructor joins
  std::lock_guard<std::mutex> lock(join_mu_);
  if (loop_.joinable()) loop_.join();
}

SchedulerStats EngineCore::stats() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  return stats_;
}

void EngineCore::PublishStats() {
  SchedulerStats s = scheduler_->stats();
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_ = std::move(s);
}

void EngineCore::Loop() {
  for (;;) {
    std::vector<Incoming> incoming;
    std::vector<RequestId> cancels;
    bool stopping;
    ShutdownMode mode;
    {
      const bool busy = scheduler_->HasWork();
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return busy || stopping_ || !incoming_.empty() || !cancels_.empty(); });
      incoming.swap(incoming_);
      cancels.swap(cancels_);
      stopping = stopping_;
      mode = mode_;
    }
    for (Incoming& r : incoming) {
      absl::Status s = scheduler_->Add(r.id, std::move(r.prompt), std::move(r.options), r.callback);
      if (!s.ok() && r.callback) {  // validated at Submit; report anything else as the last event
        TokenEvent event;
        event.id = r.id;
        event.finish = FinishReason::kError;
        event.status = s;
        r.callback(event);
      }
    }
    for (RequestId id : cancels) scheduler_->Cancel(id, FinishReason::kCancelled);
    if (stopping && mode == ShutdownMode::kCancel) scheduler_->CancelAll(FinishReason::kAborted);
    if (scheduler_->HasWork()) {
      absl::Status s = scheduler_->Step();
      if (!s.ok() && options_.log) options_.log(std::string(s.message()));
    }
    PublishStats();
    scheduler_->DeliverEvents();
    if (stopping && !scheduler_->HasWork()) {
      std::lock_guard<std::mutex> lock(mu_);
      // Submit() refuses once stopping_ is set, so nothing new can arrive after this check.
      if (incoming_.empty()) break;
    }
  }
}

}  // namespace tailor
