// The limits a public endpoint needs (issue 15, item 5), exercised as a user meets them: HTTP
// requests against a real `tailor serve` process. Each limit has its flag, and exceeding it gets
// its status and a message naming the flag and the value: --max-prompt-tokens, --max-tokens-limit
// and --max-n (400), --request-timeout (408), --max-connections (503 with Retry-After). The API
// key is checked exactly and never appears on stderr. The servers run a stories260K package
// (ctx_len 512, native target) compiled by the executable.
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/serve_process.h"
#include "tests/test_util.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;
using testing_util::CommandResult;
using testing_util::RunCommand;
using testing_util::RunTailor;
using testing_util::ServeProcess;
using testing_util::TempDir;
using testing_util::WriteAll;

const std::string kShared = TAILOR_SHARED_DIR;
constexpr char kKey[] = "sk-limits-7f3a9c2e5b1d";

// stories260K.bin, ctx_len 512, at most 4 sequences running.
const std::string& Package() {
  static TempDir* tmp = new TempDir();
  static const std::string* path = [] {
    WriteAll(*tmp / "specs.json", R"({"specializations": [
        {"batch_size": "1", "seq_len": "16", "ctx_len": "512"},
        {"batch_size": "4", "seq_len": "1", "ctx_len": "512"}]})");
    const std::string out = (*tmp / "pkg").string();
    CommandResult r = RunTailor({"compile", "--model", kShared + "/models/stories260K/stories260K.bin", "--tokenizer",
                                 kShared + "/models/stories260K/tok512.bin", "--specializations",
                                 (*tmp / "specs.json").string(), "--out", out, "--compile-only", "--target", "native"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return new std::string(out);
  }();
  return *path;
}

Json Body(const httplib::Result& r) { return r ? Json::parse(r->body, nullptr, false) : Json(); }

class ServeLimits : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServeProcess({"--package", Package(), "--api-key", kKey, "--max-prompt-tokens", "20",
                                "--max-tokens-limit", "8", "--max-n", "2", "--http-threads", "2",
                                "--max-connections", "3"});
    ASSERT_GT(server_->port(), 0) << server_->stderr_text();
  }
  static void TearDownTestSuite() {
    if (server_) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->stderr_text();
    }
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }
  // stderr once the start-up lines after "listening" (limits, memory: the last) have arrived;
  // another thread drains it, so they may lag the port by milliseconds.
  static std::string StartUpLines() {
    std::string err = server_->stderr_text();
    for (int i = 0; i < 200 && err.find("tailor serve: memory:") == std::string::npos; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      err = server_->stderr_text();
    }
    return err;
  }

  static httplib::Result Post(const std::string& path, const Json& body, const std::string& key = kKey) {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(60, 0);
    if (!key.empty()) c.set_bearer_token_auth(key.c_str());
    return c.Post(path.c_str(), body.dump(), "application/json");
  }
  // A 400 naming `param`, whose message names `flag` and `value`.
  static void Expect400(const httplib::Result& r, const std::string& param, const std::string& flag,
                        const std::string& value) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << r->body;
    const Json j = Body(r);
    EXPECT_EQ(j["error"]["param"], param) << r->body;
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
    EXPECT_THAT(j["error"]["message"].get<std::string>(), AllOf(HasSubstr(flag), HasSubstr(value)));
  }

  static ServeProcess* server_;
};
ServeProcess* ServeLimits::server_ = nullptr;

