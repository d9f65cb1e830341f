// Text helpers for the Jinja interpreter with Python's semantics: strings are sequences of code
// points (not bytes), whitespace is Python's str.isspace(), floats print as Python's repr().
//
// Strings are UTF-8. An invalid byte decodes to the lone surrogate U+DC80..U+DCFF (Python's
// "surrogateescape"), which encodes back to the same byte, so no input is ever rejected or altered.
// All functions are pure and thread-safe.
#ifndef TAILOR_SERVICE_JINJA_TEXT_H_
#define TAILOR_SERVICE_JINJA_TEXT_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace tailor::service::jinja {

std::u32string DecodeUtf8(absl::string_view s);
void AppendUtf8(char32_t c, std::string* out);
std::string EncodeUtf8(std::u32string_view s);

// Decodes the code point at s[*pos] and advances *pos past it.
char32_t NextCodePoint(absl::string_view s, size_t* pos);
size_t CodePointCount(absl::string_view s);
bool IsAscii(absl::string_view s);

// Python's str.isspace() for one code point (also what `\s` matches in Python's re).
bool IsPySpace(char32_t c);
// Simple case mappings: ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic, Armenian, fullwidth
// Latin. Other code points are returned unchanged (and count as uncased).
char32_t ToUpper(char32_t c);
char32_t ToLower(char32_t c);
bool IsUpperCase(char32_t c);
bool IsLowerCase(char32_t c);
bool IsAlpha(char32_t c);  // letters of the scripts above, plus CJK ideographs and kana
bool IsDigit(char32_t c);  // ASCII and fullwidth digits

std::string PyUpper(absl::string_view s);
std::string PyLower(absl::string_view s);
std::string PyCapitalize(absl::string_view s);  // str.capitalize()
std::string PyTitle(absl::string_view s);       // str.title()

// str.strip/lstrip/rstrip: `chars` null strips whitespace, else any code point in *chars.
std::string PyStrip(absl::string_view s, const std::string* chars, bool left, bool right);

// Python's repr() of a float ("1.0", "1e+16", "2.5e-05", "inf", "nan").
std::string PyFloatRepr(double d);
// Python's repr() of a str, quotes included.
std::string PyStrRepr(absl::string_view s);

}  // namespace tailor::service::jinja

#endif  // TAILOR_SERVICE_JINJA_TEXT_H_
