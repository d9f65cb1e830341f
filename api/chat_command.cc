// `tailor chat`: an interactive conversation with a package's model through the ServingSession
// (api/serving_session.h), which the other front ends share.
//
// Each user line becomes a turn: the whole conversation (system message, earlier turns, the new
// line) is rendered with the chat template, encoded, and submitted as a chat request; the reply
// streams to stdout as it is generated (leading whitespace dropped, the template's stop strings
// honoured) and ends with a newline. Ctrl-C (SIGINT, through SigintWatcher) cancels the reply in
// progress and the session goes on; at the prompt it clears the line. Commands: /reset,
// /system [TEXT], /stats, /help, /exit. Statistics and notices go to stderr.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api/commands.h"
#include "api/flags.h"
#include "api/interrupt.h"
#include "api/line_reader.h"
#include "common/status_macros.h"
#include "api/serving_session.h"
#include "service/chat_template.h"

namespace tailor {
namespace {

using service::ChatMessage;
using service::ChatRole;

const std::vector<FlagSpec>& ChatFlags() {
  static const auto* specs = new std::vector<FlagSpec>{
      {"package", true, {}, "compiled package (default: the package setup.sh built)"},
      {"system", true, {}, "system message"},
      {"chat-template", true, {}, "a preset (llama-2, mistral, zephyr, chatml, plain) or a Jinja file (default: the model's own)"},
      {"max-tokens", true, {}, "most tokens per reply (default: the rest of the context)"},
      {"temperature", true, {}, "0 is greedy (default: the model's generation_config.json, else 0.7)"},
      {"top-p", true, {}, "nucleus sampling mass (default: the model's generation_config.json, else 1)"},
      {"seed", true, {}, "random seed of the first reply; later replies use seed+1, ... (default: random)"},
      {"kv-cache-mb", true, {}, "KV cache size in MiB (default: enough for the largest specialization)"},
  };
  return *specs;
}

struct ChatArgs {
  std::string package;
  std::optional<std::string> system;
  std::optional<std::string> chat_template;
  std::optional<int32_t> max_tokens;
  std::optional<float> temperature;  // unset: the model's default (generation_config.json), else 0.7
  std::optional<float> top_p;        // unset: the model's default, else 1
  uint64_t seed = 0;
  int64_t kv_cache_mb = 0;
};

absl::StatusOr<ChatArgs> ParseChatArgs(const std::vector<std::string>& args, const Environment& env) {
  TAILOR_ASSIGN_OR_RETURN(ParsedFlags flags, ParseFlags(ChatFlags(), args));
  if (!flags.positional().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", flags.positional()[0], "'"));
  }
  ChatArgs a;
  TAILOR_ASSIGN_OR_RETURN(a.package, PackageOrDefault(flags.Get("package"), "--package DIR"));
  a.system = flags.Get("system");
  a.chat_template = flags.Get("chat-template");
  if (flags.Has("max-tokens")) {
    TAILOR_ASSIGN_OR_RETURN(int64_t n, flags.GetInt("max-tokens", 0, 1, 1 << 24));
    a.max_tokens = static_cast<int32_t>(n);
  }
  if (flags.Has("temperature")) {
    TAILOR_ASSIGN_OR_RETURN(double t, flags.GetDouble("temperature", 0.7, 0.0, 2.0));
    a.temperature = static_cast<float>(t);
  }
  if (flags.Has("top-p")) {
    TAILOR_ASSIGN_OR_RETURN(double p, flags.GetDouble("top-p", 1.0, 0.0, 1.0));
    if (p <= 0.0) return absl::InvalidArgumentError("--top-p: must be greater than 0");
    a.top_p = static_cast<float>(p);
  }
  TAILOR_ASSIGN_OR_RETURN(int64_t seed, flags.GetInt("seed", static_cast<int64_t>(env.random_seed >> 1),
                                                     0, INT64_MAX));
  TAILOR_ASSIGN_OR_RETURN(a.kv_cache_mb, flags.GetInt("kv-cache-mb", 0, 1, int64_t{1} << 30));
  a.seed = static_cast<uint64_t>(seed);
  return a;
}

double Seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

// The streamed state of one reply. Written by the session's callbacks on the engine's loop
// thread until `done`; read by the main thread after `done` (release/acquire through the atomic).
class ReplyStream {
 public:
  ReplyStream() {
    if (pipe(done_pipe_) != 0) done_pipe_[0] = done_pipe_[1] = -1;  // then done() is polled
  }
  ~ReplyStream() {
    for (int fd : done_pipe_) {
      if (fd >= 0) close(fd);
    }
  }
  ReplyStream(const ReplyStream&) = delete;
  ReplyStream& operator=(const ReplyStream&) = delete;

