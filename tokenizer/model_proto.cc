#include "tokenizer/model_proto.h"

#include <array>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace tailor::tokenizer_internal {
namespace {

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

// Field numbers (see model_proto.h).
constexpr uint32_t kModelPieces = 1, kModelTrainerSpec = 2, kModelNormalizerSpec = 3,
                   kModelDenormalizerSpec = 5;
constexpr uint32_t kPiecePiece = 1, kPieceScore = 2, kPieceType = 3;
constexpr uint32_t kTrainerModelType = 3, kTrainerVocabSize = 4, kTrainerSuffix = 24,
                   kTrainerByteFallback = 35, kTrainerUnkId = 40, kTrainerBosId = 41,
                   kTrainerEosId = 42, kTrainerPadId = 43, kTrainerUnkSurface = 44,
                   kTrainerUnkPiece = 45, kTrainerBosPiece = 46, kTrainerEosPiece = 47;
constexpr uint32_t kNormName = 1, kNormCharsmap = 2, kNormAddDummyPrefix = 3,
                   kNormRemoveExtraWhitespaces = 4, kNormEscapeWhitespaces = 5;

// Bounds-checked reader over one (sub-)message. `base` is the message's offset in the whole
// input, for error messages.
class WireReader {
 public:
  WireReader(std::string_view data, size_t base, const std::string& origin)
      : data_(data), base_(base), origin_(origin) {}

  bool done() const { return pos_ >= data_.size(); }
  size_t offset() const { return base_ + pos_; }

  absl::Status Error(const std::string& what) const {
    return absl::InvalidArgumentError(
        absl::StrCat(origin_, ": not a valid sentencepiece model (malformed protobuf at byte ",
                     offset(), ": ", what, ")"));
  }

  absl::StatusOr<uint64_t> Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) return Error("varint runs past the end");
      const auto b = static_cast<uint8_t>(data_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    return Error("varint longer than 10 bytes");
  }

  // Reads a tag; returns {field, wire type}.
  absl::StatusOr<std::pair<uint32_t, uint32_t>> Tag() {
    TAILOR_ASSIGN_OR_RETURN(uint64_t tag, Varint());
    const uint64_t field = tag >> 3;
    if (field == 0 || field > 0x1fffffff) return Error(absl::StrCat("invalid field number ", field));
    return std::make_pair(static_cast<uint32_t>(field), static_cast<uint32_t>(tag & 7));
  }

  // A length-delimited payload; `*at` receives its offset in the whole input.
  absl::StatusOr<std::string_view> Len(size_t* at) {
    TAILOR_ASSIGN_OR_RETURN(uint64_t n, Varint());
    if (n > data_.size() - pos_) {
      return Error(absl::StrCat("a field of ", n, " bytes runs past the end (", data_.size() - pos_,
                                " bytes remain)"));
    }
    *at = offset();
    std::string_view s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }

  absl::StatusOr<uint32_t> Fixed32() {
    if (data_.size() - pos_ < 4) return Error("a 32-bit field runs past the end");
    uint32_t v;
    std::memcpy(&v, data_.data() + pos_, 4);
    pos_ += 4;
    return v;
  }

  absl::Status Skip(uint32_t wire) {
    switch (wire) {
      case kVarint: return Varint().status();
      case kFixed64:
        if (data_.size() - pos_ < 8) return Error("a 64-bit field runs past the end");
        pos_ += 8;
        return absl::OkStatus();
      case kLen: {
        size_t at;
        return Len(&at).status();
      }
      case kFixed32: return Fixed32().status();
      default: return Error(absl::StrCat("unsupported wire type ", wire));
    }
  }

  // Checks that `field` arrived with wire type `want`.
  absl::Status Expect(uint32_t field, uint32_t wire, uint32_t want) const {
    if (wire == want) return absl::OkStatus();
    return Error(absl::StrCat("field ", field, " has wire type ", wire, ", expected ", want));
  }

 private:
  std::string_view data_;
  size_t base_;
  const std::string& origin_;
  size_t pos_ = 0;
};

