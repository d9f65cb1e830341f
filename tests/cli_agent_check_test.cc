// HAProxy's agent-check on `tailor serve --agent-port`: the line a replica answers while idle,
// with a queue, and while draining after SIGTERM.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>

#include <chrono>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "api/agent_check.h"
#include "gtest/gtest.h"
#include "tests/serve_package.h"
#include "tests/serve_process.h"

namespace tailor {
namespace {

using testing_util::ServePackage;
using testing_util::ServeProcess;
using Clock = std::chrono::steady_clock;

TEST(AgentCheck, StatusLines) {
  EXPECT_EQ(AgentStatusLine(false, false, 0, 4), "down #loading");
  EXPECT_EQ(AgentStatusLine(true, true, 0, 4), "drain #shutting down");
  EXPECT_EQ(AgentStatusLine(true, false, 0, 4), "ready up 100%");
  EXPECT_EQ(AgentStatusLine(true, false, 4, 4), "ready up 50%");
  EXPECT_EQ(AgentStatusLine(true, false, 12, 4), "ready up 25%");
  EXPECT_EQ(AgentStatusLine(true, false, 100000, 4), "ready up 1%");
}

// One agent-check exchange: connect, read the line.
std::string Ask(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  std::string line;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    char buf[256];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) line.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return line;
}

TEST(AgentCheck, ReadyWeightedByTheQueueThenDrain) {
  std::string err;
  const std::string package = ServePackage(&err);
  ASSERT_FALSE(package.empty()) << err;
  ServeProcess server({"--package", package, "--agent-port", "0"});
  ASSERT_GT(server.port(), 0) << server.stderr_text();
  std::smatch m;
  const std::string text = server.stderr_text();
  ASSERT_TRUE(std::regex_search(text, m, std::regex("agent-check on [^:]+:([0-9]+)"))) << text;
  const int agent = std::stoi(m[1]);
  EXPECT_EQ(Ask(agent), "ready up 100%\n");

  // 12 long requests: 48 sequences, 4 run and the rest wait, so the weight drops.
  std::vector<std::thread> clients;
  for (int i = 0; i < 12; ++i) {
    clients.emplace_back([&] {
      httplib::Client c("127.0.0.1", server.port());
      c.set_read_timeout(120, 0);
      c.Post("/v1/completions", R"({"prompt": "Once", "n": 4, "max_tokens": 480, "ignore_eos": true})",
             "application/json");
    });
  }
  std::string loaded;
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline) {
    loaded = Ask(agent);
    if (loaded != "ready up 100%\n") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(std::regex_match(loaded, std::regex("ready up ([1-9]|[1-9][0-9])%\n"))) << loaded;
  kill(server.pid(), SIGTERM);
  std::string draining;
  while (Clock::now() < deadline) {
    draining = Ask(agent);
    if (draining != loaded && draining.rfind("ready", 0) != 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(draining, "drain #shutting down\n");
  for (auto& t : clients) t.join();
  EXPECT_EQ(server.Wait(), 0) << server.stderr_text();
}

}  // namespace
}  // namespace tailor
