// A Hugging Face model's config.json (models/hf_loader.cc): the text LoadHuggingFace parses,
// then the consistency checks every loader applies (ValidateConfig).
#include "models/loader_util.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tailor::ModelConfig c;
  auto family = tailor::loader::ParseHfConfig(tailor::fuzz::AsText(data, size), "fuzz/config.json", &c);
  if (!family.ok()) return 0;
  TAILOR_FUZZ_CHECK(*family != nullptr);
  if (tailor::loader::ValidateConfig(c, "fuzz/config.json").ok()) {
    TAILOR_FUZZ_CHECK(c.dim > 0 && c.n_layers > 0 && c.n_heads > 0 && c.head_dim > 0);
  }
  return 0;
}
