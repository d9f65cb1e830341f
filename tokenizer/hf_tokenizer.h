// The Hugging Face tokenizer.json implementation behind Tokenizer, following the pipeline of HF's
// `tokenizers` library (Rust):
//   1. added tokens whose "normalized" is false are matched in the raw text (added_tokens.h);
//   2. each stretch between them is normalized (normalizer.h), then the added tokens whose
//      "normalized" is true are matched in it;
//   3. the remaining stretches are pre-tokenized into words (pre_tokenizer.h);
//   4. each word is tokenized by the model (BPE only, bpe_model.h);
//   5. with add_special_tokens, the post_processor's tokens go around the ids
//      (TemplateProcessing, BertProcessing, RobertaProcessing; ByteLevel adds none; Sequence);
// and decoding maps ids to token strings (added tokens first), drops special added tokens when
// asked, and runs the decoder (decoder.h). Text that is not valid UTF-8 is first made valid
// (each invalid subpart as U+FFFD), as HF requires valid text.
//
// Not supported, refused with an error naming the file and field: models other than BPE,
// components of unknown types. Ignored: "truncation" and "padding" (batch settings).
//
// BOS/EOS: tokenizer.json does not name them; they come from `names` at Create (the caller reads
// tokenizer_config.json), else from the document's own "tailor": {"bos_token", "eos_token"}
// section (written by tailor for GGUF vocabularies and packages), else BOS is the first token the
// post-processor puts in front, and EOS is unknown (-1).
//
// Immutable after Create; every method is thread-safe.
#ifndef TAILOR_TOKENIZER_HF_TOKENIZER_H_
#define TAILOR_TOKENIZER_HF_TOKENIZER_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/backend.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoder.h"
#include "tokenizer/json_field.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer_document.h"

namespace tailor::tokenizer_internal {

// The BOS and EOS tokens by their text, as tokenizer_config.json names them; nullopt where it
// does not (then the document's "tailor" section, or the fallbacks above, decide).
struct SpecialTokenNames {
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
};

class HfTokenizer final : public TokenizerBackend {
 public:
  // Parses tokenizer.json text. Errors name `origin` and the field.
  static absl::StatusOr<std::unique_ptr<HfTokenizer>> Create(std::string document,
                                                             const std::string& origin,
                                                             const SpecialTokenNames& names);

  std::vector<int32_t> Encode(std::string_view text, const EncodeOptions& options) const override;
  std::unique_ptr<IncrementalDecoder> NewDecoder(bool skip_special_tokens) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(tokens_.size()); }
  std::string_view Piece(int32_t id) const override;
  std::optional<int32_t> PieceToId(std::string_view piece) const override;
  PieceType Type(int32_t id) const override;
  bool IsSpecial(int32_t id) const override;
  std::string TokenText(int32_t id) const override;
  // {"tokenizer.json", the document} (with a "tailor" section when BOS/EOS came from `names`).
  SerializedTokenizer Serialize() const override;

  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  int32_t unk_id() const { return model_->unk_id(); }
  bool byte_fallback() const { return model_->byte_fallback(); }
  // True if Encode with add_special_tokens puts bos_id() first.
  bool adds_bos() const { return bos_id_ >= 0 && !prefix_.empty() && prefix_[0] == bos_id_; }
  // The token string of `id` (added token content, else the vocabulary's), nullopt for none.
  std::optional<std::string_view> IdToToken(int32_t id) const;

 private:
  HfTokenizer() = default;
  absl::Status ParseAddedTokens(const JsonField& doc, int64_t id_limit,
                                std::vector<AddedToken>* tokens);
  absl::Status ParsePostProcessor(const std::optional<JsonField>& field);

  enum Flag : uint8_t { kPresent = 1, kAdded = 2, kSpecial = 4 };

  std::string origin_;
  std::string document_;
  bool document_has_names_ = false;  // the document's "tailor" section holds bos/eos_token_
  std::optional<std::string> bos_token_, eos_token_;
  std::unique_ptr<Normalizer> normalizer_;      // may be null
  std::unique_ptr<PreTokenizer> pre_tokenizer_;  // may be null
  std::unique_ptr<BpeModel> model_;
  AddedTokenMatcher raw_added_;         // "normalized": false
  AddedTokenMatcher normalized_added_;  // "normalized": true (contents normalized)
  std::vector<int32_t> prefix_, suffix_;  // the post-processor's, for one sequence
  DecoderPipeline decoder_;
  std::vector<std::string> tokens_;  // by id: added content or vocabulary string
  std::vector<uint8_t> flags_;       // by id: Flag bits
  absl::flat_hash_map<std::string, int32_t> added_ids_;
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
};

}  // namespace tailor::tokenizer_internal

#endif  // TAILOR_TOKENIZER_HF_TOKENIZER_H_
