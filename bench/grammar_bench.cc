// Constrained-decoding mask speed (service/grammar/): µs per GrammarMatcher::ApplyMask and
// masks/s over the stories260K vocabulary (tok512, 512 tokens), Llama 2's (32000) and, when
// its tokenizer.json is present, Llama 3's (128k), for a JSON schema, json_object and a regex.
// Cache hits (a position seen before in this request) and misses are reported separately, for
// three ways of computing a miss:
//   "full": a whole trie walk in step with the recognizer (no TokenMaskCache; the old way),
//   "cold": a fresh TokenMaskCache per request (every request a new schema: each state's
//           stack-independent sets are computed on its first visit),
//   "warm": one TokenMaskCache for all requests of the grammar (a recurring schema).
//   - "decode": sampling under random logits until EOS (max_tokens 256), every mask timed;
//     "budget" masks are those near the end of max_tokens that needed per-token completion
//     lengths (an extra walk, once per position);
//   - "in-string" / "between values": one fixed position, timed as a miss (fresh matcher) and as
//     a hit (the same matcher again).
// Usage: grammar_bench [shared_dir] (default: the build's ../shared).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "service/grammar/grammar.h"
#include "service/grammar/grammar_matcher.h"
#include "service/grammar/token_mask_cache.h"
#include "service/grammar/token_vocabulary.h"
#include "tokenizer/tokenizer.h"

namespace {

using tailor::grammar::Grammar;
using tailor::grammar::GrammarMatcher;
using tailor::grammar::TokenMaskCache;
using tailor::grammar::TokenVocabulary;
using Clock = std::chrono::steady_clock;

double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

enum class Mode { kFull, kCold, kWarm };
const char* ModeName(Mode m) { return m == Mode::kFull ? "full" : m == Mode::kCold ? "cold" : "warm"; }

// The TokenMaskCache a new request gets under `mode` (`warm` is the long-lived one).
std::shared_ptr<TokenMaskCache> CacheFor(Mode mode, const std::shared_ptr<const Grammar>& g,
                                         const std::shared_ptr<const TokenVocabulary>& v,
                                         const std::shared_ptr<TokenMaskCache>& warm) {
  if (mode == Mode::kFull) return nullptr;
  if (mode == Mode::kCold) return std::make_shared<TokenMaskCache>(g, v);
  return warm;
}

struct Timing {
  int64_t hits = 0, misses = 0, budget = 0;
  double hit_us = 0, miss_us = 0, budget_us = 0;
};

// Samples `sequences` outputs under random logits, timing every ApplyMask.
Timing Decode(const std::shared_ptr<const Grammar>& g, const std::shared_ptr<const TokenVocabulary>& v,
              int sequences, Mode mode) {
  Timing t;
  std::vector<float> logits(v->size());
  const auto warm = std::make_shared<TokenMaskCache>(g, v);
  for (int seq = 0; seq < sequences; ++seq) {
    GrammarMatcher m(g, v, CacheFor(mode, g, v, warm));
    std::mt19937 rng(seq);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    const int32_t budget = 256;
    for (int32_t step = 0; step < budget; ++step) {
      for (float& l : logits) l = normal(rng);
      const int64_t misses_before = m.stats().cache_misses;
      const int64_t budget_before = m.stats().budget_walks;
      const auto start = Clock::now();
      m.ApplyMask(logits, budget - step);
      const double us = Micros(Clock::now() - start);
      if (m.stats().budget_walks > budget_before) {
        ++t.budget, t.budget_us += us;
      } else if (m.stats().cache_misses > misses_before) {
        ++t.misses, t.miss_us += us;
      } else {
        ++t.hits, t.hit_us += us;
      }
      int32_t best = 0;
      for (int32_t i = 1; i < v->size(); ++i) {
        if (logits[i] > logits[best]) best = i;
      }
      if (!m.Accept(best).ok() || v->is_eos(best)) break;
    }
  }
  return t;
}

// One position reached by feeding `prefix` byte by byte: a miss (fresh matcher) and hits.
void Position(const char* vocab_name, const char* what, const std::shared_ptr<const Grammar>& g,
              const std::shared_ptr<const TokenVocabulary>& v, const std::string& prefix) {
  std::vector<int32_t> byte_token(256, -1);
  for (int32_t id = 0; id < v->size(); ++id) {
    if (v->bytes(id).size() == 1 && byte_token[static_cast<uint8_t>(v->bytes(id)[0])] < 0) {
      byte_token[static_cast<uint8_t>(v->bytes(id)[0])] = id;
    }
  }
  std::vector<float> logits(v->size(), 0.0f);
  const int reps = v->size() > 10000 ? 20 : 200;
  const auto warm = std::make_shared<TokenMaskCache>(g, v);
  double miss_us[3] = {}, hit_us = 0;
  int64_t walked = 0;  // stack-dependent tokens walked per warm miss
  int allowed[3] = {};
  for (Mode mode : {Mode::kFull, Mode::kCold, Mode::kWarm}) {
    const int i = static_cast<int>(mode);
    for (int r = 0; r < reps; ++r) {
      GrammarMatcher m(g, v, CacheFor(mode, g, v, warm));
      for (char c : prefix) {
        if (!m.Accept(byte_token[static_cast<uint8_t>(c)]).ok()) {
          std::fprintf(stderr, "bench: prefix rejected\n");
          return;
        }
      }
      // Only the position itself is timed: the warm cache already knows the states before it
      // (as a recurring schema would), the cold one does not (as a new schema).
      if (mode == Mode::kWarm && r == 0) {  // the first visit ever, untimed
        m.ApplyMask(logits, 1000);
        continue;
      }
      const int64_t walked_before = m.stats().dependent_walked;
      auto start = Clock::now();
      m.ApplyMask(logits, 1000);
      miss_us[i] += Micros(Clock::now() - start);
      if (mode == Mode::kWarm) walked = m.stats().dependent_walked - walked_before;
      if (mode == Mode::kWarm) {
        start = Clock::now();
        for (int k = 0; k < 10; ++k) m.ApplyMask(logits, 1000);
        hit_us += Micros(Clock::now() - start) / 10;
      }
      if (allowed[i] == 0) {
        for (float l : logits) allowed[i] += std::isfinite(l) ? 1 : 0;
      }
    }
  }
  if (allowed[0] != allowed[1] || allowed[0] != allowed[2]) {
    std::fprintf(stderr, "bench: masks differ (%d %d %d allowed)\n", allowed[0], allowed[1], allowed[2]);
  }
  std::printf("%-8s %-34s %7d allowed  miss: full %8.1f  cold %8.1f  warm %7.1f us (%6lld walked)"
              "   hit %6.2f us\n", vocab_name, what, allowed[0], miss_us[0] / reps, miss_us[1] / reps,
              miss_us[2] / (reps - 1), static_cast<long long>(walked), hit_us / (reps - 1));
}

}  // namespace

