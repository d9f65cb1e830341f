#include "api/serving_session.h"

#include <algorithm>
#include <condition_variable>
#include <ctime>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "api/model_tokenizer.h"
#include "api/structured_decoding.h"
#include "common/status_macros.h"
#include "service/stop_strings.h"
#include "service/tool_call_parser.h"

namespace tailor {

using service::ApiError;
using service::ApiResult;
using service::OpenAiRequest;

namespace {

// The text of one token for logprobs: its piece with U+2581 as a space and a byte piece
// "<0xNN>" as that byte.
std::string TokenText(const Tokenizer& tok, int32_t id) {
  const std::string_view piece = tok.Piece(id);
  if (tok.Type(id) == PieceType::kByte && piece.size() == 6 && piece.substr(0, 3) == "<0x") {
    return std::string(1, static_cast<char>(std::stoi(std::string(piece.substr(3, 2)), nullptr, 16)));
  }
  if (tok.Type(id) == PieceType::kControl) return "";
  std::string out;
  static constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581
  for (size_t i = 0; i < piece.size();) {
    if (piece.substr(i, 3) == kSpace) {
      out.push_back(' ');
      i += 3;
    } else {
      out.push_back(piece[i++]);
    }
  }
  return out;
}

// The logprobs of an echoed prompt: its first token unscored, then the engine's scores of the
// others. SentencePiece drops the dummy-prefix space of the text's first piece: so do the tokens
// (and that position's alternatives), so that they spell `echoed` and text_offset counts it.
std::vector<service::TokenLogprob> EchoLogprobs(const Tokenizer& tok, std::span<const int32_t> prompt,
                                                std::span<const PromptTokenLogprob> scored,
                                                const std::string& echoed) {
  std::vector<service::TokenLogprob> out;
  service::TokenLogprob first;
  first.token = TokenText(tok, prompt[0]);
  first.unscored = true;
  out.push_back(std::move(first));
  for (const PromptTokenLogprob& p : scored) {
    service::TokenLogprob lp;
    lp.token = TokenText(tok, p.token);
    lp.logprob = p.logprob;
    for (const TokenLogprob& t : p.top_logprobs) lp.top.push_back({TokenText(tok, t.token), t.logprob});
    out.push_back(std::move(lp));
  }
  if (tok.add_dummy_prefix() && (echoed.empty() || echoed[0] != ' ')) {
    auto lead = std::find_if(out.begin(), out.end(), [](const service::TokenLogprob& t) { return !t.token.empty(); });
    if (lead != out.end() && lead->token[0] == ' ') {
      lead->token.erase(0, 1);
      for (auto& alt : lead->top) {
        if (!alt.token.empty() && alt.token[0] == ' ') alt.token.erase(0, 1);
      }
    }
  }
  return out;
}

// The model's generation_config.json as the values of fields a request omits. do_sample false
// (as transformers reads it) makes the default greedy whatever the temperature says.
void ApplySamplingDefaults(const ModelConfig::SamplingDefaults& d, service::ParseLimits* limits) {
  if (d.temperature) limits->default_temperature = std::clamp<double>(*d.temperature, 0.0, 2.0);
  if (d.do_sample && !*d.do_sample) limits->default_temperature = 0.0;
  if (d.top_p && *d.top_p > 0 && *d.top_p <= 1) limits->default_top_p = *d.top_p;
  if (d.top_k && *d.top_k > 0) limits->default_top_k = *d.top_k;
  if (d.repetition_penalty && *d.repetition_penalty > 0 && *d.repetition_penalty <= 2) {
    limits->default_repetition_penalty = *d.repetition_penalty;
  }
  if (d.max_new_tokens) limits->default_max_tokens = *d.max_new_tokens;
}

// `echo`: the prompt is scored too when logprobs are asked for (completions' echo).
SamplingOptions ToEngineSampling(const service::SamplingParams& p, int32_t max_tokens, int32_t choice,
                                 bool echo) {
  SamplingOptions o;
  o.temperature = static_cast<float>(p.temperature);
  o.top_p = static_cast<float>(p.top_p);
  o.top_k = p.top_k;
  o.min_p = static_cast<float>(p.min_p);
  o.repetition_penalty = static_cast<float>(p.repetition_penalty);
  o.presence_penalty = static_cast<float>(p.presence_penalty);
  o.frequency_penalty = static_cast<float>(p.frequency_penalty);
  for (const auto& [id, bias] : p.logit_bias) o.logit_bias.emplace_back(id, static_cast<float>(bias));
  // n > 1 with a seed: each choice its own (reproducible) stream.
  if (p.seed) o.seed = static_cast<uint64_t>(*p.seed) + static_cast<uint64_t>(choice);
  o.max_tokens = max_tokens;
  o.ignore_eos = p.ignore_eos;
  o.stop_token_ids = p.stop_token_ids;
  o.min_tokens = std::min(p.min_tokens, max_tokens);  // a default limit clamped below min_tokens wins
  o.logprobs = p.logprobs ? *p.logprobs : -1;
  if (echo && p.logprobs) o.prompt_logprobs = *p.logprobs;
  return o;
}

}  // namespace

// Per-request state. The choice state is touched only by engine callbacks, which all run on
// the one loop thread, after Start() has published the request under `mu`.
class ActiveRequest {
 public:
  struct Choice {
    int32_t index = 0;
    RequestId engine_id = 0;
    std::vector<int32_t> prompt;
    std::unique_ptr<StreamingDetokenizer> detok;
    std::unique_ptr<service::StopStringMatcher> stop;
    // Chat with tools (tool_choice not "none"): splits the text into content and tool calls.
    std::unique_ptr<service::ToolCallStreamParser> tools;
    int64_t generated = 0;
    bool finished = false;      // the client has seen its finish reason
    bool engine_done = false;   // the engine's last event arrived
    std::chrono::steady_clock::time_point first_token;
    // echo: the prompt's text (and, with logprobs, its scored tokens), sent before anything else.
    bool echo_pending = false;
    std::string echo_text;
  };

