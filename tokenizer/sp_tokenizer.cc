#include "tokenizer/sp_tokenizer.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "tokenizer/model_proto.h"
#include "tokenizer/sentencepiece_backend.h"

namespace tailor::tokenizer_internal {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581

std::string SpacesFromSymbols(std::string_view piece) {
  std::string out;
  out.reserve(piece.size());
  size_t pos = 0;
  while (pos < piece.size()) {
    if (piece.substr(pos, kSpaceSymbol.size()) == kSpaceSymbol) {
      out.push_back(' ');
      pos += kSpaceSymbol.size();
    } else {
      out.push_back(piece[pos++]);
    }
  }
  return out;
}

bool IsReserved(PieceType t) {
  return t == PieceType::kControl || t == PieceType::kUnknown || t == PieceType::kByte;
}

class SpDecoder final : public IncrementalDecoder {
 public:
  explicit SpDecoder(const DecodeTable& table) : decoder_(table) {}
  void Push(int32_t id, std::string* out) override { decoder_.Push(id, out); }
  void Finish(std::string* out) override { decoder_.Finish(out); }
  std::unique_ptr<IncrementalDecoder> Clone() const override {
    return std::make_unique<SpDecoder>(*this);
  }

 private:
  PieceDecoder decoder_;
};

}  // namespace

SpTokenizer::SpTokenizer() = default;
SpTokenizer::~SpTokenizer() = default;

absl::StatusOr<std::unique_ptr<SpTokenizer>> SpTokenizer::Create(
    std::string_view model_proto_bytes, const std::string& origin) {
  TAILOR_ASSIGN_OR_RETURN(SpModelInfo info, ParseModelProto(model_proto_bytes, origin));
  auto unsupported = [&](auto&&... what) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": ", what..., " is not supported"));
  };
  if (info.model_type != kModelTypeBpe && info.model_type != kModelTypeUnigram) {
    return unsupported("sentencepiece model type ", info.model_type,
                       " (only BPE (2) and unigram (1) are)");
  }
  if (info.treat_whitespace_as_suffix) return unsupported("treat_whitespace_as_suffix");
  if (info.denormalizer_charsmap_bytes > 0) return unsupported("a denormalizer");
  if (info.vocab.pieces.size() > 0x7fffffff) return unsupported("a vocabulary this large");

  auto tok = std::unique_ptr<SpTokenizer>(new SpTokenizer());
  // sentencepiece gets the model without tailor's options.
  size_t last = 0;
  for (const auto& [start, end] : info.tailor_option_ranges) {
    tok->proto_.append(model_proto_bytes.substr(last, start - last));
    last = end;
  }
  tok->proto_.append(model_proto_bytes.substr(last));
  if (info.add_bos) tok->add_bos_ = *info.add_bos;
  if (info.add_eos) tok->add_eos_ = *info.add_eos;

  std::string error;
  tok->backend_ = SentencePieceBackend::Create(tok->proto_, &error);
  if (tok->backend_ == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": sentencepiece cannot load the model: ", error));
  }
  const size_t n = info.vocab.pieces.size();
  if (static_cast<size_t>(tok->backend_->piece_size()) != n) {
    return absl::InternalError(absl::StrCat(origin, ": sentencepiece sees ",
                                            tok->backend_->piece_size(), " pieces where tailor read ", n));
  }
  tok->pieces_ = std::move(info.vocab.pieces);
  tok->types_ = std::move(info.vocab.types);
  tok->byte_fallback_ = info.byte_fallback;
  tok->add_dummy_prefix_ = info.vocab.add_dummy_prefix;

  DecodeTable& table = tok->decode_table_;
  table.strip_leading_space = info.vocab.add_dummy_prefix || info.remove_extra_whitespaces;
  table.remove_extra_whitespaces = info.remove_extra_whitespaces;
  table.entries.resize(n);
  std::vector<AddedToken> specials;
  for (size_t i = 0; i < n; ++i) {
    const std::string& piece = tok->pieces_[i];
    DecodeTable::Entry& e = table.entries[i];
    switch (tok->types_[i]) {
      case PieceType::kControl:
        e.kind = DecodeTable::Kind::kControl;
        break;
      case PieceType::kUnknown:
        e.kind = DecodeTable::Kind::kUnknown;
        e.surface = info.unk_surface;
        break;
      case PieceType::kByte:  // sentencepiece refuses malformed byte pieces at load
        e.kind = DecodeTable::Kind::kByte;
        e.byte = static_cast<uint8_t>(PieceToByte(piece));
        break;
      default:
        e.kind = DecodeTable::Kind::kText;
        e.surface = SpacesFromSymbols(piece);
        e.leading_space = piece.starts_with(kSpaceSymbol);
        break;
    }
    if (tok->IsSpecial(static_cast<int32_t>(i))) {
      specials.push_back(AddedToken{.content = piece, .id = static_cast<int32_t>(i), .special = true});
    }
  }
  tok->specials_ = AddedTokenMatcher(std::move(specials));
  // As sentencepiece's PieceToId: control/unknown/byte pieces first, then the others.
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < n; ++i) {
      if (IsReserved(tok->types_[i]) == (pass == 0)) {
        tok->piece_ids_.emplace(tok->pieces_[i], static_cast<int32_t>(i));
      }
    }
  }
  auto control = [&](std::string_view piece) {
    std::optional<int32_t> id = tok->PieceToId(piece);
    return id && tok->types_[*id] == PieceType::kControl ? *id : -1;
  };
  tok->bos_id_ = control("<s>");
  tok->eos_id_ = control("</s>");
  for (size_t i = 0; i < n; ++i) {
    if (tok->types_[i] == PieceType::kUnknown) {
      tok->unk_id_ = static_cast<int32_t>(i);
      break;
    }
  }
  return tok;
}

