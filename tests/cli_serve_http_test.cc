// `tailor serve` end to end over raw HTTP (cpp-httplib's client): the OpenAI routes, streaming,
// every error status, disconnects, concurrency and shutdown. The servers run a small stories260K
// package; greedy output is compared with `tailor generate --package`.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/serve_package.h"
#include "tests/serve_process.h"
#include "tokenizer/tokenizer.h"

namespace tailor {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;
using testing_util::CommandResult;
using testing_util::RunTailor;
using testing_util::ServePackage;
using testing_util::ServeProcess;

constexpr char kKey[] = "sk-test-key";

struct Sse {
  std::vector<Json> chunks;  // the data: objects, in order
  bool done = false;         // ended with data: [DONE] as the last event
  std::string error;         // a line that was not SSE
};

Sse ParseSse(const std::string& body) {
  Sse out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) {
      out.error = "unterminated event: " + body.substr(pos);
      break;
    }
    const std::string event = body.substr(pos, end - pos);
    pos = end + 2;
    if (event.rfind("data: ", 0) != 0) {
      out.error = "not a data line: " + event;
      break;
    }
    if (out.done) out.error = "event after [DONE]";
    const std::string data = event.substr(6);
    if (data == "[DONE]") {
      out.done = true;
    } else {
      out.chunks.push_back(Json::parse(data, nullptr, false));
    }
  }
  return out;
}

class ServeHttp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string err;
    package_ = new std::string(ServePackage(&err));
    ASSERT_FALSE(package_->empty()) << err;
    server_ = new ServeProcess({"--package", *package_, "--api-key", kKey, "--max-body-mb", "1",
                                "--served-model-name", "tiny-stories"});
    ASSERT_GT(server_->port(), 0) << server_->stderr_text();
  }
  static void TearDownTestSuite() {
    if (server_) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->stderr_text();
    }
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); ASSERT_GT(server_->port(), 0); }

  static httplib::Client Client(const std::string& key = kKey) {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(60, 0);
    if (!key.empty()) c.set_bearer_token_auth(key.c_str());
    return c;
  }
  static httplib::Result Post(const std::string& path, const std::string& body, const std::string& key = kKey) {
    return Client(key).Post(path.c_str(), body, "application/json");
  }
  static std::string Generate(const std::string& prompt, int max_tokens) {
    CommandResult gen = RunTailor({"generate", "--package", *package_, "--prompt", prompt, "--max-tokens",
                                   std::to_string(max_tokens), "--temperature", "0"});
    EXPECT_EQ(gen.exit_code, 0) << gen.err;
    return gen.out;
  }
  static double Metric(const std::string& text, const std::string& name) {
    const size_t p = text.find("\n" + name + " ");
    if (p == std::string::npos) return -1;
    return std::stod(text.substr(p + name.size() + 2));
  }

  static std::string* package_;
  static ServeProcess* server_;
};
std::string* ServeHttp::package_ = nullptr;
ServeProcess* ServeHttp::server_ = nullptr;

TEST_F(ServeHttp, CompletionEqualsGenerate) {
  const std::string expected = Generate("Once upon a time", 20);
  auto r = Post("/v1/completions", R"({"model": "tiny-stories", "prompt": "Once upon a time", "max_tokens": 20,
                                       "temperature": 0, "user": "test"})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_THAT(r->get_header_value("Content-Type"), HasSubstr("application/json"));
  Json j = Json::parse(r->body);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["model"], "tiny-stories");
  EXPECT_EQ(j["choices"][0]["text"], expected);
  EXPECT_EQ(j["usage"]["total_tokens"].get<int>(),
            j["usage"]["prompt_tokens"].get<int>() + j["usage"]["completion_tokens"].get<int>());
}

TEST_F(ServeHttp, ChatEqualsGenerateOnTheRenderedPrompt) {
  // The plain template renders BOS + "User: {content}\nAssistant:", and stops at "\nUser:".
  std::string expected = Generate("User: Tell me a story\nAssistant:", 16);
  expected = expected.substr(0, expected.find("\nUser:"));
  auto r = Post("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "Tell me a story"}],
                                           "max_completion_tokens": 16, "temperature": 0})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  Json j = Json::parse(r->body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], expected);
}