  ServingSession* session = nullptr;
  SessionCallback callback;
  bool want_logprobs = false;
  std::chrono::steady_clock::time_point start;
  int64_t prompt_tokens = 0;

  std::mutex mu;  // held while Start() submits and while an engine event is handled
  std::vector<Choice> choices;
  bool refused = false;  // Start() failed part-way: report nothing
  int32_t engine_left = 0;
  std::optional<ApiError> error;
  std::atomic<bool> cancel_requested{false};
  std::atomic<bool> timed_out{false};  // cancelled by CancelIfOverdue()

  void OnEvent(size_t c, const TokenEvent& e);

 private:
  // Moves `text` into `d` as content and tool calls (through the choice's tool-call parser when
  // it has one; `finish`: the output ended, decide what is held back).
  void AddText(Choice& ch, std::string text, bool finish, ChoiceDelta* d);
};

void ActiveRequest::AddText(Choice& ch, std::string text, bool finish, ChoiceDelta* d) {
  if (ch.tools == nullptr) {
    d->text += text;
    return;
  }
  auto add = [&](service::ToolCallStreamParser::Output out) {
    d->text += out.content;
    for (service::ToolCallPiece& p : out.pieces) {
      service::ToolCallDelta delta;
      delta.index = p.index;
      if (p.head) {
        delta.id = session->NewToolCallId();
        delta.name = std::move(p.name);
      }
      delta.arguments = std::move(p.arguments);
      d->tool_calls.push_back(std::move(delta));
    }
  };
  add(ch.tools->Push(text));
  if (finish) add(ch.tools->Finish());
}

void ActiveRequest::OnEvent(size_t c, const TokenEvent& e) {
  std::vector<SessionEvent> out;
  {
    std::lock_guard<std::mutex> lock(mu);
    Choice& ch = choices[c];
    if (ch.engine_done) return;
    if (e.finish != FinishReason::kNone) {
      ch.engine_done = true;
      --engine_left;
      session->Release(1);
      if (e.num_cached_prompt_tokens > 0) session->metrics().AddPrefixCacheHitTokens(e.num_cached_prompt_tokens);
    }
    if (refused) return;
    ChoiceDelta d;
    d.index = ch.index;
    std::string echoed;
    if (ch.echo_pending && !ch.finished) {
      ch.echo_pending = false;
      echoed = std::move(ch.echo_text);
      if (want_logprobs) d.logprobs = EchoLogprobs(session->tokenizer(), ch.prompt, e.prompt_logprobs, echoed);
    }
    if (e.token >= 0 && !ch.finished) {
      const auto now = std::chrono::steady_clock::now();
      if (ch.generated == 0) {
        ch.first_token = now;
        session->metrics().ObserveTimeToFirstToken(std::chrono::duration<double>(now - start).count());
      }
      ++ch.generated;
      if (want_logprobs && e.logprob) {
        service::TokenLogprob lp;
        lp.token = TokenText(session->tokenizer(), e.token);
        lp.logprob = *e.logprob;
        for (const TokenLogprob& t : e.top_logprobs) {
          lp.top.push_back({TokenText(session->tokenizer(), t.token), t.logprob});
        }
        d.logprobs.push_back(std::move(lp));
      }
      // An EOS that ends the choice is not text (a tokenizer.json EOS such as Qwen's <|im_end|>
      // would otherwise decode to its special-token text).
      const std::vector<int32_t>& eos = session->eos_ids_;
      const bool ends_at_eos =
          e.finish == FinishReason::kStop && std::find(eos.begin(), eos.end(), e.token) != eos.end();
      auto pushed = ch.stop->Push(ends_at_eos ? std::string() : ch.detok->Push(e.token));
      AddText(ch, std::move(pushed.text), pushed.stopped, &d);
      if (pushed.stopped) {
        d.finish = service::FinishReason::kStop;
        if (!ch.engine_done) session->core_->Cancel(ch.engine_id);
      }
    }
    if (!ch.finished && !d.finish) {
      if (e.finish == FinishReason::kStop || e.finish == FinishReason::kLength) {
        std::string rest = ch.stop->Push(ch.detok->Flush()).text;
        if (ch.stop->stopped()) {
          d.finish = service::FinishReason::kStop;
        } else {
          rest += ch.stop->Finish();
          d.finish = e.finish == FinishReason::kStop ? service::FinishReason::kStop
                                                     : service::FinishReason::kLength;
        }
        AddText(ch, std::move(rest), true, &d);
      } else if (e.finish != FinishReason::kNone) {
        // Cancelled, aborted or failed: the choice ends without a finish reason.
        ch.finished = true;
        if (!error) {
          if (e.finish == FinishReason::kCancelled && timed_out) {
            error = ApiError::RequestTimeout(absl::StrCat(
                "The request ran longer than this server allows (tailor serve --request-timeout ",
                std::chrono::duration<double>(session->options_.request_timeout).count(),
                " s) and was cancelled."));
          } else if (e.finish == FinishReason::kCancelled) {
            ApiError err;
            err.http_status = 499;
            err.message = "The request was cancelled.";
            err.code = "cancelled";
            error = err;
          } else if (e.finish == FinishReason::kAborted) {
            error = ApiError::Unavailable("The server is shutting down; the request was aborted.");
          } else {
            error = ApiError::FromStatus(e.status.ok() ? absl::InternalError("engine error") : e.status);
          }
        }
      }
    }
    if (!echoed.empty()) d.text = echoed + d.text;
    if (d.finish) {
      ch.finished = true;
      if (ch.tools != nullptr && ch.tools->num_calls() > 0) d.finish = service::FinishReason::kToolCalls;
      if (ch.generated > 1) {
        session->metrics().ObserveTimePerOutputToken(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - ch.first_token).count() /
            static_cast<double>(ch.generated - 1));
      }
    }
    if (!d.text.empty() || !d.logprobs.empty() || !d.tool_calls.empty() || d.finish) {
      SessionEvent ev;
      ev.delta = std::move(d);
      out.push_back(std::move(ev));
    }
    if (engine_left == 0) {
      SessionEvent done;
      done.kind = SessionEvent::Kind::kDone;
      done.usage.prompt_tokens = prompt_tokens;
      for (const Choice& x : choices) done.usage.completion_tokens += x.generated;
      done.error = error;
      session->metrics().AddPromptTokens(prompt_tokens);
      session->metrics().AddGenerationTokens(done.usage.completion_tokens);
      if (error) {
        session->metrics().RecordRequest(error->http_status == 499 || error->http_status == 408 ? "abort" : "error");
      } else {
        session->metrics().RecordRequest("ok");
      }
      out.push_back(std::move(done));
    }
  }
  // Events of one request are handled one at a time on the loop thread: order is kept.
  for (const SessionEvent& ev : out) callback(ev);
}

