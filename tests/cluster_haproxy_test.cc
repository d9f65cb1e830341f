// Three `tailor serve` replicas of the default package behind HAProxy (deploy/haproxy/haproxy.cfg.in
// rendered with the leastconn policy), all on loopback, as scripts/cluster.sh runs them:
//   Kill:      SIGKILL a replica after 20 of 60 greedy requests (concurrency 6): all 60 answer 200
//              with a single replica's text, HAProxy marks it DOWN within its checks (2 x 200 ms)
//              plus slack, and sends it nothing afterwards (server counters, stats socket);
//   Drain:     SIGTERM instead: all 200, zero retries and redispatches, the replica exits 0;
//   Restart:   a killed replica started again on its ports is UP again and gets requests;
//   Prefix:    with the prefix policy, requests with the same prompt land on the same replica,
//              and different prompts spread over the replicas;
//   Streaming: a stream whose replica is killed mid-way ends promptly for the client with an
//              explicit error: HAProxy cannot replay a response that has started, so
//              deploy/haproxy/sse_guard.lua ends it with an SSE event carrying an OpenAI `error`
//              object (type server_error, code 502) and the last chunk. The client's body is a
//              complete chunked body (every event before the error one whole, no `data: [DONE]`)
//              and the connection is closed within a second.
// Skipped (GTEST_SKIP) only when no haproxy executable is installed; CI installs it.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/serve_process.h"
#include "tests/test_util.h"

