// A tokenizer vocabulary as plain data: what GGUF metadata and llama2.c tokenizer files carry.
// Produced by model loaders (models/) and consumed by tokenizer/; no behaviour here.
#ifndef TAILOR_COMMON_VOCABULARY_H_
#define TAILOR_COMMON_VOCABULARY_H_

#include <cstdint>
#include <string>
#include <vector>

namespace tailor {

// Numbering as in sentencepiece's ModelProto and GGUF's tokenizer.ggml.token_type.
enum class PieceType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct Vocabulary {
  std::vector<std::string> pieces;  // UTF-8, "▁" (U+2581) for a space, "<0xAB>" for byte pieces
  std::vector<float> scores;        // same length as pieces
  std::vector<PieceType> types;     // same length as pieces
  bool add_dummy_prefix = true;     // llama SPM: a space is prepended to the text before encoding
};

}  // namespace tailor

#endif  // TAILOR_COMMON_VOCABULARY_H_