void SpTokenizer::EncodeText(std::string_view text, std::vector<int32_t>* ids) const {
  std::vector<int32_t> part;
  std::string error;
  if (backend_->Encode(text, &part, &error)) ids->insert(ids->end(), part.begin(), part.end());
}

std::vector<int32_t> SpTokenizer::Encode(std::string_view text,
                                         const EncodeOptions& options) const {
  std::vector<int32_t> ids;
  if (options.add_special_tokens && add_bos_ && bos_id_ >= 0) ids.push_back(bos_id_);
  if (options.parse_special) {
    for (const TextSegment& s : specials_.Split(text)) {
      if (s.id >= 0) {
        ids.push_back(s.id);
      } else {
        EncodeText(text.substr(s.start, s.end - s.start), &ids);
      }
    }
  } else {
    EncodeText(text, &ids);
  }
  if (options.add_special_tokens && add_eos_ && eos_id_ >= 0) ids.push_back(eos_id_);
  return ids;
}

std::unique_ptr<IncrementalDecoder> SpTokenizer::NewDecoder(bool /*skip_special_tokens*/) const {
  return std::make_unique<SpDecoder>(decode_table_);
}

std::string_view SpTokenizer::Piece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  return pieces_[static_cast<size_t>(id)];
}

std::optional<int32_t> SpTokenizer::PieceToId(std::string_view piece) const {
  auto it = piece_ids_.find(piece);
  if (it == piece_ids_.end()) return std::nullopt;
  return it->second;
}

PieceType SpTokenizer::Type(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return PieceType::kUnused;
  return types_[static_cast<size_t>(id)];
}

bool SpTokenizer::IsSpecial(int32_t id) const {
  const PieceType t = Type(id);
  return t == PieceType::kControl || t == PieceType::kUnknown;
}

std::string SpTokenizer::TokenText(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  const DecodeTable::Entry& e = decode_table_.entries[static_cast<size_t>(id)];
  switch (e.kind) {
    case DecodeTable::Kind::kText: return e.surface;
    case DecodeTable::Kind::kByte: return std::string(1, static_cast<char>(e.byte));
    default: return pieces_[static_cast<size_t>(id)];
  }
}

SerializedTokenizer SpTokenizer::Serialize() const {
  SerializedTokenizer s{"tokenizer.model", proto_};
  if (!add_bos_ || add_eos_) s.bytes += SerializeTailorOptions(add_bos_, add_eos_);
  return s;
}

bool SpTokenizer::ReferenceDecode(std::span<const int32_t> ids, std::string* text,
                                  std::string* error) const {
  return backend_->Decode(std::vector<int32_t>(ids.begin(), ids.end()), text, error);
}

}  // namespace tailor::tokenizer_internal
