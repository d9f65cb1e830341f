// A Hugging Face tokenizer.json (tokenizer/hf_tokenizer.h): Tokenizer::FromTokenizerJson, then a
// short encode (with special tokens) and decode with it.
#include "tests/fuzz/fuzz_util.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto tok = tailor::Tokenizer::FromTokenizerJson(std::string(tailor::fuzz::AsText(data, size)), "fuzz/tokenizer.json");
  if (!tok.ok()) return 0;
  tailor::EncodeOptions options;
  options.add_special_tokens = true;
  std::vector<int32_t> ids = (*tok)->Encode("Hello world, it's 2024!  caf\xc3\xa9 <|endoftext|>\n", options);
  for (int32_t id : ids) TAILOR_FUZZ_CHECK(id >= 0 && id < (*tok)->vocab_size());
  (void)(*tok)->Decode(ids, /*skip_special_tokens=*/true);
  return 0;
}
