#include "service/jinja_lexer.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "service/jinja_text.h"

namespace tailor::service::jinja {
namespace {

bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }
bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || IsAsciiDigit(c); }
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// jinja2 splits the source on \r\n, \r and \n, joins the lines with \n, and (keep_trailing_newline
// being false) drops one final newline.
std::string NormalizeNewlines(absl::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Lexer {
 public:
  explicit Lexer(absl::string_view source) : src_(NormalizeNewlines(source)) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  absl::StatusOr<std::vector<Token>> Run() {
    size_t pos = 0;
    while (pos < src_.size()) {
      const size_t tag = FindTagStart(pos);
      if (tag == std::string::npos) {
        AddData(src_.substr(pos), pos);
        break;
      }
      const char type = src_[tag + 1];
      size_t after = tag + 2;
      char sign = 0;
      if (after < src_.size() && (src_[after] == '-' || src_[after] == '+')) sign = src_[after++];
      const size_t raw_body = type == '%' ? MatchRawBegin(after) : std::string::npos;
      std::string text = StripBeforeTag(src_.substr(pos, tag - pos), sign, type != '{');
      AddData(std::move(text), pos);
      if (type == '#') {
        TAILOR_ASSIGN_OR_RETURN(pos, LexComment(tag, after));
      } else if (raw_body != std::string::npos) {
        line_starting_ = src_[raw_body - 1] == '\n';
        TAILOR_ASSIGN_OR_RETURN(pos, LexRaw(tag, raw_body));
      } else {
        TAILOR_ASSIGN_OR_RETURN(pos, LexTag(type, tag, after));
      }
    }
    Token eof = Make(TokenKind::kEof, "", src_.size());
    tokens_.push_back(std::move(eof));
    return std::move(tokens_);
  }

 private:
  // Tokens are made left to right, so positions are counted on from the previous one (no
  // quadratic rescans of long lines); an earlier offset (an error at a tag start) starts over
  // from its line.
  void Position(size_t offset, int* line, int* column) const {
    if (offset < cursor_offset_) {
      const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
      const size_t index = static_cast<size_t>(it - line_starts_.begin()) - 1;
      cursor_offset_ = line_starts_[index];
      cursor_line_ = static_cast<int>(index) + 1;
      cursor_column_ = 1;
    }
    while (cursor_offset_ < offset) {
      if (src_[cursor_offset_] == '\n') {
        ++cursor_line_;
        cursor_column_ = 1;
        ++cursor_offset_;
      } else {
        NextCodePoint(src_, &cursor_offset_);
        ++cursor_column_;
      }
    }
    *line = cursor_line_;
    *column = cursor_column_;
  }

  Token Make(TokenKind kind, std::string text, size_t offset) const {
    Token token;
    token.kind = kind;
    token.text = std::move(text);
    Position(offset, &token.line, &token.column);
    return token;
  }

  absl::Status ErrorAt(size_t offset, absl::string_view found, absl::string_view expected) const {
    int line = 0;
    int column = 0;
    Position(offset, &line, &column);
    return SyntaxError(line, column, found, expected);
  }

  void AddData(std::string text, size_t offset) {
    if (!text.empty()) tokens_.push_back(Make(TokenKind::kData, std::move(text), offset));
  }

  size_t FindTagStart(size_t pos) const {
    while (true) {
      pos = src_.find('{', pos);
      if (pos == std::string::npos || pos + 1 >= src_.size()) return std::string::npos;
      const char next = src_[pos + 1];
      if (next == '{' || next == '%' || next == '#') return pos;
      ++pos;
    }
  }

  // Python's `\s*` from pos.
  size_t SkipSpace(size_t pos) const {
    while (pos < src_.size()) {
      size_t next = pos;
      if (!IsPySpace(NextCodePoint(src_, &next))) break;
      pos = next;
    }
    return pos;
  }

  bool At(size_t pos, absl::string_view s) const {
    return pos <= src_.size() && src_.size() - pos >= s.size() &&
           src_.compare(pos, s.size(), s.data(), s.size()) == 0;
  }

  // After "{%" and its sign: `\s*raw\s*(-%}\s*|%})`. Returns where the raw body starts.
  size_t MatchRawBegin(size_t pos) const {
    pos = SkipSpace(pos);
    if (!At(pos, "raw")) return std::string::npos;
    pos = SkipSpace(pos + 3);
    if (At(pos, "-%}")) return SkipSpace(pos + 3);
    if (At(pos, "%}")) return pos + 2;
    return std::string::npos;
  }

  // The text before a tag: `-` strips all trailing whitespace; otherwise (no `+`, a block or
  // comment tag) lstrip_blocks removes spaces and tabs between the line start and the tag.
  std::string StripBeforeTag(std::string text, char sign, bool lstrip) const {
    if (sign == '-') return PyStrip(text, nullptr, /*left=*/false, /*right=*/true);
    if (sign == '+' || !lstrip) return text;
    const size_t last_newline = text.rfind('\n');
    const size_t line_start = last_newline == std::string::npos ? 0 : last_newline + 1;
    if (line_start == 0 && !line_starting_) return text;
    const absl::string_view tail = absl::string_view(text).substr(line_start);
    if (tail.empty()) return text;
    size_t pos = 0;
    while (pos < tail.size()) {
      if (!IsPySpace(NextCodePoint(tail, &pos))) return text;
    }
    text.resize(line_start);
    return text;
  }

  // Consumes a tag end's trailing whitespace: `-` all of it, none for `+`, else one newline
  // (trim_blocks; `trim` is false for `}}`).
  size_t AfterTagEnd(size_t end, char sign, bool trim) {
    if (sign == '-') {
      end = SkipSpace(end);
    } else if (sign != '+' && trim && end < src_.size() && src_[end] == '\n') {
      ++end;
    }
    line_starting_ = end > 0 && src_[end - 1] == '\n';
    return end;
  }

  absl::StatusOr<size_t> LexComment(size_t tag, size_t body) {
    const size_t close = src_.find("#}", body);
    if (close == std::string::npos) return ErrorAt(tag, "unclosed comment", "'#}'");
    const char sign = close > body ? src_[close - 1] : 0;
    return AfterTagEnd(close + 2, sign == '-' || sign == '+' ? sign : 0, /*trim=*/true);
  }

  absl::StatusOr<size_t> LexRaw(size_t tag, size_t body) {
    size_t search = body;
    while (true) {
      const size_t open = src_.find("{%", search);
      if (open == std::string::npos) return ErrorAt(tag, "unclosed raw block", "'endraw'");
      size_t p = open + 2;
      char sign = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
      p = SkipSpace(p);
      if (At(p, "endraw")) {
        p = SkipSpace(p + 6);
        char end_sign = 0;
        if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) end_sign = src_[p++];
        if (At(p, "%}")) {
          AddData(StripBeforeTag(src_.substr(body, open - body), sign, true), body);
          return AfterTagEnd(p + 2, end_sign, /*trim=*/true);
        }
      }
      search = open + 2;
    }
  }

  absl::StatusOr<size_t> LexTag(char type, size_t tag, size_t pos) {
    const bool block = type == '%';
    tokens_.push_back(Make(block ? TokenKind::kBlockBegin : TokenKind::kVariableBegin, "", tag));
    const absl::string_view close = block ? "%}" : "}}";
    std::vector<char> balance;
    while (true) {
      if (balance.empty()) {
        char sign = 0;
        size_t end = std::string::npos;
        if ((block && At(pos, "+%}")) || At(pos, absl::StrCat("-", close))) {
          sign = src_[pos];
          end = pos + 3;
        } else if (At(pos, close)) {
          end = pos + 2;
        }
        if (end != std::string::npos) {
          tokens_.push_back(Make(block ? TokenKind::kBlockEnd : TokenKind::kVariableEnd, "", pos));
          return AfterTagEnd(end, sign, /*trim=*/block);
        }
      }
      if (pos >= src_.size()) {
        return ErrorAt(tag, absl::StrCat("unclosed '", block ? "{%" : "{{", "'"),
                       absl::StrCat("'", close, "'"));
      }
      size_t next = pos;
      const char32_t cp = NextCodePoint(src_, &next);
      const char c = src_[pos];
      if (IsPySpace(cp)) {
        pos = next;
      } else if (IsAsciiDigit(c)) {
        TAILOR_ASSIGN_OR_RETURN(pos, LexNumber(pos));
      } else if (IsNameStart(c)) {
        size_t end = pos;
        while (end < src_.size() && IsNameChar(src_[end])) ++end;
        tokens_.push_back(Make(TokenKind::kName, src_.substr(pos, end - pos), pos));
        pos = end;
      } else if (c == '\'' || c == '"') {
        TAILOR_ASSIGN_OR_RETURN(pos, LexString(pos));
      } else {
        TAILOR_ASSIGN_OR_RETURN(pos, LexOperator(pos, &balance));
      }
    }
  }

  // `(\d+_)*\d+`: the end, or npos without a digit at pos.
  size_t ScanDigits(size_t pos) const {
    if (pos >= src_.size() || !IsAsciiDigit(src_[pos])) return std::string::npos;
    while (true) {
      while (pos < src_.size() && IsAsciiDigit(src_[pos])) ++pos;
      if (pos + 1 < src_.size() && src_[pos] == '_' && IsAsciiDigit(src_[pos + 1])) {
        ++pos;
        continue;
      }
      return pos;
    }
  }

  size_t ScanExponent(size_t pos) const {
    if (pos >= src_.size() || (src_[pos] != 'e' && src_[pos] != 'E')) return std::string::npos;
    ++pos;
    if (pos < src_.size() && (src_[pos] == '+' || src_[pos] == '-')) ++pos;
    return ScanDigits(pos);
  }

  absl::StatusOr<size_t> LexNumber(size_t pos) {
    const auto without_underscores = [&](size_t begin, size_t end) {
      std::string s;
      for (size_t i = begin; i < end; ++i) {
        if (src_[i] != '_') s.push_back(src_[i]);
      }
      return s;
    };
    // Floats first, as jinja2 does: digits with an exponent and/or a fraction (not after a dot).
    if (pos == 0 || src_[pos - 1] != '.') {
      const size_t int_end = ScanDigits(pos);
      size_t frac_end = std::string::npos;
      if (int_end < src_.size() && src_[int_end] == '.') frac_end = ScanDigits(int_end + 1);
      size_t end = std::string::npos;
      if (frac_end != std::string::npos) end = ScanExponent(frac_end);
      if (end == std::string::npos) end = ScanExponent(int_end);
      if (end == std::string::npos) end = frac_end;
      if (end != std::string::npos) {
        Token token = Make(TokenKind::kFloat, src_.substr(pos, end - pos), pos);
        token.float_value = std::strtod(without_underscores(pos, end).c_str(), nullptr);
        tokens_.push_back(std::move(token));
        return end;
      }
    }
    int base = 10;
    size_t digits = pos;
    size_t end = pos + 1;
    const char prefix = pos + 1 < src_.size() ? static_cast<char>(src_[pos + 1] | 0x20) : 0;
    if (src_[pos] == '0' && (prefix == 'b' || prefix == 'o' || prefix == 'x')) {
      base = prefix == 'b' ? 2 : prefix == 'o' ? 8 : 16;
      digits = pos + 2;
      end = digits;
      while (true) {  // (_?[digit])+
        size_t p = end;
        if (p < src_.size() && src_[p] == '_') ++p;
        const int d = p < src_.size() ? HexValue(src_[p]) : -1;
        if (d < 0 || d >= base) break;
        end = p + 1;
      }
      if (end == digits) {  // "0x" without digits: just the integer 0
        base = 10;
        digits = pos;
        end = pos + 1;
      }
    } else if (src_[pos] == '0') {  // 0(_?0)*
      while (end < src_.size()) {
        size_t p = end;
        if (src_[p] == '_') ++p;
        if (p >= src_.size() || src_[p] != '0') break;
        end = p + 1;
      }
    } else {  // [1-9](_?\d)*
      while (end < src_.size()) {
        size_t p = end;
        if (src_[p] == '_') ++p;
        if (p >= src_.size() || !IsAsciiDigit(src_[p])) break;
        end = p + 1;
      }
    }
    const std::string text = without_underscores(digits, end);
    errno = 0;
    char* parse_end = nullptr;
    const unsigned long long value = std::strtoull(text.c_str(), &parse_end, base);
    if (errno == ERANGE || value > static_cast<unsigned long long>(INT64_MAX)) {
      return ErrorAt(pos, absl::StrCat("integer literal ", src_.substr(pos, end - pos)),
                     "an integer below 2**63");
    }
    Token token = Make(TokenKind::kInteger, src_.substr(pos, end - pos), pos);
    token.int_value = static_cast<int64_t>(value);
    tokens_.push_back(std::move(token));
    return end;
  }

  // A quoted string; escapes as Python's "unicode-escape" codec decodes them.
  absl::StatusOr<size_t> LexString(size_t pos) {
    const char quote = src_[pos];
    size_t p = pos + 1;
    std::string value;
    while (true) {
      if (p >= src_.size()) {
        return ErrorAt(pos, "unterminated string",
                       absl::StrCat("a closing ", std::string(1, quote)));
      }
      const char c = src_[p];
      if (c == quote) break;
      if (c != '\\') {
        value.push_back(c);
        ++p;
        continue;
      }
      if (p + 1 >= src_.size()) {
        ++p;
        continue;
      }
      const char e = src_[p + 1];
      p += 2;
      switch (e) {
        case '\n':
          break;
        case '\\':
          value.push_back('\\');
          break;
        case '\'':
          value.push_back('\'');
          break;
        case '"':
          value.push_back('"');
          break;
        case 'a':
          value.push_back('\a');
          break;
        case 'b':
          value.push_back('\b');
          break;
        case 'f':
          value.push_back('\f');
          break;
        case 'n':
          value.push_back('\n');
          break;
        case 'r':
          value.push_back('\r');
          break;
        case 't':
          value.push_back('\t');
          break;
        case 'v':
          value.push_back('\v');
          break;
        case 'x':
        case 'u':
        case 'U': {
          const int count = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          char32_t cp = 0;
          for (int k = 0; k < count; ++k) {
            const int d = p + k < src_.size() ? HexValue(src_[p + k]) : -1;
            if (d < 0) {
              return ErrorAt(p - 2, absl::StrCat("truncated \\", std::string(1, e), " escape"),
                             absl::StrCat(count, " hex digits"));
            }
            cp = cp * 16 + static_cast<char32_t>(d);
          }
          if (cp > 0x10FFFF) return ErrorAt(p - 2, "escape beyond U+10FFFF", "a code point");
          p += count;
          AppendUtf8(cp, &value);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            char32_t cp = static_cast<char32_t>(e - '0');
            for (int k = 0; k < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++k) {
              cp = cp * 8 + static_cast<char32_t>(src_[p++] - '0');
            }
            AppendUtf8(cp, &value);
          } else {  // unknown escapes stay as written
            value.push_back('\\');
            p -= 1;
          }
      }
    }
    Token token = Make(TokenKind::kString, std::move(value), pos);
    tokens_.push_back(std::move(token));
    return p + 1;
  }

  absl::StatusOr<size_t> LexOperator(size_t pos, std::vector<char>* balance) {
    static constexpr absl::string_view kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    static constexpr absl::string_view kOne = "+-/*%~[](){}><=.:|,;";
    std::string op;
    for (absl::string_view two : kTwo) {
      if (At(pos, two)) op = std::string(two);
    }
    if (op.empty() && kOne.find(src_[pos]) != absl::string_view::npos) op = src_.substr(pos, 1);
    if (op.empty()) {
      size_t next = pos;
      NextCodePoint(src_, &next);
      return ErrorAt(pos, absl::StrCat("unexpected character '", src_.substr(pos, next - pos), "'"),
                     "an expression or the end of the tag");
    }
    const char c = op[0];
    if (op.size() == 1 && (c == '(' || c == '[' || c == '{')) {
      balance->push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (op.size() == 1 && (c == ')' || c == ']' || c == '}')) {
      if (balance->empty()) {
        return ErrorAt(pos, absl::StrCat("unexpected '", op, "'"), "an expression");
      }
      if (balance->back() != c) {
        return ErrorAt(pos, absl::StrCat("'", op, "'"),
                       absl::StrCat("'", std::string(1, balance->back()), "'"));
      }
      balance->pop_back();
    }
    tokens_.push_back(Make(TokenKind::kOperator, op, pos));
    return pos + op.size();
  }

  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
  mutable size_t cursor_offset_ = 0;  // Position()'s memo: offset, line and column
  mutable int cursor_line_ = 1;
  mutable int cursor_column_ = 1;
  // Whether the last tag end consumed a newline (jinja2's lexer state of the same name): text up
  // to the next tag then starts a line, for lstrip_blocks.
  bool line_starting_ = true;
};

}  // namespace

