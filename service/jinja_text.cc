#include "service/jinja_text.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace tailor::service::jinja {
namespace {

constexpr char32_t kEscapeBase = 0xDC00;  // invalid byte b decodes to U+DC00 + b

// Pairs (upper, lower) inside [first, last] alternate: even code points upper or odd ones.
struct AlternatingRange {
  char32_t first, last;
  bool even_is_upper;
};
constexpr AlternatingRange kAlternating[] = {
    {0x0100, 0x012F, true}, {0x0132, 0x0137, true},  {0x0139, 0x0148, false},
    {0x014A, 0x0177, true}, {0x0179, 0x017E, false}, {0x0460, 0x0481, true},
    {0x048A, 0x04BF, true}, {0x04D0, 0x052F, true},
};

// Ranges where lower = upper + offset.
struct OffsetRange {
  char32_t first_upper, last_upper;
  char32_t offset;
};
constexpr OffsetRange kOffsets[] = {
    {'A', 'Z', 32},       {0x00C0, 0x00D6, 32}, {0x00D8, 0x00DE, 32}, {0x0391, 0x03A1, 32},
    {0x03A3, 0x03AB, 32}, {0x0388, 0x038A, 37}, {0x0410, 0x042F, 32}, {0x0400, 0x040F, 80},
    {0x0531, 0x0556, 48}, {0xFF21, 0xFF3A, 32},
};

bool InAlternating(char32_t c, bool* is_upper) {
  for (const AlternatingRange& r : kAlternating) {
    if (c >= r.first && c <= r.last) {
      *is_upper = ((c % 2 == 0) == r.even_is_upper);
      return true;
    }
  }
  return false;
}

}  // namespace

char32_t NextCodePoint(absl::string_view s, size_t* pos) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const size_t i = *pos;
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) {
    *pos = i + 1;
    return b0;
  }
  int len = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  }
  if (len == 0 || i + len > s.size()) {
    *pos = i + 1;
    return kEscapeBase + b0;
  }
  for (int k = 1; k < len; ++k) {
    const unsigned char b = byte(i + k);
    if ((b & 0xC0) != 0x80) {
      *pos = i + 1;
      return kEscapeBase + b0;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    *pos = i + 1;
    return kEscapeBase + b0;
  }
  *pos = i + len;
  return cp;
}

std::u32string DecodeUtf8(absl::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) out.push_back(NextCodePoint(s, &pos));
  return out;
}

void AppendUtf8(char32_t c, std::string* out) {
  if (c >= 0xDC80 && c <= 0xDCFF) {  // an escaped invalid byte
    out->push_back(static_cast<char>(c - kEscapeBase));
    return;
  }
  if ((c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF) c = 0xFFFD;
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string EncodeUtf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) AppendUtf8(c, &out);
  return out;
}

size_t CodePointCount(absl::string_view s) {
  size_t n = 0;
  size_t pos = 0;
  while (pos < s.size()) {
    if (static_cast<unsigned char>(s[pos]) < 0x80) {
      ++pos;
    } else {
      NextCodePoint(s, &pos);
    }
    ++n;
  }
  return n;
}

bool IsAscii(absl::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

bool IsPySpace(char32_t c) {
  if (c <= 0x20) return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

char32_t ToUpper(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
  if (c == 0x00FF) return 0x0178;
  if (c == 0x00B5) return 0x039C;
  if (c == 0x0131) return 'I';
  if (c == 0x03C2) return 0x03A3;  // final sigma
  if (c == 0x03AC) return 0x0386;
  if (c == 0x03CC) return 0x038C;
  if (c == 0x03CD || c == 0x03CE) return c - 63;
  bool is_upper = false;
  if (InAlternating(c, &is_upper)) return is_upper ? c : c - 1;
  for (const OffsetRange& r : kOffsets) {
    if (c >= r.first_upper + r.offset && c <= r.last_upper + r.offset) return c - r.offset;
  }
  return c;
}

char32_t ToLower(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  if (c == 0x0178) return 0x00FF;
  if (c == 0x0386) return 0x03AC;
  if (c == 0x038C) return 0x03CC;
  if (c == 0x038E || c == 0x038F) return c + 63;
  bool is_upper = false;
  if (InAlternating(c, &is_upper)) return is_upper ? c + 1 : c;
  for (const OffsetRange& r : kOffsets) {
    if (c >= r.first_upper && c <= r.last_upper) return c + r.offset;
  }
  return c;
}

bool IsUpperCase(char32_t c) { return ToLower(c) != c || c == 0x0130; }
bool IsLowerCase(char32_t c) {
  return ToUpper(c) != c || c == 0x00DF || c == 0x0138 || c == 0x0149;
}

bool IsAlpha(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  if (IsUpperCase(c) || IsLowerCase(c)) return true;
  return (c >= 0x00C0 && c <= 0x024F && c != 0xD7 && c != 0xF7) ||
         (c >= 0x0370 && c <= 0x03FF && c != 0x037E && c != 0x0387) ||
         (c >= 0x0400 && c <= 0x0481) || (c >= 0x05D0 && c <= 0x05EA) ||
         (c >= 0x0620 && c <= 0x064A) || (c >= 0x3041 && c <= 0x3096) ||
         (c >= 0x30A1 && c <= 0x30FA) || (c >= 0x4E00 && c <= 0x9FFF) ||
         (c >= 0xAC00 && c <= 0xD7A3);
}

bool IsDigit(char32_t c) { return (c >= '0' && c <= '9') || (c >= 0xFF10 && c <= 0xFF19); }

// Full mappings that are not one code point to one: ß upper-cases to "SS" (title-cases to "Ss").
void AppendUpper(char32_t c, bool title, std::string* out) {
  if (c == 0x00DF) {
    out->append(title ? "Ss" : "SS");
  } else {
    AppendUtf8(ToUpper(c), out);
  }
}

// Σ lower-cases to final ς at the end of a word (after a cased letter, before none).
void AppendLower(const std::u32string& s, size_t i, std::string* out) {
  if (s[i] == 0x03A3) {
    const auto cased = [](char32_t c) { return IsUpperCase(c) || IsLowerCase(c); };
    const bool after_cased = i > 0 && cased(s[i - 1]);
    const bool before_cased = i + 1 < s.size() && cased(s[i + 1]);
    if (after_cased && !before_cased) {
      AppendUtf8(0x03C2, out);
      return;
    }
  }
  AppendUtf8(ToLower(s[i]), out);
}

std::string PyUpper(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) AppendUpper(NextCodePoint(s, &pos), false, &out);
  return out;
}

std::string PyLower(absl::string_view s) {
  if (IsAscii(s)) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(ToLower(static_cast<unsigned char>(c)));
    return out;
  }
  const std::u32string cps = DecodeUtf8(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < cps.size(); ++i) AppendLower(cps, i, &out);
  return out;
}

