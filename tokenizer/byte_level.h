// GPT-2's byte-to-unicode mapping, used by byte-level BPE (GPT-2, Llama 3, Qwen): every byte
// becomes one printable character, so that any byte string is text. The printable bytes
// '!'..'~', U+00A1..U+00AC and U+00AE..U+00FF stand for themselves; the other 68 bytes (controls,
// space, DEL, U+0080..U+00A0, U+00AD), in increasing order, become U+0100, U+0101, ... (so a
// space is 'Ġ' U+0120 and a newline 'Ċ' U+010A).
//
// The tables are built once (thread-safe static initialization) and never change.
#ifndef TAILOR_TOKENIZER_BYTE_LEVEL_H_
#define TAILOR_TOKENIZER_BYTE_LEVEL_H_

#include <array>
#include <cstdint>
#include <string>

namespace tailor::tokenizer_internal {

struct ByteLevelTables {
  std::array<std::string, 256> byte_to_text;  // UTF-8 of the character that stands for each byte
  std::array<int16_t, 324> char_to_byte;      // code point (< 324) -> byte, or -1

  static const ByteLevelTables& Get() {
    static const ByteLevelTables tables = Build();
    return tables;
  }
  // The byte that character `cp` stands for, or -1 if it stands for none.
  int ByteOf(char32_t cp) const { return cp < char_to_byte.size() ? char_to_byte[cp] : -1; }

 private:
  static ByteLevelTables Build() {
    ByteLevelTables t;
    t.char_to_byte.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const char32_t cp = printable ? static_cast<char32_t>(b) : next++;
      t.char_to_byte[cp] = static_cast<int16_t>(b);
      std::string& s = t.byte_to_text[b];
      if (cp < 0x80) {
        s.push_back(static_cast<char>(cp));
      } else {  // all below U+0800: two bytes
        s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
    }
    return t;
  }
};

}  // namespace tailor::tokenizer_internal

#endif  // TAILOR_TOKENIZER_BYTE_LEVEL_H_
