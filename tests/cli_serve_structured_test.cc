// Structured outputs and tool calls through `tailor serve` (raw HTTP): response_format
// json_schema / json_object and vLLM's guided_regex / guided_choice / guided_json on both
// endpoints, streamed and not, over many seeds and temperatures, every output checked by an
// independent parser and validator; tool_choice required / named / none with tools, streamed
// tool-call deltas, and tool-role history. stories260K packages with the llama2.c tokenizer
// (tok512.bin) and the SentencePiece model (tok512.model).
#include <httplib.h>

#include <regex>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/json_schema_check.h"
#include "tests/serve_package.h"
#include "tests/serve_process.h"

namespace tailor {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;
using testing_util::CheckJsonSchema;
using testing_util::CommandResult;
using testing_util::RunTailor;
using testing_util::ServePackage;
using testing_util::ServeProcess;
using testing_util::StoriesDir;
using testing_util::TempDir;

// The package of ServePackage() but with the SentencePiece model file as its tokenizer.
std::string SentencePiecePackage(std::string* error) {
  static TempDir* tmp = new TempDir();
  static std::string* path = nullptr;
  static std::string* err = new std::string();
  if (path == nullptr) {
    testing_util::WriteAll(*tmp / "specs.json", R"({"specializations": [
        {"batch_size": "1", "seq_len": "16", "ctx_len": "512"},
        {"batch_size": "4", "seq_len": "1", "ctx_len": "512"}]})");
    const std::string out = (*tmp / "pkg").string();
    CommandResult r = RunTailor({"compile", "--model", StoriesDir() + "/stories260K.bin", "--tokenizer",
                                 StoriesDir() + "/tok512.model", "--specializations", (*tmp / "specs.json").string(),
                                 "--out", out, "--compile-only", "--target", "native"});
    path = new std::string(r.exit_code == 0 ? out : "");
    *err = r.err;
  }
  *error = *err;
  return *path;
}

// Concatenated text / content and finish reasons of an SSE body, per choice index.
struct Streamed {
  std::vector<std::string> text;
  std::vector<std::string> finish;
  std::vector<Json> tool_calls;  // per choice: the calls assembled from delta.tool_calls
  std::vector<int> tool_deltas;  // per choice: how many tool-call deltas came
  bool done = false;
  std::string error;
};

Streamed ParseStream(const std::string& body, size_t choices) {
  Streamed s;
  s.text.resize(choices);
  s.finish.resize(choices);
  s.tool_calls.assign(choices, Json::array());
  s.tool_deltas.assign(choices, 0);
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t end = body.find("\n\n", pos);
    if (end == std::string::npos || body.compare(pos, 6, "data: ") != 0) {
      s.error = "bad event at " + std::to_string(pos);
      return s;
    }
    const std::string data = body.substr(pos + 6, end - pos - 6);
    pos = end + 2;
    if (data == "[DONE]") {
      s.done = true;
      continue;
    }
    const Json j = Json::parse(data);
    for (const Json& c : j["choices"]) {
      const size_t i = c["index"];
      if (c.contains("text")) s.text[i] += c["text"].get<std::string>();
      if (c.contains("delta")) {
        const Json& d = c["delta"];
        if (d.contains("content") && d["content"].is_string()) s.text[i] += d["content"].get<std::string>();
        for (const Json& t : d.value("tool_calls", Json::array())) {
          const size_t k = t["index"];
          ++s.tool_deltas[i];
          if (k == s.tool_calls[i].size()) {  // a new call: its first delta names it
            if (!t.contains("id") || t["type"] != "function" || !t["function"].contains("name")) {
              s.error = "first delta of a call without id/type/name: " + t.dump();
            }
            s.tool_calls[i].push_back({{"id", t.value("id", "")},
                                       {"name", t["function"].value("name", "")},
                                       {"arguments", ""}});
          } else if (k + 1 != s.tool_calls[i].size()) {
            s.error = "tool call index out of order: " + t.dump();
            continue;
          }
          s.tool_calls[i][k]["arguments"] =
              s.tool_calls[i][k]["arguments"].get<std::string>() + t["function"].value("arguments", "");
        }
      }
      if (c["finish_reason"].is_string()) s.finish[i] = c["finish_reason"];
    }
  }
  return s;
}

