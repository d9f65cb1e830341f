#include "service/jinja_template.h"

#include <utility>

#include "common/status_macros.h"
#include "service/jinja_ast.h"
#include "service/jinja_eval.h"
#include "service/jinja_json.h"
#include "service/jinja_parser.h"

namespace tailor::service {

absl::StatusOr<JinjaTemplate> JinjaTemplate::Parse(absl::string_view source) {
  TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<jinja::TemplateAst> ast, jinja::ParseTemplate(source));
  return JinjaTemplate(std::shared_ptr<const jinja::TemplateAst>(std::move(ast)));
}

absl::StatusOr<std::string> JinjaTemplate::Render(const nlohmann::ordered_json& context,
                                                  const JinjaLimits& limits) const {
  if (!context.is_object() && !context.is_null()) {
    return absl::InvalidArgumentError("chat template context must be a JSON object");
  }
  TAILOR_ASSIGN_OR_RETURN(jinja::Value values, jinja::ValueFromJson(context));
  jinja::Interpreter interpreter(limits);
  return interpreter.Render(*ast_, values);
}

absl::StatusOr<std::string> RenderChatTemplate(const JinjaTemplate& chat_template,
                                               const nlohmann::ordered_json& messages,
                                               bool add_generation_prompt,
                                               const std::string& bos_token,
                                               const std::string& eos_token,
                                               const nlohmann::ordered_json& extra) {
  if (!extra.is_null() && !extra.is_object()) {
    return absl::InvalidArgumentError("chat template extra variables must be a JSON object");
  }
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  context["messages"] = messages;
  // transformers always passes tools and documents (None when absent); templates test
  // `tools is not none`.
  context["tools"] = nullptr;
  context["documents"] = nullptr;
  context["add_generation_prompt"] = add_generation_prompt;
  if (!bos_token.empty()) context["bos_token"] = bos_token;
  if (!eos_token.empty()) context["eos_token"] = eos_token;
  if (extra.is_object()) {
    for (auto it = extra.begin(); it != extra.end(); ++it) context[it.key()] = it.value();
  }
  return chat_template.Render(context);
}

}  // namespace tailor::service
