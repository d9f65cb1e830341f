// The chat templates real models ship (llama3, qwen3, gemma3 tokenizer_config.json), rendered by
// the Jinja interpreter for every case of ../shared/reference/chat_templates.json, byte for byte
// against what jinja2 (set up as transformers does) and @huggingface/jinja produced.
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "service/jinja_template.h"

namespace tailor::service {
namespace {

using ordered_json = nlohmann::ordered_json;

ordered_json ReadJson(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream buffer;
  buffer << in.rdbuf();
  return ordered_json::parse(buffer.str(), nullptr, /*allow_exceptions=*/false);
}

std::string OrEmpty(const ordered_json& j) { return j.is_string() ? j.get<std::string>() : ""; }

class ReferenceTemplates : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceTemplates, RendersEveryCaseByteForByte) {
  const std::string name = GetParam();
  const std::string shared = TAILOR_SHARED_DIR;
  const ordered_json reference = ReadJson(shared + "/reference/chat_templates.json");
  ASSERT_TRUE(reference.is_object());
  const ordered_json& entry = reference["templates"][name];
  ASSERT_TRUE(entry.is_object()) << name;
  const ordered_json config =
      ReadJson(shared + "/models/tokenizers/" + name + "/tokenizer_config.json");
  ASSERT_TRUE(config.contains("chat_template")) << name;
  auto parsed = JinjaTemplate::Parse(config["chat_template"].get<std::string>());
  ASSERT_TRUE(parsed.ok()) << parsed.status();

  ASSERT_FALSE(entry["cases"].empty());
  for (const ordered_json& c : entry["cases"]) {
    SCOPED_TRACE(name + " / " + c["name"].get<std::string>());
    const ordered_json extra = c.contains("extra") ? c["extra"] : ordered_json::object();
    auto rendered =
        RenderChatTemplate(*parsed, c["messages"], c["add_generation_prompt"].get<bool>(),
                           OrEmpty(entry["bos_token"]), OrEmpty(entry["eos_token"]), extra);
    ASSERT_TRUE(rendered.ok()) << rendered.status();
    EXPECT_EQ(*rendered, c["rendered"].get<std::string>());
  }
}

INSTANTIATE_TEST_SUITE_P(Models, ReferenceTemplates,
                         ::testing::Values("llama3", "qwen3", "gemma3"));

}  // namespace
}  // namespace tailor::service