TEST_F(ServeLimits, PromptTokens) {
  std::vector<int> prompt(21, 300);  // 21 tokens, one over --max-prompt-tokens 20
  prompt[0] = 1;
  Expect400(Post("/v1/completions", {{"prompt", prompt}, {"max_tokens", 2}}), "prompt", "--max-prompt-tokens", "20");
  Expect400(Post("/v1/chat/completions",
                 {{"messages", {{{"role", "user"}, {"content", "Once upon a time there was a little girl named Lily "
                                                               "who loved to play outside in the park"}}}}}),
            "messages", "--max-prompt-tokens", "20");
  prompt.pop_back();  // 20 tokens: accepted
  auto r = Post("/v1/completions", {{"prompt", prompt}, {"max_tokens", 2}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

TEST_F(ServeLimits, MaxTokensLimit) {
  Expect400(Post("/v1/completions", {{"prompt", "Once"}, {"max_tokens", 9}}), "max_tokens", "--max-tokens-limit", "8");
  Expect400(Post("/v1/chat/completions",
                 {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_completion_tokens", 100}}),
            "max_completion_tokens", "--max-tokens-limit", "8");
  // Chat without a limit would run to the end of the context: the server's limit caps it.
  auto r = Post("/v1/chat/completions",
                {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"ignore_eos", true}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Body(r)["usage"]["completion_tokens"], 8) << r->body;
  EXPECT_EQ(Body(r)["choices"][0]["finish_reason"], "length");
}

TEST_F(ServeLimits, MaxN) {
  Expect400(Post("/v1/completions", {{"prompt", "Once"}, {"n", 3}, {"max_tokens", 2}}), "n", "--max-n", "2");
  auto r = Post("/v1/completions", {{"prompt", "Once"}, {"n", 2}, {"max_tokens", 2}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Body(r)["choices"].size(), 2u);
}

// --http-threads 2 --max-connections 3: two connections served, one waiting; a fourth gets 503
// at once (JSON body, Retry-After, the flag named) instead of waiting. Once they close, requests
// are served again. A burst of clients over the cap: every one gets an answer, 200 or 503.
TEST_F(ServeLimits, MaxConnections) {
  std::vector<int> idle;
  for (int i = 0; i < 3; ++i) {
    // Sends nothing: holds its place (a worker or the queue) until closed or the keep-alive
    // timeout (2 s).
    idle.push_back(testing_util::ConnectLoopback(server_->port()));
    ASSERT_GE(idle.back(), 0);
  }
  httplib::Client c("127.0.0.1", server_->port());
  c.set_read_timeout(10, 0);
  c.set_bearer_token_auth(kKey);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = c.Get("/v1/models");
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_LT(waited, 1.5) << "answered at once, not after an idle connection timed out";
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  const Json j = Body(r);
  EXPECT_EQ(j["error"]["code"], "too_many_connections") << r->body;
  EXPECT_THAT(j["error"]["message"].get<std::string>(), AllOf(HasSubstr("--max-connections"), HasSubstr("3")));
  for (int fd : idle) close(fd);

  // Served again once they closed (the server notices within its keep-alive poll).
  int status = 0;
  for (int attempt = 0; attempt < 50 && status != 200; ++attempt) {
    httplib::Client again("127.0.0.1", server_->port());
    again.set_bearer_token_auth(kKey);
    auto ok = again.Get("/v1/models");
    status = ok ? ok->status : -1;
    if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(status, 200);

  // 16 clients at once against 3 places, streaming and not: each answered 200 or 503.
  std::vector<std::thread> clients;
  std::atomic<int> ok{0}, refused{0}, other{0};
  for (int i = 0; i < 16; ++i) {
    clients.emplace_back([&, i] {
      httplib::Client k("127.0.0.1", server_->port());
      k.set_read_timeout(30, 0);
      k.set_bearer_token_auth(kKey);
      const Json body = {{"prompt", "Once upon a time"}, {"max_tokens", 8}, {"stream", i % 2 == 0}};
      auto res = k.Post("/v1/completions", body.dump(), "application/json");
      if (res && res->status == 200) {
        ++ok;
      } else if (res && res->status == 503 && res->get_header_value("Retry-After") == "1") {
        ++refused;
      } else {
        ++other;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(other, 0);
  EXPECT_GE(ok, 1);
  EXPECT_EQ(ok + refused, 16);
}

// The start-up report of what the runtime holds: the package's weights, its KV pool, and how much
// of them the kernel backs with huge pages (a number, or "unknown" where /proc cannot tell).
TEST_F(ServeLimits, StartUpReportsMemoryAndHugePages) {
  std::smatch m;
  const std::regex line(R"(tailor serve: memory: weights ([0-9.]+) MiB, KV cache ([0-9.]+) MiB, on huge pages )"
                        R"(([0-9.]+ MiB|unknown) \(2 MiB pages\))");
  const std::string err = StartUpLines();
  ASSERT_TRUE(std::regex_search(err, m, line)) << err;
  const double weights_mib = static_cast<double>(fs::file_size(fs::path(Package()) / "weights.bin")) / 1048576.0;
  EXPECT_NEAR(std::stod(m[1].str()), weights_mib, 0.051);
  EXPECT_GT(std::stod(m[2].str()), 0.0);
}

// Wrong keys of every shape are refused (the comparison is exact whatever the length); the key
// never reaches stderr, whatever the requests did.
TEST_F(ServeLimits, ApiKeyCheckedAndNeverLogged) {
  const std::string key = kKey;
  for (const std::string& wrong : {std::string(), key.substr(0, key.size() - 1), key + "x",
                                   std::string(key.size(), 'a'), key.substr(0, key.size() - 1) + "!"}) {
    auto r = Post("/v1/completions", {{"prompt", "Once"}, {"max_tokens", 1}}, wrong);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401) << "'" << wrong << "'";
    EXPECT_THAT(r->body, Not(HasSubstr(key)));
  }
  auto r = Post("/v1/completions", {{"prompt", "Once"}, {"max_tokens", 1}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_THAT(StartUpLines(), AllOf(HasSubstr("API key required"), Not(HasSubstr(key))));

  // A mistyped flag with the key as its value: the error names the flag, not the value.
  CommandResult bad = RunTailor({"serve", "--package", Package(), "--apikey=" + key});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, AllOf(HasSubstr("--apikey"), Not(HasSubstr(key))));
}

// $TAILOR_API_KEY instead of --api-key (kept out of `ps`).
TEST(ServeLimitsEnv, ApiKeyFromEnvironment) {
  setenv("TAILOR_API_KEY", "sk-from-env-5d1c", 1);
  ServeProcess server({"--package", Package()});
  unsetenv("TAILOR_API_KEY");
  ASSERT_GT(server.port(), 0) << server.stderr_text();
  httplib::Client c("127.0.0.1", server.port());
  auto r = c.Get("/v1/models");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  r = c.Get("/v1/models", {{"Authorization", "Bearer sk-from-env-5d1c"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(server.Stop(), 0);
  EXPECT_THAT(server.stderr_text(), Not(HasSubstr("sk-from-env-5d1c")));
}

// --request-timeout: a request that runs longer is cancelled. Non-streamed: 408, code
// "request_timeout", naming the flag. Streamed: the stream ends with that error as its last
// event, then [DONE]. The KV blocks are freed either way (the server serves the next request).
TEST(ServeLimitsTimeout, LongRequestsEndWith408) {
  ServeProcess server({"--package", Package(), "--request-timeout", "0.01"});
  ASSERT_GT(server.port(), 0) << server.stderr_text();
  httplib::Client c("127.0.0.1", server.port());
  c.set_read_timeout(60, 0);
  // 16 choices of 500 tokens, 4 running at a time: far longer than 10 ms (0.7 s on 2 busy
  // cores), and than the 50 ms between checks of a non-streamed request.
  const Json long_request = {{"prompt", "Once"}, {"n", 16}, {"max_tokens", 500}, {"ignore_eos", true}};
  auto r = c.Post("/v1/completions", long_request.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408) << r->body;
  Json j = Body(r);
  EXPECT_EQ(j["error"]["code"], "request_timeout") << r->body;
  EXPECT_THAT(j["error"]["message"].get<std::string>(), AllOf(HasSubstr("--request-timeout"), HasSubstr("0.01")));

  Json streamed = long_request;
  streamed["stream"] = true;
  r = c.Post("/v1/completions", streamed.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);  // the headers went before the time ran out
  const std::string& sse = r->body;
  const size_t err = sse.rfind("data: {\"error\"");
  ASSERT_NE(err, std::string::npos) << sse.substr(sse.size() > 400 ? sse.size() - 400 : 0);
  EXPECT_THAT(sse.substr(err), AllOf(HasSubstr("request_timeout"), HasSubstr("data: [DONE]")));

  // A short request still completes, and nothing is left running.
  r = c.Post("/v1/completions", Json({{"prompt", "Once"}, {"max_tokens", 2}}).dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  r = c.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_THAT(r->body, HasSubstr("tailor_kv_blocks_used 0"));
  EXPECT_EQ(server.Stop(), 0) << server.stderr_text();
}

// Every limit is a flag shown in --help with its default; impossible values exit 2 naming it.
TEST(ServeLimitsFlags, HelpAndBadValues) {
  CommandResult help = RunTailor({"serve", "--help"});
  ASSERT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, AllOf(HasSubstr("--max-prompt-tokens"), HasSubstr("--max-tokens-limit"), HasSubstr("--max-n"),
                              HasSubstr("default 16"), HasSubstr("--request-timeout"), HasSubstr("default 600"),
                              HasSubstr("--max-connections"), HasSubstr("default 512"), HasSubstr("TAILOR_API_KEY")));
  for (const auto& [flag, value] : std::vector<std::pair<std::string, std::string>>{
           {"--max-connections", "0"}, {"--max-n", "0"}, {"--max-tokens-limit", "-1"}, {"--request-timeout", "-1"},
           {"--max-prompt-tokens", "0"}}) {
    CommandResult r = RunTailor({"serve", "--package", Package(), flag, value});
    EXPECT_EQ(r.exit_code, 2) << flag << " " << value << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(flag));
  }
  // More than the package's largest ctx_len (512) can never be used.
  CommandResult r = RunCommand({"/usr/bin/timeout", "60", TAILOR_BINARY, "serve", "--package", Package(), "--port", "0",
                                "--max-prompt-tokens", "513"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, AllOf(HasSubstr("--max-prompt-tokens 513"), HasSubstr("512")));
}

}  // namespace
}  // namespace tailor
