// `tailor perplexity --package P --text FILE [--ctx N] [--base PACKAGE_OR_MODEL] [--json FILE]`:
// llama-perplexity's protocol on a compiled package, optionally against a base.
//
// The whole text is encoded as a completion prompt is (what the tokenizer adds, e.g. BOS, at its
// start) and cut into floor(tokens / ctx) non-overlapping chunks of ctx tokens; when the
// tokenizer adds BOS, each chunk's first token is replaced by BOS. Each chunk is a fresh
// sequence. Only the second half is scored: for positions i in [ctx/2, ctx - 1), the negative
// log-likelihood of token i+1 under the log-softmax (float64) of the logits at i. PPL = exp(mean).
//
// The runtime keeps at most one logits row per sequence per step, so each chunk's first
// ctx/2 + 1 tokens are fed at once (prefill specializations, one logits row at position ctx/2)
// and the rest one token per step (decode specializations): SequenceRunner chooses the steps.
// A base (a second package, or a model run by the float64-accumulating reference forward pass)
// reads the same token ids in lockstep; at every scored position its distribution P and the
// candidate's Q give KL(P || Q) over the whole vocabulary and whether their argmaxes agree.
//
// stdout (the last two lines and the base lines only with --base):
//   Final estimate: PPL = 5.4007 +/- 0.06734
//   Base estimate: PPL = 5.3990 +/- 0.06731
//   PPL ratio: 1.000315
//   Mean KLD: 0.000123 +/- 0.000004
//   Same top token: 99.52 +/- 0.12 %
// stderr: the setup, then one line per chunk with the running PPL.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <span>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api/commands.h"
#include "api/flags.h"
#include "api/model_tokenizer.h"
#include "common/mapped_file.h"
#include "common/status_macros.h"
#include "engine/runtime.h"
#include "engine/sequence_runner.h"
#include "models/model_loader.h"
#include "models/reference_forward.h"
#include "nlohmann/json.hpp"
#include "tokenizer/tokenizer.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMinCtx = 16;
constexpr int64_t kDefaultCtx = 512;

const std::vector<FlagSpec>& PerplexityFlags() {
  static const auto* specs = new std::vector<FlagSpec>{
      {"package", true, {}, "the compiled package to score"},
      {"text", true, {}, "plain UTF-8 text file"},
      {"ctx", true, {}, "tokens per chunk (default 512, capped at the package's largest ctx_len)"},
      {"base", true, {}, "package, or model (HF dir, .gguf, llama2.c .bin; reference forward) to compare with"},
      {"json", true, {}, "also write the results to this JSON file"},
  };
  return *specs;
}

// A sequence model that returns logits one position at a time. Owned by the command; used by
// one thread.
class LogitSource {
 public:
  virtual ~LogitSource() = default;
  virtual int32_t vocab_size() const = 0;
  // Positions a sequence may reach.
  virtual int32_t max_positions() const = 0;
  // What the user named it ("package DIR" / "model PATH"), for messages.
  virtual const std::string& name() const = 0;
  // Starts a fresh sequence (no cached positions).
  virtual void Reset() = 0;
  // Appends `tokens` and returns the logits after the last one: vocab_size() floats.
  virtual absl::StatusOr<std::vector<float>> Feed(std::span<const int32_t> tokens) = 0;
};

// A compiled package on the runtime; each sequence uses KV blocks [0, ...) of its pool.
class PackageSource final : public LogitSource {
 public:
  static absl::StatusOr<std::unique_ptr<PackageSource>> Open(const fs::path& dir) {
    auto source = std::unique_ptr<PackageSource>(new PackageSource());
    RuntimeOptions ro;
    ro.warn = [](const std::string& w) { std::cerr << "tailor: warning: " << w << "\n"; };
    TAILOR_ASSIGN_OR_RETURN(source->runtime_, Runtime::Open(dir, ro));
    source->name_ = absl::StrCat("package ", dir.string());
    for (const auto& s : source->runtime_->specializations()) {
      source->max_ctx_ = std::max(source->max_ctx_, s.shape.ctx_len);
    }
    return source;
  }
  int32_t vocab_size() const override { return runtime_->vocab_size(); }
  int32_t max_positions() const override { return max_ctx_; }
  const std::string& name() const override { return name_; }
  void Reset() override { runner_.emplace(*runtime_); }
  absl::StatusOr<std::vector<float>> Feed(std::span<const int32_t> tokens) override {
    if (!runner_) Reset();
    return runner_->Feed(tokens);
  }
  const Runtime& runtime() const { return *runtime_; }

