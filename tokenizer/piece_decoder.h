// Ids -> text, byte for byte as sentencepiece's Decode: pieces' U+2581 become spaces; control
// pieces decode to nothing; the unknown piece to its surface (" ⁇ "); runs of consecutive byte
// pieces (<0xXX>) are joined and read as UTF-8, each byte that does not start a valid character
// becoming U+FFFD; and, when the model adds a dummy prefix, a leading U+2581 is dropped from
// the first piece that starts the text (control pieces do not), and from no other: "▁" then
// "▁Hello" decode to " Hello", as Debian's libsentencepiece 0.1.97 and sentencepiece 0.2 do
// (tests compare with the library on random id sequences).
//
// The decoder is incremental and exact: text it emits is final (later pieces cannot change it),
// so concatenating its outputs over any split of an id sequence equals the whole decode. Only
// the bytes of an unfinished UTF-8 character at the end of a byte run are held back.
// Standard headers only.
#ifndef TAILOR_TOKENIZER_PIECE_DECODER_H_
#define TAILOR_TOKENIZER_PIECE_DECODER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tailor::tokenizer_internal {

// How each id decodes; built once per tokenizer, immutable, shared by decoders (read-only).
struct DecodeTable {
  enum class Kind : uint8_t { kText, kControl, kUnknown, kByte };
  struct Entry {
    std::string surface;     // kText: the piece with U+2581 -> ' '; kUnknown: the unk surface
    Kind kind = Kind::kText;
    uint8_t byte = 0;        // kByte: the byte value
    bool leading_space = false;  // kText: the piece starts with U+2581
  };
  std::vector<Entry> entries;            // indexed by id
  bool strip_leading_space = true;       // normalizer add_dummy_prefix || remove_extra_whitespaces
  bool remove_extra_whitespaces = false;
};

// One decoding pass over an id sequence. Holds a pointer to `table`, which must outlive it.
// Copyable (a copy continues independently). Not thread-safe; use one per sequence.
class PieceDecoder {
 public:
  explicit PieceDecoder(const DecodeTable& table) : table_(&table) {}

  // Appends to *out the text that became final with `id`. Ids outside the table decode like a
  // control piece (to nothing).
  void Push(int32_t id, std::string* out);
  // Appends the held-back bytes of an unfinished character (each as U+FFFD, as sentencepiece
  // does at the end of a byte run). Push after Finish starts a new byte run.
  void Finish(std::string* out);

 private:
  void DrainBytes(bool end_of_run, std::string* out);
  void Emit(std::string_view s, std::string* out);

  const DecodeTable* table_;
  std::string pending_;       // bytes of the current byte run not yet decoded
  bool is_bos_ws_ = true;     // still at the start, where the dummy-prefix space is dropped
  bool bos_ws_seen_ = false;  // the previous non-byte piece dropped a leading space
  bool text_empty_ = true;    // nothing decoded so far
};

}  // namespace tailor::tokenizer_internal

#endif  // TAILOR_TOKENIZER_PIECE_DECODER_H_