  void OnEvent(const SessionEvent& e) {
    if (e.kind == SessionEvent::Kind::kDelta) {
      if (!first_delta_) first_delta_ = std::chrono::steady_clock::now();
      Write(e.delta.text);
      return;
    }
    usage_ = e.usage;
    error_ = e.error;
    end_ = std::chrono::steady_clock::now();
    done_.store(true, std::memory_order_release);
    if (done_pipe_[1] >= 0) {
      const char byte = 1;
      [[maybe_unused]] ssize_t n = write(done_pipe_[1], &byte, 1);
    }
  }

  // Readable once done() (or -1 if the pipe could not be made). Owned by the stream.
  int done_fd() const { return done_pipe_[0]; }

  bool done() const { return done_.load(std::memory_order_acquire); }
  // After done():
  const std::string& text() const { return text_; }
  const std::optional<service::ApiError>& error() const { return error_; }
  const service::Usage& usage() const { return usage_; }
  std::optional<std::chrono::steady_clock::time_point> first_delta() const { return first_delta_; }
  std::chrono::steady_clock::time_point end() const { return end_; }

 private:
  void Write(std::string piece) {
    if (text_.empty()) {  // a reply starts at its first visible character
      const size_t start = piece.find_first_not_of(" \t\r\n");
      if (start == std::string::npos) return;
      piece.erase(0, start);
    }
    text_ += piece;
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  }

  std::string text_;
  service::Usage usage_;
  std::optional<service::ApiError> error_;
  std::optional<std::chrono::steady_clock::time_point> first_delta_;
  std::chrono::steady_clock::time_point end_;
  std::atomic<bool> done_{false};
  int done_pipe_[2] = {-1, -1};  // a byte is written when done, to wake the waiting thread
};

// The conversation and the engine it talks to. Main thread only.
class ChatSession {
 public:
  ChatSession(const ChatArgs& args, ServingSession& session) : args_(args), session_(session), system_(args.system) {}

  void Reset() { turns_.clear(); }
  void SetSystem(std::optional<std::string> system) { system_ = std::move(system); }

