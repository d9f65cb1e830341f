#include "api/batch_progress.h"

#include <utility>

#include "absl/strings/str_format.h"

namespace tailor::batch {

BatchProgress::BatchProgress(int64_t total, std::function<int64_t()> generated_tokens)
    : total_(total), generated_tokens_(std::move(generated_tokens)), baseline_(generated_tokens_()) {}

void BatchProgress::Finished(bool failed) {
  if (failed) ++failed_;
  ++done_;
}

int64_t BatchProgress::tokens() const { return generated_tokens_() - baseline_; }

std::string BatchProgress::Line(double elapsed_seconds) const {
  const int64_t d = done_.load();
  constexpr int kWidth = 24;
  const int filled = total_ > 0 ? static_cast<int>(kWidth * d / total_) : kWidth;
  const std::string bar = std::string(filled, '=') + std::string(kWidth - filled, ' ');
  const double rate = elapsed_seconds > 0 ? static_cast<double>(tokens()) / elapsed_seconds : 0.0;
  const std::string eta = d > 0 ? Clock(elapsed_seconds / static_cast<double>(d) * static_cast<double>(total_ - d)) : "?";
  return absl::StrFormat("\r[%s] %d/%d  %.1f tok/s  ETA %s ", bar, d, total_, rate, eta);
}

std::string Clock(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  return s >= 3600 ? absl::StrFormat("%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
                   : absl::StrFormat("%d:%02d", s / 60, s % 60);
}

}  // namespace tailor::batch
