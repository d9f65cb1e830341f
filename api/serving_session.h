// The serving session that the front ends share (tailor serve, batch, chat): one opened package
// (Runtime + EngineCore + Tokenizer + chat template) and the translation of a parsed OpenAI
// request into engine requests, one per (prompt, choice), with their text streamed back.
//
//   ServingOptions o;  o.package_dir = dir;
//   auto session = ServingSession::Open(o);                      // StatusOr
//   auto request = service::ParseOpenAiRequest(service::Endpoint::kChatCompletions, body);
//   auto handle = (*session)->Start(*request, [](const SessionEvent& e) { ... });   // streaming
//   (*session)->Cancel(**handle);                                  // e.g. the client went away
//   auto json = (*session)->Complete(*request);                    // blocking, non-streamed body
//
// Events of one request arrive in order on the engine's loop thread: per choice, deltas (text
// after stop-string hold-back, logprobs of the tokens since the previous delta) and one last delta
// with the finish reason; then exactly one kDone event with the usage (and an error if the
// request failed, was cancelled or was aborted at shutdown). Callbacks must return quickly and
// must not block on other requests (they delay every request); they may call Cancel().
//
// Independent of HTTP: errors are service::ApiError values (status codes as OpenAI uses them).
// Admission: the session counts the sequences (prompt x choice) in flight; a request that would
// make more than max_running() + max_queue of them wait is refused with 429 at once, so the
// refusal never depends on timing.
// Thread-safety: every public method may be called from any thread.
#ifndef TAILOR_API_SERVING_SESSION_H_
#define TAILOR_API_SERVING_SESSION_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/structured_decoding.h"
#include "engine/runtime.h"
#include "scheduler/engine_core.h"
#include "service/api_error.h"
#include "service/chat_template.h"
#include "service/metrics.h"
#include "service/openai_request.h"
#include "service/openai_response.h"
#include "tokenizer/tokenizer.h"

namespace tailor {

struct ServingOptions {
  std::string package_dir;
  std::string served_model_name;  // "": the manifest's model name
  // "": the package's own (Jinja) template; else a preset's name (llama-2, chatml, ...) or a
  // Jinja file.
  std::string chat_template;
  int64_t kv_cache_mb = 0;        // 0: the runtime's default pool
  // Sequences (prompt x choice) that may wait for a running slot beyond the engine's running
  // capacity (max_running: the largest batch_size); a request that would exceed it is refused
  // with 429. 0: nothing may wait. < 0: no limit.
  int64_t max_queue = -1;
  uint64_t seed = 0;  // seeds requests without a seed, and response ids
  // Correct the package's cost table from the step times observed while serving (the planner
  // then avoids a specialization that runs slower here than it was measured). Off for packages
  // whose costs were given (--cost-table): those stay as given.
  bool learn_costs = true;
  // The order waiting requests start in (scheduler.h). A server keeps arrival order; tailor
  // batch, which knows every request up front, starts the longest first.
  AdmissionOrder admission = AdmissionOrder::kArrival;
  service::ParseLimits parse_limits;
  // The most tokens a prompt may have (tailor serve --max-prompt-tokens): a longer one is a 400
  // naming the limit. 0: the package's largest ctx_len (the context itself refuses longer ones).
  // Open() refuses a value above the largest ctx_len.
  int64_t max_prompt_tokens = 0;
  // How long a request may run, queued time included (tailor serve --request-timeout); one that
  // runs longer is cancelled by CancelIfOverdue() (Complete() calls it) and ends with a 408
  // error, code "request_timeout". 0: no limit.
  std::chrono::milliseconds request_timeout{0};
  std::function<void(const std::string&)> log;  // warnings and step errors; any thread
};

// One piece of one choice's output.
struct ChoiceDelta {
  int32_t index = 0;  // choice index: prompt_index * n + i (chat: i)
  std::string text;   // new text, may be empty
  // The tokens since the previous delta of this choice (only when the request asked for
  // logprobs). Their text may still be held back by the stop-string matcher.
  std::vector<service::TokenLogprob> logprobs;
  std::optional<service::FinishReason> finish;  // set on the choice's last delta
  // Chat with tools: pieces of tool calls since the previous delta, in order (a call's first
  // piece has its id and name, the next ones pieces of its arguments); their text is not in
  // `text`.
  std::vector<service::ToolCallDelta> tool_calls;
};

struct SessionEvent {
  enum class Kind { kDelta, kDone };
  Kind kind = Kind::kDelta;
  ChoiceDelta delta;  // kDelta
  // kDone: prompt tokens summed over prompts (once per prompt), completion tokens summed over
  // choices (tokens generated until each choice finished, its EOS included).
  service::Usage usage;
  // kDone: set when the request did not complete: cancelled (499-like, code "cancelled"),
  // aborted at shutdown (503) or failed in the engine (500).
  std::optional<service::ApiError> error;
};

using SessionCallback = std::function<void(const SessionEvent&)>;

// The state of one started request. Opaque to callers; pass it to Cancel(). Shared by the
// session's engine callbacks and the caller, so either may drop it first.
class ActiveRequest;

class ServingSession {
 public:
  static absl::StatusOr<std::unique_ptr<ServingSession>> Open(const ServingOptions& options);
  // Shutdown(kCancel) if not done yet.
  ~ServingSession();