class ServeStructured : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string err;
    const std::string bin = ServePackage(&err);
    ASSERT_FALSE(bin.empty()) << err;
    const std::string model = SentencePiecePackage(&err);
    ASSERT_FALSE(model.empty()) << err;
    servers_[0] = new ServeProcess({"--package", bin});
    servers_[1] = new ServeProcess({"--package", model});
    for (ServeProcess* s : servers_) ASSERT_GT(s->port(), 0) << s->stderr_text();
  }
  static void TearDownTestSuite() {
    for (ServeProcess*& s : servers_) {
      if (s) {
        EXPECT_EQ(s->Stop(SIGTERM), 0) << s->stderr_text();
      }
      delete s;
      s = nullptr;
    }
  }
  void SetUp() override {
    for (ServeProcess* s : servers_) {
      ASSERT_NE(s, nullptr);
      ASSERT_GT(s->port(), 0);
    }
  }
  static Json Post(const std::string& path, const Json& body, int server = 0, int expect_status = 200) {
    httplib::Client c("127.0.0.1", servers_[server]->port());
    c.set_read_timeout(120, 0);
    auto r = c.Post(path.c_str(), body.dump(), "application/json");
    EXPECT_TRUE(r) << path;
    if (!r) return Json();
    EXPECT_EQ(r->status, expect_status) << body.dump() << "\n" << r->body;
    if (body.value("stream", false) && r->status == 200) return Json(r->body);  // the SSE text
    return Json::parse(r->body, nullptr, false);
  }

  static ServeProcess* servers_[2];
};
ServeProcess* ServeStructured::servers_[2] = {nullptr, nullptr};

const char* kSchemas[] = {
    // nested object
    R"({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
        "pet": {"type": "object", "properties": {"kind": {"type": "string"}, "legs": {"type": "number"}},
                "required": ["kind"], "additionalProperties": false}},
        "required": ["name", "age", "pet"], "additionalProperties": false})",
    // array with bounds
    R"({"type": "array", "items": {"type": "boolean"}, "minItems": 1, "maxItems": 4})",
    // enum
    R"({"type": "object", "properties": {"color": {"enum": ["red", "green", "blue", 3, null]}},
        "required": ["color"], "additionalProperties": false})",
    // anyOf
    R"({"anyOf": [{"type": "integer"}, {"type": "object", "properties": {"x": {"type": "string"}},
        "required": ["x"], "additionalProperties": false}]})",
    // nullable
    R"({"type": "object", "properties": {"nick": {"type": ["string", "null"]}, "n": {"type": ["integer", "null"]}},
        "required": ["nick", "n"], "additionalProperties": false})",
    // $ref with $defs (recursive)
    R"({"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
        "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}}, "required": ["v", "next"],
        "additionalProperties": false}}, "$ref": "#/$defs/node"})",
};

