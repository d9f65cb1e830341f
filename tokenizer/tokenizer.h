// Llama-style SentencePiece tokenizer (BPE, with or without byte fallback) and an incremental
// detokenizer for streaming generated text.
//
// Encoding is sentencepiece's own (libsentencepiece, behind tokenizer/sentencepiece_backend.h).
// Decoding is tailor's byte-level reimplementation of sentencepiece's Decode
// (tokenizer/piece_decoder.h), which makes streaming exact: for any split of an id sequence,
// the streamed pieces concatenate to the whole decode.
//
// Sources: a sentencepiece .model (ModelProto), a Vocabulary (from GGUF metadata or a llama2.c
// tokenizer .bin), from which a ModelProto is built, or ModelProto bytes stored in a package.
#ifndef TAILOR_TOKENIZER_TOKENIZER_H_
#define TAILOR_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "common/vocabulary.h"
#include "tokenizer/piece_decoder.h"

namespace tailor {

namespace tokenizer_internal {
class SentencePieceBackend;
}

// Immutable after construction; every const method is safe to call from several threads.
class Tokenizer {
 public:
  // Loads a tokenizer file, by content and extension: a GGUF file (magic "GGUF": its
  // vocabulary), a sentencepiece .model, or a llama2.c tokenizer .bin (which needs
  // `expected_vocab_size`, as it does not store its size). A tokenizer with more pieces than
  // `expected_vocab_size` (the model's vocabulary) is an error; fewer is allowed. With
  // `expected_vocab_size` <= 0 nothing is checked (and a .bin cannot be read).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::filesystem::path& path,
                                                         int32_t expected_vocab_size);
  // Builds a sentencepiece BPE model from `vocab`. `origin` names the source in errors.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromVocabulary(const Vocabulary& vocab,
                                                                   std::string_view origin);
  // Loads serialized ModelProto bytes (a .model file's content, or SerializedModel()).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromSerializedModel(
      std::string_view model_proto_bytes, std::string_view origin);

  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;
  ~Tokenizer();

  // Text -> ids, without BOS/EOS. Text that is not valid UTF-8 is encoded as sentencepiece does
  // (invalid bytes become U+FFFD). Returns {} only if sentencepiece itself fails.
  std::vector<int32_t> Encode(std::string_view text) const;
  // Ids -> text for a whole sequence, as sentencepiece decodes it: control pieces (BOS/EOS)
  // vanish, the dummy-prefix space of the first piece is dropped, byte pieces are joined into
  // UTF-8 (invalid or incomplete bytes -> U+FFFD). Ids out of range decode to nothing.
  std::string Decode(std::span<const int32_t> ids) const;

  int32_t vocab_size() const { return static_cast<int32_t>(pieces_.size()); }
  // The piece text of `id` (U+2581 for spaces, "<0x0A>" for byte pieces); "" if out of range.
  std::string_view Piece(int32_t id) const;
  std::optional<int32_t> PieceToId(std::string_view piece) const;
  PieceType Type(int32_t id) const;  // kUnused if out of range
  int32_t bos_id() const { return bos_id_; }  // the control piece "<s>", or -1
  int32_t eos_id() const { return eos_id_; }  // the control piece "</s>", or -1
  int32_t unk_id() const { return unk_id_; }  // the unknown piece, or -1
  bool byte_fallback() const { return byte_fallback_; }
  bool add_dummy_prefix() const { return add_dummy_prefix_; }
  const std::string& origin() const { return origin_; }

  // The ModelProto bytes this tokenizer runs (for packages; reload with FromSerializedModel).
  std::string SerializedModel() const { return serialized_; }

  // sentencepiece's own Decode, for tests that compare it with Decode. Error text on failure.
  absl::StatusOr<std::string> ReferenceDecode(std::span<const int32_t> ids) const;

 private:
  friend class StreamingDetokenizer;
  Tokenizer();
  const tokenizer_internal::DecodeTable& decode_table() const { return decode_table_; }

  std::string origin_;
  std::string serialized_;
  std::unique_ptr<tokenizer_internal::SentencePieceBackend> backend_;
  std::vector<std::string> pieces_;
  std::vector<PieceType> types_;
  std::unordered_map<std::string_view, int32_t> piece_ids_;  // keys view into pieces_
  tokenizer_internal::DecodeTable decode_table_;
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  int32_t unk_id_ = -1;
  bool byte_fallback_ = false;
  bool add_dummy_prefix_ = true;
};

// Turns generated ids into text as they arrive, one per stream. Not thread-safe. Holds a
// reference to the tokenizer, which must outlive it.
//
// Exact: for a context C and ids T, the concatenated Push outputs plus Flush equal
// Decode(C + T) with Decode(C) removed from its front (whenever Decode(C) is a prefix of it).
// So after a context [BOS, "▁Once"] the piece "▁upon" streams as " upon", while after [BOS]
// alone "▁Once" streams as "Once" (the dummy-prefix space of the first piece is dropped).
class StreamingDetokenizer {
 public:
  // `context`: ids already in the sequence (e.g. the prompt, BOS included); their text is not
  // emitted.
  StreamingDetokenizer(const Tokenizer& tokenizer, std::span<const int32_t> context);

  // Text that became final with `id`: never part of a UTF-8 character or of a byte-fallback
  // sequence that later ids could still complete.
  std::string Push(int32_t id);
  // The rest at the end of the stream: bytes of an unfinished character become U+FFFD, as in
  // Decode. Call once, when the stream ends.
  std::string Flush();

 private:
  std::string Filter(std::string text);

  tokenizer_internal::PieceDecoder decoder_;
  // What Decode(context) has beyond what the decoder emitted for the context (the U+FFFDs of
  // unfinished bytes at its end); the stream's first bytes are checked against it and dropped.
  std::string context_tail_;
  std::string held_;       // stream text held while it still matches a prefix of context_tail_
  bool matching_ = false;  // context_tail_ not yet resolved
};

}  // namespace tailor

#endif  // TAILOR_TOKENIZER_TOKENIZER_H_
