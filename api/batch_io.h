// Files of `tailor batch`: the OpenAI Batch API input (JSONL, one request per line:
// {"custom_id", "method": "POST", "url": "/v1/completions" | "/v1/chat/completions", "body"})
// and the results file, which is append-only and resumable:
//   - every result is one line, written whole by one write() (and fsynced every few lines), so a
//     kill leaves at most a torn last line;
//   - on start, the existing results are read; a torn last line (no newline, or not a result
//     object) is truncated away and its request redone; the others are skipped.
// A result line is keyed by its custom_id; a line of the input whose custom_id cannot be read is
// keyed by its line number (its result line has "custom_id": null and "error": {"line": N}).
#ifndef TAILOR_API_BATCH_IO_H_
#define TAILOR_API_BATCH_IO_H_

#include <cstdint>
#include <filesystem>
#include <istream>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "service/openai_request.h"

namespace tailor::batch {

// One non-blank line of the input.
struct InputLine {
  int64_t line_number = 0;               // 1-based
  std::optional<std::string> custom_id;  // nullopt when none could be read
  std::string key;                       // ResultKey(custom_id, line_number)
  // Set when the line is a well-formed request envelope (its body is validated later).
  std::optional<service::Endpoint> endpoint;
  nlohmann::json body;
  // Otherwise: why the line cannot run ("invalid_json", "missing_custom_id", "invalid_method",
  // "invalid_url", "invalid_body") and a message naming the line and field.
  std::string error_code;
  std::string error_message;
};

// "id:" + custom_id, or "line:" + N without one.
std::string ResultKey(const std::optional<std::string>& custom_id, int64_t line_number);

// Reads and checks every line of `path`. Bad lines become InputLines with an error; a custom_id
// used twice is refused (InvalidArgument naming the id and both lines); an unreadable file is
// NotFound naming the path.
absl::StatusOr<std::vector<InputLine>> ReadInput(const std::filesystem::path& path);
// The same over a stream of JSONL; `source` names it in errors.
absl::StatusOr<std::vector<InputLine>> ReadInput(std::istream& in, const std::string& source);

struct ResumeInfo {
  absl::flat_hash_set<std::string> done;  // keys of the results already written
  int64_t kept_lines = 0;
  bool truncated_torn_line = false;
};

// Reads the results already in `path` (a missing file is an empty one) and truncates a torn last
// line away. FailedPrecondition naming the line when an earlier line is not a result.
absl::StatusOr<ResumeInfo> PrepareOutput(const std::filesystem::path& path);

// Appends result lines. Thread-safe. Each line (JSON + '\n') is one write() call; the file is
// fsynced after every `sync_every` lines or `sync_seconds`, and on Close().
class ResultWriter {
 public:
  static absl::StatusOr<std::unique_ptr<ResultWriter>> Open(const std::filesystem::path& path);
  ~ResultWriter();  // Close()
  ResultWriter(const ResultWriter&) = delete;
  ResultWriter& operator=(const ResultWriter&) = delete;

  absl::Status Append(const nlohmann::ordered_json& result);
  absl::Status Close();

 private:
  ResultWriter(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  std::mutex mu_;
  int fd_;  // owned; -1 once closed
  std::filesystem::path path_;
  int64_t unsynced_ = 0;
  double last_sync_ = 0;  // steady-clock seconds
};

}  // namespace tailor::batch

#endif  // TAILOR_API_BATCH_IO_H_
