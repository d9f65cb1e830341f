#include "service/stop_strings.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"

namespace tailor::service {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stop_strings) {
  for (std::string& s : stop_strings) {
    if (s.empty()) continue;
    max_len_ = std::max(max_len_, s.size());
    stops_.push_back(std::move(s));
  }
}

StopStringMatcher::PushResult StopStringMatcher::Push(absl::string_view chunk) {
  PushResult result;
  if (stopped_ || finished_) return result;
  if (stops_.empty()) {
    result.text = std::string(chunk);
    return result;
  }
  std::string buffer = std::move(held_);
  held_.clear();
  const size_t old_size = buffer.size();
  buffer.append(chunk.data(), chunk.size());

  // Any complete occurrence ends inside the new chunk (the held text had none). Find the one that
  // ends first; ties go to the earliest start.
  size_t best_end = std::string::npos;
  size_t best_start = 0;
  const std::string* best = nullptr;
  for (const std::string& stop : stops_) {
    // Only occurrences ending after old_size are new; start the search where such could begin.
    const size_t from = old_size + 1 > stop.size() ? old_size + 1 - stop.size() : 0;
    const size_t pos = buffer.find(stop, from);
    if (pos == std::string::npos) continue;
    const size_t end = pos + stop.size();
    if (best == nullptr || end < best_end || (end == best_end && pos < best_start)) {
      best_end = end;
      best_start = pos;
      best = &stop;
    }
  }
  if (best != nullptr) {
    stopped_ = true;
    result.stopped = true;
    result.stop_string = *best;
    result.text = buffer.substr(0, best_start);
    return result;
  }

  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t hold = 0;
  for (size_t k = std::min(buffer.size(), max_len_ - 1); k > 0; --k) {
    const absl::string_view suffix(buffer.data() + buffer.size() - k, k);
    const bool is_prefix = std::any_of(stops_.begin(), stops_.end(), [&](const std::string& s) {
      return s.size() > k && absl::StartsWith(s, suffix);
    });
    if (is_prefix) {
      hold = k;
      break;
    }
  }
  held_ = buffer.substr(buffer.size() - hold);
  buffer.resize(buffer.size() - hold);
  result.text = std::move(buffer);
  return result;
}

std::string StopStringMatcher::Finish() {
  std::string out = std::move(held_);
  held_.clear();
  if (stopped_ || finished_) out.clear();
  finished_ = true;
  return out;
}

}  // namespace tailor::service