namespace tailor {
namespace {

using Json = nlohmann::json;
using testing_util::ServeProcess;
using testing_util::TempDir;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kReplicas = 3;
constexpr int kRequests = 60;
constexpr int kConcurrency = 6;
constexpr int kMaxTokens = 384;  // long enough that requests are still running after a kill
// HAProxy's checks (the template): inter 200ms, fall 2. The slack covers a busy 2-core machine.
constexpr milliseconds kDownWithin{2 * 200 + 800};
const char* const kPrompts[] = {"Once upon a time", "Tom and Lily", "The little dog",
                                "One day, a bird", "Sue had a red ball", "The sun was hot"};

std::string FindHaproxy() {
  std::string path = getenv("PATH") ? getenv("PATH") : "";
  path += ":/usr/sbin:/usr/local/sbin";
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = dir + "/haproxy";
    if (!dir.empty() && access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// One command on HAProxy's runtime API (the stats socket); its whole answer.
std::string RuntimeApi(const std::string& socket_path, const std::string& command) {
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path.c_str());
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string line = command + "\n";
    if (write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size())) {
      char buf[8192];
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return out;
}

struct ServerStat {
  std::string status;  // UP, DOWN, DRAIN, "UP 1/2", ...
  int64_t sessions = 0;       // stot: requests sent to it (one per connection attempt)
  int64_t retries = 0;        // wretr
  int64_t redispatches = 0;   // wredis
};

// `show stat` of one backend: its servers by name, and "BACKEND".
std::map<std::string, ServerStat> ShowStat(const std::string& socket_path, const std::string& backend) {
  std::map<std::string, ServerStat> result;
  std::stringstream csv(RuntimeApi(socket_path, "show stat"));
  std::string line;
  std::map<std::string, size_t> column;
  auto split = [](const std::string& s) {
    std::vector<std::string> fields;
    std::stringstream in(s);
    std::string f;
    while (std::getline(in, f, ',')) fields.push_back(f);
    return fields;
  };
  while (std::getline(csv, line)) {
    if (line.rfind("# ", 0) == 0) {
      const auto names = split(line.substr(2));
      for (size_t i = 0; i < names.size(); ++i) column[names[i]] = i;
      continue;
    }
    const auto f = split(line);
    if (column.empty() || f.size() <= column["wredis"] || f[0] != backend) continue;
    ServerStat s;
    s.status = f[column["status"]];
    s.sessions = std::stoll(f[column["stot"]]);
    s.retries = f[column["wretr"]].empty() ? 0 : std::stoll(f[column["wretr"]]);
    s.redispatches = f[column["wredis"]].empty() ? 0 : std::stoll(f[column["wredis"]]);
    result[f[1]] = s;
  }
  return result;
}

struct Result {
  int status = 0;  // -1: no response
  std::string text;
};

Result Complete(int port, int prompt) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60, 0);
  const Json body = {{"prompt", kPrompts[prompt]}, {"max_tokens", kMaxTokens}, {"temperature", 0},
                     {"ignore_eos", true}};
  auto r = c.Post("/v1/completions", body.dump(), "application/json");
  Result result{r ? r->status : -1, ""};
  if (r && r->status == 200) {
    const Json j = Json::parse(r->body, nullptr, false);
    if (!j.is_discarded()) result.text = j["choices"][0]["text"].get<std::string>();
  } else if (r) {
    result.text = r->body;
  }
  return result;
}

// `count` requests (prompt i % 6) at `concurrency`; `on_done(completed)` runs after each one.
std::vector<Result> RunLoad(int port, int count, int concurrency, const std::function<void(int)>& on_done) {
  std::vector<Result> results(count);
  std::atomic<int> next{0};
  std::mutex mu;
  int completed = 0;
  std::vector<std::thread> workers;
  for (int w = 0; w < concurrency; ++w) {
    workers.emplace_back([&] {
      for (int i = next++; i < count; i = next++) {
        results[i] = Complete(port, i % 6);
        std::lock_guard<std::mutex> lock(mu);
        on_done(++completed);
      }
    });
  }
  for (auto& t : workers) t.join();
  return results;
}

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    haproxy_ = FindHaproxy();
    if (haproxy_.empty()) {
      GTEST_SKIP() << "haproxy is not installed (apt-get install haproxy; scripts/setup.sh installs it): "
                      "the cluster tests run replicas behind it";
    }
    package_ = std::string(TAILOR_BUILD_DIR) + "/default-package";
    ASSERT_TRUE(std::filesystem::exists(package_ + "/manifest.json"))
        << package_ << " is missing: run scripts/make-default-package.sh";
    replicas_.resize(kReplicas);
    for (int i = 0; i < kReplicas; ++i) {
      ASSERT_TRUE(StartReplica(i, 0, 0));
    }
    // The reference: what a single replica answers to each prompt (greedy), asked at once.
    std::vector<Result> reference(6);
    std::vector<std::thread> askers;
    for (int p = 0; p < 6; ++p) {
      askers.emplace_back([&, p] { reference[p] = Complete(replicas_[0].http_port, p); });
    }
    for (auto& t : askers) t.join();
    for (const Result& r : reference) {
      ASSERT_EQ(r.status, 200) << r.text;
      expected_.push_back(r.text);
    }
    ASSERT_TRUE(StartHaproxy());
    // Generous: the first checks of a busy machine (a slow UP is no failure of the balancer).
    for (int i = 0; i < kReplicas; ++i) {
      ASSERT_TRUE(WaitForStatus(i, "UP", std::chrono::seconds(30))) << Name(i) << " " << Log();
    }
  }

  void TearDown() override {
    if (haproxy_pid_ > 0) {
      kill(haproxy_pid_, SIGTERM);
      waitpid(haproxy_pid_, nullptr, 0);
    }
    for (auto& r : replicas_) r.process.reset();  // SIGKILL if still running
  }

  struct Replica {
    std::unique_ptr<ServeProcess> process;
    int http_port = 0;
    int agent_port = 0;
  };

  // Starts replica i (ports 0: any free one), as scripts/cluster.sh does.
  bool StartReplica(int i, int http_port, int agent_port) {
    Replica& r = replicas_[i];
    r.process = std::make_unique<ServeProcess>(
        std::vector<std::string>{"--package", package_, "--agent-port", std::to_string(agent_port),
                                 "--drain-delay", "1"},
        std::chrono::seconds(60), http_port);
    if (r.process->port() == 0) {
      ADD_FAILURE() << "replica " << i << " did not start: " << r.process->stderr_text();
      return false;
    }
    std::smatch m;
    const std::string err = r.process->stderr_text();
    if (!std::regex_search(err, m, std::regex("agent-check on [^:]+:([0-9]+)"))) {
      ADD_FAILURE() << "no agent-check port: " << err;
      return false;
    }
    r.http_port = r.process->port();
    r.agent_port = std::stoi(m[1]);
    return true;
  }

  bool StartHaproxy() {
    const std::filesystem::path deploy = std::filesystem::path(__FILE__).parent_path().parent_path() / "deploy/haproxy";
    std::ifstream in(deploy / "haproxy.cfg.in");
    std::stringstream text;
    text << in.rdbuf();
    std::string cfg = text.str();
    if (cfg.empty()) {
      ADD_FAILURE() << "cannot read deploy/haproxy/haproxy.cfg.in";
      return false;
    }
    port_ = FreePort();
    std::string servers;
    for (int i = 0; i < kReplicas; ++i) {
      servers += "    server r" + std::to_string(i + 1) + " 127.0.0.1:" + std::to_string(replicas_[i].http_port) +
                 " agent-port " + std::to_string(replicas_[i].agent_port) + "\n";
    }
    auto replace = [&cfg](const std::string& from, const std::string& to) {
      for (size_t at = cfg.find(from); at != std::string::npos; at = cfg.find(from, at + to.size())) {
        cfg.replace(at, from.size(), to);
      }
    };
    replace("@SERVERS@\n", servers);
    replace("@BIND@", "127.0.0.1:" + std::to_string(port_));
    replace("@RUN_DIR@", dir_.path().string());
    replace("@POLICY@", policy_);
    replace("@PREFIX_CHARS@", "64");
    replace("@DEPLOY_DIR@", deploy.string());
    const std::string cfg_path = (dir_.path() / "haproxy.cfg").string();
    std::ofstream(cfg_path) << cfg;
    log_path_ = (dir_.path() / "haproxy.log").string();
    socket_ = (dir_.path() / "haproxy.sock").string();
    haproxy_pid_ = fork();
    if (haproxy_pid_ == 0) {
      const int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(log, 1);
      dup2(log, 2);
      execl(haproxy_.c_str(), "haproxy", "-db", "-f", cfg_path.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    return haproxy_pid_ > 0;
  }

  std::string Log() {
    std::ifstream in(log_path_);
    std::stringstream s;
    s << in.rdbuf();
    return "haproxy log: " + s.str();
  }

  std::map<std::string, ServerStat> Stats() { return ShowStat(socket_, "tailor_" + policy_); }
  static std::string Name(int i) { return absl::StrCat("r", i + 1); }

  // Waits until server i's status starts with `status`.
  bool WaitForStatus(int i, const std::string& status, Clock::duration timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (Stats()[Name(i)].status.rfind(status, 0) == 0) return true;
      std::this_thread::sleep_for(milliseconds(10));
    }
    return false;
  }

  void ExpectAllAnswered(const std::vector<Result>& results) {
    for (size_t i = 0; i < results.size(); ++i) {
      EXPECT_EQ(results[i].status, 200) << "request " << i << ": " << results[i].text;
      if (results[i].status == 200) {
        EXPECT_EQ(results[i].text, expected_[i % 6]) << "request " << i;
      }
    }
  }

  std::string policy_ = "leastconn";  // the backend the frontend uses
  std::string haproxy_;
  std::string package_;
  TempDir dir_;
  std::vector<Replica> replicas_;
  std::vector<std::string> expected_;
  pid_t haproxy_pid_ = -1;
  int port_ = 0;
  std::string socket_;
  std::string log_path_;
};

