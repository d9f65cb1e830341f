// Regular expression lowering (vLLM guided_regex). See grammar.h for the supported syntax.
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "service/grammar/grammar.h"

namespace tailor::grammar::internal {
namespace {

constexpr int32_t kMaxRepeat = 1000;
constexpr uint32_t kMaxCodepoint = 0x10FFFF;

using Ranges = std::vector<CodepointRange>;

Ranges Complement(Ranges r) {
  std::sort(r.begin(), r.end());
  Ranges out;
  uint32_t next = 0;
  for (auto [lo, hi] : r) {
    if (lo > next) out.push_back({next, lo - 1});
    if (hi + 1 > next) next = hi + 1;
  }
  if (next <= kMaxCodepoint) out.push_back({next, kMaxCodepoint});
  return out;
}

class RegexParser {
 public:
  RegexParser(ExprPool& pool, absl::string_view re) : p_(pool), re_(re) {}

  absl::StatusOr<int32_t> Parse() {
    if (!re_.empty() && re_[0] == '^') pos_ = 1;
    auto e = Alternation();
    if (!e.ok()) return e.status();
    if (pos_ < re_.size() && re_[pos_] == '$' && pos_ + 1 == re_.size()) ++pos_;
    if (pos_ != re_.size()) {
      if (re_[pos_] == ')') return Error("unmatched ')'");
      return Error(absl::StrCat("unsupported '", re_.substr(pos_, 1), "' here"));
    }
    return e;
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("regex: ", what, " at offset ", pos_));
  }
  bool AtEnd() const { return pos_ >= re_.size(); }
  char Peek() const { return re_[pos_]; }

  absl::StatusOr<int32_t> Alternation() {
    std::vector<int32_t> alts;
    for (;;) {
      auto e = Concatenation();
      if (!e.ok()) return e.status();
      alts.push_back(*e);
      if (AtEnd() || Peek() != '|') break;
      ++pos_;
    }
    return p_.Alt(std::move(alts));
  }

  absl::StatusOr<int32_t> Concatenation() {
    std::vector<int32_t> seq;
    while (!AtEnd() && Peek() != '|' && Peek() != ')') {
      if (Peek() == '$' && pos_ + 1 == re_.size()) break;  // the final anchor
      auto atom = Atom();
      if (!atom.ok()) return atom.status();
      auto e = Quantifiers(*atom);
      if (!e.ok()) return e.status();
      seq.push_back(*e);
    }
    return p_.Seq(std::move(seq));
  }

  // Reads an integer; false if there is none.
  bool Number(int32_t* out) {
    size_t start = pos_;
    int64_t v = 0;
    while (!AtEnd() && Peek() >= '0' && Peek() <= '9') {
      v = std::min<int64_t>(v * 10 + (Peek() - '0'), 1 << 30);
      ++pos_;
    }
    *out = static_cast<int32_t>(v);
    return pos_ > start;
  }

  absl::StatusOr<int32_t> Quantifiers(int32_t atom) {
    int32_t e = atom;
    while (!AtEnd()) {
      int32_t min, max;
      const size_t start = pos_;
      const char c = Peek();
      if (c == '*') {
        min = 0, max = -1, ++pos_;
      } else if (c == '+') {
        min = 1, max = -1, ++pos_;
      } else if (c == '?') {
        min = 0, max = 1, ++pos_;
      } else if (c == '{') {
        ++pos_;
        if (!Number(&min)) {  // not a quantifier: a literal '{' (left for Atom)
          pos_ = start;
          return e;
        }
        max = min;
        if (!AtEnd() && Peek() == ',') {
          ++pos_;
          if (!Number(&max)) max = -1;
        }
        if (AtEnd() || Peek() != '}') {
          pos_ = start;
          return e;
        }
        ++pos_;
        if (min > kMaxRepeat || max > kMaxRepeat) {
          return Error(absl::StrCat("repetition count above ", kMaxRepeat));
        }
        if (max >= 0 && max < min) return Error("repetition {n,m} with m < n");
      } else {
        return e;
      }
      if (!AtEnd() && Peek() == '?') ++pos_;  // lazy: the same language
      if (!AtEnd() && Peek() == '+') return Error("unsupported possessive quantifier");
      e = p_.Repeat(e, min, max);
    }
    return e;
  }