absl::Status ParsePiece(std::string_view msg, size_t base, const std::string& origin, size_t index,
                        SpModelInfo* info) {
  WireReader r(msg, base, origin);
  std::string piece;
  float score = 0;
  int64_t type = 1;
  while (!r.done()) {
    TAILOR_ASSIGN_OR_RETURN(auto tag, r.Tag());
    const auto [field, wire] = tag;
    if (field == kPiecePiece) {
      TAILOR_RETURN_IF_ERROR(r.Expect(field, wire, kLen));
      size_t at;
      TAILOR_ASSIGN_OR_RETURN(std::string_view s, r.Len(&at));
      piece = std::string(s);
    } else if (field == kPieceScore) {
      TAILOR_RETURN_IF_ERROR(r.Expect(field, wire, kFixed32));
      TAILOR_ASSIGN_OR_RETURN(uint32_t bits, r.Fixed32());
      std::memcpy(&score, &bits, 4);
    } else if (field == kPieceType) {
      TAILOR_RETURN_IF_ERROR(r.Expect(field, wire, kVarint));
      TAILOR_ASSIGN_OR_RETURN(uint64_t t, r.Varint());
      type = static_cast<int64_t>(t);
    } else {
      TAILOR_RETURN_IF_ERROR(r.Skip(wire));
    }
  }
  if (type < 1 || type > 6) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": piece ", index, " has type ", type,
                                                   "; expected 1..6 (NORMAL..BYTE)"));
  }
  info->vocab.pieces.push_back(std::move(piece));
  info->vocab.scores.push_back(score);
  info->vocab.types.push_back(static_cast<PieceType>(type));
  return absl::OkStatus();
}

