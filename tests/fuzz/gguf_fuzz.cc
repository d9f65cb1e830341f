// A GGUF file: the parser (common/gguf_file.h), then what tailor reads from it: the model
// (models/gguf_loader.cc) and the tokenizer (Tokenizer::FromGguf), which encodes a short text.
#include "common/gguf_file.h"
#include "common/mapped_file.h"
#include "models/loader_util.h"
#include "tests/fuzz/fuzz_util.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = tailor::MappedFile::FromBytes(tailor::fuzz::AsText(data, size), "fuzz.gguf");
  auto g = tailor::GgufFile::Parse(file);
  if (!g.ok()) return 0;
  for (const auto& t : (*g)->tensors()) {  // every placed tensor lies inside the input
    TAILOR_FUZZ_CHECK(t.nbytes == 0 || (t.data >= file->data() && t.data + t.nbytes <= file->data() + size));
  }
  auto tok = tailor::Tokenizer::FromGguf(**g);
  if (tok.ok()) {
    std::vector<int32_t> ids = (*tok)->Encode("Hello world, once upon a time.");
    for (int32_t id : ids) TAILOR_FUZZ_CHECK(id >= 0 && id < (*tok)->vocab_size());
    (void)(*tok)->Decode(ids);
  }
  auto model = tailor::loader::LoadGguf(std::move(*g), {});
  (void)model;
  return 0;
}
