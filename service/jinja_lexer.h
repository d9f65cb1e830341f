// Lexer for Jinja templates as transformers configures jinja2: default delimiters, trim_blocks,
// lstrip_blocks, keep_trailing_newline false. Whitespace control (`{%-`, `-%}`, `+`), comments
// and `{% raw %}` are resolved here, so the parser sees only text, tags and expression tokens.
// Pure functions; thread-safe.
#ifndef TAILOR_SERVICE_JINJA_LEXER_H_
#define TAILOR_SERVICE_JINJA_LEXER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tailor::service::jinja {

enum class TokenKind {
  kData,           // template text (already stripped as whitespace control asks)
  kVariableBegin,  // {{
  kVariableEnd,    // }}
  kBlockBegin,     // {%
  kBlockEnd,       // %}
  kName,
  kString,  // text = the decoded value
  kInteger,
  kFloat,
  kOperator,  // text = the spelling: "+", "//", "==", "(", ...
  kEof,
};

struct Token {
  TokenKind kind = TokenKind::kEof;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0.0;
  int line = 1;    // 1-based
  int column = 1;  // 1-based, in code points
};

// The token stream ends with one kEof. Errors: InvalidArgument from SyntaxError().
absl::StatusOr<std::vector<Token>> Lex(absl::string_view source);

// "chat template line L, column C: <found> (expected <expected>)".
absl::Status SyntaxError(int line, int column, absl::string_view found, absl::string_view expected);

// How a token reads in an error: "'%}'", "name 'foo'", "string 'abc'", "end of template", ...
std::string DescribeToken(const Token& token);

}  // namespace tailor::service::jinja

#endif  // TAILOR_SERVICE_JINJA_LEXER_H_