// Every output of every schema, temperature and seed parses and validates; generation ends by
// itself (stop) within max_tokens, since the matcher knows the budget.
TEST_F(ServeStructured, JsonSchemaOutputsParseAndValidate) {
  int checked = 0;
  for (const char* schema_text : kSchemas) {
    const Json schema = Json::parse(schema_text);
    for (double temperature : {0.0, 0.7, 1.5}) {
      for (int seed : {1, 2}) {
        Json body = {{"prompt", "Once upon a time"}, {"max_tokens", 120}, {"temperature", temperature},
                     {"seed", seed}, {"n", temperature == 0 ? 1 : 4},
                     {"response_format", {{"type", "json_schema"},
                                          {"json_schema", {{"name", "t"}, {"schema", schema}, {"strict", true}}}}}};
        const Json r = Post("/v1/completions", body, seed - 1);
        ASSERT_TRUE(r.contains("choices")) << r.dump();
        for (const Json& c : r["choices"]) {
          const std::string text = c["text"];
          const Json value = Json::parse(text, nullptr, false);
          ASSERT_FALSE(value.is_discarded()) << schema_text << "\nnot JSON: " << text;
          EXPECT_EQ(CheckJsonSchema(value, schema, schema), "") << schema_text << "\n" << text;
          EXPECT_EQ(c["finish_reason"], "stop") << text;
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, 6 * (2 + 2 * 2 * 4));
}

// Streamed outputs validate too, and at temperature 0 equal the non-streamed text; chat and
// guided_json on the second server.
TEST_F(ServeStructured, StreamedAndChatOutputs) {
  const Json schema = Json::parse(kSchemas[0]);
  for (int server : {0, 1}) {
    Json body = {{"prompt", "Tom"}, {"max_tokens", 100}, {"temperature", 0}, {"guided_json", schema}};
    const Json plain = Post("/v1/completions", body, server);
    body["stream"] = true;
    body["temperature"] = 1.0;
    body["n"] = 3;
    body["seed"] = 5;
    Streamed s = ParseStream(Post("/v1/completions", body, server).get<std::string>(), 3);
    ASSERT_TRUE(s.done && s.error.empty()) << s.error;
    for (const std::string& text : s.text) {
      const Json v = Json::parse(text, nullptr, false);
      ASSERT_FALSE(v.is_discarded()) << text;
      EXPECT_EQ(CheckJsonSchema(v, schema, schema), "") << text;
    }
    body["temperature"] = 0;
    body["n"] = 1;
    s = ParseStream(Post("/v1/completions", body, server).get<std::string>(), 1);
    EXPECT_EQ(s.text[0], plain["choices"][0]["text"]);
    EXPECT_EQ(s.finish[0], "stop");

    Json chat = {{"messages", {{{"role", "user"}, {"content", "Give me JSON"}}}}, {"max_tokens", 80},
                 {"temperature", 0.9}, {"seed", 3}, {"n", 3}, {"response_format", {{"type", "json_object"}}}};
    const Json r = Post("/v1/chat/completions", chat, server);
    for (const Json& c : r["choices"]) {
      const Json v = Json::parse(c["message"]["content"].get<std::string>(), nullptr, false);
      EXPECT_TRUE(v.is_object()) << c.dump();
    }
    chat["stream"] = true;
    s = ParseStream(Post("/v1/chat/completions", chat, server).get<std::string>(), 3);
    for (const std::string& text : s.text) EXPECT_TRUE(Json::parse(text, nullptr, false).is_object()) << text;
  }
}

TEST_F(ServeStructured, GuidedRegexAndChoiceMatchExactly) {
  const std::vector<std::string> choices = {"yes", "no", "maybe so", "Once"};
  const std::regex pattern("[0-9]{3}-[a-z]{2,4}( [A-Z][a-z]+)?");
  for (int server : {0, 1}) {
    // "" is BOS alone: the detokenizer would drop a first token's leading space there.
    for (const std::string prompt : {"", "Once upon a time", "Lily said"}) {
      for (double temperature : {0.0, 1.5}) {
        Json body = {{"prompt", prompt}, {"max_tokens", 30}, {"temperature", temperature}, {"seed", 9},
                     {"n", 4}, {"guided_choice", choices}};
        for (bool stream : {false, true}) {
          body["stream"] = stream;
          std::vector<std::string> texts, finishes;
          if (stream) {
            Streamed s = ParseStream(Post("/v1/completions", body, server).get<std::string>(), 4);
            texts = s.text;
            finishes = s.finish;
          } else {
            const Json resp1 = Post("/v1/completions", body, server);
            for (const Json& c : resp1["choices"]) {
              texts.push_back(c["text"]);
              finishes.push_back(c["finish_reason"]);
            }
          }
          ASSERT_EQ(texts.size(), 4u);
          for (size_t i = 0; i < texts.size(); ++i) {
            EXPECT_THAT(choices, ::testing::Contains(texts[i])) << "server " << server << " prompt '" << prompt << "'";
            EXPECT_EQ(finishes[i], "stop");  // the model would not stop there by itself
          }
        }
        body = {{"prompt", prompt}, {"max_tokens", 30}, {"temperature", temperature}, {"seed", 4},
                {"n", 4}, {"guided_regex", "[0-9]{3}-[a-z]{2,4}( [A-Z][a-z]+)?"}};
        const Json resp2 = Post("/v1/completions", body, server);
        for (const Json& c : resp2["choices"]) {
          EXPECT_TRUE(std::regex_match(c["text"].get<std::string>(), pattern)) << c["text"];
        }
        // A space-led branch: after BOS alone a first "▁word" token would lose its space in the
        // text sent, so the word branch is taken only where the space survives.
        body["guided_regex"] = "( [a-z]+|[0-9]+)";
        const Json resp3 = Post("/v1/completions", body, server);
        for (const Json& c : resp3["choices"]) {
          EXPECT_TRUE(std::regex_match(c["text"].get<std::string>(), std::regex("( [a-z]+|[0-9]+)")))
              << "server " << server << " prompt '" << prompt << "': '" << c["text"].get<std::string>() << "'";
        }
      }
    }
  }
}

TEST_F(ServeStructured, BadConstraintsAre400sNamingTheField) {
  Json r = Post("/v1/completions",
                {{"prompt", "x"}, {"response_format", {{"type", "json_schema"}, {"json_schema",
                  {{"name", "z"}, {"schema", {{"type", "object"}, {"properties", {{"zip", {{"type", "string"},
                  {"pattern", "[0-9]+"}}}}}}}}}}}}, 0, 400);
  EXPECT_EQ(r["error"]["param"], "response_format.json_schema.schema");
  EXPECT_THAT(r["error"]["message"].get<std::string>(), HasSubstr("pattern"));
  r = Post("/v1/completions", {{"prompt", "x"}, {"guided_regex", "(a)\\1"}}, 0, 400);
  EXPECT_EQ(r["error"]["param"], "guided_regex");
  r = Post("/v1/completions", {{"prompt", "x"}, {"response_format", {{"type", "json_schema"}}}}, 0, 400);
  EXPECT_EQ(r["error"]["param"], "response_format.json_schema");
  r = Post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "x"}}}},
           {"tools", {{{"type", "function"}, {"function", {{"name", "f"}, {"parameters",
             {{"type", "object"}, {"properties", {{"a", {{"type", "string"}, {"format", "email"}}}}}}}}}}}},
           {"tool_choice", "required"}}, 0, 400);  // the schema is checked before the prompt's length
  EXPECT_EQ(r["error"]["param"], "tools[0].function.parameters");
  EXPECT_THAT(r["error"]["message"].get<std::string>(), HasSubstr("format"));
}

