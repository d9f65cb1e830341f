// Constrained-decoding mask speed (service/grammar/): µs per GrammarMatcher::ApplyMask and
// masks/s over the stories260K vocabulary (tok512, 512 tokens) and Llama 2's (32000), for a JSON
// schema, json_object and a regex. Cache hits (a position seen before in this request) and misses
// (a trie walk) are reported separately:
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
#include "service/grammar/token_vocabulary.h"
#include "tokenizer/tokenizer.h"

namespace {

using tailor::grammar::Grammar;
using tailor::grammar::GrammarMatcher;
using tailor::grammar::TokenVocabulary;
using Clock = std::chrono::steady_clock;

double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

struct Timing {
  int64_t hits = 0, misses = 0, budget = 0;
  double hit_us = 0, miss_us = 0, budget_us = 0;
};

// Samples `sequences` outputs under random logits, timing every ApplyMask.
Timing Decode(const std::shared_ptr<const Grammar>& g, const std::shared_ptr<const TokenVocabulary>& v,
              int sequences) {
  Timing t;
  std::vector<float> logits(v->size());
  for (int seq = 0; seq < sequences; ++seq) {
    GrammarMatcher m(g, v);
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
  double miss_us = 0, hit_us = 0;
  int allowed = 0;
  for (int r = 0; r < reps; ++r) {
    GrammarMatcher m(g, v);
    for (char c : prefix) {
      if (!m.Accept(byte_token[static_cast<uint8_t>(c)]).ok()) {
        std::fprintf(stderr, "bench: prefix rejected\n");
        return;
      }
    }
    auto start = Clock::now();
    m.ApplyMask(logits, 1000);
    miss_us += Micros(Clock::now() - start);
    start = Clock::now();
    for (int k = 0; k < 10; ++k) m.ApplyMask(logits, 1000);
    hit_us += Micros(Clock::now() - start) / 10;
    if (r == 0) {
      for (float l : logits) allowed += std::isfinite(l) ? 1 : 0;
    }
  }
  std::printf("%-8s %-34s %8d allowed   miss %9.1f us   hit %7.2f us\n", vocab_name, what, allowed,
              miss_us / reps, hit_us / reps);
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
                               {"llama2", shared + "/models/tokenizers/llama2-tokenizer.model", nullptr}};
  for (Vocab& vocab : vocabs) {
    auto tok = tailor::Tokenizer::Load(vocab.path, 0);
    if (!tok.ok()) {
      std::fprintf(stderr, "bench: %s\n", std::string(tok.status().message()).c_str());
      return 1;
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
  std::printf("\n%-8s %-12s %7s %7s %9s %7s %8s %7s %9s %10s\n", "vocab", "grammar", "masks", "misses",
              "miss us", "hits", "hit us", "budget", "budget us", "masks/s");
  for (const Vocab& vocab : vocabs) {
    for (const Case& c : cases) {
      const Timing t = Decode(c.g, vocab.v, vocab.v->size() > 10000 ? 4 : 20);
      const int64_t n = t.hits + t.misses + t.budget;
      std::printf("%-8s %-12s %7lld %7lld %9.1f %7lld %8.2f %7lld %9.1f %10.0f\n", vocab.name, c.name,
                  static_cast<long long>(n), static_cast<long long>(t.misses),
                  t.misses ? t.miss_us / t.misses : 0.0, static_cast<long long>(t.hits),
                  t.hits ? t.hit_us / t.hits : 0.0, static_cast<long long>(t.budget),
                  t.budget ? t.budget_us / t.budget : 0.0,
                  n / ((t.hit_us + t.miss_us + t.budget_us) * 1e-6));
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
