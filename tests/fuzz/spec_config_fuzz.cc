// Spec config JSON (network specialization config, engine/spec_config.h): ParseSpecConfig.
#include "engine/spec_config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto specs = tailor::ParseSpecConfig(tailor::fuzz::AsText(data, size), "fuzz-specializations.json",
                                       /*max_positions=*/4096);
  if (specs.ok()) {
    TAILOR_FUZZ_CHECK(!specs->empty());
    for (const auto& s : *specs) {
      TAILOR_FUZZ_CHECK(s.shape.batch_size > 0 && s.shape.seq_len > 0 && s.shape.ctx_len >= s.shape.seq_len &&
                        s.shape.ctx_len <= 4096);
    }
  } else {
    TAILOR_FUZZ_CHECK(!specs.status().message().empty());
  }
  return 0;
}
