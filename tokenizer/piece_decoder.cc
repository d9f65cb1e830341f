#include "tokenizer/piece_decoder.h"

namespace tailor::tokenizer_internal {
namespace {

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

bool IsTrail(uint8_t b) { return (b & 0xC0) == 0x80; }

// Bytes a character starting with `lead` needs, by sentencepiece's DecodeUTF8 (1 for ASCII and
// for bytes that cannot start a character).
size_t NeededBytes(uint8_t lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

// True if s[0..n) (n = NeededBytes(s[0]) > 1) is a valid UTF-8 character as sentencepiece's
// DecodeUTF8 judges it: trail bytes, no overlong form, no surrogate, at most U+10FFFF.
bool ValidSequence(const uint8_t* s, size_t n) {
  for (size_t i = 1; i < n; ++i) {
    if (!IsTrail(s[i])) return false;
  }
  uint32_t cp;
  if (n == 2) {
    cp = (static_cast<uint32_t>(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    return cp >= 0x80;
  }
  if (n == 3) {
    cp = (static_cast<uint32_t>(s[0] & 0x0F) << 12) | (static_cast<uint32_t>(s[1] & 0x3F) << 6) |
         (s[2] & 0x3F);
    return cp >= 0x800 && (cp < 0xD800 || cp >= 0xE000);
  }
  cp = (static_cast<uint32_t>(s[0] & 0x07) << 18) | (static_cast<uint32_t>(s[1] & 0x3F) << 12) |
       (static_cast<uint32_t>(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
  return cp >= 0x10000 && cp <= 0x10FFFF;
}

}  // namespace

void PieceDecoder::Emit(std::string_view s, std::string* out) {
  if (s.empty()) return;
  out->append(s);
  text_empty_ = false;
}

// Decodes pending_ from its start, one character at a time. A character whose bytes are not all
// here yet is held back unless the run has ended; then each of its bytes is invalid (U+FFFD),
// exactly as sentencepiece decodes a byte run that ends early.
void PieceDecoder::DrainBytes(bool end_of_run, std::string* out) {
  const auto* b = reinterpret_cast<const uint8_t*>(pending_.data());
  const size_t size = pending_.size();
  size_t o = 0;
  while (o < size) {
    const size_t n = NeededBytes(b[o]);
    if (n == 1) {
      if (b[o] < 0x80) {
        Emit(std::string_view(pending_).substr(o, 1), out);
      } else {
        Emit(kReplacementCharacter, out);
      }
      o += 1;
    } else if (o + n > size) {
      if (!end_of_run) break;
      Emit(kReplacementCharacter, out);
      o += 1;
    } else if (ValidSequence(b + o, n)) {
      Emit(std::string_view(pending_).substr(o, n), out);
      o += n;
    } else {
      Emit(kReplacementCharacter, out);
      o += 1;
    }
  }
  pending_.erase(0, o);
}

void PieceDecoder::Push(int32_t id, std::string* out) {
  const auto& entries = table_->entries;
  using Kind = DecodeTable::Kind;
  const DecodeTable::Entry* e =
      id >= 0 && static_cast<size_t>(id) < entries.size() ? &entries[static_cast<size_t>(id)] : nullptr;
  if (e != nullptr && e->kind == Kind::kByte) {
    pending_.push_back(static_cast<char>(e->byte));
    DrainBytes(/*end_of_run=*/false, out);
    return;
  }
  DrainBytes(/*end_of_run=*/true, out);
  if (bos_ws_seen_ || !text_empty_) is_bos_ws_ = false;
  if (e == nullptr || e->kind == Kind::kControl) {
    bos_ws_seen_ = false;
    return;
  }
  if (e->kind == Kind::kUnknown) {
    Emit(e->surface, out);
    bos_ws_seen_ = false;
    return;
  }
  std::string_view text = e->surface;
  bool dropped = false;
  if (is_bos_ws_ && table_->strip_leading_space && e->leading_space) {
    text.remove_prefix(1);
    // With remove_extra_whitespaces every leading space goes, so the start is not over yet.
    dropped = !table_->remove_extra_whitespaces;
  }
  Emit(text, out);
  bos_ws_seen_ = dropped;
}

void PieceDecoder::Finish(std::string* out) { DrainBytes(/*end_of_run=*/true, out); }

}  // namespace tailor::tokenizer_internal
