#include "tokenizer/unicode_text.h"

#include <utf8proc.h>

#include <cstdlib>

namespace tailor::tokenizer_internal {
namespace {

// What the bytes at p[0..avail) (avail >= 1) start with: n > 0, a valid character of n bytes;
// 0, the valid beginning of a character that needs more bytes; -k, an invalid subpart of k bytes
// (Unicode's "maximal subpart": the longest prefix of a well-formed sequence, at least 1 byte).
int Examine(const uint8_t* p, size_t avail) {
  const uint8_t b0 = p[0];
  if (b0 < 0x80) return 1;
  int need;
  uint8_t lo = 0x80, hi = 0xBF;  // the range of the second byte
  if (b0 < 0xC2) {
    return -1;
  } else if (b0 <= 0xDF) {
    need = 2;
  } else if (b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  for (int i = 1; i < need; ++i) {
    if (static_cast<size_t>(i) >= avail) return 0;
    const uint8_t b = p[i];
    const bool ok = i == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return -i;
  }
  return need;
}

}  // namespace

size_t AppendUtf8Lossy(std::string_view bytes, bool final, std::string* out) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    // Copy a run of valid characters at once.
    size_t j = i;
    int r = 0;
    while (j < n && (r = Examine(p + j, n - j)) > 0) j += static_cast<size_t>(r);
    out->append(bytes.data() + i, j - i);
    i = j;
    if (i >= n) break;
    if (r == 0) {  // an incomplete character at the end
      if (!final) break;
      out->append(kReplacementChar);
      i = n;
    } else {
      out->append(kReplacementChar);
      i += static_cast<size_t>(-r);
    }
  }
  return i;
}

std::string ToValidUtf8(std::string_view bytes) {
  if (IsValidUtf8(bytes)) return std::string(bytes);
  std::string out;
  out.reserve(bytes.size() + 8);
  AppendUtf8Lossy(bytes, /*final=*/true, &out);
  return out;
}

bool IsValidUtf8(std::string_view bytes) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  size_t i = 0;
  while (i < bytes.size()) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    const int r = Examine(p + i, bytes.size() - i);
    if (r <= 0) return false;
    i += static_cast<size_t>(r);
  }
  return true;
}

bool IsValidUtf8Prefix(std::string_view bytes) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  size_t i = 0;
  while (i < bytes.size()) {
    const int r = Examine(p + i, bytes.size() - i);
    if (r < 0) return false;
    if (r == 0) return true;
    i += static_cast<size_t>(r);
  }
  return true;
}

size_t CharLength(uint8_t lead) {
  if (lead < 0xC2) return 1;
  if (lead <= 0xDF) return 2;
  if (lead <= 0xEF) return 3;
  if (lead <= 0xF4) return 4;
  return 1;
}

char32_t DecodeChar(std::string_view text, size_t pos, size_t* len) {
  const auto* p = reinterpret_cast<const uint8_t*>(text.data()) + pos;
  const int r = Examine(p, text.size() - pos);
  if (r <= 0) {
    *len = 1;
    return 0xFFFD;
  }
  *len = static_cast<size_t>(r);
  switch (r) {
    case 1: return p[0];
    case 2: return (static_cast<char32_t>(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
    case 3:
      return (static_cast<char32_t>(p[0] & 0x0F) << 12) | (static_cast<char32_t>(p[1] & 0x3F) << 6) |
             (p[2] & 0x3F);
    default:
      return (static_cast<char32_t>(p[0] & 0x07) << 18) | (static_cast<char32_t>(p[1] & 0x3F) << 12) |
             (static_cast<char32_t>(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
  }
}

void AppendChar(char32_t cp, std::string* out) {
  if ((cp >= 0xD800 && cp < 0xE000) || cp > 0x10FFFF) cp = 0xFFFD;
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsWhiteSpace(char32_t cp) {
  // The White_Space property (PropList.txt), a fixed list of 25 code points.
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

bool IsNumeric(char32_t cp) {
  const utf8proc_category_t c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

bool IsWordChar(char32_t cp) {
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

std::string NormalizeUnicode(std::string_view text, NormalForm form) {
  if (text.empty()) return {};
  bool ascii = true;
  for (char c : text) {
    if (static_cast<uint8_t>(c) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return std::string(text);  // every form leaves ASCII unchanged
  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalForm::kNfc: options |= UTF8PROC_COMPOSE; break;
    case NormalForm::kNfd: options |= UTF8PROC_DECOMPOSE; break;
    case NormalForm::kNfkc: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormalForm::kNfkd: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                   static_cast<utf8proc_ssize_t>(text.size()), &result,
                   static_cast<utf8proc_option_t>(options));
  if (n < 0 || result == nullptr) {  // only for invalid UTF-8 or out of memory
    std::free(result);
    return std::string(text);
  }
  std::string out(reinterpret_cast<const char*>(result), static_cast<size_t>(n));
  std::free(result);
  return out;
}

}  // namespace tailor::tokenizer_internal
