// `tailor generate`: loads a model, encodes the prompt (BOS prepended), streams the continuation
// to stdout as it is produced, and prints the statistics line last on stderr.
#include <chrono>
#include <functional>
#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api/commands.h"
#include "api/model_tokenizer.h"
#include "api/flags.h"
#include "common/status_macros.h"
#include "kernels/sampling.h"
#include "models/model_loader.h"
#include "models/reference_forward.h"
#include "engine/runtime.h"
#include "engine/sequence_runner.h"
#include "tokenizer/tokenizer.h"

namespace tailor {
namespace {

const std::vector<FlagSpec>& GenerateFlags() {
  static const auto* specs = new std::vector<FlagSpec>{
      {"model", true, {"m"}, "HF directory, .gguf file or llama2.c .bin (reference forward pass)"},
      {"package", true, {}, "compiled package (default: the package setup.sh built)"},
      {"tokenizer", true, {}, "tokenizer (.model, llama2.c .bin or .gguf) to use instead"},
      {"prompt", true, {}, "text to continue (empty: BOS alone)"},
      {"max-tokens", true, {}, "most tokens to generate (default 256, fewer when the context is shorter)"},
      {"temperature", true, {}, "0 is greedy (default 0)"},
      {"top-p", true, {}, "nucleus sampling mass (default 1)"},
      {"top-k", true, {}, "sample among the k most likely (default 0: all)"},
      {"seed", true, {}, "random seed (default: random)"},
  };
  return *specs;
}

struct GenerateArgs {
  std::string model;    // empty: run a package
  std::string package;
  std::optional<std::string> tokenizer;
  std::string prompt;
  int64_t max_tokens = 256;
  bool max_tokens_given = false;  // false: the default, clamped to the room the context leaves
  SamplingParams sampling;
  uint64_t seed = 0;
};

absl::StatusOr<GenerateArgs> ParseArgs(const std::vector<std::string>& args,
                                       const Environment& env) {
  TAILOR_ASSIGN_OR_RETURN(ParsedFlags flags, ParseFlags(GenerateFlags(), args));
  if (!flags.positional().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", flags.positional()[0], "'"));
  }
  GenerateArgs a;
  if (flags.Has("model") && flags.Has("package")) {
    return absl::InvalidArgumentError("give --model or --package, not both");
  }
  a.model = flags.Get("model").value_or("");
  if (a.model.empty()) {
    TAILOR_ASSIGN_OR_RETURN(a.package, PackageOrDefault(flags.Get("package"), "--model PATH or --package DIR"));
  }
  a.tokenizer = flags.Get("tokenizer");
  if (!flags.Has("prompt")) return absl::InvalidArgumentError("generate needs --prompt TEXT");
  a.prompt = *flags.Get("prompt");
  TAILOR_ASSIGN_OR_RETURN(a.max_tokens, flags.GetInt("max-tokens", 256, 0, 1 << 24));
  a.max_tokens_given = flags.Has("max-tokens");
  TAILOR_ASSIGN_OR_RETURN(double t, flags.GetDouble("temperature", 0.0, 0.0, 100.0));
  TAILOR_ASSIGN_OR_RETURN(double p, flags.GetDouble("top-p", 1.0, 0.0, 1.0));
  TAILOR_ASSIGN_OR_RETURN(int64_t k, flags.GetInt("top-k", 0, 0, 1 << 30));
  TAILOR_ASSIGN_OR_RETURN(int64_t seed, flags.GetInt("seed", static_cast<int64_t>(env.random_seed >> 1),
                                                     0, INT64_MAX));
  if (p <= 0.0) return absl::InvalidArgumentError("--top-p: must be greater than 0");
  a.sampling.temperature = static_cast<float>(t);
  a.sampling.top_p = static_cast<float>(p);
  a.sampling.top_k = static_cast<int32_t>(k);
  a.seed = static_cast<uint64_t>(seed);
  return a;
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// Where logits come from: the reference forward pass of a model, or a compiled package.
struct Backend {
  ModelConfig config;
  std::unique_ptr<Tokenizer> tokenizer;
  std::function<absl::StatusOr<std::vector<float>>(std::span<const int32_t>)> feed;  // last logits
  // Owned state behind `feed`.
  std::unique_ptr<Model> model;
  std::unique_ptr<ReferenceForward> forward;
  std::unique_ptr<ReferenceKvCache> cache;
  std::unique_ptr<Runtime> runtime;
  std::unique_ptr<SequenceRunner> runner;
};

absl::StatusOr<std::unique_ptr<Backend>> OpenBackend(const GenerateArgs& a) {
  auto b = std::make_unique<Backend>();
  if (!a.model.empty()) {
    LoadOptions options;
    if (a.tokenizer) options.tokenizer = *a.tokenizer;
    TAILOR_ASSIGN_OR_RETURN(b->model, LoadModel(a.model, options));
    b->config = b->model->config;
    TAILOR_ASSIGN_OR_RETURN(b->tokenizer, LoadModelTokenizer(*b->model));
    b->forward = std::make_unique<ReferenceForward>(*b->model);
    b->cache = std::make_unique<ReferenceKvCache>(b->config);
    Backend* raw = b.get();
    b->feed = [raw](std::span<const int32_t> tokens) -> absl::StatusOr<std::vector<float>> {
      ReferenceRow row{raw->cache.get(), tokens};
      TAILOR_ASSIGN_OR_RETURN(auto logits, raw->forward->Run({&row, 1}));
      const size_t V = static_cast<size_t>(raw->config.vocab_size);
      return std::vector<float>(logits[0].end() - V, logits[0].end());
    };
    return b;
  }
  RuntimeOptions ro;
  ro.warn = [](const std::string& w) { std::cerr << "tailor: warning: " << w << "\n"; };
  TAILOR_ASSIGN_OR_RETURN(b->runtime, Runtime::Open(a.package, ro));
  b->config = b->runtime->package().config;
  const Package& pkg = b->runtime->package();
  TAILOR_ASSIGN_OR_RETURN(b->tokenizer, a.tokenizer ? LoadTokenizerFor(*a.tokenizer, pkg.config) : LoadPackageTokenizer(pkg));
  b->runner = std::make_unique<SequenceRunner>(*b->runtime);
  Backend* raw = b.get();
  b->feed = [raw](std::span<const int32_t> tokens) { return raw->runner->Feed(tokens); };
  return b;
}

absl::Status Generate(const GenerateArgs& a) {
  TAILOR_ASSIGN_OR_RETURN(auto backend, OpenBackend(a));
  const ModelConfig& c = backend->config;
  int32_t max_positions = c.max_positions;
  if (backend->runtime) {
    max_positions = 0;
    for (const auto& s : backend->runtime->specializations()) max_positions = std::max(max_positions, s.shape.ctx_len);
  }
  const std::vector<int32_t> prompt = EncodePrompt(*backend->tokenizer, a.prompt, /*add_special_tokens=*/true, c.bos_id);
  int64_t max_tokens = a.max_tokens;
  const int64_t room = max_positions - static_cast<int64_t>(prompt.size());
  if (!a.max_tokens_given && room >= 1) max_tokens = std::min(max_tokens, room);
  if (static_cast<int64_t>(prompt.size()) + max_tokens > max_positions) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the prompt (", prompt.size(), " tokens) plus --max-tokens ", a.max_tokens, " is ",
        prompt.size() + a.max_tokens, " positions, more than the ", backend->runtime ? "largest ctx_len" : "model's maximum",
        " of ", max_positions, "; shorten the prompt or lower --max-tokens"));
  }

