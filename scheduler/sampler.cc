#include "scheduler/sampler.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace tailor {

absl::string_view FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone: return "";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kAborted: return "aborted";
    case FinishReason::kError: return "error";
  }
  return "";
}

absl::Status ValidateSamplingOptions(const SamplingOptions& o, int32_t vocab_size) {
  auto bad = [](absl::string_view field, const std::string& value, absl::string_view expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling parameter ", field, " = ", value, ": expected ", expected));
  };
  if (!std::isfinite(o.temperature) || o.temperature < 0.0f) {
    return bad("temperature", absl::StrCat(o.temperature), "a finite number >= 0");
  }
  if (!(o.top_p > 0.0f && o.top_p <= 1.0f)) return bad("top_p", absl::StrCat(o.top_p), "a number in (0, 1]");
  if (o.top_k < 0) return bad("top_k", absl::StrCat(o.top_k), "an integer >= 0 (0: all tokens)");
  if (!(o.min_p >= 0.0f && o.min_p <= 1.0f)) return bad("min_p", absl::StrCat(o.min_p), "a number in [0, 1]");
  if (!std::isfinite(o.repetition_penalty) || o.repetition_penalty <= 0.0f) {
    return bad("repetition_penalty", absl::StrCat(o.repetition_penalty), "a finite number > 0 (1: off)");
  }
  if (!std::isfinite(o.presence_penalty)) return bad("presence_penalty", absl::StrCat(o.presence_penalty), "a finite number");
  if (!std::isfinite(o.frequency_penalty)) {
    return bad("frequency_penalty", absl::StrCat(o.frequency_penalty), "a finite number");
  }
  if (o.max_tokens < 0) return bad("max_tokens", absl::StrCat(o.max_tokens), "an integer >= 0");
  if (o.min_tokens < 0 || o.min_tokens > o.max_tokens) {
    return bad("min_tokens", absl::StrCat(o.min_tokens), absl::StrCat("an integer in [0, ", o.max_tokens, "] (at most the token limit)"));
  }
  if (o.logprobs < -1 || o.logprobs > vocab_size) {
    return bad("logprobs", absl::StrCat(o.logprobs), absl::StrCat("-1 (off) or 0..", vocab_size));
  }
  if (o.prompt_logprobs < -1 || o.prompt_logprobs > vocab_size) {
    return bad("prompt_logprobs", absl::StrCat(o.prompt_logprobs), absl::StrCat("-1 (off) or 0..", vocab_size));
  }
  for (const auto& [token, bias] : o.logit_bias) {
    if (token < 0 || token >= vocab_size) {
      return bad("logit_bias", absl::StrCat("{", token, ": ", bias, "}"),
                 absl::StrCat("token ids in [0, ", vocab_size, ")"));
    }
    if (std::isnan(bias)) return bad("logit_bias", absl::StrCat("{", token, ": nan}"), "a number");
  }
  for (int32_t token : o.stop_token_ids) {
    if (token < 0 || token >= vocab_size) {
      return bad("stop_token_ids", absl::StrCat(token), absl::StrCat("token ids in [0, ", vocab_size, ")"));
    }
  }
  for (const auto& p : o.logits_processors) {
    if (!p) return absl::InvalidArgumentError("sampling parameter logits_processors: an empty function");
  }
  return absl::OkStatus();
}

RequestSampler::RequestSampler(SamplingOptions options, uint64_t seed, std::vector<int32_t> eos_token_ids)
    : options_(std::move(options)),
      rng_(options_.seed.value_or(seed)),
      eos_token_ids_(std::move(eos_token_ids)) {
  params_.temperature = options_.temperature;
  params_.top_p = options_.top_p;
  params_.top_k = options_.top_k;
  params_.min_p = options_.min_p;
  if (!options_.logit_bias.empty()) {
    // Logit bias goes through the same hook as any other processor.
    processors_.push_back([bias = options_.logit_bias](std::span<const int32_t>, std::span<const int32_t>,
                                                       std::span<float> logits) {
      for (const auto& [token, b] : bias) {
        if (token >= 0 && static_cast<size_t>(token) < logits.size()) logits[token] += b;
      }
    });
  }
  for (const auto& p : options_.logits_processors) processors_.push_back(p);
}