TEST_F(ServeHttp, PromptsAsTokenIdsAndArrays) {
  auto text = Post("/v1/completions", R"({"prompt": "Once upon a time", "max_tokens": 6, "temperature": 0})");
  ASSERT_TRUE(text);
  ASSERT_EQ(text->status, 200) << text->body;
  auto tok = Tokenizer::Load(testing_util::StoriesDir() + "/tok512.model", 512);
  ASSERT_TRUE(tok.ok());
  std::vector<int32_t> ids = {1};
  for (int32_t id : (*tok)->Encode("Once upon a time")) ids.push_back(id);
  Json body = {{"prompt", {ids, ids}}, {"max_tokens", 6}, {"temperature", 0}, {"n", 2},
               {"logprobs", 3}, {"seed", 7}};
  auto r = Post("/v1/completions", body.dump());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  Json j = Json::parse(r->body);
  ASSERT_EQ(j["choices"].size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(j["choices"][i]["index"], i);
    EXPECT_EQ(j["choices"][i]["text"], Json::parse(text->body)["choices"][0]["text"]);
    EXPECT_EQ(j["choices"][i]["logprobs"]["tokens"].size(), 6u);
    EXPECT_LE(j["choices"][i]["logprobs"]["top_logprobs"][0].size(), 4u);
  }
}

TEST_F(ServeHttp, StreamingWithUsage) {
  auto whole = Post("/v1/completions", R"({"prompt": "The cat", "max_tokens": 12, "temperature": 0})");
  ASSERT_TRUE(whole);
  const std::string expected = Json::parse(whole->body)["choices"][0]["text"];
  auto r = Post("/v1/completions", R"({"prompt": "The cat", "max_tokens": 12, "temperature": 0, "n": 2,
                                       "stream": true, "stream_options": {"include_usage": true}})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_THAT(r->get_header_value("Content-Type"), HasSubstr("text/event-stream"));
  Sse sse = ParseSse(r->body);
  ASSERT_TRUE(sse.error.empty()) << sse.error;
  ASSERT_TRUE(sse.done);
  ASSERT_GE(sse.chunks.size(), 4u);
  std::string text[2];
  int finishes = 0;
  for (size_t i = 0; i + 1 < sse.chunks.size(); ++i) {
    const Json& c = sse.chunks[i];
    ASSERT_FALSE(c.is_discarded());
    EXPECT_EQ(c["object"], "text_completion");
    EXPECT_TRUE(c["usage"].is_null());
    ASSERT_EQ(c["choices"].size(), 1u);
    text[c["choices"][0]["index"].get<int>()] += c["choices"][0]["text"].get<std::string>();
    if (!c["choices"][0]["finish_reason"].is_null()) ++finishes;
  }
  EXPECT_EQ(finishes, 2);
  EXPECT_EQ(text[0], expected);
  EXPECT_EQ(text[1], expected);
  const Json& usage = sse.chunks.back();
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 24);

  auto chat = Post("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5,
                                              "stream": true})");
  ASSERT_TRUE(chat);
  ASSERT_EQ(chat->status, 200);
  Sse c = ParseSse(chat->body);
  ASSERT_TRUE(c.done && c.error.empty()) << chat->body;
  ASSERT_GE(c.chunks.size(), 2u);
  EXPECT_EQ(c.chunks[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_FALSE(c.chunks.back()["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(c.chunks.back().contains("usage"));
}

TEST_F(ServeHttp, ModelsAndHealthAndMetrics) {
  auto models = Client().Get("/v1/models");
  ASSERT_TRUE(models);
  ASSERT_EQ(models->status, 200);
  Json j = Json::parse(models->body);
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["data"][0]["id"], "tiny-stories");
  auto health = Client("").Get("/health");  // no key needed
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  ASSERT_TRUE(Post("/v1/completions", R"({"prompt": "x", "max_tokens": 2})"));
  auto metrics = Client().Get("/metrics");
  ASSERT_TRUE(metrics);
  ASSERT_EQ(metrics->status, 200);
  EXPECT_THAT(metrics->body, HasSubstr("tailor_spec_executions_total{spec=\"b1_s16_c512\"}"));
  EXPECT_THAT(metrics->body, HasSubstr("tailor_spec_padding_ratio{spec="));
  EXPECT_THAT(metrics->body, HasSubstr("tailor_spec_latency_seconds_bucket{spec="));
  EXPECT_THAT(metrics->body, HasSubstr("tailor_time_to_first_token_seconds"));
  EXPECT_GT(Metric(metrics->body, "tailor_generation_tokens_total"), 0);
}

TEST_F(ServeHttp, Unauthorized) {
  for (const std::string& key : {std::string(""), std::string("wrong")}) {
    auto r = Post("/v1/completions", R"({"prompt": "x"})", key);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401);
    EXPECT_EQ(Json::parse(r->body)["error"]["code"], "invalid_api_key");
    auto m = Client(key).Get("/v1/models");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->status, 401);
  }
}