// Watches server i after a signal: when it left the rotation and how many requests it had then.
struct DownWatch {
  std::thread thread;
  std::atomic<bool> stop{false};
  bool seen = false;
  milliseconds after{0};
  int64_t sessions_then = 0;
  int completed_then = 0;
};

TEST_F(ClusterTest, KilledReplicaIsTakenOutAndItsRequestsAnsweredElsewhere) {
  const pid_t victim = replicas_[1].process->pid();
  DownWatch watch;
  std::atomic<int> completed{0};
  Clock::time_point killed_at;
  auto results = RunLoad(port_, kRequests, kConcurrency, [&](int done) {
    completed = done;
    if (done != 20) return;
    kill(victim, SIGKILL);
    killed_at = Clock::now();
    watch.thread = std::thread([&] {
      while (!watch.stop && Clock::now() - killed_at < std::chrono::seconds(10)) {
        const ServerStat s = Stats()[Name(1)];
        if (s.status.rfind("DOWN", 0) == 0) {
          watch.seen = true;
          watch.after = std::chrono::duration_cast<milliseconds>(Clock::now() - killed_at);
          watch.sessions_then = s.sessions;
          watch.completed_then = completed;
          return;
        }
        std::this_thread::sleep_for(milliseconds(5));
      }
    });
  });
  watch.stop = true;
  if (watch.thread.joinable()) watch.thread.join();
  ExpectAllAnswered(results);
  ASSERT_TRUE(watch.seen) << "the killed replica was never marked DOWN. " << Log();
  EXPECT_LE(watch.after, kDownWithin) << "marked DOWN " << watch.after.count() << " ms after the kill";
  EXPECT_LT(watch.completed_then, kRequests) << "the load ended before the server was marked down: the test "
                                                "proves nothing about traffic afterwards";
  const auto stats = Stats();
  EXPECT_EQ(stats.at(Name(1)).sessions, watch.sessions_then) << "requests sent to the dead replica after DOWN";
  // Its requests in flight were replayed elsewhere (empty-response / conn-failure retries).
  EXPECT_GT(stats.at("BACKEND").retries + stats.at("BACKEND").redispatches, 0);
  EXPECT_EQ(replicas_[1].process->Wait(), 128 + SIGKILL);
  std::cerr << "killed replica marked DOWN after " << watch.after.count() << " ms; "
            << (kRequests - watch.completed_then) << " requests completed afterwards\n";
}

