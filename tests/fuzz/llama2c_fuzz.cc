// A llama2.c checkpoint (models/llama2c_loader.cc): legacy 28-byte and "ak42" v1 headers, and
// the size the header implies.
#include "common/mapped_file.h"
#include "models/loader_util.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = tailor::MappedFile::FromBytes(tailor::fuzz::AsText(data, size), "fuzz.bin");
  auto model = tailor::loader::LoadLlama2c(file, {});
  if (model.ok()) TAILOR_FUZZ_CHECK((*model)->config.dim > 0 && (*model)->config.vocab_size > 0);
  return 0;
}