absl::StatusOr<std::unique_ptr<ServingSession>> ServingSession::Open(const ServingOptions& options) {
  std::unique_ptr<ServingSession> s(new ServingSession());
  s->options_ = options;
  s->rng_.seed(options.seed ^ 0x5eed5eed5eed5eedull);
  RuntimeOptions ro;
  ro.kv_cache_mb = options.kv_cache_mb;
  ro.warn = options.log;
  TAILOR_ASSIGN_OR_RETURN(s->runtime_, Runtime::Open(options.package_dir, ro));
  const Package& pkg = s->runtime_->package();
  s->model_name_ = options.served_model_name.empty() ? pkg.config.name : options.served_model_name;
  if (s->model_name_.empty()) s->model_name_ = std::filesystem::path(options.package_dir).filename().string();
  TAILOR_ASSIGN_OR_RETURN(s->tokenizer_, LoadPackageTokenizer(pkg));
  TAILOR_RETURN_IF_ERROR(s->ChooseChatTemplate(pkg));
  ApplySamplingDefaults(pkg.config.sampling_defaults, &s->options_.parse_limits);
  s->bos_id_ = pkg.config.bos_id;
  s->eos_id_ = pkg.config.eos_ids.empty() ? s->tokenizer_->eos_id() : pkg.config.eos_ids[0];
  s->metrics_ = service::ServerMetrics::Create();
  for (const Specialization& spec : s->runtime_->specializations()) {
    s->spec_names_.push_back(spec.Name());
    s->max_running_ = std::max(s->max_running_, spec.shape.batch_size);
  }
  s->created_ = static_cast<int64_t>(std::time(nullptr));
  s->metrics_->SetCacheConfig(s->runtime_->kv_block_size(), s->runtime_->num_kv_blocks());

  EngineOptions eo;
  // Generation ends at the model's EOS ids and at the tokenizer's eos_token (tokenizer_config.json;
  // Qwen2's generation_config names <|endoftext|>, its chat turns end with <|im_end|>).
  eo.scheduler.eos_token_ids = pkg.config.eos_ids;
  if (auto id = s->tokenizer_->TokenToId(pkg.eos_token); id && !pkg.eos_token.empty() &&
      std::find(pkg.config.eos_ids.begin(), pkg.config.eos_ids.end(), *id) == pkg.config.eos_ids.end()) {
    eo.scheduler.eos_token_ids.push_back(*id);
  }
  s->eos_ids_ = eo.scheduler.eos_token_ids;
  eo.scheduler.seed = options.seed;
  eo.scheduler.admission = options.admission;
  eo.scheduler.step_overhead_seconds = -1.0;  // measured while serving
  eo.scheduler.max_running = s->max_running_;
  eo.scheduler.learn_costs =
      options.learn_costs && std::none_of(pkg.specs.begin(), pkg.specs.end(),
                                          [](const PackageSpec& p) { return p.cost_source == "table"; });
  for (size_t i = 0; i < s->spec_names_.size(); ++i) {  // what the planner charges before any step
    const double full = s->runtime_->costs().FullStep(static_cast<int32_t>(i), pkg.specs[i].spec.shape);
    s->metrics_->SetSpecCost(s->spec_names_[i], full, full);
  }
  ServingSession* raw = s.get();
  eo.scheduler.step_observer = [raw](const StepObservation& o) {
    if (o.spec_index < 0 || static_cast<size_t>(o.spec_index) >= raw->spec_names_.size()) return;
    raw->metrics_->RecordSpecExecution(raw->spec_names_[o.spec_index], o.valid_tokens, o.slot_tokens,
                                       o.wall_seconds);
    raw->metrics_->SetSpecCost(raw->spec_names_[o.spec_index], o.modeled_full_seconds, o.measured_full_seconds);
  };
  eo.log = options.log;
  TAILOR_ASSIGN_OR_RETURN(s->core_, EngineCore::Start(*s->runtime_, std::move(eo)));
  if (options.max_prompt_tokens > s->limits().max_ctx_len) {
    return absl::InvalidArgumentError(absl::StrCat("--max-prompt-tokens ", options.max_prompt_tokens,
                                                   " is more than the package's largest ctx_len (",
                                                   s->limits().max_ctx_len, "): no prompt that long fits"));
  }
  return s;
}

