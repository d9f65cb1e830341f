// `tailor batch`: runs an OpenAI Batch API input file through the serving session and appends
// one result line per request to the output (files: api/batch_io.h).
//
// Result lines: {"id": "batch_req_...", "custom_id", "response": {"status_code", "request_id",
// "body"} | null, "error": {"code", "message"[, "line"]} | null}. A request that ran has a 200
// response and "error": null; a body the API refuses (or that fails in the engine) has its
// status code and OpenAI error body in "response" and the same error in "error"; a line that is
// not a request envelope (invalid JSON, no custom_id, method, url) has "response": null.
//
// Requests run concurrently (continuous batching in the engine): `--max-in-flight` worker
// threads each wait on one request (ServingSession::Complete). Results are written in the order
// they finish. Progress (done/total, tokens/s, ETA) goes to stderr when it is a terminal.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <limits>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api/batch_io.h"
#include "api/batch_progress.h"
#include "api/commands.h"
#include "api/flags.h"
#include "api/serving_session.h"
#include "common/status_macros.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

const std::vector<FlagSpec>& BatchFlags() {
  static const auto* specs = new std::vector<FlagSpec>{
      {"package", true, {}, "compiled package (default: the package setup.sh built)"},
      {"input", true, {}, "OpenAI batch input (JSONL: custom_id, method, url, body)"},
      {"output", true, {}, "results (JSONL); results already there are kept and their requests skipped"},
      {"kv-cache-mb", true, {}, "KV cache size in MiB (default: enough for the largest specialization)"},
      {"max-in-flight", true, {}, "requests submitted at once (default: twice the largest batch_size)"},
      {"admission", true, {}, "the order requests start in: longest-first (default: the largest max_tokens "
                              "first, so the longest do not decode alone at the end) or arrival (the input's)"},
  };
  return *specs;
}

struct BatchArgs {
  std::string package;
  fs::path input;
  fs::path output;
  int64_t kv_cache_mb = 0;
  int64_t max_in_flight = 0;  // 0: 2 x max_running
  AdmissionOrder admission = AdmissionOrder::kLongestFirst;
  uint64_t seed = 0;
};

absl::StatusOr<BatchArgs> ParseBatchArgs(const std::vector<std::string>& args, const Environment& env) {
  TAILOR_ASSIGN_OR_RETURN(ParsedFlags flags, ParseFlags(BatchFlags(), args));
  if (!flags.positional().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", flags.positional()[0], "'"));
  }
  BatchArgs a;
  if (!flags.Has("input") || !flags.Has("output")) {
    return absl::InvalidArgumentError(absl::StrCat("batch needs --input FILE and --output FILE\n",
                                                   FlagsHelp(BatchFlags())));
  }
  a.input = *flags.Get("input");
  a.output = *flags.Get("output");
  std::error_code ec;
  if (fs::exists(a.output, ec) && fs::equivalent(a.input, a.output, ec)) {
    return absl::InvalidArgumentError("--output must not be the --input file");
  }
  TAILOR_ASSIGN_OR_RETURN(a.package, PackageOrDefault(flags.Get("package"), "--package DIR"));
  TAILOR_ASSIGN_OR_RETURN(a.kv_cache_mb, flags.GetInt("kv-cache-mb", 0, 1, int64_t{1} << 30));
  TAILOR_ASSIGN_OR_RETURN(a.max_in_flight, flags.GetInt("max-in-flight", 0, 1, 4096));
  if (auto v = flags.Get("admission")) {
    auto order = ParseAdmissionOrder(*v);
    if (!order.ok()) return absl::InvalidArgumentError(absl::StrCat("--admission: ", order.status().message()));
    a.admission = *order;
  }
  a.seed = env.random_seed;
  return a;
}

// Random ids for result lines. Thread-safe.
class IdSource {
 public:
  explicit IdSource(uint64_t seed) : rng_(seed ^ 0xba7c4ba7c4ull) {}
  std::string Next(const char* prefix) {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t hi = rng_();
    const uint64_t lo = rng_();
    return absl::StrFormat("%s%016x%016x", prefix, hi, lo);
  }

 private:
  std::mutex mu_;
  std::mt19937_64 rng_;
};