 private:
  PackageSource() = default;
  std::unique_ptr<Runtime> runtime_;
  std::optional<SequenceRunner> runner_;  // refers to *runtime_
  int32_t max_ctx_ = 0;
  std::string name_;
};

// A model file run by the reference forward pass (float64 accumulation): slow, exact.
class ReferenceSource final : public LogitSource {
 public:
  // `tokenizer`: a tokenizer file the loader may record for a checkpoint that ships none
  // (the scored ids come from the candidate's tokenizer; the base's own is never used).
  static absl::StatusOr<std::unique_ptr<ReferenceSource>> Open(const fs::path& path, const fs::path& tokenizer) {
    auto source = std::unique_ptr<ReferenceSource>(new ReferenceSource());
    LoadOptions options;
    options.tokenizer = tokenizer;
    TAILOR_ASSIGN_OR_RETURN(source->model_, LoadModel(path, options));
    source->forward_ = std::make_unique<ReferenceForward>(*source->model_);
    source->cache_ = std::make_unique<ReferenceKvCache>(source->model_->config);
    source->name_ = absl::StrCat("model ", path.string());
    return source;
  }
  int32_t vocab_size() const override { return model_->config.vocab_size; }
  int32_t max_positions() const override { return model_->config.max_positions; }
  const std::string& name() const override { return name_; }
  void Reset() override { cache_->Clear(); }
  absl::StatusOr<std::vector<float>> Feed(std::span<const int32_t> tokens) override {
    ReferenceRow row{cache_.get(), tokens};
    TAILOR_ASSIGN_OR_RETURN(auto logits, forward_->Run({&row, 1}));
    const size_t V = static_cast<size_t>(vocab_size());
    return std::vector<float>(logits[0].end() - V, logits[0].end());
  }

 private:
  ReferenceSource() = default;
  std::unique_ptr<Model> model_;
  std::unique_ptr<ReferenceForward> forward_;  // refers to *model_
  std::unique_ptr<ReferenceKvCache> cache_;
  std::string name_;
};

// log-softmax of one logits row, in float64: log p(v) = x[v] - lse.
struct RowStats {
  double lse = 0;
  int32_t argmax = 0;  // the first index of the largest logit
};

RowStats Stats(std::span<const float> logits) {
  RowStats s;
  double max = logits[0];
  for (size_t v = 1; v < logits.size(); ++v) {
    if (logits[v] > max) {
      max = logits[v];
      s.argmax = static_cast<int32_t>(v);
    }
  }
  double sum = 0;
  for (float x : logits) sum += std::exp(static_cast<double>(x) - max);
  s.lse = max + std::log(sum);
  return s;
}

// KL(P || Q) = sum_v P(v) (log P(v) - log Q(v)), P from `base`, Q from `candidate`, float64.
double KlDivergence(std::span<const float> base, const RowStats& pb, std::span<const float> candidate,
                    const RowStats& qc) {
  double kl = 0;
  for (size_t v = 0; v < base.size(); ++v) {
    const double lp = base[v] - pb.lse;
    const double lq = candidate[v] - qc.lse;
    kl += std::exp(lp) * (lp - lq);
  }
  return std::max(kl, 0.0);  // rounding can leave -1e-17 for identical rows
}

// Mean and standard error of the mean of a running sum of x and x^2.
struct Mean {
  double sum = 0, sum2 = 0;
  int64_t n = 0;
  void Add(double x) {
    sum += x;
    sum2 += x * x;
    ++n;
  }
  double mean() const { return n > 0 ? sum / n : 0.0; }
  double stderr_of_mean() const {
    if (n < 2) return 0.0;
    const double var = std::max(0.0, sum2 / n - mean() * mean());
    return std::sqrt(var / (n - 1));
  }
};

struct Totals {
  Mean nll, nll_base, kld, same_top;  // same_top: 1 or 0 per position
  double ppl() const { return std::exp(nll.mean()); }
  double ppl_base() const { return std::exp(nll_base.mean()); }
};

struct PerplexityArgs {
  std::string package;
  std::string text;
  std::optional<int64_t> ctx;
  std::optional<std::string> base;
  std::optional<std::string> json;
};

