// Hugging Face chat templates: a Jinja interpreter that renders the `chat_template` of a model's
// tokenizer_config.json exactly as transformers does (jinja2's ImmutableSandboxedEnvironment with
// trim_blocks, lstrip_blocks and loopcontrols; transformers' tojson, raise_exception and
// strftime_now). Python semantics throughout: strings are code points, dicts keep insertion
// order, numbers print as Python prints them.
//
// Supported: {{ }}, {% %}, {# #}, whitespace control, raw; if/elif/else, for (tuple targets,
// inline `if`, else, loop.*, break/continue), set (ns.attr, block set), macro, call, filter,
// with, print, generation; jinja2's operators, tests, filters (but groupby, slice, pprint, random,
// urlize, urlencode, wordwrap, xmlattr, filesizeformat), globals (range, dict, namespace) and
// jinja2's compile-time scoping. Refused: extends/block/include/import, recursive loops, the
// globals lipsum/cycler/joiner, \N{name} escapes.
// Python ints are 64-bit here (beyond is an error; JSON numbers beyond become floats).
//
// Thread-safety: a JinjaTemplate is immutable after Parse; Render is const and may run on any
// number of threads at once. Copies share the parsed template. A render needs up to ~1 MiB of
// stack at the deepest nesting the limits allow.
#ifndef TAILOR_SERVICE_JINJA_TEMPLATE_H_
#define TAILOR_SERVICE_JINJA_TEMPLATE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace tailor::service {

namespace jinja {
struct TemplateAst;
}  // namespace jinja

// Bounds on one render, so that a hostile template can neither hang nor exhaust memory. Exceeding
// one is an InvalidArgument error naming it.
struct JinjaLimits {
  size_t max_output_bytes = size_t{16} << 20;  // the output, and any one string or list built
  size_t max_total_bytes = size_t{512} << 20;  // all strings/lists built, added up
  int64_t max_loop_iterations = 1'000'000;     // all for-loop iterations, added up
  int64_t max_macro_calls = 100'000;
  int max_call_depth = 64;  // nested macro calls
};

class JinjaTemplate {
 public:
  // Syntax errors: InvalidArgument "chat template line L, column C: <found> (expected <what>)".
  static absl::StatusOr<JinjaTemplate> Parse(absl::string_view source);

  // `context` must be an object (or null); its keys are the template's variables. Objects keep
  // their key order (use nlohmann::ordered_json: tojson prints keys in that order; a plain
  // nlohmann::json converts implicitly, with its keys sorted). Runtime errors (undefined
  // callables, wrong types, limits) are InvalidArgument "chat template line L: <problem>";
  // raise_exception("msg") gives exactly "msg".
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& context,
                                     const JinjaLimits& limits = {}) const;

 private:
  explicit JinjaTemplate(std::shared_ptr<const jinja::TemplateAst> ast) : ast_(std::move(ast)) {}

  std::shared_ptr<const jinja::TemplateAst> ast_;  // immutable; shared by copies
};

// Renders with the variables transformers' apply_chat_template passes: `messages` (an array of
// {role, content, ...}), `add_generation_prompt`, `bos_token` / `eos_token` (omitted when empty),
// `tools` and `documents` (None unless `extra` has them), and every key of `extra` (an object or
// null: tools, documents, enable_thinking, date_string, ...), which overrides the others.
absl::StatusOr<std::string> RenderChatTemplate(const JinjaTemplate& chat_template,
                                               const nlohmann::ordered_json& messages,
                                               bool add_generation_prompt,
                                               const std::string& bos_token,
                                               const std::string& eos_token,
                                               const nlohmann::ordered_json& extra = {});

}  // namespace tailor::service

#endif  // TAILOR_SERVICE_JINJA_TEMPLATE_H_