int main(int argc, char** argv) {
  const std::string shared = argc > 1 ? argv[1] : TAILOR_SHARED_DIR;
  struct Vocab {
    const char* name;
    std::string path;
    std::shared_ptr<const TokenVocabulary> v;
  };
  std::vector<Vocab> vocabs = {{"tok512", shared + "/models/stories260K/tok512.model", nullptr},
                               {"llama2", shared + "/models/tokenizers/llama2-tokenizer.model", nullptr},
                               {"llama3", shared + "/models/tokenizers/llama3/tokenizer.json", nullptr}};
  for (size_t i = 0; i < vocabs.size(); ++i) {
    Vocab& vocab = vocabs[i];
    auto tok = tailor::Tokenizer::Load(vocab.path, 0);
    if (!tok.ok()) {
      std::fprintf(stderr, "bench: %s\n", std::string(tok.status().message()).c_str());
      if (i < 2) return 1;
      vocabs.resize(i);  // Llama 3 is optional
      break;
    }
    const auto start = Clock::now();
    vocab.v = TokenVocabulary::FromTokenizer(**tok);
    std::printf("%s: %d tokens, %zu trie nodes, built in %.1f ms, all bytes covered: %s\n", vocab.name,
                vocab.v->size(), vocab.v->trie().size(), Micros(Clock::now() - start) / 1000,
                vocab.v->covers_all_bytes() ? "yes" : "no");
  }
  const char* schema_text = R"({"type":"object","properties":{"name":{"type":"string"},
      "age":{"type":"integer"},"address":{"type":"object","properties":{"street":{"type":"string"},
      "city":{"type":"string"}},"required":["street","city"]},"tags":{"type":"array",
      "items":{"type":"string"}},"kind":{"enum":["person","company"]}},
      "required":["name","age","address","tags","kind"],"additionalProperties":false})";
  struct Case {
    const char* name;
    std::shared_ptr<const Grammar> g;
    std::string in_string, between;
  };
  std::vector<Case> cases = {
      {"json_schema", *tailor::grammar::GrammarFromJsonSchemaText(schema_text), "{\"name\": \"Jo",
       "{\"name\": \"Jo\", \"age\": 3, "},
      {"json_object", tailor::grammar::GrammarForAnyJsonObject(), "{\"a\": [\"x", "{\"a\": [1, "},
      {"regex", *tailor::grammar::GrammarFromRegex(R"([a-z]+(\.[a-z]+)*@[a-z0-9_]+\.(com|org|net))"),
       "abc", "abc.de@x"},
  };
  std::printf("\n%-8s %-12s %-4s %7s %7s %9s %7s %8s %7s %9s %10s\n", "vocab", "grammar", "mode", "masks",
              "misses", "miss us", "hits", "hit us", "budget", "budget us", "masks/s");
  for (const Vocab& vocab : vocabs) {
    for (const Case& c : cases) {
     for (Mode mode : {Mode::kFull, Mode::kCold, Mode::kWarm}) {
      const Timing t = Decode(c.g, vocab.v, vocab.v->size() > 10000 ? 4 : 20, mode);
      const int64_t n = t.hits + t.misses + t.budget;
      std::printf("%-8s %-12s %-4s %7lld %7lld %9.1f %7lld %8.2f %7lld %9.1f %10.0f\n", vocab.name, c.name,
                  ModeName(mode),
                  static_cast<long long>(n), static_cast<long long>(t.misses),
                  t.misses ? t.miss_us / t.misses : 0.0, static_cast<long long>(t.hits),
                  t.hits ? t.hit_us / t.hits : 0.0, static_cast<long long>(t.budget),
                  t.budget ? t.budget_us / t.budget : 0.0,
                  n / ((t.hit_us + t.miss_us + t.budget_us) * 1e-6));
     }
    }
  }
  std::printf("\nFixed positions (miss: fresh matcher; hit: the same position again):\n");
  for (const Vocab& vocab : vocabs) {
    for (const Case& c : cases) {
      Position(vocab.name, (std::string(c.name) + " in-string").c_str(), c.g, vocab.v, c.in_string);
      Position(vocab.name, (std::string(c.name) + " between values").c_str(), c.g, vocab.v, c.between);
    }
  }
  return 0;
}