TEST_F(ClusterTest, DrainedReplicaCostsNoRetries) {
  ServeProcess& victim = *replicas_[1].process;
  auto results = RunLoad(port_, kRequests, kConcurrency, [&](int done) {
    if (done == 20) kill(victim.pid(), SIGTERM);
  });
  ExpectAllAnswered(results);
  const auto stats = Stats();
  EXPECT_EQ(stats.at("BACKEND").retries, 0) << Log();
  EXPECT_EQ(stats.at("BACKEND").redispatches, 0) << Log();
  EXPECT_EQ(victim.Wait(), 0) << victim.stderr_text();
  EXPECT_NE(victim.stderr_text().find("SIGTERM: draining"), std::string::npos) << victim.stderr_text();
  EXPECT_TRUE(WaitForStatus(1, "DOWN", kDownWithin)) << stats.at(Name(1)).status;
}

TEST_F(ClusterTest, RestartedReplicaIsUpAgainAndServes) {
  const int http_port = replicas_[1].http_port;
  const int agent_port = replicas_[1].agent_port;
  replicas_[1].process->Stop(SIGKILL);
  ASSERT_TRUE(WaitForStatus(1, "DOWN", kDownWithin)) << Log();
  const int64_t before = Stats()[Name(1)].sessions;
  ASSERT_TRUE(StartReplica(1, http_port, agent_port));
  const auto restarted = Clock::now();
  ASSERT_TRUE(WaitForStatus(1, "UP", std::chrono::seconds(30))) << Stats()[Name(1)].status << " " << Log();
  std::cerr << "restarted replica UP after "
            << std::chrono::duration_cast<milliseconds>(Clock::now() - restarted).count() << " ms\n";
  auto results = RunLoad(port_, 12, kConcurrency, [](int) {});
  ExpectAllAnswered(results);
  EXPECT_GT(Stats()[Name(1)].sessions, before) << "the restarted replica got no requests";
}

class PrefixClusterTest : public ClusterTest {
 protected:
  PrefixClusterTest() { policy_ = "prefix"; }
};

TEST_F(PrefixClusterTest, SamePromptSameReplica) {
  std::set<std::string> used;
  for (int p = 0; p < 6; ++p) {
    const auto before = Stats();
    for (int k = 0; k < 3; ++k) {
      const Result r = Complete(port_, p);
      ASSERT_EQ(r.status, 200) << r.text;
      EXPECT_EQ(r.text, expected_[p]);
    }
    const auto after = Stats();
    std::string chosen;
    for (int i = 0; i < kReplicas; ++i) {
      const int64_t got = after.at(Name(i)).sessions - before.at(Name(i)).sessions;
      EXPECT_TRUE(got == 0 || got == 3) << "prompt " << p << ": " << Name(i) << " got " << got << " of its 3 requests";
      if (got == 3) chosen = Name(i);
    }
    used.insert(chosen);
  }
  EXPECT_GE(used.size(), 2u) << "six prompts all hashed to one replica";
}

double RunningOn(int port) {
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get("/metrics");
  std::smatch m;
  if (!r || !std::regex_search(r->body, m, std::regex("\ntailor_requests_running ([0-9.]+)"))) return -1;
  return std::stod(m[1]);
}

// Decodes a chunked body into `body`; true when it ends with the last (empty) chunk and nothing
// follows it, else false with what is wrong in `error`.
bool DecodeChunked(const std::string& raw, std::string* body, std::string* error) {
  size_t pos = 0;
  while (true) {
    const size_t eol = raw.find("\r\n", pos);
    if (eol == std::string::npos) {
      *error = absl::StrCat("no chunk-size line at byte ", pos, " of ", raw.size());
      return false;
    }
    const std::string size_line = raw.substr(pos, eol - pos);
    if (size_line.empty() || size_line.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
      *error = absl::StrCat("bad chunk-size line at byte ", pos, ": '", size_line.substr(0, 40), "'");
      return false;
    }
    const size_t size = std::stoul(size_line, nullptr, 16);
    pos = eol + 2;
    if (size == 0) {
      if (raw.compare(pos, std::string::npos, "\r\n") == 0) return true;
      *error = absl::StrCat("after the last chunk: '", raw.substr(pos, 40), "'");
      return false;
    }
    if (raw.size() < pos + size + 2 || raw.compare(pos + size, 2, "\r\n") != 0) {
      *error = absl::StrCat("chunk of ", size, " bytes at byte ", pos, " cut off (", raw.size() - pos, " left)");
      return false;
    }
    body->append(raw, pos, size);
    pos += size + 2;
  }
}