  ServingSession(const ServingSession&) = delete;
  ServingSession& operator=(const ServingSession&) = delete;

  // The name clients must give as "model" (or omit).
  const std::string& model_name() const { return model_name_; }
  int64_t created() const { return created_; }  // Unix seconds when the session opened
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const service::ChatTemplate& chat_template() const { return chat_template_; }
  const Runtime& runtime() const { return *runtime_; }
  const RequestLimits& limits() const { return core_->limits(); }
  const service::ParseLimits& parse_limits() const { return options_.parse_limits; }
  // Running capacity: the most sequences that run at once.
  int32_t max_running() const { return max_running_; }

  // Checks and submits every (prompt, choice) of `request`. Errors (nothing is submitted then):
  // 404 unknown model, 400 naming the parameter (token ids, logit_bias, messages, max_tokens,
  // prompt too long for the largest ctx_len or the KV pool), 429 queue full, 503 shutting down.
  // `callback` receives the events described above, on the engine's loop thread; none arrive
  // for a request that Start refused.
  service::ApiResult<std::shared_ptr<ActiveRequest>> Start(const service::OpenAiRequest& request,
                                                           SessionCallback callback);
  // Cancels every engine request of `request` still running (their blocks are freed); the kDone
  // event follows with an error of code "cancelled" unless every choice had finished. Returns at
  // once; safe to call more than once and from a callback.
  void Cancel(ActiveRequest& request);
  // Cancels `request` if it has run longer than options.request_timeout since Start(); its kDone
  // event then carries a 408 "request_timeout" error. True if it did (now or before). Cheap: call
  // it while polling.
  bool CancelIfOverdue(ActiveRequest& request);

  // Start() + wait: the non-streamed response body (text_completion or chat.completion).
  // Blocks the calling thread until every choice ends: never call it from a SessionCallback or
  // an engine callback (they run on the loop thread it waits for). A cancelled or aborted
  // request returns its error (503 at shutdown).
  // `abandoned` (optional) is polled every 50 ms while waiting: once it returns true (the client
  // went away) the request is cancelled and its KV blocks freed. A request past
  // options.request_timeout is cancelled the same way and returns the 408 error.
  service::ApiResult<service::ResponseJson> Complete(const service::OpenAiRequest& request,
                                                     const std::function<bool()>& abandoned = nullptr);

  // Waits until no sequence is in flight (every request finished, was cancelled or refused), or
  // until `deadline`; true when idle. For a drain before exit.
  bool WaitIdle(std::chrono::steady_clock::time_point deadline);
  int64_t sequences_in_flight();

