// Text <-> token ids, for two kinds of tokenizer behind one class:
//   - SentencePiece (Llama 2, Mistral, TinyStories): a sentencepiece .model (ModelProto), a GGUF
//     vocabulary with tokenizer.ggml.model "llama", or a llama2.c tokenizer .bin. Encoding is
//     libsentencepiece's; decoding is tailor's exact byte-level reimplementation of its Decode
//     (piece_decoder.h). See sp_tokenizer.h.
//   - Hugging Face tokenizer.json (Llama 3, Qwen2/3, Gemma 3, Llama 2 / Mistral HF repos): BPE,
//     byte-level or SentencePiece-style, with HF's normalizers, pre-tokenizers, added tokens,
//     post-processors and decoders; also a GGUF vocabulary with tokenizer.ggml.model "gpt2",
//     turned into the equivalent tokenizer.json. See hf_tokenizer.h and gguf_bpe.h.
// Streaming detokenization is exact for both: for any split of an id sequence, the streamed
// text concatenates to the whole decode.
//
// EncodeOptions and SerializedTokenizer, used below, are declared in tokenizer/backend.h.
#ifndef TAILOR_TOKENIZER_TOKENIZER_H_
#define TAILOR_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/vocabulary.h"
#include "tokenizer/backend.h"

namespace tailor {

namespace tokenizer_internal {
class SpTokenizer;
class HfTokenizer;
}  // namespace tokenizer_internal
class GgufFile;

// Immutable after construction (but for set_add_bos/set_add_eos, to be called before sharing);
// every const method is safe to call from several threads.
class Tokenizer {
 public:
  enum class Kind { kSentencePiece, kHuggingFace };

  // Loads a tokenizer file, by content and name: a GGUF file (magic "GGUF": its vocabulary,
  // "llama" or "gpt2"), a tokenizer.json (name ending in .json, or text starting with '{'), a
  // sentencepiece .model, or a llama2.c tokenizer .bin (which needs `expected_vocab_size`, as it
  // does not store its size). For a tokenizer.json, a tokenizer_config.json beside it names BOS
  // and EOS ("bos_token", "eos_token"). A tokenizer with more tokens than `expected_vocab_size`
  // (the model's vocabulary) is an error; fewer is allowed up to max(1024, expected / 64) rows of
  // embedding padding (Qwen's 151669 tokens for 151936 rows), not more. With `expected_vocab_size` <= 0
  // nothing is checked (and a .bin cannot be read).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::filesystem::path& path,
                                                         int32_t expected_vocab_size);
  // Builds a sentencepiece BPE model from `vocab`. `origin` names the source in errors.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromVocabulary(const Vocabulary& vocab,
                                                                   std::string_view origin);
  // The vocabulary in a parsed GGUF file's metadata ("llama" or "gpt2"), as Load reads it.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromGguf(const GgufFile& gguf);
  // Loads serialized ModelProto bytes (a .model file's content, or a SentencePiece Serialize()).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromSerializedModel(
      std::string_view model_proto_bytes, std::string_view origin);
  // Loads tokenizer.json text. `bos_token`/`eos_token`: as tokenizer_config.json names them.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromTokenizerJson(
      std::string document, std::string_view origin,
      std::optional<std::string> bos_token = std::nullopt,
      std::optional<std::string> eos_token = std::nullopt);

  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;
  ~Tokenizer();

  Kind kind() const { return hf_ != nullptr ? Kind::kHuggingFace : Kind::kSentencePiece; }

  // Text -> ids with default options: no BOS/EOS; SentencePiece matches no special text,
  // tokenizer.json matches its added tokens. Text that is not valid UTF-8: sentencepiece makes
  // invalid bytes U+FFFD; tokenizer.json replaces each invalid subpart with U+FFFD first.
  std::vector<int32_t> Encode(std::string_view text) const { return Encode(text, {}); }
  std::vector<int32_t> Encode(std::string_view text, const EncodeOptions& options) const;

  // Ids -> text for a whole sequence. SentencePiece: as sentencepiece decodes (control pieces
  // vanish whatever skip_special_tokens says, the dummy-prefix space of the first piece is
  // dropped, byte pieces joined into UTF-8, invalid or incomplete bytes -> U+FFFD).
  // tokenizer.json: as HF's decode (special added tokens kept unless skip_special_tokens).
  // Ids out of range decode to nothing.
  std::string Decode(std::span<const int32_t> ids) const { return Decode(ids, false); }
  std::string Decode(std::span<const int32_t> ids, bool skip_special_tokens) const;

  // One past the largest token id.
  int32_t vocab_size() const { return backend_->vocab_size(); }
  // The vocabulary string of `id` (SentencePiece: "▁Hello", "<0x0A>"; byte-level BPE: "ĠHello";
  // added tokens: their text); "" if out of range.
  std::string_view Piece(int32_t id) const { return backend_->Piece(id); }
  // Vocabulary string -> id, added tokens included.
  std::optional<int32_t> PieceToId(std::string_view piece) const { return backend_->PieceToId(piece); }
  std::optional<int32_t> TokenToId(std::string_view token) const { return PieceToId(token); }
  // kUnused if out of range. tokenizer.json: special added tokens are kControl, other added
  // tokens kUserDefined, the model's unk_token kUnknown, byte-fallback tokens kByte.
  PieceType Type(int32_t id) const { return backend_->Type(id); }
  // SentencePiece: control and unknown pieces. tokenizer.json: added tokens marked "special".
  bool IsSpecial(int32_t id) const { return backend_->IsSpecial(id); }
  // The exact text or bytes `id` stands for on its own (for log-probabilities): byte-level
  // tokens their raw bytes (possibly part of a UTF-8 character), "▁" as a space, <0xNN> as that
  // byte, special tokens their text. "" if out of range.
  std::string TokenText(int32_t id) const { return backend_->TokenText(id); }

  int32_t bos_id() const { return bos_id_; }  // SentencePiece: the control piece "<s>"; or -1
  int32_t eos_id() const { return eos_id_; }  // SentencePiece: the control piece "</s>"; or -1
  int32_t unk_id() const { return unk_id_; }  // the unknown piece / unk_token, or -1
  bool byte_fallback() const;
  // SentencePiece: the normalizer adds a dummy prefix. tokenizer.json: false.
  bool add_dummy_prefix() const;
  // Whether Encode with add_special_tokens adds BOS first / EOS last. SentencePiece: set here
  // (defaults true / false; from tokenizer_config.json or GGUF add_bos_token/add_eos_token);
  // tokenizer.json: its post-processor decides and the setters do nothing.
  bool add_bos() const;
  bool add_eos() const;
  void set_add_bos(bool add);
  void set_add_eos(bool add);
  const std::string& origin() const { return origin_; }

  // What a package stores: {"tokenizer.model", ModelProto bytes} or {"tokenizer.json",
  // document}; Load(dir / file_name) gives back a tokenizer that encodes and decodes alike.
  SerializedTokenizer Serialize() const { return backend_->Serialize(); }
  // Serialize().bytes (older name; Load detects either kind by content).
  std::string SerializedModel() const { return Serialize().bytes; }

  // sentencepiece's own Decode, for tests that compare it with Decode. Error text on failure,
  // and an error for tokenizer.json tokenizers.
  absl::StatusOr<std::string> ReferenceDecode(std::span<const int32_t> ids) const;

 private:
  friend class StreamingDetokenizer;
  Tokenizer() = default;
  static std::unique_ptr<Tokenizer> Wrap(std::unique_ptr<tokenizer_internal::SpTokenizer> sp,
                                         std::string_view origin);
  static std::unique_ptr<Tokenizer> Wrap(std::unique_ptr<tokenizer_internal::HfTokenizer> hf,
                                         std::string_view origin);
  const tokenizer_internal::TokenizerBackend& backend() const { return *backend_; }

  std::string origin_;
  std::unique_ptr<tokenizer_internal::TokenizerBackend> backend_;
  tokenizer_internal::SpTokenizer* sp_ = nullptr;  // backend_, when SentencePiece
  tokenizer_internal::HfTokenizer* hf_ = nullptr;  // backend_, when tokenizer.json
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  int32_t unk_id_ = -1;
};

