// `tailor generate`: loads a model, encodes the prompt (BOS prepended), streams the continuation
// to stdout as it is produced, and prints the statistics line last on stderr.
#include <chrono>
#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api/commands.h"
#include "api/flags.h"
#include "common/status_macros.h"
#include "kernels/sampling.h"
#include "models/model_loader.h"
#include "models/reference_forward.h"
#include "tokenizer/tokenizer.h"

namespace tailor {
namespace {

const std::vector<FlagSpec>& GenerateFlags() {
  static const auto* specs = new std::vector<FlagSpec>{
      {"model", true, {"m"}, "HF directory, .gguf file or llama2.c .bin"},
      {"tokenizer", true, {}, "tokenizer (.model, llama2.c .bin or .gguf) to use instead"},
      {"prompt", true, {}, "text to continue (empty: BOS alone)"},
      {"max-tokens", true, {}, "most tokens to generate (default 256)"},
      {"temperature", true, {}, "0 is greedy (default 0)"},
      {"top-p", true, {}, "nucleus sampling mass (default 1)"},
      {"top-k", true, {}, "sample among the k most likely (default 0: all)"},
      {"seed", true, {}, "random seed (default: random)"},
  };
  return *specs;
}

struct GenerateArgs {
  std::string model;
  std::optional<std::string> tokenizer;
  std::string prompt;
  int64_t max_tokens = 256;
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
  if (!flags.Has("model")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "generate needs --model PATH\nusage: tailor generate --model PATH [options]\n",
        FlagsHelp(GenerateFlags())));
  }
  a.model = *flags.Get("model");
  a.tokenizer = flags.Get("tokenizer");
  if (!flags.Has("prompt")) return absl::InvalidArgumentError("generate needs --prompt TEXT");
  a.prompt = *flags.Get("prompt");
  TAILOR_ASSIGN_OR_RETURN(a.max_tokens, flags.GetInt("max-tokens", 256, 0, 1 << 24));
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

absl::Status Generate(const GenerateArgs& a) {
  LoadOptions options;
  if (a.tokenizer) options.tokenizer = *a.tokenizer;
  TAILOR_ASSIGN_OR_RETURN(auto model, LoadModel(a.model, options));
  const LlamaConfig& c = model->config;
  TAILOR_ASSIGN_OR_RETURN(auto tokenizer, Tokenizer::Load(model->tokenizer_path, c.vocab_size));

  std::vector<int32_t> prompt;
  if (c.add_bos || a.prompt.empty()) prompt.push_back(c.bos_id);
  for (int32_t id : tokenizer->Encode(a.prompt)) prompt.push_back(id);
  if (static_cast<int64_t>(prompt.size()) + a.max_tokens > c.max_positions) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the prompt (", prompt.size(), " tokens) plus --max-tokens ", a.max_tokens, " is ",
        prompt.size() + a.max_tokens, " positions, more than the model's maximum of ",
        c.max_positions, "; shorten the prompt or lower --max-tokens"));
  }

  ReferenceForward forward(*model);
  ReferenceKvCache cache(c);
  Rng rng(a.seed);
  std::vector<std::pair<float, int32_t>> scratch;
  StreamingDetokenizer detok(*tokenizer, prompt);

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> next = prompt;
  int64_t generated = 0;
  auto t_first = t0;
  while (generated < a.max_tokens) {
    ReferenceRow row{&cache, next};
    TAILOR_ASSIGN_OR_RETURN(auto logits, forward.Run({&row, 1}));
    if (generated == 0) t_first = std::chrono::steady_clock::now();
    std::span<const float> last(logits[0].data() + (next.size() - 1) * c.vocab_size,
                                static_cast<size_t>(c.vocab_size));
    const int32_t token = SampleToken(last, a.sampling, rng, scratch);
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
  auto parsed = ParseArgs(args, env);
  if (!parsed.ok()) return ReportError(parsed.status());
  absl::Status s = Generate(*parsed);
  if (!s.ok()) return ReportError(s);
  return 0;
}

}  // namespace tailor
