// The SentencePiece implementation behind Tokenizer: encoding by libsentencepiece (through
// sentencepiece_backend.h), decoding by tailor's exact incremental PieceDecoder, and the pieces
// read from the ModelProto. Adds, on top of sentencepiece: BOS/EOS on request (add_bos/add_eos),
// and, on request, control pieces matched in the text (parse_special).
//
// Serialization: the ModelProto bytes; when add_bos/add_eos differ from the defaults (true,
// false) they are appended as field 8001 of ModelProto (inside its extension range 200..max;
// removed again before libsentencepiece reads the model): { 1: add_bos, 2: add_eos (varints) }.
//
// Immutable after construction except for set_add_bos/set_add_eos, which must happen before the
// tokenizer is shared between threads.
#ifndef TAILOR_TOKENIZER_SP_TOKENIZER_H_
#define TAILOR_TOKENIZER_SP_TOKENIZER_H_

#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/backend.h"
#include "tokenizer/piece_decoder.h"

namespace tailor::tokenizer_internal {

class SentencePieceBackend;

class SpTokenizer final : public TokenizerBackend {
 public:
  // Loads serialized ModelProto bytes (with tailor's optional field 8001). `origin` names the
  // source in errors.
  static absl::StatusOr<std::unique_ptr<SpTokenizer>> Create(std::string_view model_proto_bytes,
                                                             const std::string& origin);
  ~SpTokenizer() override;

  std::vector<int32_t> Encode(std::string_view text, const EncodeOptions& options) const override;
  std::unique_ptr<IncrementalDecoder> NewDecoder(bool skip_special_tokens) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  std::string_view Piece(int32_t id) const override;
  std::optional<int32_t> PieceToId(std::string_view piece) const override;
  PieceType Type(int32_t id) const override;
  // Control and unknown pieces.
  bool IsSpecial(int32_t id) const override;
  std::string TokenText(int32_t id) const override;
  SerializedTokenizer Serialize() const override;

  // sentencepiece's own Decode (the reference). False with *error set on failure.
  bool ReferenceDecode(std::span<const int32_t> ids, std::string* text, std::string* error) const;

  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  int32_t unk_id() const { return unk_id_; }
  bool byte_fallback() const { return byte_fallback_; }
  bool add_dummy_prefix() const { return add_dummy_prefix_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  void set_add_bos(bool add) { add_bos_ = add; }
  void set_add_eos(bool add) { add_eos_ = add; }

 private:
  SpTokenizer();
  // sentencepiece's encoding of plain text (no specials).
  void EncodeText(std::string_view text, std::vector<int32_t>* ids) const;

  std::string proto_;  // the ModelProto bytes without tailor's field
  std::unique_ptr<SentencePieceBackend> backend_;
  std::vector<std::string> pieces_;
  std::vector<PieceType> types_;
  std::unordered_map<std::string_view, int32_t> piece_ids_;  // keys view into pieces_
  DecodeTable decode_table_;
  AddedTokenMatcher specials_;  // control and unknown pieces, for parse_special
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  int32_t unk_id_ = -1;
  bool byte_fallback_ = false;
  bool add_dummy_prefix_ = true;
  bool add_bos_ = true;
  bool add_eos_ = false;
};

}  // namespace tailor::tokenizer_internal

#endif  // TAILOR_TOKENIZER_SP_TOKENIZER_H_