std::string PyCapitalize(absl::string_view s) {
  const std::u32string cps = DecodeUtf8(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < cps.size(); ++i) {
    if (i == 0) {
      AppendUpper(cps[0], true, &out);
    } else {
      AppendLower(cps, i, &out);
    }
  }
  return out;
}

std::string PyTitle(absl::string_view s) {
  const std::u32string cps = DecodeUtf8(s);
  std::string out;
  out.reserve(s.size());
  bool previous_cased = false;
  for (size_t i = 0; i < cps.size(); ++i) {
    const char32_t c = cps[i];
    const bool cased = IsUpperCase(c) || IsLowerCase(c);
    if (!cased) {
      AppendUtf8(c, &out);
    } else if (previous_cased) {
      AppendLower(cps, i, &out);
    } else {
      AppendUpper(c, true, &out);
    }
    previous_cased = cased;
  }
  return out;
}

std::string PyStrip(absl::string_view s, const std::string* chars, bool left, bool right) {
  const std::u32string set = chars != nullptr ? DecodeUtf8(*chars) : std::u32string();
  const auto strip_it = [&](char32_t c) {
    return chars == nullptr ? IsPySpace(c) : set.find(c) != std::u32string::npos;
  };
  size_t begin = 0;
  size_t end = s.size();
  if (left) {
    while (begin < end) {
      size_t next = begin;
      if (!strip_it(NextCodePoint(s, &next))) break;
      begin = next;
    }
  }
  if (right) {
    // Forward scan (code point boundaries are only known from the left): end after the last
    // code point that is kept.
    size_t keep_end = begin;
    size_t pos = begin;
    while (pos < end) {
      if (!strip_it(NextCodePoint(s, &pos))) keep_end = pos;
    }
    end = keep_end;
  }
  return std::string(s.substr(begin, end - begin));
}

std::string PyFloatRepr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, result.ptr);
  // sci is "[-]D[.DDD]e[+-]XX": split it into sign, digits and decimal exponent.
  std::string out;
  size_t i = 0;
  if (sci[0] == '-') {
    out.push_back('-');
    i = 1;
  }
  const size_t e_pos = sci.find('e');
  std::string digits;
  for (size_t k = i; k < e_pos; ++k) {
    if (sci[k] != '.') digits.push_back(sci[k]);
  }
  const int exponent = std::atoi(sci.c_str() + e_pos + 1);
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out += "0.";
      out.append(static_cast<size_t>(-exponent - 1), '0');
      out += digits;
    } else if (static_cast<int>(digits.size()) <= exponent + 1) {
      out += digits;
      out.append(static_cast<size_t>(exponent + 1 - static_cast<int>(digits.size())), '0');
      out += ".0";
    } else {
      out += digits.substr(0, exponent + 1);
      out.push_back('.');
      out += digits.substr(exponent + 1);
    }
    return out;
  }
  out.push_back(digits[0]);
  if (digits.size() > 1) {
    out.push_back('.');
    out += digits.substr(1);
  }
  char exp_buf[16];
  std::snprintf(exp_buf, sizeof(exp_buf), "e%c%02d", exponent < 0 ? '-' : '+',
                exponent < 0 ? -exponent : exponent);
  out += exp_buf;
  return out;
}

namespace {

// Python's str.isprintable() for the code points repr() escapes (approximate outside Latin).
bool IsPrintable(char32_t c) {
  if (c < 0x20 || c == 0x7F) return false;
  if (c >= 0x80 && c <= 0xA0) return false;
  if (c == 0xAD || c == 0x1680 || c == 0x3000 || c == 0xFEFF) return false;
  if ((c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
      (c >= 0x205F && c <= 0x206F) || (c >= 0xD800 && c <= 0xDFFF) ||
      (c >= 0xFFF9 && c <= 0xFFFB) || (c >= 0xE000 && c <= 0xF8FF)) {
    return false;
  }
  return true;
}

}  // namespace

std::string PyStrRepr(absl::string_view s) {
  const bool has_single = s.find('\'') != absl::string_view::npos;
  const bool has_double = s.find('"') != absl::string_view::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  size_t pos = 0;
  while (pos < s.size()) {
    const char32_t c = NextCodePoint(s, &pos);
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (IsPrintable(c)) {
      AppendUtf8(c, &out);
    } else {
      char buf[16];
      if (c < 0x100) {
        std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(c));
      } else if (c < 0x10000) {
        std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
      } else {
        std::snprintf(buf, sizeof(buf), "\\U%08x", static_cast<unsigned>(c));
      }
      out += buf;
    }
  }
  out.push_back(quote);
  return out;
}

}  // namespace tailor::service::jinja
