#include "bench/soak/workload.h"

#include <thread>

#include "bench/soak/http_client.h"
#include "nlohmann/json.hpp"

namespace tailor::soak {
namespace {

using nlohmann::json;

// Default weights by Kind: most requests are ordinary, a sixth are dropped by their client and
// a tenth are malformed.
constexpr double kDefaultWeights[] = {25, 20, 15, 15, 8, 7, 10};
static_assert(sizeof kDefaultWeights / sizeof kDefaultWeights[0] == static_cast<int>(Kind::kNumKinds));

const char* const kPrompts[] = {
    "Once upon a time", "Tom and Lily", "The little dog", "One day, a girl named Sue",
    "The sun was shining and", "In the park there was a big tree", "Mom said", "Ben had a red ball",
};

// Bodies the server must refuse with 400: broken JSON, wrong types, values out of range, a
// nesting bomb, invalid UTF-8, an unknown role. Each pairs the path with the body.
std::vector<std::pair<std::string, std::string>> MalformedBodies() {
  return {
      {"/v1/completions", R"({"prompt": "x", "max_tokens": )"},
      {"/v1/completions", "not json"},
      {"/v1/completions", R"({"prompt": 42})"},
      {"/v1/chat/completions", R"({"messages": "hi"})"},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": -5})"},
      {"/v1/completions", R"({"prompt": "x", "temperature": "hot"})"},
      {"/v1/completions", "[1,2,3]"},
      {"/v1/completions", R"({"prompt": "x", "n": 100000})"},
      {"/v1/completions", "{\"prompt\": \"\xff\xfe\"}"},
      {"/v1/completions", std::string(5000, '[') + std::string(5000, ']')},
      {"/v1/chat/completions", R"({"messages": [{"role": "wizard", "content": "x"}]})"},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": 100000})"},
      {"/v1/completions", R"({"prompt": [99999999]})"},
      {"/v1/chat/completions", R"({"messages": [], "max_tokens": 3})"},
      {"/v1/completions", ""},
  };
}

std::string Body(bool chat, bool stream, int max_tokens, std::mt19937_64& rng) {
  const char* prompt = kPrompts[rng() % (sizeof kPrompts / sizeof kPrompts[0])];
  json j;
  if (chat) {
    j["messages"] = json::array({{{"role", "user"}, {"content", prompt}}});
  } else {
    j["prompt"] = prompt;
  }
  j["max_tokens"] = max_tokens;
  j["temperature"] = (rng() % 2) ? 0.0 : 0.8;
  if (rng() % 4 == 0) j["seed"] = static_cast<int>(rng() % 1000);
  if (rng() % 4 == 0) j["stop"] = json::array({"."});
  if (stream) {
    j["stream"] = true;
    if (rng() % 2) j["stream_options"] = {{"include_usage", true}};
  }
  return j.dump();
}

// "" if `body` is a whole non-streamed completion, else what is wrong with it.
std::string CheckWhole(const std::string& body, bool chat) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "200 with a body that is not a JSON object";
  if (j.value("object", "") != (chat ? "chat.completion" : "text_completion")) return "200 with a wrong 'object'";
  if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) return "200 without choices";
  for (const json& c : j["choices"]) {
    const json reason = c.value("finish_reason", json());
    if (!reason.is_string() || (reason != "stop" && reason != "length")) {
      return "200 with finish_reason " + reason.dump() + " (expected stop or length)";
    }
  }
  return "";
}

// "" if `body` is a whole event stream (events, every choice finished, then [DONE]).
std::string CheckStream(const std::string& body) {
  const std::string done = "data: [DONE]\n\n";
  if (body.size() < done.size() || body.compare(body.size() - done.size(), done.size(), done) != 0) {
    return "stream did not end with data: [DONE]";
  }
  bool finished = false;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const size_t end = body.find("\n\n", pos);
    const std::string data = body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") break;
    json e = json::parse(data, nullptr, false);
    if (e.is_discarded()) return "stream event is not JSON: " + data.substr(0, 80);
    if (e.contains("error")) return "stream carried an error event: " + data.substr(0, 160);
    if (e.contains("choices")) {
      for (const json& c : e["choices"]) {
        const json reason = c.value("finish_reason", json());
        if (reason.is_string()) {
          if (reason != "stop" && reason != "length") return "stream finish_reason " + reason.dump();
          finished = true;
        }
      }
    }
  }
  return finished ? "" : "stream ended without a finish_reason";
}

