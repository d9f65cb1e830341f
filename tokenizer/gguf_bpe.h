// GGUF vocabularies with tokenizer.ggml.model = "gpt2" (byte-level BPE, as llama.cpp's
// converter writes Llama 3, Qwen2/3, GPT-2 vocabularies), turned into the equivalent
// tokenizer.json document, which HfTokenizer runs and a package stores.
//
// Read: tokenizer.ggml.tokens (strings; the ids), tokenizer.ggml.merges ("a b" strings, in rank
// order), tokenizer.ggml.token_type (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
// 6 byte; 0 counts as normal; absent: all normal), tokenizer.ggml.pre (the pre-tokenizer, below),
// tokenizer.ggml.bos_token_id / eos_token_id, tokenizer.ggml.add_bos_token / add_eos_token.
//
// The document: every token in model.vocab; control and unknown tokens also as special added
// tokens, user-defined ones as non-special added tokens (so their text is matched in input, as
// llama.cpp does with parse_special); pre_tokenizer by tokenizer.ggml.pre:
//   llama-bpe, llama3, llama-v3, smaug-bpe   Llama 3's Split regex (\p{N}{1,3}), then ByteLevel;
//                                            llama-bpe/llama3/llama-v3 also ignore_merges (as
//                                            llama.cpp, which sets it for those and not smaug-bpe)
//   qwen2                                    Qwen2's Split regex (single \p{N}), then ByteLevel
//   default, gpt2 (and no key at all)        ByteLevel with GPT-2's regex
// any other value is an error that lists these. No normalizer (GGUF stores none: Qwen's NFC is
// lost, as in llama.cpp). Decoder ByteLevel. Post-processor: TemplateProcessing with BOS when
// add_bos_token (default: true for the Llama 3 names, false otherwise) and EOS when
// add_eos_token (default false). "tailor": {"bos_token", "eos_token"} names BOS/EOS.
#ifndef TAILOR_TOKENIZER_GGUF_BPE_H_
#define TAILOR_TOKENIZER_GGUF_BPE_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/gguf_file.h"
#include "tokenizer/json_field.h"

namespace tailor::tokenizer_internal {

// The tokenizer.json text for `gguf`'s gpt2 vocabulary. Errors name the file and the key.
absl::StatusOr<std::string> TokenizerJsonFromGguf(const GgufFile& gguf);

}  // namespace tailor::tokenizer_internal

#endif  // TAILOR_TOKENIZER_GGUF_BPE_H_
