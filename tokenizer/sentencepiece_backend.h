// The one door to libsentencepiece. This header includes only standard headers, so it can be
// used beside abseil; sentencepiece_processor.h (0.1.97) declares its own absl::string_view and
// is included by sentencepiece_backend.cc alone, which includes no abseil header.
#ifndef TAILOR_TOKENIZER_SENTENCEPIECE_BACKEND_H_
#define TAILOR_TOKENIZER_SENTENCEPIECE_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tailor::tokenizer_internal {

// A loaded sentencepiece model. Immutable after Create; Encode/Decode are const and may be
// called from several threads at once.
class SentencePieceBackend {
 public:
  // Loads serialized ModelProto bytes. On failure returns nullptr and sets *error to
  // sentencepiece's message.
  static std::unique_ptr<SentencePieceBackend> Create(std::string_view serialized_model,
                                                      std::string* error);
  ~SentencePieceBackend();

  // Text -> ids (no BOS/EOS). False, with *error set, if sentencepiece fails.
  bool Encode(std::string_view text, std::vector<int32_t>* ids, std::string* error) const;
  // sentencepiece's own decoding (the reference tailor's decoder is tested against). False,
  // with *error set, for an id out of range.
  bool Decode(const std::vector<int32_t>& ids, std::string* text, std::string* error) const;
  int32_t piece_size() const;

 private:
  SentencePieceBackend();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tailor::tokenizer_internal

#endif  // TAILOR_TOKENIZER_SENTENCEPIECE_BACKEND_H_