// Classifies a status that is not 200 for a well-formed request (or not 400 for a malformed
// one): overload refusals are allowed, anything else is a failure.
void ClassifyRefusal(const HttpReply& reply, Outcome& out) {
  if (reply.status == 429 || reply.status == 503) {
    out.overload = true;
    json j = json::parse(reply.body, nullptr, false);
    if (j.is_discarded() || !j.contains("error")) {
      out.failure = std::to_string(reply.status) + " without an OpenAI error body";
    }
    return;
  }
  out.failure = "status " + std::to_string(reply.status) + ": " + reply.body.substr(0, 200);
}

}  // namespace

const char* KindName(Kind k) {
  switch (k) {
    case Kind::kCompletion: return "completion";
    case Kind::kCompletionStream: return "completion_stream";
    case Kind::kChat: return "chat";
    case Kind::kChatStream: return "chat_stream";
    case Kind::kDisconnectStream: return "disconnect_stream";
    case Kind::kDisconnectWhole: return "disconnect_whole";
    case Kind::kMalformed: return "malformed";
    case Kind::kNumKinds: break;
  }
  return "?";
}

Kind DrawKind(const WorkloadOptions& options, std::mt19937_64& rng) {
  std::vector<double> w(options.weights);
  if (w.empty()) w.assign(std::begin(kDefaultWeights), std::end(kDefaultWeights));
  std::discrete_distribution<int> d(w.begin(), w.end());
  return static_cast<Kind>(d(rng));
}

Outcome RunOne(Kind kind, const WorkloadOptions& options, std::mt19937_64& rng) {
  Outcome out;
  out.kind = kind;
  const auto start = Clock::now();
  const auto deadline = start + options.request_timeout;
  auto finish = [&]() -> Outcome {
    out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return out;
  };
  const bool chat = kind == Kind::kChat || kind == Kind::kChatStream || (kind >= Kind::kDisconnectStream && rng() % 2);
  const char* path = chat ? "/v1/chat/completions" : "/v1/completions";
  std::string request;
  switch (kind) {
    case Kind::kCompletion:
    case Kind::kChat:
      request = PostRequest(path, Body(chat, false, 1 + static_cast<int>(rng() % options.max_tokens), rng));
      break;
    case Kind::kCompletionStream:
    case Kind::kChatStream:
      request = PostRequest(path, Body(chat, true, 1 + static_cast<int>(rng() % options.max_tokens), rng));
      break;
    case Kind::kDisconnectStream:
      // Long enough that the first event comes well before the end.
      request = PostRequest(path, Body(chat, true, 200 + static_cast<int>(rng() % 200), rng));
      break;
    case Kind::kDisconnectWhole:
      request = PostRequest(path, Body(chat, false, 200 + static_cast<int>(rng() % 200), rng));
      break;
    case Kind::kMalformed: {
      static const auto* bodies = new std::vector<std::pair<std::string, std::string>>(MalformedBodies());
      const size_t i = rng() % (bodies->size() + 1);
      request = i == bodies->size() ? std::string("GARBAGE\r\n\r\n")  // not an HTTP request line
                                    : PostRequest((*bodies)[i].first, (*bodies)[i].second);
      break;
    }
    case Kind::kNumKinds:
      break;
  }
  Connection conn;
  if (std::string e = conn.Open(options.port, deadline); !e.empty()) {
    out.failure = e;
    return finish();
  }
  if (std::string e = conn.Send(request, deadline); !e.empty()) {
    out.failure = e;
    return finish();
  }
  if (kind == Kind::kDisconnectWhole) {
    // Walk away while the server works on it (FIN or reset, either way).
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 40));
    conn.Close(/*reset=*/rng() % 2 == 0);
    out.disconnected = true;
    return finish();
  }
  std::function<bool(const std::string&)> on_body;
  if (kind == Kind::kDisconnectStream) {
    on_body = [](const std::string& body) { return body.find("data: ") == std::string::npos; };
  }
  HttpReply reply = conn.ReadReply(deadline, on_body);
  out.status = reply.status;
  if (reply.abandoned) {
    conn.Close(/*reset=*/rng() % 2 == 0);
    out.admitted = true;
    out.disconnected = true;
    return finish();
  }
  if (!reply.error.empty() || !reply.complete) {
    out.failure = "no complete reply (" + (reply.error.empty() ? std::string("incomplete") : reply.error) +
                  "), status " + std::to_string(reply.status);
    return finish();
  }
  if (kind == Kind::kMalformed) {
    if (reply.status != 400) ClassifyRefusal(reply, out);
    return finish();
  }
  if (reply.status != 200) {
    ClassifyRefusal(reply, out);
    return finish();
  }
  out.admitted = true;
  const bool stream = kind == Kind::kCompletionStream || kind == Kind::kChatStream || kind == Kind::kDisconnectStream;
  out.failure = stream ? CheckStream(reply.body) : CheckWhole(reply.body, chat);
  return finish();
}

}  // namespace tailor::soak
