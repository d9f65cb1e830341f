// The `tailor batch` input (OpenAI Batch API JSONL, api/batch_io.h): every line's envelope, then
// each well-formed line's body through ParseOpenAiRequestJson, as `tailor batch` does.
#include <sstream>

#include "api/batch_io.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in{std::string(tailor::fuzz::AsText(data, size))};
  auto lines = tailor::batch::ReadInput(in, "fuzz.jsonl");
  if (!lines.ok()) return 0;
  for (const auto& line : *lines) {
    TAILOR_FUZZ_CHECK(line.line_number >= 1 && !line.key.empty());
    if (!line.endpoint) {
      TAILOR_FUZZ_CHECK(!line.error_code.empty());
      continue;
    }
    (void)tailor::service::ParseOpenAiRequestJson(*line.endpoint, line.body);
  }
  return 0;
}