Json CustomId(const batch::InputLine& line) { return line.custom_id ? Json(*line.custom_id) : Json(nullptr); }

// A line that is not a request envelope.
Json EnvelopeErrorResult(const batch::InputLine& line, IdSource& ids) {
  Json r;
  r["id"] = ids.Next("batch_req_");
  r["custom_id"] = CustomId(line);
  r["response"] = nullptr;
  r["error"] = Json{{"code", line.error_code}, {"message", line.error_message}, {"line", line.line_number}};
  return r;
}

// A request the API answered with an error.
Json ApiErrorResult(const batch::InputLine& line, const service::ApiError& error, IdSource& ids) {
  Json r;
  r["id"] = ids.Next("batch_req_");
  r["custom_id"] = CustomId(line);
  r["response"] = Json{{"status_code", error.http_status},
                       {"request_id", ids.Next("req_")},
                       {"body", Json::parse(error.ToJson(), nullptr, false)}};
  r["error"] = Json{{"code", error.code.empty() ? error.type : error.code},
                    {"message", absl::StrCat("line ", line.line_number, ": ", error.message)}};
  return r;
}

Json SuccessResult(const batch::InputLine& line, service::ResponseJson body, IdSource& ids) {
  Json r;
  r["id"] = ids.Next("batch_req_");
  r["custom_id"] = CustomId(line);
  r["response"] = Json{{"status_code", 200}, {"request_id", ids.Next("req_")}, {"body", std::move(body)}};
  r["error"] = nullptr;
  return r;
}