absl::Status ParseTrainerSpec(std::string_view msg, size_t base, const std::string& origin,
                              SpModelInfo* info) {
  WireReader r(msg, base, origin);
  info->has_trainer_spec = true;
  while (!r.done()) {
    TAILOR_ASSIGN_OR_RETURN(auto tag, r.Tag());
    const auto [field, wire] = tag;
    if (field == kTrainerModelType || field == kTrainerSuffix || field == kTrainerByteFallback) {
      TAILOR_RETURN_IF_ERROR(r.Expect(field, wire, kVarint));
      TAILOR_ASSIGN_OR_RETURN(uint64_t v, r.Varint());
      if (field == kTrainerModelType) info->model_type = static_cast<int32_t>(v);
      if (field == kTrainerSuffix) info->treat_whitespace_as_suffix = v != 0;
      if (field == kTrainerByteFallback) info->byte_fallback = v != 0;
    } else if (field == kTrainerUnkSurface) {
      TAILOR_RETURN_IF_ERROR(r.Expect(field, wire, kLen));
      size_t at;
      TAILOR_ASSIGN_OR_RETURN(std::string_view s, r.Len(&at));
      info->has_unk_surface = true;
      info->unk_surface = std::string(s);
    } else {
      TAILOR_RETURN_IF_ERROR(r.Skip(wire));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseNormalizerSpec(std::string_view msg, size_t base, const std::string& origin,
                                 bool denormalizer, SpModelInfo* info) {
  WireReader r(msg, base, origin);
  if (!denormalizer) info->has_normalizer_spec = true;
  while (!r.done()) {
    TAILOR_ASSIGN_OR_RETURN(auto tag, r.Tag());
    const auto [field, wire] = tag;
    if (field == kNormName || field == kNormCharsmap) {
      TAILOR_RETURN_IF_ERROR(r.Expect(field, wire, kLen));
      size_t at;
      TAILOR_ASSIGN_OR_RETURN(std::string_view s, r.Len(&at));
      if (denormalizer) {
        if (field == kNormCharsmap) info->denormalizer_charsmap_bytes = s.size();
      } else if (field == kNormName) {
        info->normalizer_name = std::string(s);
      } else {
        info->precompiled_charsmap_bytes = s.size();
      }
    } else if (!denormalizer && (field == kNormAddDummyPrefix ||
                                 field == kNormRemoveExtraWhitespaces ||
                                 field == kNormEscapeWhitespaces)) {
      TAILOR_RETURN_IF_ERROR(r.Expect(field, wire, kVarint));
      TAILOR_ASSIGN_OR_RETURN(uint64_t v, r.Varint());
      if (field == kNormAddDummyPrefix) info->vocab.add_dummy_prefix = v != 0;
      if (field == kNormRemoveExtraWhitespaces) info->remove_extra_whitespaces = v != 0;
      if (field == kNormEscapeWhitespaces) info->escape_whitespaces = v != 0;
    } else {
      TAILOR_RETURN_IF_ERROR(r.Skip(wire));
    }
  }
  return absl::OkStatus();
}

// Protobuf writer.
class WireWriter {
 public:
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void Tag(uint32_t field, uint32_t wire) { Varint((static_cast<uint64_t>(field) << 3) | wire); }
  void VarintField(uint32_t field, int64_t v) {  // int32/enum/bool: negatives take 10 bytes
    Tag(field, kVarint);
    Varint(static_cast<uint64_t>(v));
  }
  void BytesField(uint32_t field, std::string_view s) {
    Tag(field, kLen);
    Varint(s.size());
    out_.append(s);
  }
  void FloatField(uint32_t field, float f) {
    Tag(field, kFixed32);
    char b[4];
    std::memcpy(b, &f, 4);
    out_.append(b, 4);
  }
  std::string& str() { return out_; }

 private:
  std::string out_;
};

bool IsReservedType(PieceType t) {  // sentencepiece keeps these in a separate piece map
  return t == PieceType::kUnknown || t == PieceType::kControl || t == PieceType::kByte;
}

}  // namespace

std::string SerializeTailorOptions(bool add_bos, bool add_eos) {
  WireWriter options;
  options.VarintField(1, add_bos ? 1 : 0);
  options.VarintField(2, add_eos ? 1 : 0);
  WireWriter w;
  w.BytesField(kModelTailorOptions, options.str());
  return std::move(w.str());
}

int PieceToByte(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  const int hi = hex(piece[3]), lo = hex(piece[4]);
  if (hi < 0 || lo < 0) return -1;
  return hi * 16 + lo;
}

absl::StatusOr<SpModelInfo> ParseModelProto(std::string_view bytes, const std::string& origin) {
  SpModelInfo info;
  WireReader r(bytes, 0, origin);
  if (bytes.empty()) return r.Error("the file is empty");
  while (!r.done()) {
    const size_t tag_start = r.offset();
    TAILOR_ASSIGN_OR_RETURN(auto tag, r.Tag());
    const auto [field, wire] = tag;
    if (field == kModelTailorOptions) {
      TAILOR_RETURN_IF_ERROR(r.Expect(field, wire, kLen));
      size_t at;
      TAILOR_ASSIGN_OR_RETURN(std::string_view msg, r.Len(&at));
      info.tailor_option_ranges.emplace_back(tag_start, r.offset());
      WireReader o(msg, at, origin);
      while (!o.done()) {
        TAILOR_ASSIGN_OR_RETURN(auto otag, o.Tag());
        const auto [ofield, owire] = otag;
        if (ofield == 1 || ofield == 2) {
          TAILOR_RETURN_IF_ERROR(o.Expect(ofield, owire, kVarint));
          TAILOR_ASSIGN_OR_RETURN(uint64_t v, o.Varint());
          (ofield == 1 ? info.add_bos : info.add_eos) = v != 0;
        } else {
          TAILOR_RETURN_IF_ERROR(o.Skip(owire));
        }
      }
    } else if (field == kModelPieces || field == kModelTrainerSpec || field == kModelNormalizerSpec ||
        field == kModelDenormalizerSpec) {
      TAILOR_RETURN_IF_ERROR(r.Expect(field, wire, kLen));
      size_t at;
      TAILOR_ASSIGN_OR_RETURN(std::string_view msg, r.Len(&at));
      if (field == kModelPieces) {
        TAILOR_RETURN_IF_ERROR(ParsePiece(msg, at, origin, info.vocab.pieces.size(), &info));
      } else if (field == kModelTrainerSpec) {
        TAILOR_RETURN_IF_ERROR(ParseTrainerSpec(msg, at, origin, &info));
      } else {
        TAILOR_RETURN_IF_ERROR(
            ParseNormalizerSpec(msg, at, origin, field == kModelDenormalizerSpec, &info));
      }
    } else {
      TAILOR_RETURN_IF_ERROR(r.Skip(wire));
    }
  }
  if (info.vocab.pieces.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": not a valid sentencepiece model (no pieces)"));
  }
  if (!info.has_trainer_spec || !info.has_normalizer_spec) {
    return absl::InvalidArgumentError(absl::StrCat(
        origin, ": not a valid sentencepiece model (no ",
        info.has_trainer_spec ? "normalizer_spec" : "trainer_spec",
        " after ", info.vocab.pieces.size(), " pieces; is the file truncated?)"));
  }
  return info;
}

