// ServingSession on a real (small) package: OpenAI requests in, engine requests and text out.
// Greedy output is compared with `tailor generate --package` on the same package.
#include "api/serving_session.h"

#include <condition_variable>
#include <mutex>

#include "gmock/gmock.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/serve_package.h"

namespace tailor {
namespace {

using ::testing::HasSubstr;
using testing_util::CommandResult;
using testing_util::RunTailor;
using testing_util::ServePackage;

service::OpenAiRequest Parse(service::Endpoint endpoint, const std::string& body) {
  auto r = service::ParseOpenAiRequest(endpoint, body);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : service::OpenAiRequest{};
}

class ServingSessionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string err;
    package_ = new std::string(ServePackage(&err));
    ASSERT_FALSE(package_->empty()) << err;
  }
  static std::unique_ptr<ServingSession> OpenSession(int64_t max_queue = -1) {
    ServingOptions o;
    o.package_dir = *package_;
    o.max_queue = max_queue;
    auto s = ServingSession::Open(o);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
  static std::string* package_;
};
std::string* ServingSessionTest::package_ = nullptr;

// Collects the events of one started request.
struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<SessionEvent> events;
  bool done = false;
  SessionCallback Callback() {
    return [this](const SessionEvent& e) {
      std::lock_guard<std::mutex> lock(mu);
      events.push_back(e);
      if (e.kind == SessionEvent::Kind::kDone) {
        done = true;
        cv.notify_all();
      }
    };
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done; });
  }
};

TEST_F(ServingSessionTest, GreedyCompletionMatchesGenerate) {
  CommandResult gen = RunTailor({"generate", "--package", *package_, "--prompt", "Once upon a time",
                                 "--max-tokens", "24", "--temperature", "0"});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  auto session = OpenSession();
  ASSERT_NE(session, nullptr);
  EXPECT_EQ(session->model_name(), "stories260K");
  auto request = Parse(service::Endpoint::kCompletions,
                       R"({"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 24,
                           "temperature": 0})");
  auto response = session->Complete(request);
  ASSERT_TRUE(response.ok()) << response.error().message;
  const auto& j = *response;
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"].get<std::string>(), gen.out);
  EXPECT_EQ(j["usage"]["completion_tokens"], 24);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 1);
}

TEST_F(ServingSessionTest, StreamsDeltasThenUsage) {
  auto session = OpenSession();
  auto request = Parse(service::Endpoint::kCompletions,
                       R"({"prompt": ["Once upon a time", "The cat"], "n": 2, "max_tokens": 8,
                           "temperature": 0, "logprobs": 2})");
  Collector c;
  auto started = session->Start(request, c.Callback());
  ASSERT_TRUE(started.ok()) << started.error().message;
  c.Wait();
  std::vector<std::string> text(4);
  std::vector<int> finishes(4, 0), logprobs(4, 0);
  ASSERT_FALSE(c.events.empty());
  for (size_t i = 0; i + 1 < c.events.size(); ++i) {
    const SessionEvent& e = c.events[i];
    ASSERT_EQ(e.kind, SessionEvent::Kind::kDelta);
    ASSERT_GE(e.delta.index, 0);
    ASSERT_LT(e.delta.index, 4);
    EXPECT_EQ(finishes[e.delta.index], 0) << "delta after the finish of choice " << e.delta.index;
    text[e.delta.index] += e.delta.text;
    logprobs[e.delta.index] += static_cast<int>(e.delta.logprobs.size());
    for (const auto& lp : e.delta.logprobs) EXPECT_LE(lp.top.size(), 2u);
    if (e.delta.finish) ++finishes[e.delta.index];
  }
  const SessionEvent& done = c.events.back();
  ASSERT_EQ(done.kind, SessionEvent::Kind::kDone);
  EXPECT_FALSE(done.error.has_value());
  EXPECT_EQ(done.usage.completion_tokens, 32);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(finishes[i], 1);
    EXPECT_EQ(logprobs[i], 8);
  }
  // Greedy: both choices of one prompt agree; the two prompts differ.
  EXPECT_EQ(text[0], text[1]);
  EXPECT_EQ(text[2], text[3]);
  EXPECT_NE(text[0], text[2]);
}

TEST_F(ServingSessionTest, StopStringCutsTheTextAndFreesTheSequence) {
  auto session = OpenSession();
  auto full = session->Complete(Parse(service::Endpoint::kCompletions,
                                      R"({"prompt": "Once upon a time", "max_tokens": 40, "temperature": 0})"));
  ASSERT_TRUE(full.ok());
  const std::string text = (*full)["choices"][0]["text"];
  ASSERT_GT(text.size(), 20u);
  const std::string stop = text.substr(10, 4);
  nlohmann::json body = {{"prompt", "Once upon a time"}, {"max_tokens", 40}, {"temperature", 0},
                         {"stop", {stop}}};
  auto cut = session->Complete(Parse(service::Endpoint::kCompletions, body.dump()));
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ((*cut)["choices"][0]["text"].get<std::string>(), text.substr(0, text.find(stop)));
  EXPECT_EQ((*cut)["choices"][0]["finish_reason"], "stop");
  EXPECT_LT((*cut)["usage"]["completion_tokens"].get<int>(), 40);
  session->Shutdown(ShutdownMode::kDrain);
  EXPECT_EQ(session->stats().kv.used_blocks, 0);
}

