// The `tailor exec` / `compile -json-input-file` input JSON (api/exec_inputs.h).
#include "api/exec_inputs.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto inputs = tailor::ParseExecInputs(tailor::fuzz::AsText(data, size), "fuzz-inputs.json");
  if (!inputs.ok()) return 0;
  for (const auto& in : *inputs) {  // shapes checked: ids and positions alike
    TAILOR_FUZZ_CHECK(in.ids.size() == in.pos.size());
    for (size_t r = 0; r < in.ids.size(); ++r) TAILOR_FUZZ_CHECK(in.ids[r].size() == in.pos[r].size());
  }
  return 0;
}
