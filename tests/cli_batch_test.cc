// `tailor batch` end to end on a small stories260K package: valid and invalid lines, greedy bodies
// equal to `tailor generate`, duplicate custom_ids refused, and resuming after SIGKILL or a torn
// last line with every custom_id exactly once.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#if __has_include(<pty.h>)
#include <poll.h>
#include <pty.h>
#define TAILOR_TEST_HAVE_PTY 1
#endif

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/serve_package.h"
#include "tests/test_util.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing_util::CommandResult;
using testing_util::ReadAll;
using testing_util::RunTailor;
using testing_util::ServePackage;
using testing_util::TempDir;
using testing_util::WriteAll;
using Json = nlohmann::json;

std::string Package() {
  std::string error;
  std::string dir = ServePackage(&error);
  EXPECT_FALSE(dir.empty()) << error;
  return dir;
}

std::string CompletionLine(const std::string& id, const std::string& prompt, int max_tokens) {
  return Json{{"custom_id", id},
              {"method", "POST"},
              {"url", "/v1/completions"},
              {"body", {{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}}}}
             .dump() + "\n";
}

// Result lines by key (custom_id, or "line N" for lines without one); fails on a duplicate.
std::map<std::string, Json> Results(const fs::path& output) {
  std::map<std::string, Json> results;
  std::istringstream in(ReadAll(output));
  for (std::string line; std::getline(in, line);) {
    Json j = Json::parse(line, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << line;
    if (j.is_discarded()) continue;
    const std::string key = j["custom_id"].is_string() ? j["custom_id"].get<std::string>()
                                                       : "line " + std::to_string(j["error"]["line"].get<int>());
    EXPECT_EQ(results.count(key), 0u) << "duplicate result for " << key;
    results[key] = j;
  }
  return results;
}

int64_t CountLines(const fs::path& p) {
  const std::string s = ReadAll(p);
  return std::count(s.begin(), s.end(), '\n');
}

const char* const kPrompts[] = {"Once upon a time", "The cat sat", "Lily went to the park", "One day, a big dog",
                                "Tom had a red ball"};

TEST(CliBatch, ValidAndInvalidLines) {
  TempDir tmp;
  std::string input;
  for (int i = 0; i < 5; ++i) input += CompletionLine(absl::StrCat("ok-", i), kPrompts[i], 16);
  input += R"({"custom_id": "chat", "method": "POST", "url": "/v1/chat/completions", "body": )"
           R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, "temperature": 0}})" "\n";
  input += "this is not json\n";                                                      // line 7
  input += R"({"method": "POST", "url": "/v1/completions", "body": {"prompt": "x"}})" "\n";  // line 8
  input += R"({"custom_id": "bad-url", "method": "POST", "url": "/v1/embeddings", "body": {"input": "x"}})" "\n";
  input += R"({"custom_id": "bad-body", "method": "POST", "url": "/v1/completions", )"
           R"("body": {"prompt": "x", "temperature": 9}})" "\n";
  input += "\n";
  input += R"({"custom_id": "bad-method", "method": "GET", "url": "/v1/completions", "body": {}})" "\n";
  input += CompletionLine("too-long", "Once upon a time", 100000);  // more than the context holds
  WriteAll(tmp / "in.jsonl", input);
  CommandResult r = RunTailor({"batch", "--package", Package(), "--input", (tmp / "in.jsonl").string(), "--output",
                               (tmp / "out.jsonl").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // No progress bar when stderr is not a terminal.
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("ETA")));
  std::map<std::string, Json> results = Results(tmp / "out.jsonl");
  EXPECT_EQ(results.size(), 12u);
  for (int i = 0; i < 5; ++i) {
    const Json& res = results["ok-" + std::to_string(i)];
    ASSERT_EQ(res["response"]["status_code"], 200) << res;
    EXPECT_TRUE(res["error"].is_null());
    EXPECT_TRUE(res["id"].get<std::string>().starts_with("batch_req_"));
    CommandResult g = RunTailor({"generate", "--package", Package(), "--prompt", kPrompts[i], "--max-tokens", "16"});
    ASSERT_EQ(g.exit_code, 0) << g.err;
    EXPECT_EQ(res["response"]["body"]["choices"][0]["text"], g.out) << kPrompts[i];
    EXPECT_EQ(res["response"]["body"]["usage"]["completion_tokens"], 16);
  }
  EXPECT_EQ(results["chat"]["response"]["body"]["object"], "chat.completion");
  EXPECT_EQ(results["line 7"]["error"]["code"], "invalid_json");
  EXPECT_EQ(results["line 8"]["error"]["code"], "missing_custom_id");
  EXPECT_EQ(results["bad-url"]["error"]["code"], "invalid_url");
  EXPECT_TRUE(results["bad-url"]["response"].is_null());
  EXPECT_EQ(results["bad-body"]["response"]["status_code"], 400);
  EXPECT_EQ(results["bad-body"]["response"]["body"]["error"]["param"], "temperature");
  EXPECT_FALSE(results["bad-body"]["error"].is_null());
  EXPECT_EQ(results["bad-method"]["error"]["code"], "invalid_method");
  EXPECT_EQ(results["too-long"]["response"]["status_code"], 400);
  EXPECT_EQ(results["too-long"]["response"]["body"]["error"]["param"], "max_tokens");

  // Run again: everything is already there; nothing is added.
  r = RunTailor({"batch", "--package", Package(), "--input", (tmp / "in.jsonl").string(), "--output",
                 (tmp / "out.jsonl").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(CountLines(tmp / "out.jsonl"), 12);
}

TEST(CliBatch, UsageErrors) {
  TempDir tmp;
  WriteAll(tmp / "dup.jsonl", CompletionLine("same", "a", 2) + CompletionLine("other", "b", 2) +
                                  CompletionLine("same", "c", 2));
  CommandResult r = RunTailor({"batch", "--package", Package(), "--input", (tmp / "dup.jsonl").string(), "--output",
                               (tmp / "out.jsonl").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, AllOf(HasSubstr("\"same\""), HasSubstr("lines 1 and 3")));
  EXPECT_FALSE(fs::exists(tmp / "out.jsonl"));
  r = RunTailor({"batch", "--package", Package(), "--input", (tmp / "dup.jsonl").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--output"));
  r = RunTailor({"batch", "--package", Package(), "--input", (tmp / "none.jsonl").string(), "--output",
                 (tmp / "out.jsonl").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("none.jsonl"));
  // A results file with a damaged line before the last is not resumed over.
  WriteAll(tmp / "in.jsonl", CompletionLine("x", "a", 2));
  WriteAll(tmp / "damaged.jsonl", "garbage\n{\"custom_id\": \"y\", \"response\": null, \"error\": null}\n");
  r = RunTailor({"batch", "--package", Package(), "--input", (tmp / "in.jsonl").string(), "--output",
                 (tmp / "damaged.jsonl").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("line 1"));
}

// The custom_ids of a results file, in its line order.
std::vector<std::string> ResultOrder(const fs::path& output) {
  std::vector<std::string> ids;
  std::istringstream in(ReadAll(output));
  for (std::string line; std::getline(in, line);) ids.push_back(Json::parse(line)["custom_id"].get<std::string>());
  return ids;
}

// With one request in flight, results come in the order requests start: the largest max_tokens
// first by default (ties in input order), the input's order with --admission arrival. The
// responses are the same either way.
TEST(CliBatch, LongestFirstStartsTheLargestMaxTokensFirst) {
  TempDir tmp;
  WriteAll(tmp / "in.jsonl", CompletionLine("a", kPrompts[0], 2) + CompletionLine("b", kPrompts[1], 12) +
                                 CompletionLine("c", kPrompts[2], 6) + CompletionLine("d", kPrompts[3], 12));
  auto run = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> args = {"batch", "--package", Package(), "--input", (tmp / "in.jsonl").string(),
                                     "--output", (tmp / out).string(), "--max-in-flight", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunTailor(args);
  };
  CommandResult r = run("longest.jsonl", {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ResultOrder(tmp / "longest.jsonl"), (std::vector<std::string>{"b", "d", "c", "a"}));
  r = run("arrival.jsonl", {"--admission", "arrival"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ResultOrder(tmp / "arrival.jsonl"), (std::vector<std::string>{"a", "b", "c", "d"}));
  std::map<std::string, Json> longest = Results(tmp / "longest.jsonl"), arrival = Results(tmp / "arrival.jsonl");
  for (const char* id : {"a", "b", "c", "d"}) {
    EXPECT_EQ(longest[id]["response"]["body"]["choices"][0]["text"],
              arrival[id]["response"]["body"]["choices"][0]["text"]) << id;
  }
  r = run("bad.jsonl", {"--admission", "shortest"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, AllOf(HasSubstr("--admission"), HasSubstr("\"shortest\""), HasSubstr("longest-first")));
}

TEST(CliBatch, KilledRunResumesWithEveryRequestOnce) {
  TempDir tmp;
  constexpr int kRequests = 48;
  std::string input;
  for (int i = 0; i < kRequests; ++i) {
    input += CompletionLine(absl::StrCat("r", i), absl::StrCat(kPrompts[i % 5], " ", i), 120);
  }
  WriteAll(tmp / "in.jsonl", input);
  const fs::path out = tmp / "out.jsonl";
  const std::string package = Package();
  // Start the batch, wait until a few results exist (polling the file), then SIGKILL it.
  pid_t pid = fork();
  if (pid == 0) {
    int null_fd = open("/dev/null", O_WRONLY);
    dup2(null_fd, 1);
    dup2(null_fd, 2);
    execl(TAILOR_BINARY, TAILOR_BINARY, "batch", "--package", package.c_str(), "--input",
          (tmp / "in.jsonl").c_str(), "--output", out.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  ASSERT_GT(pid, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (CountLines(out) < 4 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the batch finished before it could be killed";
  const int64_t before = CountLines(out);
  EXPECT_GE(before, 4);
  EXPECT_LT(before, kRequests);

  CommandResult r = RunTailor({"batch", "--package", package, "--input", (tmp / "in.jsonl").string(), "--output",
                               out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("resuming"));
  // Continuous batching: decode steps ran several sequences at once (b4_s1_c512).
  EXPECT_THAT(r.err, ::testing::ContainsRegex("b4_s1_c512 [1-9]"));
  std::map<std::string, Json> results = Results(out);
  ASSERT_EQ(results.size(), static_cast<size_t>(kRequests));
  for (const auto& [id, res] : results) EXPECT_EQ(res["response"]["status_code"], 200) << id;

  // Tear the last line as a kill during a write would: it is truncated away and redone.
  std::string data = ReadAll(out);
  const size_t last_start = data.rfind('\n', data.size() - 2) + 1;
  const std::string last = data.substr(last_start);
  const std::string torn_id = Json::parse(last)["custom_id"];
  const std::string expected_text = Json::parse(last)["response"]["body"]["choices"][0]["text"];
  WriteAll(out, data.substr(0, last_start) + last.substr(0, last.size() / 2));
  r = RunTailor({"batch", "--package", package, "--input", (tmp / "in.jsonl").string(), "--output", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("torn"));
  results = Results(out);
  ASSERT_EQ(results.size(), static_cast<size_t>(kRequests));
  EXPECT_EQ(results[torn_id]["response"]["body"]["choices"][0]["text"], expected_text);  // greedy: the same
  EXPECT_EQ(CountLines(out), kRequests);
}

#ifdef TAILOR_TEST_HAVE_PTY
TEST(CliBatch, ProgressOnATerminal) {
  TempDir tmp;
  std::string input;
  for (int i = 0; i < 6; ++i) input += CompletionLine(absl::StrCat("p", i), kPrompts[i % 5], 8);
  WriteAll(tmp / "in.jsonl", input);
  const std::string package = Package();
  int master = -1;
  pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  if (pid == 0) {
    execl(TAILOR_BINARY, TAILOR_BINARY, "batch", "--package", package.c_str(), "--input",
          (tmp / "in.jsonl").c_str(), "--output", (tmp / "out.jsonl").c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  ASSERT_GT(pid, 0);
  std::string output;
  char buf[4096];
  while (true) {
    pollfd fd = {master, POLLIN, 0};
    if (poll(&fd, 1, 60000) <= 0) break;
    const ssize_t n = read(master, buf, sizeof buf);
    if (n <= 0) break;
    output.append(buf, static_cast<size_t>(n));
  }
  close(master);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << output;
  EXPECT_THAT(output, AllOf(HasSubstr("6/6"), HasSubstr("tok/s"), HasSubstr("ETA")));
  EXPECT_EQ(CountLines(tmp / "out.jsonl"), 6);
}
#endif

}  // namespace
}  // namespace tailor
