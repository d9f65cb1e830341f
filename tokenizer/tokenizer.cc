#include "tokenizer/tokenizer.h"

#include <fstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/gguf_file.h"
#include "common/mapped_file.h"
#include "common/status_macros.h"
#include "tokenizer/model_proto.h"
#include "tokenizer/sentencepiece_backend.h"
#include "tokenizer/vocabulary_readers.h"

namespace tailor {
namespace {

using tokenizer_internal::DecodeTable;
using tokenizer_internal::PieceDecoder;
using tokenizer_internal::SentencePieceBackend;
using tokenizer_internal::SpModelInfo;

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

// The first four bytes of `path` ("" if shorter or unreadable).
std::string Magic(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  char buf[4];
  if (!in.read(buf, 4)) return "";
  return std::string(buf, 4);
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromSerializedModel(
    std::string_view model_proto_bytes, std::string_view origin) {
  const std::string src(origin);
  TAILOR_ASSIGN_OR_RETURN(SpModelInfo info,
                          tokenizer_internal::ParseModelProto(model_proto_bytes, src));
  auto unsupported = [&](auto&&... what) {
    return absl::InvalidArgumentError(absl::StrCat(src, ": ", what..., " is not supported"));
  };
  if (info.model_type != tokenizer_internal::kModelTypeBpe &&
      info.model_type != tokenizer_internal::kModelTypeUnigram) {
    return unsupported("sentencepiece model type ", info.model_type,
                       " (only BPE (2) and unigram (1) are)");
  }
  if (info.treat_whitespace_as_suffix) return unsupported("treat_whitespace_as_suffix");
  if (info.denormalizer_charsmap_bytes > 0) return unsupported("a denormalizer");
  if (info.vocab.pieces.size() > 0x7fffffff) return unsupported("a vocabulary this large");

  std::string error;
  std::unique_ptr<SentencePieceBackend> backend =
      SentencePieceBackend::Create(model_proto_bytes, &error);
  if (backend == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(src, ": sentencepiece cannot load the model: ", error));
  }
  const size_t n = info.vocab.pieces.size();
  if (static_cast<size_t>(backend->piece_size()) != n) {
    return absl::InternalError(absl::StrCat(src, ": sentencepiece sees ", backend->piece_size(),
                                            " pieces where tailor read ", n));
  }

  auto tok = std::unique_ptr<Tokenizer>(new Tokenizer());
  tok->origin_ = src;
  tok->serialized_ = std::string(model_proto_bytes);
  tok->backend_ = std::move(backend);
  tok->pieces_ = std::move(info.vocab.pieces);
  tok->types_ = std::move(info.vocab.types);
  tok->byte_fallback_ = info.byte_fallback;
  tok->add_dummy_prefix_ = info.vocab.add_dummy_prefix;

  DecodeTable& table = tok->decode_table_;
  table.strip_leading_space = info.vocab.add_dummy_prefix || info.remove_extra_whitespaces;
  table.remove_extra_whitespaces = info.remove_extra_whitespaces;
  table.entries.resize(n);
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
        e.byte = static_cast<uint8_t>(tokenizer_internal::PieceToByte(piece));
        break;
      default:
        e.kind = DecodeTable::Kind::kText;
        e.surface = SpacesFromSymbols(piece);
        e.leading_space = piece.starts_with(kSpaceSymbol);
        break;
    }
  }
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

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromVocabulary(const Vocabulary& vocab,
                                                                     std::string_view origin) {
  TAILOR_ASSIGN_OR_RETURN(std::string proto,
                          tokenizer_internal::BuildModelProto(vocab, std::string(origin)));
  return FromSerializedModel(proto, origin);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::filesystem::path& path,
                                                           int32_t expected_vocab_size) {
  const std::string src = path.string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat("tokenizer file ", src, " does not exist"));
  }
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer ", src, " is not a regular file"));
  }
  const std::string ext = path.extension().string();
  std::unique_ptr<Tokenizer> tok;
  if (Magic(path) == "GGUF" || ext == ".gguf") {
    TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> gguf, GgufFile::Open(path));
    TAILOR_ASSIGN_OR_RETURN(Vocabulary vocab, ReadGgufVocabulary(*gguf));
    TAILOR_ASSIGN_OR_RETURN(tok, FromVocabulary(vocab, src));
  } else if (ext == ".bin") {
    absl::StatusOr<Vocabulary> vocab = ReadLlama2cVocabulary(path, expected_vocab_size);
    if (vocab.ok()) {
      TAILOR_ASSIGN_OR_RETURN(tok, FromVocabulary(*vocab, src));
    } else {  // perhaps a sentencepiece model named .bin; if not, the llama2.c error is the one
      absl::StatusOr<std::string> bytes = ReadFileToString(path);
      absl::StatusOr<std::unique_ptr<Tokenizer>> sp =
          bytes.ok() ? FromSerializedModel(*bytes, src) : bytes.status();
      if (!sp.ok()) return vocab.status();
      tok = std::move(*sp);
    }
  } else {
    TAILOR_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
    absl::StatusOr<std::unique_ptr<Tokenizer>> sp = FromSerializedModel(bytes, src);
    if (sp.ok()) {
      tok = std::move(*sp);
    } else if (ext == ".model" || expected_vocab_size <= 0) {
      return sp.status();
    } else {  // no telling extension: perhaps a llama2.c tokenizer
      absl::StatusOr<Vocabulary> vocab = ReadLlama2cVocabulary(path, expected_vocab_size);
      if (!vocab.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            src, ": neither a sentencepiece model (", sp.status().message(),
            ") nor a llama2.c tokenizer (", vocab.status().message(), ")"));
      }
      TAILOR_ASSIGN_OR_RETURN(tok, FromVocabulary(*vocab, src));
    }
  }
  if (expected_vocab_size > 0 && tok->vocab_size() > expected_vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer ", src, " has ", tok->vocab_size(),
                     " pieces but the model's vocabulary has ", expected_vocab_size));
  }
  return tok;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text) const {
  std::vector<int32_t> ids;
  std::string error;
  if (!backend_->Encode(text, &ids, &error)) return {};
  return ids;
}

