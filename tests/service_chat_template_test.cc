// Built-in chat templates: exact renderings (pieces and BOS/EOS placement) against each family's
// published format, message-order errors naming the index, detection from Hugging Face jinja
// templates, and lookup by name.
#include "service/chat_template.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tailor::service {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Kind = PromptPiece::Kind;

const ChatMessage kSys{ChatRole::kSystem, "You are helpful."};
const ChatMessage kUser1{ChatRole::kUser, "Hi!"};
const ChatMessage kAsst1{ChatRole::kAssistant, "Hello."};
const ChatMessage kUser2{ChatRole::kUser, "How are you?"};

std::string Render(ChatTemplateKind kind, const std::vector<ChatMessage>& messages) {
  auto r = ChatTemplate(kind).Render(messages);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->DebugString() : "";
}

std::vector<PromptPiece> Pieces(ChatTemplateKind kind, const std::vector<ChatMessage>& messages) {
  auto r = ChatTemplate(kind).Render(messages);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->pieces : std::vector<PromptPiece>{};
}

PromptPiece Bos() { return {Kind::kBos, ""}; }
PromptPiece Eos() { return {Kind::kEos, ""}; }
PromptPiece Text(std::string t) { return {Kind::kText, std::move(t)}; }

void ExpectRenderError(ChatTemplateKind kind, const std::vector<ChatMessage>& messages,
                       const std::string& fragment) {
  auto r = ChatTemplate(kind).Render(messages);
  ASSERT_FALSE(r.ok()) << ChatTemplateName(kind);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(fragment));
}

// Meta's generation.py: each [INST] turn is encoded between BOS and EOS; the system prompt goes
// inside the first [INST] wrapped in <<SYS>>; contents are strip()ped.
TEST(ChatTemplate, Llama2) {
  EXPECT_EQ(Render(ChatTemplateKind::kLlama2, {kUser1}), "<s>[INST] Hi! [/INST]");
  EXPECT_EQ(Render(ChatTemplateKind::kLlama2, {kSys, kUser1}),
            "<s>[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHi! [/INST]");
  EXPECT_EQ(Render(ChatTemplateKind::kLlama2, {kSys, kUser1, kAsst1, kUser2}),
            "<s>[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHi! [/INST] Hello. </s>"
            "<s>[INST] How are you? [/INST]");
  EXPECT_THAT(Pieces(ChatTemplateKind::kLlama2, {kUser1, kAsst1, kUser2}),
              ElementsAre(Bos(), Text("[INST] Hi! [/INST] Hello. "), Eos(), Bos(),
                          Text("[INST] How are you? [/INST]")));
  // strip() of each turn.
  EXPECT_EQ(Render(ChatTemplateKind::kLlama2,
                   {{ChatRole::kUser, "  q \n"}, {ChatRole::kAssistant, "\ta "}, {ChatRole::kUser, "r"}}),
            "<s>[INST] q [/INST] a </s><s>[INST] r [/INST]");
}

// Mistral Instruct: BOS once, then [INST] ... [/INST] answer</s>; the system message is prepended
// to the first user message.
TEST(ChatTemplate, Mistral) {
  EXPECT_EQ(Render(ChatTemplateKind::kMistral, {kUser1}), "<s>[INST] Hi! [/INST]");
  EXPECT_EQ(Render(ChatTemplateKind::kMistral, {kSys, kUser1, kAsst1, kUser2}),
            "<s>[INST] You are helpful.\n\nHi! [/INST] Hello.</s>[INST] How are you? [/INST]");
  EXPECT_THAT(Pieces(ChatTemplateKind::kMistral, {kUser1, kAsst1, kUser2}),
              ElementsAre(Bos(), Text("[INST] Hi! [/INST] Hello."), Eos(),
                          Text("[INST] How are you? [/INST]")));
}

TEST(ChatTemplate, Zephyr) {
  EXPECT_EQ(Render(ChatTemplateKind::kZephyr, {kSys, kUser1, kAsst1, kUser2}),
            "<s><|system|>\nYou are helpful.</s>\n<|user|>\nHi!</s>\n<|assistant|>\nHello.</s>\n"
            "<|user|>\nHow are you?</s>\n<|assistant|>\n");
  EXPECT_THAT(Pieces(ChatTemplateKind::kZephyr, {kUser1}),
              ElementsAre(Bos(), Text("<|user|>\nHi!"), Eos(), Text("\n<|assistant|>\n")));
}

TEST(ChatTemplate, Chatml) {
  EXPECT_EQ(Render(ChatTemplateKind::kChatml, {kSys, kUser1, kAsst1, kUser2}),
            "<s><|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_THAT(Pieces(ChatTemplateKind::kChatml, {kUser1}),
              ElementsAre(Bos(), Text("<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n")));
  EXPECT_THAT(ChatTemplate(ChatTemplateKind::kChatml).StopStrings(), ElementsAre("<|im_end|>"));
}

TEST(ChatTemplate, Plain) {
  EXPECT_EQ(Render(ChatTemplateKind::kPlain, {kSys, kUser1, kAsst1, kUser2}),
            "<s>You are helpful.\n\nUser: Hi!\nAssistant: Hello.\nUser: How are you?\nAssistant:");
  EXPECT_EQ(Render(ChatTemplateKind::kPlain, {kUser1}), "<s>User: Hi!\nAssistant:");
  EXPECT_THAT(ChatTemplate(ChatTemplateKind::kPlain).StopStrings(), ElementsAre("\nUser:"));
}

