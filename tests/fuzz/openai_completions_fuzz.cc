// A POST /v1/completions body (service/openai_request.h): ParseOpenAiRequest as the server calls
// it, then the vocabulary check the session applies next.
#include "service/openai_request.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tailor::service;
  auto r = ParseOpenAiRequest(Endpoint::kCompletions, tailor::fuzz::AsText(data, size));
  if (!r.ok()) {
    TAILOR_FUZZ_CHECK(r.error().http_status >= 400 && r.error().http_status < 500 && !r.error().message.empty());
    return 0;
  }
  TAILOR_FUZZ_CHECK(!r->prompts.empty() && r->n >= 1);
  (void)ValidateForVocabulary(*r, 32000);
  // The tokenize and detokenize routes parse bodies of the same origin.
  (void)ParseTokenizeRequest(tailor::fuzz::AsText(data, size));
  (void)ParseDetokenizeRequest(tailor::fuzz::AsText(data, size));
  return 0;
}