// Tool calls need a context that holds the tool descriptions: tiny Qwen3 (its own template
// renders tools; Hermes tags) and tiny Llama 3 (its template does not: tools described in the
// system message, Llama 3 JSON calls), random weights, ctx 1024.
class ServeTools : public ::testing::Test {
 protected:
  static std::string Compile(const std::string& model, const std::string& tokenizer, std::string* err) {
    static TempDir* tmp = new TempDir();
    testing_util::WriteAll(*tmp / "specs.json", R"({"specializations": [
        {"batch_size": "1", "seq_len": "64", "ctx_len": "1024"},
        {"batch_size": "4", "seq_len": "1", "ctx_len": "1024"}]})");
    const std::string out = (*tmp / model).string();
    const std::string shared = std::string(TAILOR_SHARED_DIR) + "/models/";
    CommandResult r = RunTailor({"compile", "--model", shared + model, "--tokenizer", shared + tokenizer,
                                 "--specializations", (*tmp / "specs.json").string(), "--out", out,
                                 "--compile-only", "--target", "native"});
    *err = r.err;
    return r.exit_code == 0 ? out : "";
  }
  static void SetUpTestSuite() {
    std::string err;
    const std::string qwen = Compile("tiny-qwen3", "tokenizers/qwen3/tokenizer.json", &err);
    ASSERT_FALSE(qwen.empty()) << err;
    const std::string llama = Compile("tiny-llama3", "tokenizers/llama3/tokenizer.json", &err);
    ASSERT_FALSE(llama.empty()) << err;
    servers_[0] = new ServeProcess({"--package", qwen});
    servers_[1] = new ServeProcess({"--package", llama});
    for (ServeProcess* s : servers_) ASSERT_GT(s->port(), 0) << s->stderr_text();
  }
  static void TearDownTestSuite() {
    for (ServeProcess*& s : servers_) {
      if (s) {
        EXPECT_EQ(s->Stop(SIGTERM), 0) << s->stderr_text();
      }
      delete s;
      s = nullptr;
    }
  }
  void SetUp() override {
    for (ServeProcess* s : servers_) {
      ASSERT_NE(s, nullptr);
      ASSERT_GT(s->port(), 0);
    }
  }
  static Json Post(const std::string& path, const Json& body, int server, int expect_status = 200) {
    httplib::Client c("127.0.0.1", servers_[server]->port());
    c.set_read_timeout(120, 0);
    auto r = c.Post(path.c_str(), body.dump(), "application/json");
    EXPECT_TRUE(r) << path;
    if (!r) return Json();
    EXPECT_EQ(r->status, expect_status) << body.dump() << "\n" << r->body;
    if (body.value("stream", false) && r->status == 200) return Json(r->body);
    return Json::parse(r->body, nullptr, false);
  }
  static ServeProcess* servers_[2];
};
ServeProcess* ServeTools::servers_[2] = {nullptr, nullptr};