  // Decodes one UTF-8 code point at pos_.
  absl::StatusOr<uint32_t> Codepoint() {
    const auto b0 = static_cast<uint8_t>(re_[pos_]);
    int n = b0 < 0x80 ? 1 : (b0 >> 5) == 6 ? 2 : (b0 >> 4) == 14 ? 3 : (b0 >> 3) == 30 ? 4 : 0;
    if (n == 0 || pos_ + n > re_.size()) return Error("invalid UTF-8");
    uint32_t cp = n == 1 ? b0 : n == 2 ? (b0 & 0x1F) : n == 3 ? (b0 & 0x0F) : (b0 & 0x07);
    for (int i = 1; i < n; ++i) {
      const auto b = static_cast<uint8_t>(re_[pos_ + i]);
      if ((b & 0xC0) != 0x80) return Error("invalid UTF-8");
      cp = (cp << 6) | (b & 0x3F);
    }
    pos_ += n;
    return cp;
  }

  absl::StatusOr<uint32_t> Hex(int digits) {
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      if (AtEnd() || !isxdigit(static_cast<unsigned char>(Peek()))) return Error("expected a hex digit");
      const char c = Peek();
      v = v * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
      ++pos_;
    }
    return v;
  }

  // After a '\': a class escape (fills `ranges`) or one code point. pos_ is past the '\'.
  absl::Status Escape(Ranges* ranges) {
    if (AtEnd()) return Error("trailing '\\'");
    const char c = Peek();
    ++pos_;
    auto one = [&](uint32_t cp) {
      ranges->push_back({cp, cp});
      return absl::OkStatus();
    };
    switch (c) {
      case 'd': ranges->push_back({'0', '9'}); return absl::OkStatus();
      case 'D': for (auto r : Complement({{'0', '9'}})) ranges->push_back(r); return absl::OkStatus();
      case 'w':
        for (auto r : Ranges{{'0', '9'}, {'A', 'Z'}, {'a', 'z'}, {'_', '_'}}) ranges->push_back(r);
        return absl::OkStatus();
      case 'W':
        for (auto r : Complement({{'0', '9'}, {'A', 'Z'}, {'a', 'z'}, {'_', '_'}})) ranges->push_back(r);
        return absl::OkStatus();
      case 's':
        for (auto r : Ranges{{'\t', '\r'}, {' ', ' '}}) ranges->push_back(r);
        return absl::OkStatus();
      case 'S':
        for (auto r : Complement({{'\t', '\r'}, {' ', ' '}})) ranges->push_back(r);
        return absl::OkStatus();
      case 'n': return one('\n');
      case 't': return one('\t');
      case 'r': return one('\r');
      case 'f': return one('\f');
      case 'v': return one('\v');
      case '0': return one(0);
      case 'x': {
        if (!AtEnd() && Peek() == '{') {
          return Error("unsupported escape '\\x{...}'");
        }
        auto v = Hex(2);
        if (!v.ok()) return v.status();
        return one(*v);
      }
      case 'u': {
        auto v = Hex(4);
        if (!v.ok()) return v.status();
        return one(*v);
      }
      case 'b': case 'B': return Error("unsupported word boundary '\\b'/'\\B'");
      case 'A': case 'z': case 'Z': case 'G': return Error(absl::StrCat("unsupported anchor '\\", std::string(1, c), "'"));
      case 'k': return Error("unsupported backreference '\\k'");
      case 'p': case 'P': return Error("unsupported Unicode property escape '\\p'");
      default: break;
    }
    if (c >= '1' && c <= '9') return Error(absl::StrCat("unsupported backreference '\\", std::string(1, c), "'"));
    if (isalnum(static_cast<unsigned char>(c))) {
      return Error(absl::StrCat("unsupported escape '\\", std::string(1, c), "'"));
    }
    --pos_;
    auto cp = Codepoint();
    if (!cp.ok()) return cp.status();
    return one(*cp);
  }