  // One user turn: fits the conversation into the context, streams the reply, waits for it
  // (SIGINT cancels it). Errors of the turn are reported on stderr and leave the history as it
  // was; only internal failures are returned.
  absl::Status Turn(const std::string& user_text, SigintWatcher& watcher) {
    turns_.push_back({user_text, ""});
    const int32_t ctx = session_.limits().max_ctx_len;
    // Room a reply needs: --max-tokens, else a quarter of the context (at most 256 tokens).
    // --max-tokens, else generation_config.json's max_new_tokens (the session's default), else
    // a quarter of the context (at most 256 tokens).
    const std::optional<int32_t> max_tokens =
        args_.max_tokens ? args_.max_tokens : session_.parse_limits().default_max_tokens;
    const int32_t want_room = max_tokens ? std::min(*max_tokens, ctx - 1) : std::min(256, std::max(1, ctx / 4));
    std::vector<int32_t> prompt;
    int dropped = 0;
    while (true) {
      TAILOR_ASSIGN_OR_RETURN(prompt, Encode());
      const int64_t size = static_cast<int64_t>(prompt.size());
      if (size + want_room <= ctx) break;
      if (turns_.size() > 1) {
        turns_.erase(turns_.begin());
        ++dropped;
        continue;
      }
      if (size < ctx) break;  // the new message alone: reply in the room left
      std::cerr << "tailor: the message is " << size << " tokens with the template, more than the "
                << "largest ctx_len (" << ctx << ") leaves room for; it was not sent\n";
      turns_.pop_back();
      return absl::OkStatus();
    }
    if (dropped > 0) {
      std::cerr << "tailor: dropped the oldest " << dropped << (dropped == 1 ? " turn" : " turns")
                << " of the conversation to fit the context of " << ctx << " tokens\n";
    }
    const int32_t room = ctx - static_cast<int32_t>(prompt.size());
    service::OpenAiRequest request;
    request.endpoint = service::Endpoint::kChatCompletions;
    request.messages = Messages();
    // Flags, else the model's generation_config.json (the session's defaults for omitted
    // fields), else a chat's usual 0.7.
    const service::ParseLimits& d = session_.parse_limits();
    const ModelConfig::SamplingDefaults& model = session_.runtime().package().config.sampling_defaults;
    const bool model_sets_temperature = model.temperature.has_value() || model.do_sample.has_value();
    request.sampling.temperature = args_.temperature.value_or(model_sets_temperature ? d.default_temperature : 0.7);
    request.sampling.top_p = args_.top_p.value_or(d.default_top_p);
    request.sampling.top_k = d.default_top_k;
    request.sampling.min_p = d.default_min_p;
    request.sampling.repetition_penalty = d.default_repetition_penalty;
    request.sampling.seed = static_cast<int64_t>((args_.seed + static_cast<uint64_t>(num_replies_)) & INT64_MAX);
    request.sampling.max_tokens = max_tokens ? std::min(*max_tokens, room) : room;

    auto stream = std::make_shared<ReplyStream>();
    const auto start = std::chrono::steady_clock::now();
    watcher.Take();  // a Ctrl-C typed before this turn is not for it
    service::ApiResult<std::shared_ptr<ActiveRequest>> handle =
        session_.Start(request, [stream](const SessionEvent& e) { stream->OnEvent(e); });
    if (!handle.ok()) {
      std::cerr << "tailor: " << handle.error().message << "\n";
      turns_.pop_back();
      return absl::OkStatus();
    }
    bool interrupted = false;
    while (!stream->done()) {
      pollfd fds[2] = {{watcher.fd(), POLLIN, 0}, {stream->done_fd(), POLLIN, 0}};
      poll(fds, stream->done_fd() >= 0 ? 2 : 1, 20);
      if (watcher.Take() && !interrupted) {
        interrupted = true;
        session_.Cancel(**handle);
      }
    }
    std::fputs("\n", stdout);
    std::fflush(stdout);
    if (stream->error() && !(interrupted && stream->error()->code == "cancelled")) {
      std::cerr << "tailor: the reply failed: " << stream->error()->message << "\n";
      turns_.pop_back();
      return absl::OkStatus();
    }
    if (interrupted) std::cerr << "tailor: reply stopped (Ctrl-C)\n";
    turns_.back().reply = stream->text();
    ++num_replies_;
    last_tokens_ = stream->usage().completion_tokens;
    last_prompt_tokens_ = static_cast<int32_t>(prompt.size());
    const auto first = stream->first_delta().value_or(stream->end());
    last_ttft_s_ = Seconds(first - start);
    last_decode_s_ = Seconds(stream->end() - first);
    total_tokens_ += stream->usage().completion_tokens;
    total_seconds_ += Seconds(stream->end() - start);
    return absl::OkStatus();
  }

  void PrintStats(std::ostream& out) const {
    const SchedulerStats s = session_.stats();
    out << absl::StrFormat("replies: %d, %d tokens generated in %.2f s (%.1f tok/s)\n", num_replies_,
                           total_tokens_, total_seconds_, total_seconds_ > 0 ? total_tokens_ / total_seconds_ : 0.0);
    if (num_replies_ > 0) {
      const double decode_rate = last_decode_s_ > 0 && last_tokens_ > 1 ? (last_tokens_ - 1) / last_decode_s_ : 0.0;
      out << absl::StrFormat("last reply: prompt %d tokens, first token after %.1f ms; %d tokens, %.1f tok/s\n",
                             last_prompt_tokens_, last_ttft_s_ * 1e3, last_tokens_, decode_rate);
    }
    out << absl::StrFormat("engine: %d steps, %d prompt tokens computed, %d generated, %d preemptions, "
                           "prefix cache served %d of %d prompt tokens\n",
                           s.num_steps, s.prompt_tokens_computed, s.generated_tokens, s.num_preemptions,
                           s.kv.prefix_hit_tokens, s.kv.prefix_query_tokens);
    out << "specializations (steps run):\n";
    const auto specs = session_.runtime().specializations();
    for (size_t i = 0; i < specs.size(); ++i) {
      const int64_t steps = i < s.steps_per_spec.size() ? s.steps_per_spec[i] : 0;
      out << absl::StrFormat("  %-16s %8d  %5.1f%%\n", specs[i].Name(), steps,
                             s.num_steps > 0 ? 100.0 * steps / s.num_steps : 0.0);
    }
  }

