// Structured outputs and forced tool calls in the serving session: a request's output
// constraint (response_format, guided_*, tool_choice "required" / a named function) compiled
// into a grammar (service/grammar/), and per choice a logits processor that keeps a
// GrammarMatcher in step with the generated tokens and masks every token that cannot continue a
// valid output.
//
// Bytes: the grammar sees each token as its exact bytes (Tokenizer::TokenText; special and
// control tokens "" and never allowed, but the EOS ids, which end generation once the output is
// complete). The text a client receives is what the StreamingDetokenizer emits, which equals
// those bytes except for SentencePiece's dummy-prefix space: after a context that decodes to
// nothing (BOS alone), a first token "▁yes" is emitted as "yes". For such choices the first step
// also bans every token whose bytes start with a space, so the grammar and the client always see
// the same text.
//
// Termination: the matcher is given the tokens left (max_tokens minus generated), so a sampled
// output completes within max_tokens (service/grammar/grammar_matcher.h). Once the output is
// complete and nothing may follow (a guided_choice finished, a closed JSON value), only EOS is
// allowed: the choice ends with finish_reason "stop".
#ifndef TAILOR_API_STRUCTURED_DECODING_H_
#define TAILOR_API_STRUCTURED_DECODING_H_

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <span>
#include <vector>

#include "scheduler/sampler.h"
#include "service/api_error.h"
#include "service/chat_template.h"
#include "service/grammar/grammar.h"
#include "service/grammar/token_mask_cache.h"
#include "service/grammar/token_vocabulary.h"
#include "service/openai_request.h"
#include "tokenizer/tokenizer.h"

namespace tailor {

// The grammar every choice of `request` must follow, or nullptr when it has no constraint.
// `format`: how the model writes tool calls (for tool_choice "required" or a function: one call,
// or with parallel_tool_calls one or more, each `prefix {"name": NAME, ARGS_KEY: {...}} suffix`
// with the arguments under the function's `parameters` schema). A schema the grammar library
// does not support is a 400 naming the field (response_format.json_schema.schema, guided_json,
// guided_regex, tools[i].function.parameters) with the library's message (it names the keyword).
service::ApiResult<std::shared_ptr<const grammar::Grammar>> CompileRequestGrammar(
    const service::OpenAiRequest& request, service::ToolCallFormat format);

// The session's view of the vocabulary for grammars. Immutable; shared by every request.
struct GrammarVocabulary {
  std::shared_ptr<const grammar::TokenVocabulary> tokens;
  std::vector<int32_t> eos_ids;
  std::vector<int32_t> space_first;  // tokens whose bytes start with ' ' (see above)
  int32_t space_probe = -1;          // a token " x..." used to detect the dropped first space
};
// `eos_ids`: the ids that end generation (the engine's).
std::shared_ptr<const GrammarVocabulary> BuildGrammarVocabulary(const Tokenizer& tokenizer,
                                                                std::vector<int32_t> eos_ids);

// Whether the detokenizer drops the first token's leading space after `context`.
bool DropsFirstSpace(const Tokenizer& tokenizer, const GrammarVocabulary& vocab, std::span<const int32_t> context);

// Compiled grammars of recent constraints, with their token-mask caches, so that a schema that
// recurs across requests (the common case: one application, one schema) is compiled once and its
// masks stay warm (service/grammar/token_mask_cache.h). Least recently used first out.
// Thread-safe.
class GrammarCache {
 public:
  struct Entry {
    std::shared_ptr<const grammar::Grammar> grammar;       // null: the request has no constraint
    std::shared_ptr<grammar::TokenMaskCache> masks;        // for `grammar` and the session's vocabulary
  };
  explicit GrammarCache(size_t capacity = 32) : capacity_(capacity) {}

  // CompileRequestGrammar's result for `request`, from the cache when the same constraint was
  // compiled before. `vocab` is used to create the mask cache of a new entry.
  service::ApiResult<Entry> Get(const service::OpenAiRequest& request, service::ToolCallFormat format,
                                const std::function<std::shared_ptr<const GrammarVocabulary>()>& vocab);
  size_t size() const;

 private:
  mutable std::mutex mu_;
  size_t capacity_;
  std::list<std::pair<std::string, Entry>> entries_;  // most recently used first; guarded by mu_
};

// A processor constraining one choice to `grammar` within `max_tokens` generated tokens.
// `drop_first_space`: DropsFirstSpace() for the choice's prompt. The processor owns its matcher
// (shared by copies of the std::function); it runs on the engine's step thread only.
// `masks`: the grammar's shared token-mask cache (GrammarCache), or null for one of its own.
LogitsProcessor MakeGrammarProcessor(std::shared_ptr<const grammar::Grammar> grammar,
                                     std::shared_ptr<const GrammarVocabulary> vocab, int32_t max_tokens,
                                     bool drop_first_space,
                                     std::shared_ptr<grammar::TokenMaskCache> masks = nullptr);

}  // namespace tailor

#endif  // TAILOR_API_STRUCTURED_DECODING_H_
