// What a new user hits first with `tailor serve`, `chat` and `batch` (issue 17, item 5): default
// token limits that fit the context, generation_config.json's max_new_tokens, a port in use,
// unbindable hosts, the sampling parameters vLLM clients send, /v1/models/{id} and the Bearer
// scheme. The servers run small stories260K packages (ctx_len 64) compiled by the executable.
#include <httplib.h>

#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/serve_process.h"
#include "tests/test_util.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Json = nlohmann::json;
using testing_util::CommandResult;
using testing_util::ReadAll;
using testing_util::RunCommand;
using testing_util::RunTailor;
using testing_util::ServeProcess;
using testing_util::TempDir;
using testing_util::WriteAll;

const std::string kShared = TAILOR_SHARED_DIR;
constexpr char kKey[] = "sk-new-user";
constexpr char kSpecs[] = R"({"specializations": [
    {"batch_size": "1", "seq_len": "16", "ctx_len": "64"},
    {"batch_size": "4", "seq_len": "1", "ctx_len": "64"}]})";

std::string Compile(const TempDir& tmp, const std::string& model, const std::vector<std::string>& extra) {
  WriteAll(tmp / "specs.json", kSpecs);
  const std::string out = (tmp / "pkg").string();
  std::vector<std::string> args = {"compile", "--model", model, "--specializations", (tmp / "specs.json").string(),
                                   "--out", out, "--compile-only", "--target", "native"};
  args.insert(args.end(), extra.begin(), extra.end());
  CommandResult r = RunTailor(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return out;
}

// stories260K.bin, ctx_len 64, at most 4 sequences running.
const std::string& Package() {
  static TempDir* tmp = new TempDir();
  static const std::string* path = new std::string(
      Compile(*tmp, kShared + "/models/stories260K/stories260K.bin",
              {"--tokenizer", kShared + "/models/stories260K/tok512.bin"}));
  return *path;
}

class ServeNewUser : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // --max-queue 0: nothing may wait beyond the 4 running sequences.
    server_ = new ServeProcess({"--package", Package(), "--api-key", kKey, "--served-model-name", "tiny",
                                "--max-queue", "0"});
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

  static httplib::Result Post(const std::string& path, const Json& body) {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(60, 0);
    c.set_bearer_token_auth(kKey);
    return c.Post(path.c_str(), body.dump(), "application/json");
  }
  // A successful completions call's body.
  static Json Complete(const Json& body) {
    auto r = Post("/v1/completions", body);
    EXPECT_TRUE(r);
    if (!r) return Json();
    EXPECT_EQ(r->status, 200) << r->body;
    return Json::parse(r->body);
  }

  static ServeProcess* server_;
};
ServeProcess* ServeNewUser::server_ = nullptr;

