// Readiness, graceful drain and client disconnects of the HTTP front end:
//   - /health is 503 {"status": "loading"} until a session is set, and other routes are 503;
//   - SIGTERM: /health 503 "draining", new requests refused, requests in flight (queued ones
//     included) complete, exit 0; --shutdown-timeout bounds the wait and cancels the rest;
//   - a client that drops a non-streamed request has it cancelled and its KV blocks freed.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "api/http_server.h"
#include "api/serving_session.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/serve_package.h"
#include "tests/serve_process.h"

namespace tailor {
namespace {

using Json = nlohmann::json;
using testing_util::ServePackage;
using testing_util::ServeProcess;
using ::testing::HasSubstr;

using Clock = std::chrono::steady_clock;

// A long non-streamed request: 4 sequences of 480 tokens each (the package runs 4 at once).
constexpr char kLong[] = R"({"prompt": "Once", "n": 4, "max_tokens": 480, "ignore_eos": true})";

// The value of the unlabelled sample `name` in a /metrics body, or -1 when it is absent.
double MetricIn(const std::string& body, const std::string& name) {
  std::smatch m;
  const std::regex re("\n" + name + " ([0-9.e+-]+)");
  return std::regex_search(body, m, re) ? std::stod(m[1]) : -1;
}

double Metric(int port, const std::string& name) {
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get("/metrics");
  if (!r || r->status != 200) return -1;
  return MetricIn(r->body, name);
}

// Waits until `sequences` are running or waiting (every client's request was accepted), or
// until they started finishing (then the requests were too quick for the test).
bool AllAccepted(int port, int sequences, Clock::time_point deadline) {
  while (Clock::now() < deadline) {
    const double running = Metric(port, "tailor_requests_running");
    const double waiting = Metric(port, "tailor_requests_waiting");
    if (running + waiting >= sequences) return true;
    if (Metric(port, "tailor_generation_tokens_total") > 0 && running + waiting < 4) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

TEST(Readiness, HealthIs503UntilTheSessionIsSet) {
  std::string err;
  const std::string package = ServePackage(&err);
  ASSERT_FALSE(package.empty()) << err;
  HttpServerOptions options;
  options.port = 0;
  options.threads = 4;
  auto server = HttpServer::Bind(options);
  ASSERT_TRUE(server.ok()) << server.status();
  std::thread runner([&] { EXPECT_TRUE((*server)->Run().ok()); });
  httplib::Client c("127.0.0.1", (*server)->port());
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  EXPECT_THAT(health->body, HasSubstr("loading"));
  auto early = c.Post("/v1/completions", R"({"prompt": "Once", "max_tokens": 2})", "application/json");
  ASSERT_TRUE(early);
  EXPECT_EQ(early->status, 503);
  EXPECT_THAT(early->body, HasSubstr("loading"));

  ServingOptions so;
  so.package_dir = package;
  auto session = ServingSession::Open(so);
  ASSERT_TRUE(session.ok()) << session.status();
  (*server)->SetSession(session->get());
  health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto ok = c.Post("/v1/completions", R"({"prompt": "Once", "max_tokens": 2})", "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;

  (*server)->SetDraining();
  health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  EXPECT_THAT(health->body, HasSubstr("draining"));
  auto late = c.Post("/v1/completions", R"({"prompt": "Once", "max_tokens": 2})", "application/json");
  ASSERT_TRUE(late);
  EXPECT_EQ(late->status, 503);
  (*server)->Stop();
  runner.join();
  (*session)->Shutdown(ShutdownMode::kCancel);
}

// Sends `count` long non-streamed requests from their own threads; statuses[i] is filled with
// the status (or -1 when the connection failed).
struct Clients {
  std::vector<std::thread> threads;
  std::vector<int> statuses;
  std::vector<std::string> finish;
  std::atomic<int> completed{0};
  Clients(int port, int count) : statuses(count, 0), finish(count) {
    for (int i = 0; i < count; ++i) {
      threads.emplace_back([this, port, i] {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(120, 0);
        auto r = c.Post("/v1/completions", kLong, "application/json");
        statuses[i] = r ? r->status : -1;
        if (r && r->status == 200) {
          const Json j = Json::parse(r->body, nullptr, false);
          if (!j.is_discarded()) finish[i] = j["choices"][0]["finish_reason"].get<std::string>();
        }
        ++completed;
      });
    }
  }
  // Joins before the vectors the threads write are destroyed (an ASSERT may return early).
  ~Clients() { Join(); }
  void Join() {
    for (auto& t : threads) {
      if (t.joinable()) t.join();
    }
  }
};

TEST(Drain, SigtermLetsRequestsInFlightFinishAndRefusesNewOnes) {
  std::string err;
  const std::string package = ServePackage(&err);
  ASSERT_FALSE(package.empty()) << err;
  // The 48 sequences take about 20 s to drain under TSan with a core taken: a timeout well past
  // that, so that only a drain that stops finishing requests fails (the default 30 s is
  // ShutdownTimeoutCancelsWhatIsLeft's business).
  ServeProcess server({"--package", package, "--shutdown-timeout", "300"});
  ASSERT_GT(server.port(), 0) << server.stderr_text();
  const int port = server.port();
  Clients clients(port, 12);  // 48 sequences: 12 rounds of the b4 batch
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  ASSERT_TRUE(AllAccepted(port, 48, deadline));
  // What a load-aware gateway reads: the pool's shape, and how full it is while 4 sequences run.
  {
    httplib::Client c("127.0.0.1", port);
    auto m = c.Get("/metrics");
    ASSERT_TRUE(m);
    std::smatch match;
    ASSERT_TRUE(std::regex_search(m->body, match,
                                  std::regex(R"re(\ntailor_cache_config_info\{block_size="([0-9]+)",num_blocks="([0-9]+)"\} 1)re")))
        << m->body;
    const double blocks = std::stod(match[2]);
    // Both gauges of one scrape come from one scheduler snapshot, so they agree exactly (two
    // scrapes could be any number of steps apart on a loaded machine).
    const double usage = MetricIn(m->body, "tailor_kv_cache_usage_ratio");
    const double used = MetricIn(m->body, "tailor_kv_blocks_used");
    EXPECT_GT(usage, 0.0);
    EXPECT_LE(usage, 1.0);
    EXPECT_GT(used, 0.0);
    EXPECT_DOUBLE_EQ(usage, used / blocks);
  }
  kill(server.pid(), SIGTERM);
  // Draining: health 503, a new request refused (503, or no connection once the server exits).
  bool saw_draining = false;
  while (clients.completed < 12 && Clock::now() < deadline) {
    httplib::Client c("127.0.0.1", port);
    auto h = c.Get("/health");
    if (h && h->status == 503 && h->body.find("draining") != std::string::npos) {
      saw_draining = true;
      auto fresh = c.Post("/v1/completions", R"({"prompt": "Once", "max_tokens": 2})", "application/json");
      if (fresh) {
        EXPECT_EQ(fresh->status, 503) << fresh->body;
      }
      break;
    }
  }
  clients.Join();
  EXPECT_TRUE(saw_draining) << "requests finished before the drain was seen: " << server.stderr_text();
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(clients.statuses[i], 200) << "request " << i;
    EXPECT_EQ(clients.finish[i], "length") << "request " << i;
  }
  EXPECT_EQ(server.Wait(), 0) << server.stderr_text();
  EXPECT_THAT(server.stderr_text(), HasSubstr("SIGTERM: draining"));
}

TEST(Drain, ShutdownTimeoutCancelsWhatIsLeft) {
  std::string err;
  const std::string package = ServePackage(&err);
  ASSERT_FALSE(package.empty()) << err;
  ServeProcess server({"--package", package, "--shutdown-timeout", "0"});
  ASSERT_GT(server.port(), 0) << server.stderr_text();
  const int port = server.port();
  Clients clients(port, 12);
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  ASSERT_TRUE(AllAccepted(port, 48, deadline));
  kill(server.pid(), SIGTERM);
  clients.Join();
  int refused = 0;
  for (int i = 0; i < 12; ++i) {
    // Each ends: completed, or 503 (aborted at shutdown), never a hang or a dropped connection.
    EXPECT_TRUE(clients.statuses[i] == 200 || clients.statuses[i] == 503) << clients.statuses[i];
    refused += clients.statuses[i] == 503;
  }
  EXPECT_GT(refused, 0);
  EXPECT_EQ(server.Wait(), 0) << server.stderr_text();
  EXPECT_THAT(server.stderr_text(), HasSubstr("cancelling"));
}

TEST(Disconnect, ADroppedNonStreamedRequestIsCancelledAndFreesItsBlocks) {
  std::string err;
  const std::string package = ServePackage(&err);
  ASSERT_FALSE(package.empty()) << err;
  ServeProcess server({"--package", package});
  ASSERT_GT(server.port(), 0) << server.stderr_text();
  const int port = server.port();
  // 24 long requests whose clients give up after 200 ms: 96 sequences, about 24 rounds of 480
  // tokens if they all ran to the end (the first few may finish in time).
  constexpr int kClients = 24;
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([port] {
      httplib::Client c("127.0.0.1", port);
      c.set_read_timeout(0, 200000);
      c.Post("/v1/completions", kLong, "application/json");
    });
  }
  for (auto& t : clients) t.join();
  const auto gave_up = Clock::now();
  const auto deadline = gave_up + std::chrono::seconds(30);
  while ((Metric(port, "tailor_kv_blocks_used") != 0 || Metric(port, "tailor_requests_running") != 0 ||
          Metric(port, "tailor_requests_waiting") != 0) &&
         Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(Metric(port, "tailor_kv_blocks_used"), 0);
  EXPECT_EQ(Metric(port, "tailor_kv_cache_usage_ratio"), 0);
  EXPECT_EQ(Metric(port, "tailor_requests_running"), 0);
  EXPECT_EQ(Metric(port, "tailor_requests_waiting"), 0);
  // Cancelled, not run to the end: the generated-token counter stays far below 32 x 480.
  const double generated = Metric(port, "tailor_generation_tokens_total");
  EXPECT_GE(generated, 0);
  EXPECT_LT(generated, kClients * 4 * 480 / 2) << "the dropped requests ran on";
  EXPECT_EQ(server.Stop(SIGTERM), 0) << server.stderr_text();
}


// --drain-delay: after SIGTERM, /health says draining at once (a balancer stops sending) but
// requests are still served for the delay; then they are refused and the process exits 0.
TEST(Drain, DrainDelayServesWhileTheBalancerNotices) {
  std::string err;
  const std::string package = ServePackage(&err);
  ASSERT_FALSE(package.empty()) << err;
  ServeProcess server({"--package", package, "--drain-delay", "2"});
  ASSERT_GT(server.port(), 0) << server.stderr_text();
  httplib::Client c("127.0.0.1", server.port());
  const auto signalled = Clock::now();
  kill(server.pid(), SIGTERM);
  bool announced = false;
  while (!announced && Clock::now() - signalled < std::chrono::seconds(1)) {
    auto h = c.Get("/health");
    announced = h && h->status == 503 && h->body.find("draining") != std::string::npos;
  }
  ASSERT_TRUE(announced) << server.stderr_text();
  auto during = c.Post("/v1/completions", R"({"prompt": "Once", "max_tokens": 2})", "application/json");
  ASSERT_TRUE(during);
  EXPECT_EQ(during->status, 200) << during->body;
  EXPECT_LT(Clock::now() - signalled, std::chrono::seconds(2)) << "too slow to test inside the delay";
  std::this_thread::sleep_for(std::chrono::seconds(2) - (Clock::now() - signalled) + std::chrono::milliseconds(300));
  auto after = c.Post("/v1/completions", R"({"prompt": "Once", "max_tokens": 2})", "application/json");
  if (after) {
    EXPECT_EQ(after->status, 503) << after->body;  // or no connection: the server has exited
  }
  EXPECT_EQ(server.Wait(), 0) << server.stderr_text();
  EXPECT_THAT(server.stderr_text(), HasSubstr("--drain-delay"));
}

}  // namespace
}  // namespace tailor