// Turns generated ids into text as they arrive, one per stream. Not thread-safe. Holds a
// reference to the tokenizer, which must outlive it.
//
// Exact: for a context C and ids T, the concatenated Push outputs plus Flush equal
// Decode(C + T) with Decode(C) removed from its front (whenever Decode(C) is a prefix of it).
// So after a context [BOS, "▁Once"] the piece "▁upon" streams as " upon", while after [BOS]
// alone "▁Once" streams as "Once" (the dummy-prefix space of the first piece is dropped).
// Emitted text never ends inside a UTF-8 character: bytes of byte-level or byte-fallback tokens
// are held until their character is complete (or, at Flush, become U+FFFD as in Decode).
class StreamingDetokenizer {
 public:
  // `context`: ids already in the sequence (e.g. the prompt, BOS included); their text is not
  // emitted. `skip_special_tokens`: as in Decode (tokenizer.json tokenizers only).
  StreamingDetokenizer(const Tokenizer& tokenizer, std::span<const int32_t> context,
                       bool skip_special_tokens = false);

  // Text that became final with `id`.
  std::string Push(int32_t id);
  // The rest at the end of the stream. Call once, when the stream ends.
  std::string Flush();

 private:
  std::string Filter(std::string text);

  std::unique_ptr<tokenizer_internal::IncrementalDecoder> decoder_;
  // What Decode(context) has beyond what the decoder emitted for the context (the U+FFFDs of
  // unfinished bytes at its end); the stream's first bytes are checked against it and dropped.
  std::string context_tail_;
  std::string held_;       // stream text held while it still matches a prefix of context_tail_
  bool matching_ = false;  // context_tail_ not yet resolved
};

}  // namespace tailor

#endif  // TAILOR_TOKENIZER_TOKENIZER_H_
