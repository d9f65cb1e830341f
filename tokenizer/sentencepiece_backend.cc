// The only translation unit that includes sentencepiece_processor.h: no abseil header may be
// included here, directly or through tailor headers (see sentencepiece_backend.h).
#include "tokenizer/sentencepiece_backend.h"

#include <sentencepiece_processor.h>

#include <exception>
#include <string>

namespace tailor::tokenizer_internal {

struct SentencePieceBackend::Impl {
  sentencepiece::SentencePieceProcessor processor;
};

SentencePieceBackend::SentencePieceBackend() : impl_(std::make_unique<Impl>()) {}
SentencePieceBackend::~SentencePieceBackend() = default;

std::unique_ptr<SentencePieceBackend> SentencePieceBackend::Create(
    std::string_view serialized_model, std::string* error) {
  std::unique_ptr<SentencePieceBackend> backend(new SentencePieceBackend());
  sentencepiece::util::Status status;
  try {
    status = backend->impl_->processor.LoadFromSerializedProto(serialized_model);
  } catch (const std::exception& e) {
    // The library throws for some malformed models rather than returning a status: its trie
    // builder (Darts) refuses a piece that starts with a NUL byte ("zero-length key"), found by
    // tests/fuzz/sentencepiece_model_fuzz.cc. The half-built processor is dropped with `backend`.
    *error = std::string("the sentencepiece library refused it: ") + e.what();
    return nullptr;
  }
  if (!status.ok()) {
    *error = status.ToString();
    return nullptr;
  }
  return backend;
}

bool SentencePieceBackend::Encode(std::string_view text, std::vector<int32_t>* ids,
                                  std::string* error) const {
  std::vector<int> out;
  const sentencepiece::util::Status status = impl_->processor.Encode(text, &out);
  if (!status.ok()) {
    *error = status.ToString();
    return false;
  }
  ids->assign(out.begin(), out.end());
  return true;
}

bool SentencePieceBackend::Decode(const std::vector<int32_t>& ids, std::string* text,
                                  std::string* error) const {
  const std::vector<int> in(ids.begin(), ids.end());
  const sentencepiece::util::Status status = impl_->processor.Decode(in, text);
  if (!status.ok()) {
    *error = status.ToString();
    return false;
  }
  return true;
}

int32_t SentencePieceBackend::piece_size() const { return impl_->processor.GetPieceSize(); }

}  // namespace tailor::tokenizer_internal