ServingSession::~ServingSession() { Shutdown(ShutdownMode::kCancel); }

void ServingSession::Shutdown(ShutdownMode mode) {
  if (core_) core_->Shutdown(mode);
}

void ServingSession::Release(int64_t sequences) {
  std::lock_guard<std::mutex> lock(admission_mu_);
  active_sequences_ -= sequences;
  if (active_sequences_ == 0) idle_cv_.notify_all();
}

bool ServingSession::WaitIdle(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(admission_mu_);
  return idle_cv_.wait_until(lock, deadline, [&] { return active_sequences_ == 0; });
}

int64_t ServingSession::sequences_in_flight() {
  std::lock_guard<std::mutex> lock(admission_mu_);
  return active_sequences_;
}

std::string ServingSession::NewResponseId(const char* prefix) {
  std::lock_guard<std::mutex> lock(rng_mu_);
  const uint64_t hi = rng_();
  const uint64_t lo = rng_();
  return service::MakeResponseId(prefix, hi, lo);
}

std::shared_ptr<const GrammarVocabulary> ServingSession::grammar_vocabulary() const {
  std::call_once(grammar_vocab_once_, [this] { grammar_vocab_ = BuildGrammarVocabulary(*tokenizer_, eos_ids_); });
  return grammar_vocab_;
}