// Item 1: completions' default max_tokens (16) is clamped to the room the prompt leaves; an
// explicit one that does not fit is a 400 naming max_tokens.
TEST_F(ServeNewUser, DefaultMaxTokensFitTheContext) {
  std::vector<int> prompt(56, 300);  // 56 tokens of 64: room for 8
  prompt[0] = 1;
  Json j = Complete({{"prompt", prompt}, {"temperature", 0}, {"ignore_eos", true}});
  EXPECT_EQ(j["usage"]["completion_tokens"], 8) << j.dump();
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");

  auto r = Post("/v1/completions", {{"prompt", prompt}, {"max_tokens", 16}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_EQ(Json::parse(r->body)["error"]["param"], "max_tokens");
}

// Item 9: a seed with n > 1 gives each choice its own stream, and the same set again.
TEST_F(ServeNewUser, SeedWithSeveralChoices) {
  const Json body = {{"prompt", "Once upon a time"}, {"n", 3}, {"seed", 7}, {"temperature", 1.0}, {"max_tokens", 12}};
  Json a = Complete(body), b = Complete(body);
  std::multiset<std::string> first, second;
  for (const Json& c : a["choices"]) first.insert(c["text"].get<std::string>());
  for (const Json& c : b["choices"]) second.insert(c["text"].get<std::string>());
  EXPECT_EQ(first, second);
  EXPECT_EQ(std::set<std::string>(first.begin(), first.end()).size(), 3u) << a.dump();
}

// Item 9: stop_token_ids, min_tokens, ignore_eos and max_completion_tokens. logit_bias +100
// makes one token the certain next one, so the outcome is exact.
TEST_F(ServeNewUser, StopTokenIdsMinTokensIgnoreEos) {
  const Json force_300 = {{"300", 100}};
  const Json force_eos = {{"2", 100}};
  Json j = Complete({{"prompt", "Once"}, {"logit_bias", force_300}, {"max_tokens", 10}, {"stop_token_ids", {300}}});
  EXPECT_EQ(j["usage"]["completion_tokens"], 1) << j.dump();
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  // min_tokens holds the stop token back for 3 tokens: it comes 4th.
  j = Complete({{"prompt", "Once"}, {"logit_bias", force_300}, {"max_tokens", 10}, {"stop_token_ids", {300}},
                {"min_tokens", 3}, {"temperature", 0}});
  EXPECT_EQ(j["usage"]["completion_tokens"], 4) << j.dump();
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  // EOS likewise.
  j = Complete({{"prompt", "Once"}, {"logit_bias", force_eos}, {"max_tokens", 10}});
  EXPECT_EQ(j["usage"]["completion_tokens"], 1) << j.dump();
  j = Complete({{"prompt", "Once"}, {"logit_bias", force_eos}, {"max_tokens", 10}, {"min_tokens", 5}});
  EXPECT_EQ(j["usage"]["completion_tokens"], 6) << j.dump();
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  j = Complete({{"prompt", "Once"}, {"logit_bias", force_eos}, {"max_tokens", 5}, {"ignore_eos", true}});
  EXPECT_EQ(j["usage"]["completion_tokens"], 5) << j.dump();
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");

  auto r = Post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                                         {"max_completion_tokens", 4}, {"logit_bias", force_300},
                                         {"stop_token_ids", {301}}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  j = Json::parse(r->body);
  EXPECT_EQ(j["usage"]["completion_tokens"], 4) << j.dump();
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  r = Post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_completion_tokens", 9},
                                    {"logit_bias", force_300}, {"stop_token_ids", {300}}, {"min_tokens", 2}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Json::parse(r->body)["usage"]["completion_tokens"], 3) << r->body;

  r = Post("/v1/completions", {{"prompt", "Once"}, {"stop_token_ids", {512}}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Json::parse(r->body)["error"]["param"], "stop_token_ids");
  r = Post("/v1/completions", {{"prompt", "Once"}, {"max_tokens", 3}, {"min_tokens", 4}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Json::parse(r->body)["error"]["param"], "min_tokens");
}

// Item 9: n above what running plus --max-queue can ever hold is the request's fault: 400.
TEST_F(ServeNewUser, RequestThatCanNeverFitIs400) {
  auto r = Post("/v1/completions", {{"prompt", "Once"}, {"n", 5}, {"max_tokens", 2}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_EQ(Json::parse(r->body)["error"]["param"], "n");
  Json j = Complete({{"prompt", "Once"}, {"n", 4}, {"max_tokens", 2}});
  EXPECT_EQ(j["choices"].size(), 4u);
}

// Item 10: GET /v1/models/{id}, and the Bearer scheme in any case.
TEST_F(ServeNewUser, ModelRouteAndBearerScheme) {
  httplib::Client c("127.0.0.1", server_->port());
  auto r = c.Get("/v1/models/tiny", {{"Authorization", std::string("bearer ") + kKey}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  Json j = Json::parse(r->body);
  EXPECT_EQ(j["id"], "tiny");
  EXPECT_EQ(j["object"], "model");
  r = c.Get("/v1/models/other", {{"Authorization", std::string("BEARER ") + kKey}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  j = Json::parse(r->body);
  EXPECT_EQ(j["error"]["code"], "model_not_found");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  r = c.Get("/v1/models/tiny", {{"Authorization", "bearer wrong"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
}

// Item 3: a second server on the port in use exits 2 at once. Item 5: so does a --host that is
// not this machine's or not an address at all. `timeout` bounds a server that would listen.
TEST_F(ServeNewUser, PortInUseAndUnbindableHosts) {
  auto serve = [](std::vector<std::string> args) {
    args.insert(args.begin(), {"/usr/bin/timeout", "60", TAILOR_BINARY, "serve", "--package", Package()});
    return RunCommand(args);
  };
  CommandResult r = serve({"--port", std::to_string(server_->port())});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("address already in use"));
  for (const std::string host : {"203.0.113.1", "nonsense.invalid"}) {
    r = serve({"--host", host, "--port", "0"});
    EXPECT_EQ(r.exit_code, 2) << host << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("--host " + host));
  }
  r = serve({"--kv-cache-mb", "0"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--kv-cache-mb"));
}

// Item 2: generation_config.json's max_new_tokens is the default token limit of serve, chat and
// batch (do_sample false there: greedy unless told otherwise).
TEST(ServeNewUserDefaults, GenerationConfigMaxNewTokens) {
  TempDir tmp;
  const std::string hf = kShared + "/models/stories260K-hf";
  fs::create_directories(tmp / "model");
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json"}) {
    fs::create_symlink(hf + "/" + f, tmp / "model" / f);
  }
  WriteAll(tmp / "model" / "generation_config.json",
           R"({"bos_token_id": 1, "eos_token_id": 2, "do_sample": false, "max_new_tokens": 3})");
  const std::string package = Compile(tmp, (tmp / "model").string(), {});

  ServeProcess server({"--package", package});
  ASSERT_GT(server.port(), 0) << server.stderr_text();
  httplib::Client c("127.0.0.1", server.port());
  c.set_read_timeout(60, 0);
  auto r = c.Post("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "Tell a story"}]})",
                  "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  Json chat = Json::parse(r->body);
  EXPECT_EQ(chat["usage"]["completion_tokens"], 3) << r->body;
  r = c.Post("/v1/completions", R"({"prompt": "Once upon a time"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(Json::parse(r->body)["usage"]["completion_tokens"], 3) << r->body;
  EXPECT_EQ(server.Stop(SIGTERM), 0);

  // tailor chat: the same greedy three-token reply (which chat prints without its leading space),
  // whatever the seed.
  std::string reply = chat["choices"][0]["message"]["content"].get<std::string>();
  reply.erase(0, reply.find_first_not_of(' '));
  for (const char* seed : {"1", "2"}) {
    CommandResult chat_cli =
        RunCommand({TAILOR_BINARY, "chat", "--package", package, "--seed", seed}, "Tell a story\n");
    ASSERT_EQ(chat_cli.exit_code, 0) << chat_cli.err;
    EXPECT_EQ(chat_cli.out, reply + "\n");
  }

  // tailor batch: a line without max_tokens gets the same limit.
  WriteAll(tmp / "in.jsonl",
           R"({"custom_id": "a", "method": "POST", "url": "/v1/completions", "body": {"prompt": "Once upon a time"}})"
           "\n");
  CommandResult b = RunTailor({"batch", "--package", package, "--input", (tmp / "in.jsonl").string(), "--output",
                               (tmp / "out.jsonl").string()});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  Json line = Json::parse(ReadAll(tmp / "out.jsonl"));
  EXPECT_EQ(line["response"]["body"]["usage"]["completion_tokens"], 3) << line.dump();
}

}  // namespace
}  // namespace tailor