TEST_F(ClusterTest, StreamCutByReplicaDeathEndsWithAnErrorEvent) {
  const int fd = testing_util::ConnectLoopback(port_);  // a raw HTTP/1.1 client: bytes as sent
  ASSERT_GE(fd, 0);
  // 16 choices of 480 tokens: seconds of streaming, so the kill lands mid-way.
  const std::string body =
      R"({"prompt": "Once upon a time", "max_tokens": 480, "n": 16, "ignore_eos": true, "stream": true, "temperature": 0})";
  const std::string request = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  ASSERT_EQ(write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  std::string got;
  char buf[65536];
  auto read_some = [&](int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return ssize_t{-2};  // nothing yet
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
    return n;
  };
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (got.find("data: {") == std::string::npos && Clock::now() < deadline) {
    ASSERT_NE(read_some(100), 0) << "closed before the first event: " << got;
  }
  ASSERT_NE(got.find("HTTP/1.1 200"), std::string::npos) << got;
  int serving = -1;
  for (int i = 0; i < kReplicas && serving < 0; ++i) {
    if (RunningOn(replicas_[i].http_port) > 0) serving = i;
  }
  ASSERT_GE(serving, 0) << "no replica is running the stream (it ended already?)";
  kill(replicas_[serving].process->pid(), SIGKILL);
  const auto killed_at = Clock::now();
  ssize_t n = 0;
  while ((n = read_some(100)) != 0 && n != -1 && Clock::now() - killed_at < std::chrono::seconds(10)) {
  }
  const auto ended_after = std::chrono::duration_cast<milliseconds>(Clock::now() - killed_at);
  close(fd);
  EXPECT_TRUE(n == 0 || n == -1) << "the client still had an open connection 10 s after the replica died";
  EXPECT_LE(ended_after, milliseconds(1000));
  const size_t head_end = got.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos) << got.substr(0, 200);
  std::string head = got.substr(0, head_end);
  for (char& c : head) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  EXPECT_NE(head.find("transfer-encoding: chunked"), std::string::npos) << head;
  EXPECT_NE(head.find("content-type: text/event-stream"), std::string::npos) << head;
  // A complete chunked body (not a truncated one), whose events are whole: the completion's
  // chunks, then the error event sse_guard.lua adds, and no `data: [DONE]`.
  std::string events_text, error;
  ASSERT_TRUE(DecodeChunked(got.substr(head_end + 4), &events_text, &error))
      << error << "; the response ends with: " << got.substr(got.size() > 300 ? got.size() - 300 : 0);
  EXPECT_EQ(events_text.find("data: [DONE]"), std::string::npos) << "the stream claims to be complete";
  std::vector<std::string> events;
  for (size_t at = 0, end; at < events_text.size(); at = end + 2) {
    end = events_text.find("\n\n", at);
    ASSERT_NE(end, std::string::npos) << "an event without its blank line: " << events_text.substr(at, 200);
    events.push_back(events_text.substr(at, end - at));
  }
  ASSERT_GE(events.size(), 2u) << events_text;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    ASSERT_EQ(events[i].rfind("data: ", 0), 0u) << "event " << i << ": " << events[i];
    const Json chunk = Json::parse(events[i].substr(6), nullptr, false);
    ASSERT_FALSE(chunk.is_discarded()) << "event " << i << " is not JSON: " << events[i];
    ASSERT_TRUE(chunk.contains("choices")) << "event " << i << ": " << events[i];
  }
  const std::string& last = events.back();
  ASSERT_EQ(last.rfind("data: ", 0), 0u) << last;
  const Json error_event = Json::parse(last.substr(6), nullptr, false);
  ASSERT_FALSE(error_event.is_discarded()) << last;
  ASSERT_TRUE(error_event.contains("error")) << "the stream does not end with an error event: " << last;
  EXPECT_EQ(error_event["error"].value("type", ""), "server_error") << last;
  EXPECT_EQ(error_event["error"].value("code", 0), 502) << last;
  EXPECT_NE(error_event["error"].value("message", "").find("mid-stream"), std::string::npos) << last;
  std::cerr << "stream ended for the client " << ended_after.count() << " ms after its replica was killed, with "
            << events.size() - 1 << " completion events and the error event\n";
}

}  // namespace
}  // namespace tailor