TEST_F(ServingSessionTest, ChatUsesTheTemplate) {
  auto session = OpenSession();
  EXPECT_EQ(std::string(session->chat_template().name()), "plain");
  auto response = session->Complete(Parse(service::Endpoint::kChatCompletions,
                                          R"({"messages": [{"role": "user", "content": "Tell a story"}],
                                              "max_tokens": 12, "temperature": 0})"));
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ((*response)["object"], "chat.completion");
  EXPECT_EQ((*response)["choices"][0]["message"]["role"], "assistant");
  EXPECT_TRUE((*response)["choices"][0]["message"]["content"].is_string());
  // BOS + "User: Tell a story\nAssistant:" (no second BOS).
  EXPECT_GT((*response)["usage"]["prompt_tokens"].get<int>(), 5);
}

TEST_F(ServingSessionTest, Errors) {
  auto session = OpenSession(/*max_queue=*/0);
  auto unknown = session->Start(Parse(service::Endpoint::kCompletions, R"({"model": "gpt-9", "prompt": "x"})"),
                                [](const SessionEvent&) {});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().http_status, 404);
  EXPECT_EQ(unknown.error().param, "model");

  auto too_long = session->Start(Parse(service::Endpoint::kCompletions, R"({"prompt": "x", "max_tokens": 100000})"),
                                 [](const SessionEvent&) {});
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.error().http_status, 400);
  EXPECT_EQ(too_long.error().param, "max_tokens");

  auto bad_id = session->Start(Parse(service::Endpoint::kCompletions, R"({"prompt": [1, 99999]})"),
                               [](const SessionEvent&) {});
  ASSERT_FALSE(bad_id.ok());
  EXPECT_EQ(bad_id.error().param, "prompt");

  // 4 sequences run at once (b4) and with --max-queue 0 none may wait: 5 can never fit (400),
  // and while 4 run, one more is refused for now (429).
  auto five = session->Start(Parse(service::Endpoint::kCompletions, R"({"prompt": "x", "n": 5, "max_tokens": 2})"),
                             [](const SessionEvent&) {});
  ASSERT_FALSE(five.ok());
  EXPECT_EQ(five.error().http_status, 400);
  EXPECT_EQ(five.error().param, "n");
  auto four = session->Complete(Parse(service::Endpoint::kCompletions, R"({"prompt": "x", "n": 4, "max_tokens": 2})"));
  EXPECT_TRUE(four.ok());
  auto busy = session->Start(
      Parse(service::Endpoint::kCompletions, R"({"prompt": "x", "n": 4, "max_tokens": 400, "ignore_eos": true})"),
      [](const SessionEvent&) {});
  ASSERT_TRUE(busy.ok());
  auto one_more = session->Start(Parse(service::Endpoint::kCompletions, R"({"prompt": "x", "max_tokens": 2})"),
                                 [](const SessionEvent&) {});
  ASSERT_FALSE(one_more.ok());
  EXPECT_EQ(one_more.error().http_status, 429);
  session->Cancel(**busy);
}

TEST_F(ServingSessionTest, CancelFreesBlocksAndReportsCancelled) {
  auto session = OpenSession();
  Collector c;
  auto started = session->Start(Parse(service::Endpoint::kCompletions,
                                      R"({"prompt": "Once", "max_tokens": 250, "ignore_eos": true})"),
                                c.Callback());
  ASSERT_TRUE(started.ok());
  session->Cancel(**started);
  c.Wait();
  ASSERT_TRUE(c.events.back().error.has_value());
  EXPECT_EQ(c.events.back().error->code, "cancelled");
  session->Shutdown(ShutdownMode::kDrain);
  EXPECT_EQ(session->stats().kv.used_blocks, 0);
}

TEST_F(ServingSessionTest, MetricsPerSpecialization) {
  auto session = OpenSession();
  ASSERT_TRUE(session->Complete(Parse(service::Endpoint::kCompletions,
                                      R"({"prompt": "Once upon a time", "max_tokens": 4})")).ok());
  const std::string m = session->RenderMetrics();
  EXPECT_THAT(m, HasSubstr("tailor_spec_executions_total{spec=\"b1_s16_c512\"} 1"));
  EXPECT_THAT(m, HasSubstr("tailor_spec_padding_ratio{spec=\"b1_s16_c512\"}"));
  EXPECT_THAT(m, HasSubstr("tailor_spec_latency_seconds_count{spec=\"b1_s1_c512\"} 3"));
  EXPECT_THAT(m, HasSubstr("tailor_generation_tokens_total 4"));
  EXPECT_THAT(m, HasSubstr("tailor_kv_blocks_used 0"));
  // The cost the planner charges for each specialization: as the package modeled it, and as
  // corrected by the steps seen (the default package's costs were measured, so learning is on).
  for (const char* source : {"modeled", "measured"}) {
    const std::string key = absl::StrCat("tailor_spec_cost_seconds{spec=\"b1_s1_c512\",source=\"", source, "\"} ");
    const size_t at = m.find(key);
    ASSERT_NE(at, std::string::npos) << key;
    EXPECT_GT(std::stod(m.substr(at + key.size())), 0.0) << key;
  }
}

}  // namespace
}  // namespace tailor