absl::StatusOr<PerplexityArgs> ParseArgs(const std::vector<std::string>& args) {
  TAILOR_ASSIGN_OR_RETURN(ParsedFlags f, ParseFlags(PerplexityFlags(), args));
  if (!f.positional().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", f.positional()[0], "'"));
  }
  for (const char* required : {"package", "text"}) {
    if (!f.Has(required)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "perplexity needs --", required,
          "\nusage: tailor perplexity --package P --text FILE [--ctx N] [--base PACKAGE_OR_MODEL] [--json FILE]\n",
          FlagsHelp(PerplexityFlags())));
    }
  }
  PerplexityArgs a;
  a.package = *f.Get("package");
  a.text = *f.Get("text");
  if (f.Has("ctx")) {
    TAILOR_ASSIGN_OR_RETURN(a.ctx, f.GetInt("ctx", kDefaultCtx, 1, 1 << 24));
  }
  a.base = f.Get("base");
  a.json = f.Get("json");
  if (a.json) {
    const fs::path parent = fs::absolute(*a.json).parent_path();
    std::error_code ec;
    if (!fs::is_directory(parent, ec)) {
      return absl::InvalidArgumentError(absl::StrCat("--json ", *a.json, ": directory ", parent.string(),
                                                     " does not exist"));
    }
  }
  return a;
}

bool IsPackageDir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec) && fs::exists(p / "manifest.json", ec);
}

absl::Status WriteJson(const std::string& path, const Totals& t, bool with_base, int64_t chunks, int64_t ctx) {
  using json = nlohmann::json;
  json j = {{"ppl", t.ppl()},
            {"ppl_base", with_base ? json(t.ppl_base()) : json(nullptr)},
            {"ppl_ratio", with_base ? json(t.ppl() / t.ppl_base()) : json(nullptr)},
            {"kld_mean", with_base ? json(t.kld.mean()) : json(nullptr)},
            {"same_top_pct", with_base ? json(100.0 * t.same_top.mean()) : json(nullptr)},
            {"tokens_scored", t.nll.n},
            {"chunks", chunks},
            {"ctx", ctx}};
  std::ofstream out(path, std::ios::trunc);
  out << j.dump(2) << "\n";
  out.close();
  if (!out) return absl::InvalidArgumentError(absl::StrCat("--json ", path, ": cannot write"));
  return absl::OkStatus();
}

