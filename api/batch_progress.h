// The progress line of `tailor batch`: requests done of the total, tokens/s and ETA.
//
// Tokens/s counts tokens as the engine generates them (read from a counter the caller supplies,
// e.g. the session's SchedulerStats::generated_tokens), not when a request finishes, so a batch
// of long requests shows its real speed from the first step.
//
// Thread-safety: Finished() may be called from any thread; Line() reads atomics and calls the
// token counter, which must itself be safe to call from the display thread.
#ifndef TAILOR_API_BATCH_PROGRESS_H_
#define TAILOR_API_BATCH_PROGRESS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

namespace tailor::batch {

class BatchProgress {
 public:
  // `total`: requests to run; `generated_tokens`: a monotonic count of tokens generated so far
  // (its value at construction is the baseline).
  BatchProgress(int64_t total, std::function<int64_t()> generated_tokens);

  void Finished(bool failed);  // one request done (failed: answered with an error)
  int64_t total() const { return total_; }
  int64_t done() const { return done_.load(); }
  int64_t failed() const { return failed_.load(); }
  // Tokens generated since construction.
  int64_t tokens() const;
  // "\r[=====       ] 3/10  12.5 tok/s  ETA 0:04 " after `elapsed_seconds`.
  std::string Line(double elapsed_seconds) const;

 private:
  const int64_t total_;
  std::function<int64_t()> generated_tokens_;
  const int64_t baseline_;
  std::atomic<int64_t> done_{0};
  std::atomic<int64_t> failed_{0};
};

// "m:ss", or "h:mm:ss" from an hour on.
std::string Clock(double seconds);

}  // namespace tailor::batch

#endif  // TAILOR_API_BATCH_PROGRESS_H_
