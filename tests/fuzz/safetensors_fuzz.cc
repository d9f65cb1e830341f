// A safetensors file (models/safetensors.h): header length, JSON header, tensor byte ranges.
#include "common/mapped_file.h"
#include "models/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = tailor::MappedFile::FromBytes(tailor::fuzz::AsText(data, size), "fuzz.safetensors");
  auto st = tailor::SafetensorsFile::Parse(file);
  if (!st.ok()) return 0;
  // Every accepted tensor lies inside the input.
  const std::byte* begin = file->data();
  for (const auto& [name, t] : (*st)->tensors()) {
    TAILOR_FUZZ_CHECK(t.nbytes == 0 || (t.data >= begin && t.data + t.nbytes <= begin + size));
  }
  return 0;
}
