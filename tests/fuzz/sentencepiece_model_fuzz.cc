// A SentencePiece .model file (serialized ModelProto): Tokenizer::FromSerializedModel, then a
// short encode and decode with it.
#include "tests/fuzz/fuzz_util.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto tok = tailor::Tokenizer::FromSerializedModel(tailor::fuzz::AsText(data, size), "fuzz.model");
  if (!tok.ok()) return 0;
  std::vector<int32_t> ids = (*tok)->Encode("Hello world, once upon a time.\n\xe2\x96\x81 caf\xc3\xa9");
  for (int32_t id : ids) TAILOR_FUZZ_CHECK(id >= 0 && id < (*tok)->vocab_size());
  (void)(*tok)->Decode(ids);
  return 0;
}
