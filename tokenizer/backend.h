// What a Tokenizer (tokenizer.h) runs: one of two implementations behind one interface,
// SentencePiece (sp_backend.h) and Hugging Face tokenizer.json (hf_tokenizer.h). Internal to
// tokenizer/; users go through Tokenizer. Also the two small public structs of its API.
#ifndef TAILOR_TOKENIZER_BACKEND_H_
#define TAILOR_TOKENIZER_BACKEND_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/vocabulary.h"

namespace tailor {

struct EncodeOptions {
  // Add what the tokenizer's post-processing adds around the ids: for tokenizer.json its
  // post_processor (e.g. TemplateProcessing's BOS); for SentencePiece, BOS when add_bos() (and
  // EOS when add_eos()).
  bool add_special_tokens = false;
  // SentencePiece: the text of control pieces ("<s>", "</s>", ...) and of the unknown piece
  // inside the text becomes those pieces (the text between them is encoded as separate
  // pieces of text). tokenizer.json tokenizers always match their added tokens in the text, as
  // Hugging Face does, whatever this says.
  bool parse_special = false;
};

// What a compiled package stores for its tokenizer; Tokenizer::Load(dir / file_name) reads it
// back into a tokenizer that encodes and decodes identically.
struct SerializedTokenizer {
  std::string file_name;  // "tokenizer.model" (SentencePiece) or "tokenizer.json"
  std::string bytes;
};

namespace tokenizer_internal {

// One decoding pass over an id sequence: text that is final as soon as it is appended.
// Not thread-safe; one per sequence.
class IncrementalDecoder {
 public:
  virtual ~IncrementalDecoder() = default;
  virtual void Push(int32_t id, std::string* out) = 0;
  // Appends what was held back at the end of the sequence.
  virtual void Finish(std::string* out) = 0;
  virtual std::unique_ptr<IncrementalDecoder> Clone() const = 0;
};

// Immutable after construction; every method is const and thread-safe.
class TokenizerBackend {
 public:
  virtual ~TokenizerBackend() = default;
  virtual std::vector<int32_t> Encode(std::string_view text, const EncodeOptions& options) const = 0;
  virtual std::unique_ptr<IncrementalDecoder> NewDecoder(bool skip_special_tokens) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual std::string_view Piece(int32_t id) const = 0;  // "" out of range
  virtual std::optional<int32_t> PieceToId(std::string_view piece) const = 0;
  virtual PieceType Type(int32_t id) const = 0;
  virtual bool IsSpecial(int32_t id) const = 0;
  virtual std::string TokenText(int32_t id) const = 0;
  virtual SerializedTokenizer Serialize() const = 0;
};

}  // namespace tokenizer_internal
}  // namespace tailor

#endif  // TAILOR_TOKENIZER_BACKEND_H_