std::string Tokenizer::Decode(std::span<const int32_t> ids) const {
  PieceDecoder decoder(decode_table_);
  std::string out;
  for (int32_t id : ids) decoder.Push(id, &out);
  decoder.Finish(&out);
  return out;
}

absl::StatusOr<std::string> Tokenizer::ReferenceDecode(std::span<const int32_t> ids) const {
  std::string text, error;
  if (!backend_->Decode(std::vector<int32_t>(ids.begin(), ids.end()), &text, &error)) {
    return absl::InvalidArgumentError(absl::StrCat(origin_, ": sentencepiece: ", error));
  }
  return text;
}

std::string_view Tokenizer::Piece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  return pieces_[static_cast<size_t>(id)];
}

std::optional<int32_t> Tokenizer::PieceToId(std::string_view piece) const {
  auto it = piece_ids_.find(piece);
  if (it == piece_ids_.end()) return std::nullopt;
  return it->second;
}

PieceType Tokenizer::Type(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return PieceType::kUnused;
  return types_[static_cast<size_t>(id)];
}

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer,
                                           std::span<const int32_t> context)
    : decoder_(tokenizer.decode_table()) {
  std::string context_text;  // already shown to the user (or never to be shown)
  for (int32_t id : context) decoder_.Push(id, &context_text);
  PieceDecoder probe = decoder_;
  probe.Finish(&context_tail_);
  matching_ = !context_tail_.empty();
}

std::string StreamingDetokenizer::Filter(std::string text) {
  if (!matching_) return text;
  held_ += text;
  if (held_.size() >= context_tail_.size()) {
    matching_ = false;
    std::string out = held_.starts_with(context_tail_) ? held_.substr(context_tail_.size())
                                                       : std::move(held_);
    held_.clear();
    return out;
  }
  if (std::string_view(context_tail_).starts_with(held_)) return "";
  matching_ = false;  // the stream diverged from Decode(context): show all of it
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

std::string StreamingDetokenizer::Push(int32_t id) {
  std::string out;
  decoder_.Push(id, &out);
  return Filter(std::move(out));
}

std::string StreamingDetokenizer::Flush() {
  std::string out;
  decoder_.Finish(&out);
  out = Filter(std::move(out));
  if (matching_) {  // the whole stream is a strict prefix of Decode(context)'s tail: nothing new
    matching_ = false;
    held_.clear();
  }
  return out;
}

}  // namespace tailor