void RequestSampler::ApplyPenalties(std::span<float> logits, std::span<const int32_t> prompt,
                                    std::span<const int32_t> generated) {
  const auto in_vocab = [&](int32_t t) { return t >= 0 && static_cast<size_t>(t) < logits.size(); };
  if (options_.repetition_penalty != 1.0f) {
    absl::flat_hash_set<int32_t> seen;
    for (int32_t t : prompt) seen.insert(t);
    for (int32_t t : generated) seen.insert(t);
    for (int32_t t : seen) {
      if (!in_vocab(t)) continue;
      float& l = logits[t];
      l = l > 0.0f ? l / options_.repetition_penalty : l * options_.repetition_penalty;
    }
  }
  if (options_.presence_penalty != 0.0f || options_.frequency_penalty != 0.0f) {
    counts_.clear();
    for (int32_t t : generated) ++counts_[t];
    for (const auto& [t, n] : counts_) {
      if (!in_vocab(t)) continue;
      logits[t] -= options_.presence_penalty + options_.frequency_penalty * static_cast<float>(n);
    }
  }
}

LogprobsResult ComputeLogprobs(std::span<const float> logits, int32_t token, int32_t k,
                               std::vector<std::pair<float, int32_t>>& scratch) {
  LogprobsResult out;
  if (logits.empty()) return out;
  double max_logit = -INFINITY;
  for (float l : logits) {
    if (!std::isnan(l)) max_logit = std::max<double>(max_logit, l);
  }
  double sum = 0.0;
  if (std::isfinite(max_logit)) {
    for (float l : logits) {
      if (!std::isnan(l)) sum += std::exp(static_cast<double>(l) - max_logit);
    }
  }
  const double lse = std::isfinite(max_logit) ? max_logit + std::log(sum) : 0.0;
  auto logprob = [&](int32_t t) {
    const float l = logits[t];
    return std::isnan(l) ? -INFINITY : static_cast<float>(static_cast<double>(l) - lse);
  };
  if (token >= 0 && static_cast<size_t>(token) < logits.size()) out.logprob = logprob(token);
  const size_t n = std::min<size_t>(std::max(k, 0), logits.size());
  if (n > 0) {
    scratch.clear();
    for (size_t i = 0; i < logits.size(); ++i) scratch.emplace_back(logprob(static_cast<int32_t>(i)), static_cast<int32_t>(i));
    std::partial_sort(scratch.begin(), scratch.begin() + n, scratch.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    for (size_t i = 0; i < n; ++i) out.top.push_back(TokenLogprob{scratch[i].second, scratch[i].first});
  }
  return out;
}

SampledToken RequestSampler::Sample(std::span<float> logits, std::span<const int32_t> prompt,
                                    std::span<const int32_t> generated) {
  ApplyPenalties(logits, prompt, generated);
  for (const auto& p : processors_) p(prompt, generated, logits);
  if (static_cast<int64_t>(generated.size()) < options_.min_tokens) {
    // Too early to stop: neither an EOS id (unless ignored anyway) nor a stop token id may come.
    const auto mask = [&](int32_t t) {
      if (t >= 0 && static_cast<size_t>(t) < logits.size()) logits[t] = -INFINITY;
    };
    if (!options_.ignore_eos) {
      for (int32_t t : eos_token_ids_) mask(t);
    }
    for (int32_t t : options_.stop_token_ids) mask(t);
  }
  SampledToken out;
  out.token = SampleToken(logits, params_, rng_, scratch_);
  if (options_.logprobs >= 0 && !logits.empty()) {
    LogprobsResult r = ComputeLogprobs(logits, out.token, options_.logprobs, scratch_);
    out.logprob = r.logprob;
    out.top_logprobs = std::move(r.top);
  }
  return out;
}

FinishReason RequestSampler::CheckFinish(int32_t token, int32_t num_generated) const {
  if (num_generated < options_.min_tokens) {
    return num_generated >= options_.max_tokens ? FinishReason::kLength : FinishReason::kNone;
  }
  if (!options_.ignore_eos &&
      std::find(eos_token_ids_.begin(), eos_token_ids_.end(), token) != eos_token_ids_.end()) {
    return FinishReason::kStop;
  }
  if (std::find(options_.stop_token_ids.begin(), options_.stop_token_ids.end(), token) !=
      options_.stop_token_ids.end()) {
    return FinishReason::kStop;
  }
  if (num_generated >= options_.max_tokens) return FinishReason::kLength;
  return FinishReason::kNone;
}

}  // namespace tailor