std::string ServingSession::NewToolCallId() {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::lock_guard<std::mutex> lock(rng_mu_);
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id.push_back(kAlphabet[rng_() % (sizeof(kAlphabet) - 1)]);
  return id;
}

std::string ServingSession::RenderMetrics() {
  const SchedulerStats st = core_->stats();
  metrics_->SetRequestsRunning(st.num_running);
  metrics_->SetRequestsWaiting(st.num_waiting);
  metrics_->SetKvBlocksUsed(st.kv.used_blocks);
  metrics_->SetKvBlocksCached(st.kv.cached_free_blocks);
  metrics_->SetKvCacheUsage(st.kv.used_blocks, limits().num_kv_blocks);
  return metrics_->Render();
}

absl::Status ServingSession::ChooseChatTemplate(const Package& pkg) {
  const std::string& name = options_.chat_template;
  if (!name.empty() && !std::filesystem::is_regular_file(name)) {  // a preset's name
    TAILOR_ASSIGN_OR_RETURN(chat_template_, service::ChatTemplate::ByName(name));
    return absl::OkStatus();
  }
  std::string source = pkg.chat_template;
  if (!name.empty()) {  // a Jinja file
    TAILOR_ASSIGN_OR_RETURN(source, ReadFileToString(name));
  }
  if (source.empty()) {
    chat_template_ = service::ChatTemplate(service::ChatTemplateKind::kPlain);
    return absl::OkStatus();
  }
  absl::StatusOr<service::ChatTemplate> parsed = service::ChatTemplate::FromJinja(source, pkg.bos_token, pkg.eos_token);
  if (!parsed.ok()) {  // completions still work; chat requests get the error as a 400
    chat_template_error_ = absl::InvalidArgumentError(absl::StrCat(
        "messages: the model's chat template does not parse (", parsed.status().message(),
        "); serve with --chat-template NAME or FILE"));
    if (options_.log) options_.log(std::string(chat_template_error_.message()));
    return absl::OkStatus();
  }
  chat_template_ = *std::move(parsed);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> ServingSession::EncodeChat(std::span<const service::ChatMessage> messages,
                                                                bool add_generation_prompt,
                                                                const nlohmann::ordered_json& template_kwargs,
                                                                const nlohmann::ordered_json& tools) const {
  if (!chat_template_error_.ok()) return chat_template_error_;
  TAILOR_ASSIGN_OR_RETURN(service::RenderedChat rendered,
                          chat_template_.Render(messages, add_generation_prompt, template_kwargs, tools));
  std::vector<int32_t> ids;
  if (rendered.special_text) {  // the model's template: special tokens written as text
    for (const service::PromptPiece& piece : rendered.pieces) {
      for (int32_t id : tokenizer_->Encode(piece.text, EncodeOptions{false, true})) ids.push_back(id);
    }
    if (ids.empty()) return absl::InvalidArgumentError("messages: the chat template rendered an empty prompt");
    return ids;
  }
  for (const service::PromptPiece& piece : rendered.pieces) {
    switch (piece.kind) {
      case service::PromptPiece::Kind::kBos: ids.push_back(bos_id_); break;
      case service::PromptPiece::Kind::kEos: ids.push_back(eos_id_); break;
      case service::PromptPiece::Kind::kText:
        for (int32_t id : tokenizer_->Encode(piece.text)) ids.push_back(id);
        break;
    }
  }
  return ids;
}

ApiResult<std::vector<int32_t>> ServingSession::Tokenize(const service::TokenizeRequest& request) const {
  if (request.prompt) {
    std::vector<int32_t> ids = tokenizer_->Encode(*request.prompt, EncodeOptions{request.add_special_tokens, false});
    return ids;
  }
  absl::StatusOr<std::vector<int32_t>> ids =
      EncodeChat(request.messages, request.add_generation_prompt, request.chat_template_kwargs);
  if (!ids.ok()) return ApiError::InvalidRequest("messages", ids.status().message());
  return *std::move(ids);
}

ApiResult<std::string> ServingSession::Detokenize(std::span<const int32_t> ids) const {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >= tokenizer_->vocab_size()) {
      return ApiError::InvalidRequest("tokens", absl::StrCat("'tokens' element ", i, " (", ids[i],
                                                             ") is outside the vocabulary of ",
                                                             tokenizer_->vocab_size(), " tokens"));
    }
  }
  return tokenizer_->Decode(ids, /*skip_special_tokens=*/false);
}