 private:
  struct Exchange {
    std::string user;
    std::string reply;  // empty for the turn being answered
  };

  std::vector<ChatMessage> Messages() const {
    std::vector<ChatMessage> messages;
    if (system_ && !system_->empty()) messages.push_back({ChatRole::kSystem, *system_});
    for (size_t i = 0; i < turns_.size(); ++i) {
      messages.push_back({ChatRole::kUser, turns_[i].user});
      if (i + 1 < turns_.size()) messages.push_back({ChatRole::kAssistant, turns_[i].reply});
    }
    return messages;
  }

  // The prompt's token ids, as the session will encode them, to decide what fits the context
  // before submitting.
  absl::StatusOr<std::vector<int32_t>> Encode() const { return session_.EncodeChat(Messages()); }

  const ChatArgs& args_;
  ServingSession& session_;
  std::optional<std::string> system_;
  std::vector<Exchange> turns_;
  int num_replies_ = 0;
  int64_t total_tokens_ = 0;
  double total_seconds_ = 0;
  int32_t last_tokens_ = 0;
  int32_t last_prompt_tokens_ = 0;
  double last_ttft_s_ = 0;
  double last_decode_s_ = 0;
};

constexpr char kChatCommands[] =
    "commands: /reset (forget the conversation), /system [TEXT] (set or clear the system message),\n"
    "          /stats (tokens/s, specializations used), /help, /exit; Ctrl-C stops a reply\n";

absl::Status Chat(const ChatArgs& args, const Environment& env) {
  ServingOptions so;
  so.package_dir = args.package;
  so.chat_template = args.chat_template.value_or("");
  so.kv_cache_mb = args.kv_cache_mb;
  so.seed = args.seed;
  so.log = [](const std::string& m) { std::cerr << "tailor: " << m << "\n"; };
  TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<ServingSession> session, ServingSession::Open(so));
  TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<SigintWatcher> watcher, SigintWatcher::Install());

  const bool terminal = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
  std::unique_ptr<LineReader> reader;
  if (terminal && env.terminal_line_reader) {
    reader = env.terminal_line_reader(*watcher);
  } else {
    reader = MakeFdLineReader(STDIN_FILENO, *watcher, terminal ? stdout : nullptr);
  }
  if (terminal) {
    std::cerr << "tailor chat: " << session->model_name() << " (template " << session->chat_template().name()
              << ", largest ctx_len " << session->limits().max_ctx_len << "); /help for commands\n";
  }
  ChatSession chat(args, *session);
  while (std::optional<std::string> line = reader->ReadLine(">>> ")) {
    const std::string text(absl::StripAsciiWhitespace(*line));
    if (text.empty()) continue;
    if (text == "/exit" || text == "/quit") break;
    if (text == "/reset") {
      chat.Reset();
      std::cerr << "tailor: conversation cleared\n";
    } else if (text == "/system" || absl::StartsWith(text, "/system ")) {
      std::string system(absl::StripAsciiWhitespace(absl::string_view(text).substr(7)));
      if (system.empty()) {
        chat.SetSystem(std::nullopt);
        std::cerr << "tailor: system message cleared\n";
      } else {
        chat.SetSystem(system);
        std::cerr << "tailor: system message set\n";
      }
    } else if (text == "/stats") {
      chat.PrintStats(std::cerr);
    } else if (text == "/help") {
      std::cerr << kChatCommands;
    } else if (text[0] == '/' && text.find(' ') == std::string::npos && text.size() < 16) {
      std::cerr << "tailor: unknown command " << text << "\n" << kChatCommands;
    } else {
      TAILOR_RETURN_IF_ERROR(chat.Turn(text, *watcher));
    }
  }
  session->Shutdown(ShutdownMode::kCancel);
  return absl::OkStatus();
}

}  // namespace

int RunChat(const std::vector<std::string>& args, const Environment& env) {
  if (std::find(args.begin(), args.end(), "--help") != args.end() ||
      std::find(args.begin(), args.end(), "-h") != args.end()) {
    std::cout << "usage: tailor chat [--package DIR] [--system TEXT] [options]\n"
              << FlagsHelp(ChatFlags()) << kChatCommands;
    return 0;
  }
  auto parsed = ParseChatArgs(args, env);
  if (!parsed.ok()) return ReportError(parsed.status());
  absl::Status s = Chat(*parsed, env);
  if (!s.ok()) return ReportError(s);
  return 0;
}

}  // namespace tailor