absl::StatusOr<std::string> BuildModelProto(const Vocabulary& vocab, const std::string& origin) {
  const size_t n = vocab.pieces.size();
  auto bad = [&](auto&&... what) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": ", what...));
  };
  if (n == 0) return bad("the vocabulary is empty");
  if (vocab.scores.size() != n || vocab.types.size() != n) {
    return bad("the vocabulary has ", n, " pieces but ", vocab.scores.size(), " scores and ",
               vocab.types.size(), " types");
  }
  if (n > 0x7fffffff) return bad("the vocabulary has too many pieces (", n, ")");
  std::optional<size_t> unk;
  std::array<bool, 256> have_byte{};
  int n_bytes = 0;
  std::unordered_map<std::string_view, size_t> normal_ids, reserved_ids;
  for (size_t i = 0; i < n; ++i) {
    const std::string& p = vocab.pieces[i];
    const PieceType t = vocab.types[i];
    const int ti = static_cast<int>(t);
    if (ti < 1 || ti > 6) return bad("piece ", i, " has type ", ti, "; expected 1..6");
    if (p.empty()) return bad("piece ", i, " is empty");
    if (t == PieceType::kUnknown) {
      if (unk) return bad("pieces ", *unk, " and ", i, " are both the unknown piece");
      unk = i;
    }
    if (t == PieceType::kByte) {
      const int b = PieceToByte(p);
      if (b < 0) return bad("piece ", i, " '", p, "' has type BYTE but is not of the form <0xXX>");
      if (!have_byte[b]) ++n_bytes;
      have_byte[b] = true;
    }
    auto& ids = IsReservedType(t) ? reserved_ids : normal_ids;
    auto [it, inserted] = ids.emplace(p, i);
    if (!inserted) return bad("piece '", p, "' appears twice (ids ", it->second, " and ", i, ")");
  }
  if (!unk) return bad("the vocabulary has no unknown piece (such as <unk>), which sentencepiece requires");
  const bool byte_fallback = n_bytes == 256;

  auto find = [&](std::string_view piece) -> int64_t {
    auto it = reserved_ids.find(piece);
    return it != reserved_ids.end() && vocab.types[it->second] == PieceType::kControl
               ? static_cast<int64_t>(it->second)
               : -1;
  };
  WireWriter w;
  for (size_t i = 0; i < n; ++i) {
    WireWriter piece;
    piece.BytesField(kPiecePiece, vocab.pieces[i]);
    piece.FloatField(kPieceScore, vocab.scores[i]);
    PieceType t = vocab.types[i];
    if (t == PieceType::kByte && !byte_fallback) t = PieceType::kUnused;
    piece.VarintField(kPieceType, static_cast<int64_t>(t));
    w.BytesField(kModelPieces, piece.str());
  }
  WireWriter trainer;
  trainer.VarintField(kTrainerModelType, kModelTypeBpe);
  trainer.VarintField(kTrainerVocabSize, static_cast<int64_t>(n));
  trainer.VarintField(kTrainerByteFallback, byte_fallback ? 1 : 0);
  trainer.VarintField(kTrainerUnkId, static_cast<int64_t>(*unk));
  trainer.VarintField(kTrainerBosId, find("<s>"));
  trainer.VarintField(kTrainerEosId, find("</s>"));
  trainer.VarintField(kTrainerPadId, -1);
  trainer.BytesField(kTrainerUnkPiece, vocab.pieces[*unk]);
  trainer.BytesField(kTrainerBosPiece, "<s>");
  trainer.BytesField(kTrainerEosPiece, "</s>");
  w.BytesField(kModelTrainerSpec, trainer.str());
  WireWriter norm;
  norm.BytesField(kNormName, "identity");
  norm.VarintField(kNormAddDummyPrefix, vocab.add_dummy_prefix ? 1 : 0);
  norm.VarintField(kNormRemoveExtraWhitespaces, 0);
  norm.VarintField(kNormEscapeWhitespaces, 1);
  w.BytesField(kModelNormalizerSpec, norm.str());
  return std::move(w.str());
}

}  // namespace tailor::tokenizer_internal