ApiResult<std::vector<std::vector<int32_t>>> ServingSession::EncodePrompts(const OpenAiRequest& request) const {
  std::vector<std::vector<int32_t>> prompts;
  if (request.endpoint == service::Endpoint::kChatCompletions) {
    const bool tools = request.tool_choice.mode != service::ToolChoice::Mode::kNone;
    absl::StatusOr<std::vector<int32_t>> ids =
        EncodeChat(request.messages, true, request.chat_template_kwargs, tools ? request.tools : nullptr);
    if (!ids.ok()) return ApiError::InvalidRequest("messages", ids.status().message());
    prompts.push_back(*std::move(ids));
    return prompts;
  }
  for (const service::PromptInput& p : request.prompts) {
    if (const auto* given = std::get_if<std::vector<int32_t>>(&p)) {
      if (given->empty()) return ApiError::InvalidRequest("prompt", "'prompt' token-id arrays must not be empty");
      prompts.push_back(*given);
    } else {
      prompts.push_back(EncodePrompt(*tokenizer_, std::get<std::string>(p), /*add_special_tokens=*/true, bos_id_));
    }
  }
  return prompts;
}

ApiResult<std::shared_ptr<ActiveRequest>> ServingSession::Start(const OpenAiRequest& request,
                                                                SessionCallback callback) {
  if (request.model && *request.model != model_name_) return ApiError::ModelNotFound(*request.model);
  if (auto e = service::ValidateForVocabulary(request, limits().vocab_size)) return *e;
  auto prompts = EncodePrompts(request);
  if (!prompts.ok()) return prompts.error();
  const char* prompt_param = request.endpoint == service::Endpoint::kChatCompletions ? "messages" : "prompt";

  auto active = std::make_shared<ActiveRequest>();
  active->session = this;
  active->callback = std::move(callback);
  active->want_logprobs = request.sampling.logprobs.has_value();
  active->start = std::chrono::steady_clock::now();
  std::vector<std::string> stops = request.sampling.stop;
  if (request.endpoint == service::Endpoint::kChatCompletions) {
    for (std::string& s : chat_template_.StopStrings()) stops.push_back(std::move(s));
  }
  const bool echo = request.echo && request.endpoint == service::Endpoint::kCompletions;
  // Structured outputs / a forced tool call: one grammar for the request, a matcher per choice.
  auto grammar = grammars_.Get(request, chat_template_.tool_format(), [this] { return grammar_vocabulary(); });
  if (!grammar.ok()) return grammar.error();
  std::shared_ptr<const GrammarVocabulary> grammar_vocab = grammar->grammar ? grammar_vocabulary() : nullptr;
  std::vector<SamplingOptions> sampling;
  for (size_t p = 0; p < prompts->size(); ++p) {
    const std::vector<int32_t>& ids = (*prompts)[p];
    if (options_.max_prompt_tokens > 0 && static_cast<int64_t>(ids.size()) > options_.max_prompt_tokens) {
      return ApiError::InvalidRequest(
          prompt_param, absl::StrCat("The prompt has ", ids.size(), " tokens but this server accepts at most ",
                                     options_.max_prompt_tokens, " (tailor serve --max-prompt-tokens)"));
    }
    ApiResult<int32_t> max_tokens = service::ResolveMaxTokens(
        request.sampling, static_cast<int64_t>(ids.size()), limits().max_ctx_len, prompt_param);
    if (!max_tokens.ok()) return max_tokens.error();
    active->prompt_tokens += static_cast<int64_t>(ids.size());
    const bool drop_first_space = grammar_vocab != nullptr && DropsFirstSpace(*tokenizer_, *grammar_vocab, ids);
    for (int32_t i = 0; i < request.n; ++i) {
      SamplingOptions o = ToEngineSampling(request.sampling, *max_tokens, i, echo);
      if (grammar_vocab != nullptr) {
        o.ignore_eos = false;  // a complete output ends with EOS
        o.logits_processors.push_back(
            MakeGrammarProcessor(grammar->grammar, grammar_vocab, *max_tokens, drop_first_space, grammar->masks));
      }
      if (absl::Status s = ValidateRequest(limits(), ids, o); !s.ok()) {
        return ApiError::FromStatus(s, s.message().find("max_tokens") != absl::string_view::npos ? "max_tokens"
                                                                                                 : prompt_param);
      }
      ActiveRequest::Choice c;
      c.index = static_cast<int32_t>(p) * request.n + i;
      c.prompt = ids;
      c.detok = std::make_unique<StreamingDetokenizer>(*tokenizer_, ids);
      c.stop = std::make_unique<service::StopStringMatcher>(stops);
      if (echo) {
        c.echo_pending = true;
        const auto* text = std::get_if<std::string>(&request.prompts[p]);
        c.echo_text = text != nullptr ? *text : tokenizer_->Decode(ids);
      }
      if (request.endpoint == service::Endpoint::kChatCompletions && request.tools.is_array() &&
          request.tool_choice.mode != service::ToolChoice::Mode::kNone) {
        c.tools = std::make_unique<service::ToolCallStreamParser>(chat_template_.tool_format());
      }
      active->choices.push_back(std::move(c));
      sampling.push_back(std::move(o));
    }
  }
  const int64_t k = static_cast<int64_t>(active->choices.size());
  {
    std::lock_guard<std::mutex> lock(admission_mu_);
    if (options_.max_queue >= 0 && k > max_running_ + options_.max_queue) {
      // Never admissible, however long the client waits: the request's fault, not the load's.
      return ApiError::InvalidRequest(
          "n", absl::StrCat("The request needs ", k, " sequences (prompts x n) but the server holds at most ",
                            max_running_ + options_.max_queue, " (", max_running_, " running, --max-queue ",
                            options_.max_queue, ")"));
    }
    if (options_.max_queue >= 0 && active_sequences_ + k > max_running_ + options_.max_queue) {
      return ApiError::QueueFull(absl::StrCat(
          "The server's request queue is full (", active_sequences_, " sequences in flight, ", max_running_,
          " run at once, --max-queue ", options_.max_queue, "; this request needs ", k, "); retry later."));
    }
    active_sequences_ += k;
  }
  std::lock_guard<std::mutex> lock(active->mu);
  active->engine_left = static_cast<int32_t>(k);
  for (size_t c = 0; c < active->choices.size(); ++c) {
    // The engine callback keeps the request alive until its last event.
    auto keep = active;
    absl::StatusOr<RequestId> id = core_->Submit(
        active->choices[c].prompt, std::move(sampling[c]),
        [keep, c](const TokenEvent& e) { keep->OnEvent(c, e); });
    if (!id.ok()) {
      active->refused = true;
      for (size_t j = 0; j < c; ++j) core_->Cancel(active->choices[j].engine_id);
      // Choices never submitted will not report: release them here.
      active->engine_left -= static_cast<int32_t>(k - static_cast<int64_t>(c));
      Release(k - static_cast<int64_t>(c));
      if (id.status().code() == absl::StatusCode::kFailedPrecondition) {
        return ApiError::Unavailable(id.status().message());
      }
      return ApiError::FromStatus(id.status(), prompt_param);
    }
    active->choices[c].engine_id = *id;
  }
  return active;
}

