// The soak's request mix against `tailor serve`, one request per connection: completions and
// chat, streamed and not, clients that walk away mid-response, and malformed bodies, each
// reply checked for the status its kind allows and for a well-formed body.
//
// Thread-safety: RunOne is reentrant (each caller passes its own random generator).
#ifndef TAILOR_BENCH_SOAK_WORKLOAD_H_
#define TAILOR_BENCH_SOAK_WORKLOAD_H_

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace tailor::soak {

enum class Kind : int {
  kCompletion = 0,       // POST /v1/completions, whole body
  kCompletionStream,     // POST /v1/completions, server-sent events to [DONE]
  kChat,                 // POST /v1/chat/completions, whole body
  kChatStream,           // POST /v1/chat/completions, streamed
  kDisconnectStream,     // a stream the client drops after its first event
  kDisconnectWhole,      // a non-streamed request the client drops before the answer
  kMalformed,            // a body (or request line) the server must refuse with 400
  kNumKinds,
};

const char* KindName(Kind k);

// What one request ended as.
struct Outcome {
  Kind kind = Kind::kCompletion;
  int status = 0;           // HTTP status, 0 if none arrived
  double seconds = 0;       // connect to last byte (or to the disconnect)
  bool admitted = false;    // 200 status seen (the server took the request)
  bool disconnected = false;  // the client dropped it on purpose, as its kind says
  bool overload = false;    // 429 or 503: refused for load (allowed, counted)
  std::string failure;      // "" unless the reply broke the rules (what and why)
};

struct WorkloadOptions {
  int port = 0;
  int max_tokens = 48;  // upper bound of each request's max_tokens (drawn from 1..this)
  std::chrono::seconds request_timeout{120};  // a reply slower than this is a hang (failure)
  // Relative weights of the kinds, indexed by Kind (the defaults in workload.cc when empty).
  std::vector<double> weights;
};

// Draws a kind by the options' weights.
Kind DrawKind(const WorkloadOptions& options, std::mt19937_64& rng);
// Runs one request of kind `kind`; never throws.
Outcome RunOne(Kind kind, const WorkloadOptions& options, std::mt19937_64& rng);

}  // namespace tailor::soak

#endif  // TAILOR_BENCH_SOAK_WORKLOAD_H_