const Json kTools = Json::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
   "parameters": {"type": "object", "properties": {"city": {"type": "string"},
     "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"], "additionalProperties": false}}},
  {"type": "function", "function": {"name": "add", "description": "Adds numbers",
   "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
     "required": ["a", "b"], "additionalProperties": false}}}])");

const Json* ToolParams(const std::string& name) {
  for (const Json& t : kTools) {
    if (t["function"]["name"] == name) return &t["function"]["parameters"];
  }
  return nullptr;
}

void ExpectValidCall(const Json& call, const std::string& want_name = "") {
  EXPECT_EQ(call["type"], "function");
  EXPECT_THAT(call["id"].get<std::string>(), ::testing::MatchesRegex("call_[A-Za-z0-9]{24}"));
  const std::string name = call["function"]["name"];
  if (!want_name.empty()) {
    EXPECT_EQ(name, want_name);
  }
  const Json* params = ToolParams(name);
  ASSERT_NE(params, nullptr) << name;
  const Json args = Json::parse(call["function"]["arguments"].get<std::string>(), nullptr, false);
  ASSERT_TRUE(args.is_object()) << call.dump();
  EXPECT_EQ(CheckJsonSchema(args, *params, *params), "") << call.dump();
}

TEST_F(ServeTools, ForcedToolCalls) {
  for (int server : {0, 1}) {
  SCOPED_TRACE(server == 0 ? "qwen3" : "llama3");
  Json body = {{"messages", {{{"role", "user"}, {"content", "What is the weather in Paris?"}}}},
               {"tools", kTools}, {"tool_choice", "required"}, {"max_tokens", 150}, {"temperature", 0}};
  Json r = Post("/v1/chat/completions", body, server);
  ASSERT_TRUE(r.contains("choices")) << r.dump();
  Json msg = r["choices"][0]["message"];
  EXPECT_EQ(r["choices"][0]["finish_reason"], "tool_calls") << r.dump();
  EXPECT_TRUE(msg["content"].is_null()) << msg.dump();
  ASSERT_GE(msg["tool_calls"].size(), 1u) << msg.dump();
  for (const Json& call : msg["tool_calls"]) ExpectValidCall(call);

  body["tool_choice"] = {{"type", "function"}, {"function", {{"name", "add"}}}};
  body["parallel_tool_calls"] = false;
  for (double temperature : {0.0, 1.0}) {
    body["temperature"] = temperature;
    body["n"] = 3;
    body["seed"] = 11;
    r = Post("/v1/chat/completions", body, server);
    for (const Json& c : r["choices"]) {
      EXPECT_EQ(c["finish_reason"], "tool_calls") << c.dump();
      ASSERT_EQ(c["message"]["tool_calls"].size(), 1u) << c.dump();
      ExpectValidCall(c["message"]["tool_calls"][0], "add");
    }
    // Streamed: the same calls, assembled from delta.tool_calls.
    Json streamed_body = body;
    streamed_body["stream"] = true;
    Streamed s = ParseStream(Post("/v1/chat/completions", streamed_body, server).get<std::string>(), 3);
    ASSERT_TRUE(s.done && s.error.empty()) << s.error;
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(s.finish[i], "tool_calls");
      EXPECT_EQ(s.text[i], "");
      ASSERT_EQ(s.tool_calls[i].size(), 1u);
      const Json& call = s.tool_calls[i][0];
      ExpectValidCall({{"id", call["id"]}, {"type", "function"},
                       {"function", {{"name", call["name"]}, {"arguments", call["arguments"]}}}}, "add");
      // Qwen's calls stream their arguments token by token (Llama 3 JSON is decided at the end).
      if (server == 0) {
        EXPECT_GT(s.tool_deltas[i], 3);
      }
      // Same seed, same sampling: the streamed call is the non-streamed one (ids are fresh).
      EXPECT_EQ(call["arguments"], r["choices"][i]["message"]["tool_calls"][0]["function"]["arguments"]);
    }
  }
  }
}