absl::StatusOr<std::vector<Token>> Lex(absl::string_view source) { return Lexer(source).Run(); }

absl::Status SyntaxError(int line, int column, absl::string_view found,
                         absl::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat("chat template line ", line, ", column ", column,
                                                 ": ", found, " (expected ", expected, ")"));
}

std::string DescribeToken(const Token& token) {
  switch (token.kind) {
    case TokenKind::kData:
      return "template text";
    case TokenKind::kVariableBegin:
      return "'{{'";
    case TokenKind::kVariableEnd:
      return "'}}'";
    case TokenKind::kBlockBegin:
      return "'{%'";
    case TokenKind::kBlockEnd:
      return "'%}'";
    case TokenKind::kName:
      return absl::StrCat("name '", token.text, "'");
    case TokenKind::kString: {
      std::string shown = token.text.size() > 40 ? token.text.substr(0, 40) + "..." : token.text;
      return absl::StrCat("string ", PyStrRepr(shown));
    }
    case TokenKind::kInteger:
    case TokenKind::kFloat:
      return absl::StrCat("number ", token.text);
    case TokenKind::kOperator:
      return absl::StrCat("'", token.text, "'");
    case TokenKind::kEof:
      return "end of template";
  }
  return "token";
}

}  // namespace tailor::service::jinja