absl::Status Batch(const BatchArgs& args) {
  TAILOR_ASSIGN_OR_RETURN(std::vector<batch::InputLine> lines, batch::ReadInput(args.input));
  TAILOR_ASSIGN_OR_RETURN(batch::ResumeInfo resume, batch::PrepareOutput(args.output));
  if (resume.truncated_torn_line) {
    std::cerr << "tailor: " << args.output.string() << ": removed a torn last line; its request runs again\n";
  }
  std::vector<const batch::InputLine*> todo;
  for (const batch::InputLine& line : lines) {
    if (!resume.done.contains(line.key)) todo.push_back(&line);
  }
  if (resume.kept_lines > 0) {
    std::cerr << "tailor: resuming: " << lines.size() - todo.size() << " of " << lines.size()
              << " requests already have results in " << args.output.string() << "\n";
  }

  ServingOptions so;
  so.package_dir = args.package;
  so.kv_cache_mb = args.kv_cache_mb;
  so.seed = args.seed;
  so.admission = args.admission;
  so.log = [](const std::string& m) { std::cerr << "tailor: " << m << "\n"; };
  TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<ServingSession> session, ServingSession::Open(so));
  TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<batch::ResultWriter> writer, batch::ResultWriter::Open(args.output));
  IdSource ids(args.seed);
  // Tokens/s from the engine's count of generated tokens, as they are generated.
  ServingSession* const counted = session.get();
  batch::BatchProgress progress(static_cast<int64_t>(todo.size()),
                                [counted] { return counted->stats().generated_tokens; });
  const auto start = std::chrono::steady_clock::now();
  const auto elapsed_seconds = [&start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  std::atomic<int64_t> completion_tokens{0};  // from the responses' usage, for the summary

  std::mutex error_mu;
  absl::Status write_error;  // the first failed write; stops the run
  std::atomic<bool> stop{false};
  auto write = [&](const Json& result, bool failed) {
    absl::Status s = writer->Append(result);
    if (!s.ok()) {
      std::lock_guard<std::mutex> lock(error_mu);
      if (write_error.ok()) write_error = s;
      stop = true;
      return;
    }
    progress.Finished(failed);
  };

  // Lines that cannot run are answered at once; the rest are parsed and queued.
  struct Job {
    const batch::InputLine* line;
    service::OpenAiRequest request;
  };
  std::vector<Job> jobs;
  for (const batch::InputLine* line : todo) {
    if (!line->endpoint) {
      write(EnvelopeErrorResult(*line, ids), true);
      continue;
    }
    service::ApiResult<service::OpenAiRequest> request =
        service::ParseOpenAiRequestJson(*line->endpoint, line->body, session->parse_limits());
    if (!request.ok()) {
      write(ApiErrorResult(*line, request.error(), ids), true);
      continue;
    }
    request->stream = false;  // a batch result holds the whole response body
    jobs.push_back({line, std::move(*request)});
  }

  if (args.admission == AdmissionOrder::kLongestFirst) {
    // The most tokens first (no max_tokens: until the context is full); ties in input order.
    // Results are written as they finish, each with its custom_id, whatever the order.
    auto work = [](const Job& j) { return j.request.sampling.max_tokens.value_or(std::numeric_limits<int32_t>::max()); };
    std::stable_sort(jobs.begin(), jobs.end(), [&](const Job& a, const Job& b) { return work(a) > work(b); });
  }
  std::atomic<size_t> next{0};
  auto worker = [&] {
    while (!stop.load()) {
      const size_t i = next.fetch_add(1);
      if (i >= jobs.size()) return;
      const Job& job = jobs[i];
      service::ApiResult<service::ResponseJson> body = session->Complete(job.request);
      if (!body.ok()) {
        write(ApiErrorResult(*job.line, body.error(), ids), true);
        continue;
      }
      if (body->contains("usage")) {
        completion_tokens += (*body)["usage"].value("completion_tokens", int64_t{0});
      }
      write(SuccessResult(*job.line, std::move(*body), ids), false);
    }
  };
  const int64_t in_flight = args.max_in_flight > 0 ? args.max_in_flight : 2 * int64_t{session->max_running()};
  const size_t num_workers = std::min<size_t>(jobs.size(), static_cast<size_t>(std::max<int64_t>(1, in_flight)));
  std::vector<std::thread> workers;
  for (size_t w = 0; w < num_workers; ++w) workers.emplace_back(worker);

  const bool show_progress = isatty(STDERR_FILENO) && progress.total() > 0;
  while (progress.done() < progress.total() && !stop.load()) {
    if (show_progress) std::cerr << progress.Line(elapsed_seconds()) << std::flush;
    std::this_thread::sleep_for(std::chrono::milliseconds(show_progress ? 200 : 50));
  }
  for (std::thread& t : workers) t.join();
  if (show_progress) std::cerr << progress.Line(elapsed_seconds()) << "\n";
  session->Shutdown(ShutdownMode::kDrain);
  TAILOR_RETURN_IF_ERROR(writer->Close());
  {
    std::lock_guard<std::mutex> lock(error_mu);
    TAILOR_RETURN_IF_ERROR(write_error);
  }
  const double elapsed = elapsed_seconds();
  std::cerr << absl::StrFormat("batch: %d requests (%d failed) in %.2f s; %d tokens generated, %.1f tok/s; "
                               "results in %s\n",
                               progress.done(), progress.failed(), elapsed, completion_tokens.load(),
                               elapsed > 0 ? completion_tokens.load() / elapsed : 0.0,
                               args.output.string());
  // Which specializations ran the steps: batching shows as steps of batch_size > 1.
  const SchedulerStats stats = session->stats();
  const auto specs = session->runtime().specializations();
  std::string use;
  for (size_t i = 0; i < specs.size() && i < stats.steps_per_spec.size(); ++i) {
    absl::StrAppend(&use, i == 0 ? "" : ", ", specs[i].Name(), " ", stats.steps_per_spec[i]);
  }
  std::cerr << "batch: steps per specialization: " << use << "\n";
  return absl::OkStatus();
}

}  // namespace

int RunBatch(const std::vector<std::string>& args, const Environment& env) {
  if (std::find(args.begin(), args.end(), "--help") != args.end() ||
      std::find(args.begin(), args.end(), "-h") != args.end()) {
    std::cout << "usage: tailor batch [--package DIR] --input FILE --output FILE [options]\n"
              << FlagsHelp(BatchFlags());
    return 0;
  }
  auto parsed = ParseBatchArgs(args, env);
  if (!parsed.ok()) return ReportError(parsed.status());
  absl::Status s = Batch(*parsed);
  if (!s.ok()) return ReportError(s);
  return 0;
}

}  // namespace tailor