// tool_choice "auto" parses what the model writes. The model is made to write a call (and some
// text) with guided_choice, so the parse is checked end to end, streamed and not.
TEST_F(ServeTools, AutoParsesCallsOutOfTheText) {
  const std::string outputs[2] = {
      "Sure.\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>",
      "{\"name\": \"add\", \"parameters\": {\"a\": 1, \"b\": 2}}"};
  const std::string contents[2] = {"Sure.", ""};
  for (int server : {0, 1}) {
    SCOPED_TRACE(server == 0 ? "qwen3" : "llama3");
    Json body = {{"messages", {{{"role", "user"}, {"content", "1 + 2?"}}}}, {"tools", kTools},
                 {"max_tokens", 120}, {"temperature", 0.8}, {"seed", 1}, {"guided_choice", {outputs[server]}}};
    const Json r = Post("/v1/chat/completions", body, server);
    ASSERT_TRUE(r.contains("choices")) << r.dump();
    const Json& c = r["choices"][0];
    EXPECT_EQ(c["finish_reason"], "tool_calls");
    if (contents[server].empty()) {
      EXPECT_TRUE(c["message"]["content"].is_null()) << c.dump();
    } else {
      EXPECT_EQ(c["message"]["content"], contents[server]);
    }
    ASSERT_EQ(c["message"]["tool_calls"].size(), 1u) << c.dump();
    ExpectValidCall(c["message"]["tool_calls"][0], "add");
    EXPECT_EQ(Json::parse(c["message"]["tool_calls"][0]["function"]["arguments"].get<std::string>()),
              Json::parse(R"({"a": 1, "b": 2})"));
    body["stream"] = true;
    Streamed s = ParseStream(Post("/v1/chat/completions", body, server).get<std::string>(), 1);
    ASSERT_TRUE(s.done && s.error.empty()) << s.error;
    EXPECT_EQ(s.text[0], contents[server]);  // nothing of the call leaks into the content
    EXPECT_EQ(s.finish[0], "tool_calls");
    ASSERT_EQ(s.tool_calls[0].size(), 1u);
    EXPECT_EQ(s.tool_calls[0][0]["name"], "add");
    EXPECT_EQ(Json::parse(s.tool_calls[0][0]["arguments"].get<std::string>()), Json::parse(R"({"a": 1, "b": 2})"));
  }
}

TEST_F(ServeTools, ToolChoiceNoneAndToolHistory) {
  Json body = {{"messages", {{{"role", "user"}, {"content", "Weather?"}},
                             {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", {{{"id", "call_1"},
                               {"type", "function"}, {"function", {{"name", "get_weather"},
                               {"arguments", "{\"city\": \"Paris\", \"unit\": \"celsius\"}"}}}}}}},
                             {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "21 degrees"}}}},
               {"tools", kTools}, {"tool_choice", "none"}, {"max_tokens", 12}, {"temperature", 0}};
  Json r = Post("/v1/chat/completions", body, 0);
  ASSERT_TRUE(r.contains("choices")) << r.dump();
  EXPECT_FALSE(r["choices"][0]["message"].contains("tool_calls"));
  EXPECT_NE(r["choices"][0]["finish_reason"], "tool_calls");
  // The history with tools shown costs prompt tokens that tool_choice none does not spend.
  body["tool_choice"] = "auto";
  Json with_tools = Post("/v1/chat/completions", body, 0);
  EXPECT_GT(with_tools["usage"]["prompt_tokens"].get<int>(), r["usage"]["prompt_tokens"].get<int>() + 50);
}

}  // namespace
}  // namespace tailor
