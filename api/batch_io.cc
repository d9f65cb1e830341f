#include "api/batch_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace tailor::batch {
namespace {

namespace fs = std::filesystem;

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string ErrnoText() { return std::strerror(errno); }

// The key of a result line, or nullopt if `line` is not a result object.
std::optional<std::string> KeyOfResult(const std::string& line) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("custom_id")) return std::nullopt;
  const nlohmann::json& id = j["custom_id"];
  if (id.is_string()) return ResultKey(id.get<std::string>(), 0);
  if (id.is_null() && j.contains("error") && j["error"].is_object() && j["error"].contains("line") &&
      j["error"]["line"].is_number_integer()) {
    return ResultKey(std::nullopt, j["error"]["line"].get<int64_t>());
  }
  return std::nullopt;
}

void ParseEnvelope(const std::string& text, InputLine& line) {
  const std::string where = absl::StrCat("line ", line.line_number);
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    line.error_code = "invalid_json";
    line.error_message = absl::StrCat(where, ": not valid JSON");
    return;
  }
  if (!j.is_object()) {
    line.error_code = "invalid_json";
    line.error_message = absl::StrCat(where, ": expected a JSON object");
    return;
  }
  if (j.contains("custom_id") && j["custom_id"].is_string() && !j["custom_id"].get<std::string>().empty()) {
    line.custom_id = j["custom_id"].get<std::string>();
    line.key = ResultKey(line.custom_id, line.line_number);
  } else {
    line.error_code = "missing_custom_id";
    line.error_message = absl::StrCat(where, ": \"custom_id\" must be a non-empty string");
    return;
  }
  const std::string method = j.contains("method") && j["method"].is_string() ? j["method"].get<std::string>() : "";
  if (method != "POST") {
    line.error_code = "invalid_method";
    line.error_message = absl::StrCat(where, ": \"method\" must be \"POST\"");
    return;
  }
  const std::string url = j.contains("url") && j["url"].is_string() ? j["url"].get<std::string>() : "";
  if (url == "/v1/completions") {
    line.endpoint = service::Endpoint::kCompletions;
  } else if (url == "/v1/chat/completions") {
    line.endpoint = service::Endpoint::kChatCompletions;
  } else {
    line.error_code = "invalid_url";
    line.error_message = absl::StrCat(where, ": \"url\" must be \"/v1/completions\" or \"/v1/chat/completions\"",
                                      url.empty() ? "" : absl::StrCat(", not \"", url, "\""));
    return;
  }
  if (!j.contains("body") || !j["body"].is_object()) {
    line.endpoint.reset();
    line.error_code = "invalid_body";
    line.error_message = absl::StrCat(where, ": \"body\" must be a JSON object");
    return;
  }
  line.body = std::move(j["body"]);
}

}  // namespace

std::string ResultKey(const std::optional<std::string>& custom_id, int64_t line_number) {
  return custom_id ? absl::StrCat("id:", *custom_id) : absl::StrCat("line:", line_number);
}

absl::StatusOr<std::vector<InputLine>> ReadInput(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("--input ", path.string(), ": cannot open"));
  return ReadInput(in, path.string());
}

absl::StatusOr<std::vector<InputLine>> ReadInput(std::istream& in, const std::string& source) {
  std::vector<InputLine> lines;
  absl::flat_hash_map<std::string, int64_t> first_line;  // custom_id -> line
  std::string text;
  for (int64_t number = 1; std::getline(in, text); ++number) {
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") == std::string::npos) continue;
    InputLine line;
    line.line_number = number;
    ParseEnvelope(text, line);
    if (line.custom_id) {
      auto [it, inserted] = first_line.emplace(*line.custom_id, number);
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--input ", source, ": custom_id \"", *line.custom_id, "\" appears twice (lines ", it->second,
            " and ", number, "); every request needs its own custom_id"));
      }
    } else {
      line.key = ResultKey(std::nullopt, number);
    }
    lines.push_back(std::move(line));
  }
  if (in.bad()) return absl::InternalError(absl::StrCat("--input ", source, ": read error"));
  return lines;
}

absl::StatusOr<ResumeInfo> PrepareOutput(const fs::path& path) {
  ResumeInfo info;
  std::error_code ec;
  if (!fs::exists(path, ec)) return info;
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::FailedPreconditionError(absl::StrCat("--output ", path.string(), ": cannot read"));
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  size_t pos = 0;
  size_t good_end = 0;  // bytes of whole result lines
  int64_t number = 0;
  while (pos < data.size()) {
    ++number;
    const size_t newline = data.find('\n', pos);
    const bool last = newline == std::string::npos || newline + 1 == data.size();
    const std::string line = data.substr(pos, newline == std::string::npos ? std::string::npos : newline - pos);
    std::optional<std::string> key;
    if (newline != std::string::npos) key = KeyOfResult(line);
    if (!key) {
      if (line.find_first_not_of(" \t\r") == std::string::npos && newline != std::string::npos) {
        pos = newline + 1;  // a blank line: harmless
        good_end = pos;
        continue;
      }
      if (!last) {
        return absl::FailedPreconditionError(absl::StrCat(
            "--output ", path.string(), ": line ", number,
            " is not a batch result line; not resuming over it (move the file away to start over)"));
      }
      info.truncated_torn_line = true;
      break;
    }
    info.done.insert(*key);
    ++info.kept_lines;
    pos = newline + 1;
    good_end = pos;
  }
  if (good_end < data.size()) {
    fs::resize_file(path, good_end, ec);
    if (ec) {
      return absl::InternalError(absl::StrCat("--output ", path.string(), ": cannot truncate the torn last line: ",
                                              ec.message()));
    }
    info.truncated_torn_line = true;
  }
  return info;
}

absl::StatusOr<std::unique_ptr<ResultWriter>> ResultWriter::Open(const fs::path& path) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InvalidArgumentError(absl::StrCat("--output ", path.string(), ": ", ErrnoText()));
  std::unique_ptr<ResultWriter> writer(new ResultWriter(fd, path));
  writer->last_sync_ = NowSeconds();
  return writer;
}

ResultWriter::~ResultWriter() { (void)Close(); }

absl::Status ResultWriter::Append(const nlohmann::ordered_json& result) {
  std::string line = result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line += '\n';
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) return absl::FailedPreconditionError("results file closed");
  size_t done = 0;
  while (done < line.size()) {  // one write() for a regular file; the loop covers short writes
    const ssize_t n = write(fd_, line.data() + done, line.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("--output ", path_.string(), ": write: ", ErrnoText()));
    }
    done += static_cast<size_t>(n);
  }
  ++unsynced_;
  const double now = NowSeconds();
  if (unsynced_ >= 64 || now - last_sync_ >= 1.0) {
    if (fdatasync(fd_) != 0) {
      return absl::InternalError(absl::StrCat("--output ", path_.string(), ": fsync: ", ErrnoText()));
    }
    unsynced_ = 0;
    last_sync_ = now;
  }
  return absl::OkStatus();
}

absl::Status ResultWriter::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) return absl::OkStatus();
  absl::Status status;
  if (fsync(fd_) != 0) {
    status = absl::InternalError(absl::StrCat("--output ", path_.string(), ": fsync: ", ErrnoText()));
  }
  close(fd_);
  fd_ = -1;
  return status;
}

}  // namespace tailor::batch