  // The engine prompt of a chat: the template's pieces, each text piece encoded on its own, BOS
  // and EOS markers as the model's ids. InvalidArgument (from the template) naming messages[i].
  // The model's own (Jinja) template renders text with special tokens written out; it is encoded
  // with those matched and nothing added.
  // `tools`: null or the request's tool objects, for the template (ChatTemplate::Render).
  absl::StatusOr<std::vector<int32_t>> EncodeChat(std::span<const service::ChatMessage> messages,
                                                  bool add_generation_prompt = true,
                                                  const nlohmann::ordered_json& template_kwargs = nullptr,
                                                  const nlohmann::ordered_json& tools = nullptr) const;

  // POST /tokenize: the ids of a text prompt (with add_special_tokens what the tokenizer adds,
  // as a completion prompt gets) or of messages rendered by the chat template. 400 naming
  // "messages" when the template refuses them.
  service::ApiResult<std::vector<int32_t>> Tokenize(const service::TokenizeRequest& request) const;
  // POST /detokenize: the text of `ids`, special tokens kept. 400 naming "tokens" for an id
  // outside the vocabulary.
  service::ApiResult<std::string> Detokenize(std::span<const int32_t> ids) const;

  // A fresh response id "{prefix}-{32 hex}" (cmpl, chatcmpl).
  std::string NewResponseId(const char* prefix);
  // A fresh tool call id "call_{24 alphanumerics}".
  std::string NewToolCallId();

  // Metrics with the engine's gauges refreshed (requests running/waiting, KV blocks).
  service::ServerMetrics& metrics() { return *metrics_; }
  std::string RenderMetrics();
  SchedulerStats stats() const { return core_->stats(); }

  // Refuses new requests; kCancel ends those in flight (their kDone carries 503), kDrain lets
  // them finish. Waits for the engine loop. Idempotent.
  void Shutdown(ShutdownMode mode);

 private:
  friend class ActiveRequest;
  ServingSession() = default;

  // Engine prompt ids of every prompt of `request` (chat: one rendered prompt).
  service::ApiResult<std::vector<std::vector<int32_t>>> EncodePrompts(
      const service::OpenAiRequest& request) const;
  void Release(int64_t sequences);  // a sequence finished: admission may take more
  // The vocabulary for grammars, built on first use (structured outputs, forced tool calls).
  std::shared_ptr<const GrammarVocabulary> grammar_vocabulary() const;
  // --chat-template NAME (a preset) or FILE (Jinja), else the package's own template, else plain.
  absl::Status ChooseChatTemplate(const Package& package);

  ServingOptions options_;
  std::string model_name_;
  int64_t created_ = 0;
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<Tokenizer> tokenizer_;
  service::ChatTemplate chat_template_{service::ChatTemplateKind::kPlain};
  absl::Status chat_template_error_;  // the package's template does not parse: chat requests get it
  std::unique_ptr<service::ServerMetrics> metrics_;
  std::vector<std::string> spec_names_;  // per specialization, for metric labels
  int32_t bos_id_ = 1;
  int32_t eos_id_ = 2;
  int32_t max_running_ = 1;
  std::vector<int32_t> eos_ids_;  // what ends generation (the engine's EOS ids)
  GrammarCache grammars_;  // compiled constraints of recent requests
  mutable std::once_flag grammar_vocab_once_;
  mutable std::shared_ptr<const GrammarVocabulary> grammar_vocab_;  // set once under the flag
  std::unique_ptr<EngineCore> core_;  // declared last: stopped first

  std::mutex admission_mu_;
  int64_t active_sequences_ = 0;  // guarded by admission_mu_
  std::condition_variable idle_cv_;  // with admission_mu_: active_sequences_ reached 0
  std::mutex rng_mu_;
  std::mt19937_64 rng_;  // guarded by rng_mu_ (response ids)
};

}  // namespace tailor

#endif  // TAILOR_API_SERVING_SESSION_H_
