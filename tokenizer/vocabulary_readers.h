// Vocabularies stored outside sentencepiece model files: llama2.c tokenizer .bin files and GGUF
// metadata. Both become a Vocabulary, which Tokenizer::FromVocabulary turns into a model.
#ifndef TAILOR_TOKENIZER_VOCABULARY_READERS_H_
#define TAILOR_TOKENIZER_VOCABULARY_READERS_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/gguf_file.h"
#include "common/vocabulary.h"

namespace tailor {

// A piece's type from its text alone: "<unk>" unknown; "<s>", "</s>" control; "<0xXX>" byte;
// anything else normal. For vocabularies that store no types (llama2.c).
PieceType InferPieceType(std::string_view piece);

// Reads a llama2.c tokenizer export: int32 max_token_length, then per token float32 score, int32
// byte length, bytes. The file does not store the token count: exactly `vocab_size` entries are
// read (the model's vocab_size); a file with fewer is an error, bytes after them are ignored.
// llama2.c's exporter wrote spaces for U+2581 and "\n<s>\n" / "\n</s>\n" for BOS/EOS; both are
// mapped back, so the result matches the sentencepiece model the file came from.
absl::StatusOr<Vocabulary> ReadLlama2cVocabulary(const std::filesystem::path& path,
                                                 int32_t vocab_size);

// The vocabulary in a GGUF file's metadata: tokenizer.ggml.model must be "llama" (SentencePiece;
// "gpt2" vocabularies are read by gguf_bpe.h instead);
// tokenizer.ggml.tokens (strings), tokenizer.ggml.scores (floats; default 0),
// tokenizer.ggml.token_type (ints; inferred from the text when absent; GGUF's 0 "undefined" is
// normal), tokenizer.ggml.add_space_prefix (default true).
absl::StatusOr<Vocabulary> ReadGgufVocabulary(const GgufFile& gguf);

}  // namespace tailor

#endif  // TAILOR_TOKENIZER_VOCABULARY_READERS_H_
