// UTF-8 and Unicode helpers for the Hugging Face tokenizer pipeline: lossy UTF-8 decoding with
// the "maximal subpart" rule (as Rust's String::from_utf8_lossy, which HF's decoders use),
// character iteration, a few Unicode properties, and normalization forms (NFC, NFD, NFKC,
// NFKD) through libutf8proc.
//
// All functions are pure and thread-safe. Standard headers only.
#ifndef TAILOR_TOKENIZER_UNICODE_TEXT_H_
#define TAILOR_TOKENIZER_UNICODE_TEXT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tailor::tokenizer_internal {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Appends to *out the text of `bytes`, with each maximal invalid subpart (a byte that cannot
// start a character, or the longest prefix of a character that is then broken) replaced by one
// U+FFFD, as Rust's String::from_utf8_lossy does. With `final` false, an incomplete but so far
// valid character at the end is left undecoded. Returns the number of bytes consumed.
size_t AppendUtf8Lossy(std::string_view bytes, bool final, std::string* out);

// `bytes` with invalid UTF-8 replaced as AppendUtf8Lossy does.
std::string ToValidUtf8(std::string_view bytes);

// True if `bytes` is well-formed UTF-8 throughout.
bool IsValidUtf8(std::string_view bytes);

// True if `bytes` is a prefix of some well-formed UTF-8 text (it may end inside a character).
bool IsValidUtf8Prefix(std::string_view bytes);

// The character starting at text[pos] of well-formed UTF-8 text; *len receives its byte length
// (1 for a byte that does not start a valid character, whose code point is then U+FFFD).
char32_t DecodeChar(std::string_view text, size_t pos, size_t* len);

// Appends the UTF-8 encoding of `cp` (U+FFFD for surrogates and values past U+10FFFF).
void AppendChar(char32_t cp, std::string* out);

// Byte length of the UTF-8 character whose first byte is `lead` (1 for ASCII and bytes that do
// not start a character).
size_t CharLength(uint8_t lead);

// Unicode White_Space (Rust's char::is_whitespace, HF's whitespace tests).
bool IsWhiteSpace(char32_t cp);
// General category N* (Nd, Nl, No): Rust's char::is_numeric.
bool IsNumeric(char32_t cp);
// Letters, marks, decimal digits and connector punctuation: a word character (\w).
bool IsWordChar(char32_t cp);

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };
// `text` (well-formed UTF-8) in the given normalization form, by libutf8proc.
std::string NormalizeUnicode(std::string_view text, NormalForm form);

}  // namespace tailor::tokenizer_internal

#endif  // TAILOR_TOKENIZER_UNICODE_TEXT_H_
