// CORS on `tailor serve --allowed-origins`: preflights answered without the API key, the
// Access-Control-* headers only for allowed origins, on successes and errors alike.
#include <httplib.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/serve_package.h"
#include "tests/serve_process.h"
#include "tests/test_util.h"

namespace tailor {
namespace {

using testing_util::RunTailor;
using testing_util::ServePackage;
using testing_util::ServeProcess;
using ::testing::HasSubstr;

constexpr char kApp[] = "https://app.example.com";
constexpr char kKey[] = "sk-cors";

httplib::Result Preflight(int port, const std::string& origin, const std::string& path = "/v1/chat/completions") {
  httplib::Client c("127.0.0.1", port);
  httplib::Headers h{{"Origin", origin},
                     {"Access-Control-Request-Method", "POST"},
                     {"Access-Control-Request-Headers", "authorization, content-type"}};
  return c.Options(path.c_str(), h);
}

httplib::Result PostFrom(int port, const std::string& origin, const std::string& key) {
  httplib::Client c("127.0.0.1", port);
  httplib::Headers h{{"Origin", origin}};
  if (!key.empty()) h.emplace("Authorization", "Bearer " + key);
  return c.Post("/v1/completions", h, R"({"prompt": "Once", "max_tokens": 2})", "application/json");
}

TEST(Cors, AllowedOriginsGetPreflightsAndHeadersWithOrWithoutAKey) {
  std::string err;
  const std::string package = ServePackage(&err);
  ASSERT_FALSE(package.empty()) << err;
  for (bool with_key : {false, true}) {
    SCOPED_TRACE(with_key ? "with --api-key" : "without --api-key");
    std::vector<std::string> args{"--package", package, "--allowed-origins", std::string(kApp) + ", http://localhost:3000"};
    if (with_key) args.insert(args.end(), {"--api-key", kKey});
    ServeProcess server(args);
    ASSERT_GT(server.port(), 0) << server.stderr_text();
    const std::string key = with_key ? kKey : "";

    // Preflight from an allowed origin: 204 and the headers, never the key.
    auto pre = Preflight(server.port(), kApp);
    ASSERT_TRUE(pre);
    EXPECT_EQ(pre->status, 204);
    EXPECT_EQ(pre->get_header_value("Access-Control-Allow-Origin"), kApp);
    EXPECT_THAT(pre->get_header_value("Access-Control-Allow-Methods"), HasSubstr("POST"));
    EXPECT_THAT(pre->get_header_value("Access-Control-Allow-Headers"), HasSubstr("authorization"));
    EXPECT_FALSE(pre->get_header_value("Access-Control-Max-Age").empty());
    EXPECT_EQ(pre->get_header_value("Vary"), "Origin");
    // From another origin: answered, but without CORS headers (the browser blocks the call).
    auto other = Preflight(server.port(), "https://evil.example");
    ASSERT_TRUE(other);
    EXPECT_EQ(other->status, 204);
    EXPECT_FALSE(other->has_header("Access-Control-Allow-Origin"));
    EXPECT_FALSE(other->has_header("Access-Control-Allow-Methods"));

    // The real request carries Access-Control-Allow-Origin for the allowed origin only.
    auto ok = PostFrom(server.port(), "http://localhost:3000", key);
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200) << ok->body;
    EXPECT_EQ(ok->get_header_value("Access-Control-Allow-Origin"), "http://localhost:3000");
    auto foreign = PostFrom(server.port(), "https://evil.example", key);
    ASSERT_TRUE(foreign);
    EXPECT_FALSE(foreign->has_header("Access-Control-Allow-Origin"));
    if (with_key) {
      // A 401 still carries the header, so the page can read the error.
      auto denied = PostFrom(server.port(), kApp, "");
      ASSERT_TRUE(denied);
      EXPECT_EQ(denied->status, 401);
      EXPECT_EQ(denied->get_header_value("Access-Control-Allow-Origin"), kApp);
    }
    EXPECT_EQ(server.Stop(SIGTERM), 0) << server.stderr_text();
  }
}

TEST(Cors, WildcardAndDefault) {
  std::string err;
  const std::string package = ServePackage(&err);
  ASSERT_FALSE(package.empty()) << err;
  {
    ServeProcess server({"--package", package, "--allowed-origins", "*"});
    ASSERT_GT(server.port(), 0) << server.stderr_text();
    auto pre = Preflight(server.port(), "https://anything.example", "/v1/models");
    ASSERT_TRUE(pre);
    EXPECT_EQ(pre->status, 204);
    EXPECT_EQ(pre->get_header_value("Access-Control-Allow-Origin"), "*");
    EXPECT_EQ(server.Stop(SIGTERM), 0);
  }
  {
    ServeProcess server({"--package", package});  // default: no CORS at all
    ASSERT_GT(server.port(), 0) << server.stderr_text();
    auto pre = Preflight(server.port(), kApp);
    ASSERT_TRUE(pre);
    EXPECT_EQ(pre->status, 204);
    EXPECT_FALSE(pre->has_header("Access-Control-Allow-Origin"));
    auto post = PostFrom(server.port(), kApp, "");
    ASSERT_TRUE(post);
    EXPECT_EQ(post->status, 200);
    EXPECT_FALSE(post->has_header("Access-Control-Allow-Origin"));
    EXPECT_EQ(server.Stop(SIGTERM), 0);
  }
  const auto bad = RunTailor({"serve", "--package", package, "--allowed-origins", "app.example.com", "--port", "0"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("--allowed-origins"));
}

}  // namespace
}  // namespace tailor