void ServingSession::Cancel(ActiveRequest& request) {
  if (request.cancel_requested.exchange(true)) return;
  // Engine ids were all written before Start() returned the handle (or before the first
  // callback, which runs after Start() releases `mu`).
  for (const ActiveRequest::Choice& c : request.choices) {
    if (c.engine_id != 0) core_->Cancel(c.engine_id);
  }
}

bool ServingSession::CancelIfOverdue(ActiveRequest& request) {
  if (request.timed_out) return true;
  if (options_.request_timeout.count() <= 0 ||
      std::chrono::steady_clock::now() - request.start < options_.request_timeout) {
    return false;
  }
  request.timed_out = true;  // before Cancel: the engine's cancel events read it
  Cancel(request);
  return true;
}

ApiResult<service::ResponseJson> ServingSession::Complete(const OpenAiRequest& request,
                                                          const std::function<bool()>& abandoned) {
  struct Collected {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::vector<std::string> text;
    std::vector<std::vector<service::TokenLogprob>> logprobs;
    std::vector<std::vector<service::ToolCall>> tool_calls;
    std::vector<service::FinishReason> finish;
    service::Usage usage;
    std::optional<ApiError> error;
  };
  auto col = std::make_shared<Collected>();
  size_t num_choices = request.n * (request.endpoint == service::Endpoint::kChatCompletions
                                        ? size_t{1} : request.prompts.size());
  col->text.resize(num_choices);
  col->logprobs.resize(num_choices);
  col->tool_calls.resize(num_choices);
  col->finish.resize(num_choices, service::FinishReason::kStop);
  auto started = Start(request, [col](const SessionEvent& e) {
    std::lock_guard<std::mutex> lock(col->mu);
    if (e.kind == SessionEvent::Kind::kDelta) {
      const size_t i = static_cast<size_t>(e.delta.index);
      if (i >= col->text.size()) return;
      col->text[i] += e.delta.text;
      for (const auto& lp : e.delta.logprobs) col->logprobs[i].push_back(lp);
      for (const service::ToolCallDelta& t : e.delta.tool_calls) {
        if (t.id) {
          col->tool_calls[i].push_back(service::ToolCall{*t.id, t.name.value_or(""), t.arguments});
        } else if (!col->tool_calls[i].empty()) {
          col->tool_calls[i].back().arguments += t.arguments;
        }
      }
      if (e.delta.finish) col->finish[i] = *e.delta.finish;
    } else {
      col->usage = e.usage;
      col->error = e.error;
      col->done = true;
      col->cv.notify_all();
    }
  });
  if (!started.ok()) return started.error();
  std::unique_lock<std::mutex> lock(col->mu);
  if (abandoned || options_.request_timeout.count() > 0) {
    bool cancelled = false;
    while (!col->cv.wait_for(lock, std::chrono::milliseconds(50), [&] { return col->done; })) {
      if (cancelled) continue;
      lock.unlock();
      if (CancelIfOverdue(**started)) {
        cancelled = true;
      } else if (abandoned && abandoned()) {
        cancelled = true;
        Cancel(**started);
      }
      lock.lock();
    }
  } else {
    col->cv.wait(lock, [&] { return col->done; });
  }
  if (col->error) return *col->error;
  service::ResponseMeta meta;
  meta.created = static_cast<int64_t>(std::time(nullptr));
  meta.model = model_name_;
  const bool lp = request.sampling.logprobs.has_value();
  if (request.endpoint == service::Endpoint::kChatCompletions) {
    meta.id = NewResponseId("chatcmpl");
    std::vector<service::ChatChoice> choices(num_choices);
    for (size_t i = 0; i < num_choices; ++i) {
      choices[i].index = static_cast<int32_t>(i);
      choices[i].content = std::move(col->text[i]);
      choices[i].tool_calls = std::move(col->tool_calls[i]);
      choices[i].finish_reason = col->finish[i];
      if (lp) choices[i].logprobs = std::move(col->logprobs[i]);
    }
    return service::ChatCompletionResponse(meta, choices, col->usage);
  }
  meta.id = NewResponseId("cmpl");
  std::vector<service::CompletionChoice> choices(num_choices);
  for (size_t i = 0; i < num_choices; ++i) {
    choices[i].index = static_cast<int32_t>(i);
    choices[i].text = std::move(col->text[i]);
    choices[i].finish_reason = col->finish[i];
    if (lp) choices[i].logprobs = std::move(col->logprobs[i]);
  }
  return service::CompletionResponse(meta, choices, col->usage);
}

}  // namespace tailor