  Rng rng(a.seed);
  std::vector<std::pair<float, int32_t>> scratch;
  StreamingDetokenizer detok(*backend->tokenizer, prompt);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> next = prompt;
  int64_t generated = 0;
  auto t_first = t0;
  while (generated < max_tokens) {
    TAILOR_ASSIGN_OR_RETURN(std::vector<float> logits, backend->feed(next));
    if (generated == 0) t_first = std::chrono::steady_clock::now();
    const int32_t token = SampleToken(logits, a.sampling, rng, scratch);
    if (std::find(c.eos_ids.begin(), c.eos_ids.end(), token) != c.eos_ids.end()) break;
    ++generated;
    std::string text = detok.Push(token);
    if (!text.empty()) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    }
    next = {token};
  }
  std::string rest = detok.Flush();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::fflush(stdout);
  std::cerr << "\n";  // stdout holds exactly the continuation; end the terminal line here
  const auto t_end = std::chrono::steady_clock::now();
  const double prefill_s = Seconds(t_first - t0);
  const double decode_s = Seconds(t_end - t_first);
  std::cerr << absl::StrFormat("prompt: %d tokens, %.1f tok/s; generation: %d tokens, %.1f tok/s\n",
                               prompt.size(), prefill_s > 0 ? prompt.size() / prefill_s : 0.0,
                               generated, decode_s > 0 ? generated / decode_s : 0.0);
  return absl::OkStatus();
}

}  // namespace

int RunGenerate(const std::vector<std::string>& args, const Environment& env) {
  if (PrintHelpIfAsked(args,
                       "usage: tailor generate (--model PATH [--tokenizer PATH] | --package DIR) --prompt TEXT "
                       "[options]\ncontinues the prompt on stdout; statistics on stderr\n",
                       GenerateFlags())) {
    return 0;
  }
  auto parsed = ParseArgs(args, env);
  if (!parsed.ok()) return ReportError(parsed.status());
  absl::Status s = Generate(*parsed);
  if (!s.ok()) return ReportError(s);
  return 0;
}

}  // namespace tailor
