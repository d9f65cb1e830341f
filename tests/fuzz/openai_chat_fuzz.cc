// A POST /v1/chat/completions body (service/openai_request.h): ParseOpenAiRequest as the server
// calls it; an accepted request is then rendered with the chatml preset, as the session does
// for a model without its own template (messages, tools, chat_template_kwargs).
#include "service/chat_template.h"
#include "service/openai_request.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tailor::service;
  auto r = ParseOpenAiRequest(Endpoint::kChatCompletions, tailor::fuzz::AsText(data, size));
  if (!r.ok()) {
    TAILOR_FUZZ_CHECK(r.error().http_status >= 400 && r.error().http_status < 500 && !r.error().message.empty());
    return 0;
  }
  TAILOR_FUZZ_CHECK(!r->messages.empty() && r->n >= 1);
  static const ChatTemplate kChatml = *ChatTemplate::ByName("chatml");
  (void)kChatml.Render(r->messages, /*add_generation_prompt=*/true, r->chat_template_kwargs, r->tools);
  return 0;
}