absl::Status Perplexity(const PerplexityArgs& a) {
  // Everything that can be wrong with the input is checked before any chunk runs.
  TAILOR_ASSIGN_OR_RETURN(std::string text, ReadFileToString(a.text));
  TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<PackageSource> candidate, PackageSource::Open(a.package));
  const Package& package = candidate->runtime().package();
  TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, LoadPackageTokenizer(package));
  const int64_t max_ctx = candidate->max_positions();
  const int64_t ctx = a.ctx.value_or(std::min(kDefaultCtx, max_ctx));
  if (ctx < kMinCtx) {
    return absl::InvalidArgumentError(
        absl::StrCat(a.ctx ? absl::StrCat("--ctx ", ctx) : absl::StrCat(a.package, ": largest ctx_len ", ctx),
                     ": perplexity needs chunks of at least ", kMinCtx, " tokens"));
  }
  if (ctx > max_ctx) {
    return absl::InvalidArgumentError(absl::StrCat("--ctx ", ctx, " is larger than the largest ctx_len of ",
                                                   a.package, " (", max_ctx, ")"));
  }

  std::unique_ptr<LogitSource> base;
  if (a.base) {
    if (IsPackageDir(*a.base)) {
      TAILOR_ASSIGN_OR_RETURN(base, PackageSource::Open(*a.base));
    } else {
      TAILOR_ASSIGN_OR_RETURN(base, ReferenceSource::Open(*a.base, package.dir / package.tokenizer_file));
    }
    if (base->vocab_size() != candidate->vocab_size()) {
      return absl::InvalidArgumentError(absl::StrCat("--base: the vocabularies differ: ", a.package, " has ",
                                                     candidate->vocab_size(), " tokens, ", *a.base, " has ",
                                                     base->vocab_size()));
    }
    if (ctx > base->max_positions()) {
      return absl::InvalidArgumentError(absl::StrCat("--ctx ", ctx, " is more positions than the base ",
                                                     base->name(), " allows (", base->max_positions(), ")"));
    }
  }

  EncodeOptions encode;
  encode.add_special_tokens = true;
  std::vector<int32_t> tokens = tokenizer->Encode(text, encode);
  const int64_t chunks = static_cast<int64_t>(tokens.size()) / ctx;
  if (chunks == 0) {
    return absl::InvalidArgumentError(absl::StrCat(a.text, ": the text has ", tokens.size(),
                                                   " tokens; --ctx ", ctx, " needs at least ", ctx,
                                                   " (one chunk)"));
  }
  const bool add_bos = tokenizer->add_bos();
  const int32_t bos = package.config.bos_id;
  const int64_t first = ctx / 2;
  std::cerr << absl::StrFormat(
      "perplexity: %d tokens, %d chunks of %d, scoring positions [%d, %d) of each (%d tokens)%s\n", tokens.size(),
      chunks, ctx, first, ctx - 1, chunks * (ctx - 1 - first), base ? absl::StrCat("; base: ", base->name()) : "");

  Totals totals;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> chunk(ctx);
  for (int64_t c = 0; c < chunks; ++c) {
    std::copy_n(tokens.begin() + c * ctx, ctx, chunk.begin());
    if (add_bos) chunk[0] = bos;
    candidate->Reset();
    if (base) base->Reset();
    // Feed [0, first] at once, then one token at a time: logits at positions first .. ctx-2.
    std::span<const int32_t> next(chunk.data(), first + 1);
    for (int64_t i = first; i < ctx - 1; ++i) {
      TAILOR_ASSIGN_OR_RETURN(std::vector<float> q, candidate->Feed(next));
      const RowStats qs = Stats(q);
      const int32_t target = chunk[i + 1];
      totals.nll.Add(qs.lse - q[target]);
      if (base) {
        TAILOR_ASSIGN_OR_RETURN(std::vector<float> p, base->Feed(next));
        const RowStats ps = Stats(p);
        totals.nll_base.Add(ps.lse - p[target]);
        totals.kld.Add(KlDivergence(p, ps, q, qs));
        totals.same_top.Add(ps.argmax == qs.argmax ? 1.0 : 0.0);
      }
      next = std::span<const int32_t>(chunk.data() + i + 1, 1);
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cerr << absl::StrFormat("[%d/%d] ppl %.4f", c + 1, chunks, totals.ppl());
    if (base) {
      std::cerr << absl::StrFormat(", base %.4f, kld %.6f, same top %.2f%%", totals.ppl_base(), totals.kld.mean(),
                                   100.0 * totals.same_top.mean());
    }
    std::cerr << absl::StrFormat(" (%.1f s)\n", seconds);
  }

  std::cout << absl::StrFormat("Final estimate: PPL = %.4f +/- %.5f\n", totals.ppl(),
                               totals.ppl() * totals.nll.stderr_of_mean());
  if (base) {
    std::cout << absl::StrFormat("Base estimate: PPL = %.4f +/- %.5f\n", totals.ppl_base(),
                                 totals.ppl_base() * totals.nll_base.stderr_of_mean());
    std::cout << absl::StrFormat("PPL ratio: %.6f\n", totals.ppl() / totals.ppl_base());
    std::cout << absl::StrFormat("Mean KLD: %.6f +/- %.6f\n", totals.kld.mean(), totals.kld.stderr_of_mean());
    std::cout << absl::StrFormat("Same top token: %.2f +/- %.2f %%\n", 100.0 * totals.same_top.mean(),
                                 100.0 * totals.same_top.stderr_of_mean());
  }
  std::cout.flush();
  if (a.json) TAILOR_RETURN_IF_ERROR(WriteJson(*a.json, totals, base != nullptr, chunks, ctx));
  return absl::OkStatus();
}

}  // namespace

int RunPerplexity(const std::vector<std::string>& args) {
  if (PrintHelpIfAsked(args,
                       "usage: tailor perplexity --package P --text FILE [--ctx N] [--base PACKAGE_OR_MODEL] "
                       "[--json FILE]\n",
                       PerplexityFlags())) {
    return 0;
  }
  auto parsed = ParseArgs(args);
  if (!parsed.ok()) return ReportError(parsed.status());
  absl::Status s = Perplexity(*parsed);
  return s.ok() ? 0 : ReportError(s);
}

}  // namespace tailor