TEST(ChatTemplate, NoBosOrEosText) {
  // BOS/EOS are pieces, never text, in every template.
  for (ChatTemplateKind k : {ChatTemplateKind::kLlama2, ChatTemplateKind::kMistral,
                             ChatTemplateKind::kZephyr, ChatTemplateKind::kChatml,
                             ChatTemplateKind::kPlain}) {
    auto pieces = Pieces(k, {kSys, kUser1, kAsst1, kUser2});
    ASSERT_FALSE(pieces.empty());
    EXPECT_EQ(pieces[0].kind, Kind::kBos) << ChatTemplateName(k);
    for (size_t i = 0; i < pieces.size(); ++i) {
      if (pieces[i].kind != Kind::kText) continue;
      EXPECT_FALSE(pieces[i].text.empty());
      EXPECT_THAT(pieces[i].text, ::testing::Not(HasSubstr("<s>")));
      EXPECT_THAT(pieces[i].text, ::testing::Not(HasSubstr("</s>")));
      if (i > 0) {
        EXPECT_NE(pieces[i - 1].kind, Kind::kText) << "adjacent text not merged";
      }
    }
  }
  EXPECT_TRUE(ChatTemplate(ChatTemplateKind::kLlama2).StopStrings().empty());
  EXPECT_TRUE(ChatTemplate(ChatTemplateKind::kMistral).StopStrings().empty());
  EXPECT_TRUE(ChatTemplate(ChatTemplateKind::kZephyr).StopStrings().empty());
}

TEST(ChatTemplate, OrderErrorsNameTheIndex) {
  for (ChatTemplateKind k : {ChatTemplateKind::kLlama2, ChatTemplateKind::kMistral}) {
    const std::string name = ChatTemplateName(k);
    ExpectRenderError(k, {kUser1, kUser2}, "messages[1]: expected role 'assistant' but got 'user'");
    ExpectRenderError(k, {kAsst1}, "messages[0]: expected role 'user' but got 'assistant'");
    ExpectRenderError(k, {kSys, kAsst1}, "messages[1]: expected role 'user'");
    ExpectRenderError(k, {kUser1, kAsst1}, "messages[1]: the last message must have role 'user'");
    ExpectRenderError(k, {kUser1, kSys, kUser2}, "messages[1]: the " + name);
    ExpectRenderError(k, {kSys}, "at least one user message");
    ExpectRenderError(k, {kSys, kUser1, kAsst1, kAsst1}, "messages[3]");
  }
  for (ChatTemplateKind k : {ChatTemplateKind::kLlama2, ChatTemplateKind::kMistral,
                             ChatTemplateKind::kZephyr, ChatTemplateKind::kChatml,
                             ChatTemplateKind::kPlain}) {
    ExpectRenderError(k, {}, "at least one message");
  }
  // The permissive templates accept any order.
  EXPECT_EQ(Render(ChatTemplateKind::kChatml, {kUser1, kUser2}),
            "<s><|im_start|>user\nHi!<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatTemplate, DetectFromHuggingFaceTemplates) {
  const std::string llama2 =
      "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set "
      "system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set "
      "system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] "
      "== 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must "
      "alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and "
      "system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
      "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] "
      "%}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + "
      "' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + "
      "eos_token }}{% endif %}{% endfor %}";
  const std::string mistral =
      "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
      "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
      "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ "
      "'[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ "
      "message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
      "are supported!') }}{% endif %}{% endfor %}";
  const std::string zephyr =
      "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + "
      "message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ "
      "'<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' "
      "%}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if "
      "loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";
  const std::string chatml =
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
      "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
      "'<|im_start|>assistant\n' }}{% endif %}";
  const std::string phi3 =
      "{% for message in messages %}{% if message['role'] == 'user' %}{{'<|user|>\n' + "
      "message['content'] + '<|end|>\n' + '<|assistant|>\n'}}{% endif %}{% endfor %}";
  const std::string llama3 =
      "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
      "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}";
  EXPECT_EQ(DetectChatTemplate(llama2), ChatTemplateKind::kLlama2);
  EXPECT_EQ(DetectChatTemplate(mistral), ChatTemplateKind::kMistral);
  EXPECT_EQ(DetectChatTemplate(zephyr), ChatTemplateKind::kZephyr);
  EXPECT_EQ(DetectChatTemplate(chatml), ChatTemplateKind::kChatml);
  EXPECT_EQ(DetectChatTemplate(phi3), ChatTemplateKind::kPlain);
  EXPECT_EQ(DetectChatTemplate(llama3), ChatTemplateKind::kPlain);
  EXPECT_EQ(DetectChatTemplate(""), ChatTemplateKind::kPlain);
  EXPECT_EQ(ChatTemplate::Detect(llama2).kind(), ChatTemplateKind::kLlama2);
}

TEST(ChatTemplate, ByName) {
  EXPECT_THAT(ChatTemplateNames(), ElementsAre("llama-2", "mistral", "zephyr", "chatml", "plain"));
  for (const std::string& name : ChatTemplateNames()) {
    auto t = ChatTemplate::ByName(name);
    ASSERT_TRUE(t.ok()) << name;
    EXPECT_EQ(t->name(), name);
  }
  EXPECT_EQ(ChatTemplate::ByName("llama2")->kind(), ChatTemplateKind::kLlama2);
  EXPECT_EQ(ChatTemplate::ByName("ChatML")->kind(), ChatTemplateKind::kChatml);
  auto bad = ChatTemplate::ByName("vicuna");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(),
            "unknown chat template 'vicuna'; expected one of: llama-2, mistral, zephyr, chatml, plain");
}

TEST(ChatTemplate, RoleNames) {
  EXPECT_STREQ(ChatRoleName(ChatRole::kSystem), "system");
  EXPECT_STREQ(ChatRoleName(ChatRole::kUser), "user");
  EXPECT_STREQ(ChatRoleName(ChatRole::kAssistant), "assistant");
}

}  // namespace
}  // namespace tailor::service