TEST_F(ServeHttp, BadParametersAreNamed) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"prompt": "x", "temperature": 3})", "temperature"},
      {R"({"prompt": "x", "top_p": 0})", "top_p"},
      {R"({"prompt": "x", "n": 0})", "n"},
      {R"({"prompt": "x", "max_tokens": 5000})", "max_tokens"},
      {R"({"prompt": [1, 100000]})", "prompt"},
      {R"({"prompt": "x", "logit_bias": {"99999": 1}})", "logit_bias"},
      {R"({})", "prompt"},
  };
  for (const auto& [body, param] : cases) {
    auto r = Post("/v1/completions", body);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << body;
    Json j = Json::parse(r->body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r->body;
    EXPECT_EQ(j["error"]["param"], param) << body << " -> " << r->body;
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  }
  auto chat = Post("/v1/chat/completions", R"({"messages": [{"role": "user"}]})");
  ASSERT_TRUE(chat);
  EXPECT_EQ(chat->status, 400);
  EXPECT_THAT(Json::parse(chat->body)["error"]["param"].get<std::string>(), HasSubstr("messages[0]"));
}

TEST_F(ServeHttp, UnknownModelAndRoute) {
  auto r = Post("/v1/chat/completions", R"({"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(Json::parse(r->body)["error"]["code"], "model_not_found");
  auto route = Client().Get("/v2/nothing");
  ASSERT_TRUE(route);
  EXPECT_EQ(route->status, 404);
  EXPECT_FALSE(Json::parse(route->body, nullptr, false).is_discarded());
}

TEST_F(ServeHttp, MalformedJsonNeverCrashes) {
  const std::vector<std::string> bodies = {"", "{", "[]", "null", "\"x\"", "{\"prompt\": }",
                                           std::string("\xff\xfe\x00\x01", 4), std::string(200, '['),
                                           R"({"prompt": "x", "max_tokens": "ten"})", R"({"prompt": 1e999})"};
  for (const std::string& body : bodies) {
    auto r = Post("/v1/completions", body);
    ASSERT_TRUE(r) << "server gone after body " << body;
    EXPECT_EQ(r->status, 400) << body;
    EXPECT_FALSE(Json::parse(r->body, nullptr, false)["error"].is_null()) << r->body;
  }
  auto health = Client().Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST_F(ServeHttp, OversizedBodyIs413) {
  std::string body = R"({"prompt": ")" + std::string(size_t{2} << 20, 'a') + R"("})";
  auto r = Post("/v1/completions", body);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(Json::parse(r->body)["error"]["code"], "request_too_large");
}

TEST_F(ServeHttp, DisconnectCancelsAndFreesBlocks) {
  auto before = Client().Get("/metrics");
  ASSERT_TRUE(before);
  {
    httplib::Client c = Client();
    int chunks = 0;
    httplib::Headers headers;
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.headers = {{"Authorization", std::string("Bearer ") + kKey}, {"Content-Type", "application/json"}};
    req.body = R"({"prompt": "Once", "max_tokens": 500, "ignore_eos": true, "n": 4, "stream": true})";
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 2; };
    auto r = c.send(req);
    EXPECT_GE(chunks, 1);
  }
  // The request was cancelled (not finished): its blocks are freed and it is counted as aborted.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::string m;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = Client().Get("/metrics");
    ASSERT_TRUE(r);
    m = r->body;
    if (Metric(m, "tailor_kv_blocks_used") == 0 && Metric(m, "tailor_requests_running") == 0 &&
        m.find("tailor_requests_total{status=\"abort\"}") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(Metric(m, "tailor_kv_blocks_used"), 0) << m;
  EXPECT_THAT(m, HasSubstr("tailor_requests_total{status=\"abort\"}"));
  // Far fewer than the 4 x 500 tokens asked for were generated.
  EXPECT_LT(Metric(m, "tailor_generation_tokens_total") - Metric(before->body, "tailor_generation_tokens_total"),
            2000);
}

TEST_F(ServeHttp, SixtyFourConcurrentStreams) {
  constexpr int kStreams = 64;
  std::atomic<int> ok{0};
  std::vector<std::string> failures(kStreams);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] {
      Json body = {{"prompt", "Story " + std::to_string(i)}, {"max_tokens", 8}, {"stream", true},
                   {"seed", i}, {"stream_options", {{"include_usage", true}}}};
      auto r = Post("/v1/completions", body.dump());
      if (!r || r->status != 200) {
        failures[i] = r ? r->body : "no response: " + httplib::to_string(r.error());
        return;
      }
      Sse sse = ParseSse(r->body);
      if (!sse.done || !sse.error.empty() || sse.chunks.empty() ||
          sse.chunks.back()["usage"]["completion_tokens"].get<int>() < 1) {
        failures[i] = r->body;
        return;
      }
      ++ok;
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kStreams; ++i) EXPECT_EQ(failures[i], "") << "stream " << i;
  EXPECT_EQ(ok.load(), kStreams);
}

TEST(ServeHttpQueue, FullQueueIs429) {
  std::string err;
  const std::string package = ServePackage(&err);
  ASSERT_FALSE(package.empty()) << err;
  ServeProcess server({"--package", package, "--max-queue", "0"});
  ASSERT_GT(server.port(), 0) << server.stderr_text();
  httplib::Client c("127.0.0.1", server.port());
  // Four sequences run at once (the b4 specialization) and none may wait: a request of five can
  // never be admitted, which is the request's fault (400 naming n), not the load's (429).
  auto r = c.Post("/v1/completions", R"({"prompt": "x", "n": 5, "max_tokens": 2})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  Json j = Json::parse(r->body);
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "n");
  auto four = c.Post("/v1/completions", R"({"prompt": "x", "n": 4, "max_tokens": 2})", "application/json");
  ASSERT_TRUE(four);
  EXPECT_EQ(four->status, 200) << four->body;
  EXPECT_EQ(server.Stop(SIGINT), 0) << server.stderr_text();
}

TEST(ServeHttpShutdown, SigtermCancelsInFlightStreamsAndExitsZero) {
  std::string err;
  const std::string package = ServePackage(&err);
  ASSERT_FALSE(package.empty()) << err;
  ServeProcess server({"--package", package});
  ASSERT_GT(server.port(), 0) << server.stderr_text();
  std::atomic<bool> got_data{false};
  std::thread client([&] {
    httplib::Client c("127.0.0.1", server.port());
    c.set_read_timeout(30, 0);
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.headers = {{"Content-Type", "application/json"}};
    req.body = R"({"prompt": "Once", "max_tokens": 500, "ignore_eos": true, "n": 4, "stream": true})";
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
      got_data = true;
      return true;
    };
    c.send(req);
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!got_data && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(server.Stop(SIGTERM), 0) << server.stderr_text();
  client.join();
  EXPECT_THAT(server.stderr_text(), HasSubstr("SIGTERM"));
}

}  // namespace
}  // namespace tailor

namespace tailor {
namespace {

TEST(ServeHttpUsage, BadFlagsAndPackagesExitTwo) {
  CommandResult port = RunTailor({"serve", "--port", "70000"});
  EXPECT_EQ(port.exit_code, 2);
  EXPECT_THAT(port.err, HasSubstr("--port"));
  CommandResult unknown = RunTailor({"serve", "--bogus"});
  EXPECT_EQ(unknown.exit_code, 2);
  CommandResult missing = RunTailor({"serve", "--package", "/nonexistent/tailor-package", "--port", "0"});
  EXPECT_EQ(missing.exit_code, 2) << missing.err;
  EXPECT_THAT(missing.err, HasSubstr("/nonexistent/tailor-package"));
  CommandResult help = RunTailor({"serve", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("--max-queue"));
}

}  // namespace
}  // namespace tailor