  absl::StatusOr<int32_t> Class() {  // pos_ is past '['
    bool negated = false;
    if (!AtEnd() && Peek() == '^') {
      negated = true;
      ++pos_;
    }
    Ranges ranges;
    bool first = true;
    for (;;) {
      if (AtEnd()) return Error("unterminated '['");
      if (Peek() == ']' && !first) {
        ++pos_;
        break;
      }
      first = false;
      Ranges item;
      if (Peek() == '[' && pos_ + 1 < re_.size() && re_[pos_ + 1] == ':') {
        return Error("unsupported POSIX class '[:...:]'");
      }
      if (Peek() == '\\') {
        ++pos_;
        if (auto s = Escape(&item); !s.ok()) return s;
      } else {
        auto cp = Codepoint();
        if (!cp.ok()) return cp.status();
        item.push_back({*cp, *cp});
      }
      // A range a-b (not when '-' is last, nor after a class escape like \d).
      if (item.size() == 1 && item[0].first == item[0].second && pos_ + 1 < re_.size() && Peek() == '-' &&
          re_[pos_ + 1] != ']') {
        ++pos_;
        Ranges hi;
        if (Peek() == '\\') {
          ++pos_;
          if (auto s = Escape(&hi); !s.ok()) return s;
        } else {
          auto cp = Codepoint();
          if (!cp.ok()) return cp.status();
          hi.push_back({*cp, *cp});
        }
        if (hi.size() != 1 || hi[0].first != hi[0].second) return Error("bad class range");
        if (hi[0].first < item[0].first) return Error("class range out of order");
        item[0].second = hi[0].first;
      }
      ranges.insert(ranges.end(), item.begin(), item.end());
    }
    return p_.Codepoints(negated ? Complement(ranges) : ranges);
  }

  absl::StatusOr<int32_t> Group() {  // pos_ is past '('
    if (!AtEnd() && Peek() == '?') {
      const absl::string_view rest = re_.substr(pos_);
      if (rest.substr(0, 2) == "?:") {
        pos_ += 2;
      } else if (rest.substr(0, 2) == "?=" || rest.substr(0, 2) == "?!") {
        return Error(absl::StrCat("unsupported lookahead '(", rest.substr(0, 2), "'"));
      } else if (rest.substr(0, 3) == "?<=" || rest.substr(0, 3) == "?<!") {
        return Error(absl::StrCat("unsupported lookbehind '(", rest.substr(0, 3), "'"));
      } else if (rest.substr(0, 3) == "?P=") {
        return Error("unsupported backreference '(?P='");
      } else if (rest.substr(0, 2) == "?<" || rest.substr(0, 3) == "?P<") {
        const size_t close = rest.find('>');
        if (close == absl::string_view::npos) return Error("unterminated group name");
        pos_ += close + 1;
      } else {
        return Error(absl::StrCat("unsupported group syntax '(", rest.substr(0, 2), "'"));
      }
    }
    auto e = Alternation();
    if (!e.ok()) return e.status();
    if (AtEnd() || Peek() != ')') return Error("missing ')'");
    ++pos_;
    return e;
  }

  absl::StatusOr<int32_t> Atom() {
    const char c = Peek();
    switch (c) {
      case '(':
        ++pos_;
        return Group();
      case '[':
        ++pos_;
        return Class();
      case '.':
        ++pos_;
        return p_.Codepoints({{0, '\n' - 1}, {'\n' + 1, kMaxCodepoint}});
      case '\\': {
        ++pos_;
        Ranges r;
        if (auto s = Escape(&r); !s.ok()) return s;
        return p_.Codepoints(std::move(r));
      }
      case '*': case '+': case '?': return Error(absl::StrCat("nothing to repeat before '", std::string(1, c), "'"));
      case '^': return Error("unsupported '^' anchor inside the pattern (only at its start)");
      case '$': return Error("unsupported '$' anchor inside the pattern (only at its end)");
      default: {
        auto cp = Codepoint();
        if (!cp.ok()) return cp.status();
        return p_.Codepoints({{*cp, *cp}});
      }
    }
  }

  ExprPool& p_;
  absl::string_view re_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<int32_t> LowerRegex(ExprPool& pool, absl::string_view regex) {
  return RegexParser(pool, regex).Parse();
}

}  // namespace tailor::grammar::internal
