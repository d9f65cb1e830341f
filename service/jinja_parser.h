// Parser for Jinja templates: jinja2's grammar (its operator precedence, tuple and test-argument
// rules, statement forms) for the tags chat templates use: if/elif/else, for (with `if` filter,
// `else`, tuple targets), set (also ns.attr and block set), macro, call, filter, with, print,
// break/continue (loopcontrols), generation (transformers' AssistantTracker). block, extends,
// include, import, autoescape and recursive loops are refused.
//
// Unknown filters and tests are syntax errors, except inside an `if` or an inline `a if c else b`,
// where (as in jinja2) they fail only if evaluated. Pure function; thread-safe.
#ifndef TAILOR_SERVICE_JINJA_PARSER_H_
#define TAILOR_SERVICE_JINJA_PARSER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/jinja_ast.h"

namespace tailor::service::jinja {

// Nesting of statements and expressions a template may use (deeper is a syntax error).
inline constexpr int kMaxParseNesting = 128;
// Depth of one expression's tree (chains such as a|f|g|... or a+b+c+... included).
inline constexpr int kMaxExprDepth = 200;

// InvalidArgument "chat template line L, column C: <found> (expected <what>)" on errors.
absl::StatusOr<std::unique_ptr<TemplateAst>> ParseTemplate(absl::string_view source);

}  // namespace tailor::service::jinja

#endif  // TAILOR_SERVICE_JINJA_PARSER_H_
