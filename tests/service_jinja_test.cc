// JinjaTemplate's interface: syntax errors with line and column, runtime errors naming the
// problem (raise_exception's message unchanged), limits that stop hostile templates, the render
// context (key order, JSON numbers, invalid UTF-8), RenderChatTemplate's variables, and
// concurrent renders of one template. Feature-by-feature comparisons with jinja2 are in
// service_jinja_{syntax,builtins,models,reference}_test.cc.
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "service/jinja_template.h"

namespace tailor::service {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using ordered_json = nlohmann::ordered_json;

ordered_json Json(const char* text) {
  ordered_json j = ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << text;
  return j;
}

std::string Render(const std::string& source, const ordered_json& context = ordered_json::object(),
                   const JinjaLimits& limits = {}) {
  auto parsed = JinjaTemplate::Parse(source);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  if (!parsed.ok()) return "";
  auto rendered = parsed->Render(context, limits);
  EXPECT_TRUE(rendered.ok()) << rendered.status();
  return rendered.ok() ? *rendered : "";
}

std::string ParseError(const std::string& source) {
  auto parsed = JinjaTemplate::Parse(source);
  EXPECT_FALSE(parsed.ok()) << source;
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(parsed.status().message());
}

std::string RenderError(const std::string& source,
                        const ordered_json& context = ordered_json::object(),
                        const JinjaLimits& limits = {}) {
  auto parsed = JinjaTemplate::Parse(source);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  if (!parsed.ok()) return "";
  auto rendered = parsed->Render(context, limits);
  EXPECT_FALSE(rendered.ok()) << source << " rendered " << *rendered;
  if (rendered.ok()) return "";
  EXPECT_EQ(rendered.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(rendered.status().message());
}

// ---- syntax errors ----

TEST(JinjaTemplate, SyntaxErrorsNameLineColumnFoundAndExpected) {
  EXPECT_EQ(ParseError("{% if true %}\nyes"),
            "chat template line 2, column 4: end of template (expected 'elif' or 'else' or "
            "'endif')");
  EXPECT_EQ(ParseError("{% for m in messages %}{{ m }}{% endif %}"),
            "chat template line 1, column 34: unknown tag 'endif' (expected 'endfor' or 'else')");
  EXPECT_EQ(ParseError("a\n{% frobnicate %}"),
            "chat template line 2, column 4: unknown tag 'frobnicate' (expected a tag such as "
            "'if', 'for', 'set', 'macro' or 'filter')");
  EXPECT_EQ(ParseError("{{ 1 + }}"),
            "chat template line 1, column 8: '}}' (expected an expression)");
  EXPECT_EQ(ParseError("{{ a b }}"), "chat template line 1, column 6: name 'b' (expected '}}')");
  EXPECT_EQ(ParseError("{% if %}{% endif %}"),
            "chat template line 1, column 7: '%}' (expected an expression)");
  EXPECT_EQ(ParseError("{{ (1, 2 }}"), "chat template line 1, column 10: '}' (expected ')')");
  EXPECT_EQ(ParseError("x {{ 'abc }}"),
            "chat template line 1, column 6: unterminated string (expected a closing ')");
  EXPECT_EQ(ParseError("x {# never closed"),
            "chat template line 1, column 3: unclosed comment (expected '#}')");
  EXPECT_EQ(ParseError("\n  {{ messages[0]"),
            "chat template line 2, column 3: unclosed '{{' (expected '}}')");
  EXPECT_EQ(ParseError("{% raw %}abc"),
            "chat template line 1, column 1: unclosed raw block (expected 'endraw')");
  EXPECT_EQ(ParseError("{{ 1 $ 2 }}"),
            "chat template line 1, column 6: unexpected character '$' (expected an expression "
            "or the end of the tag)");
}

TEST(JinjaTemplate, ColumnsCountCodePoints) {
  EXPECT_EQ(ParseError("héllo wörld {{ ) }}"),
            "chat template line 1, column 16: unexpected ')' (expected an expression)");
}

TEST(JinjaTemplate, StatementErrors) {
  EXPECT_THAT(ParseError("{% break %}"), HasSubstr("'break' outside of a loop"));
  EXPECT_THAT(ParseError("{% for x in y %}{% macro m() %}{% continue %}{% endmacro %}{% endfor %}"),
              HasSubstr("'continue' outside of a loop"));
  EXPECT_THAT(ParseError("{% include 'other.jinja' %}"), HasSubstr("tag 'include'"));
  EXPECT_THAT(ParseError("{% extends 'base' %}"), HasSubstr("not supported"));
  EXPECT_THAT(ParseError("{% for x in y recursive %}{% endfor %}"), HasSubstr("recursive"));
  EXPECT_THAT(ParseError("{% set 1 = 2 %}"), HasSubstr("expected a name to assign to"));
  EXPECT_THAT(ParseError("{% set true = 2 %}"), HasSubstr("not a constant"));
  EXPECT_THAT(ParseError("{% macro m(a=1, b) %}{% endmacro %}"), HasSubstr("default value"));
  EXPECT_THAT(ParseError("{% call 5 %}{% endcall %}"), HasSubstr("a macro call after 'call'"));
  EXPECT_THAT(ParseError("{{ x is divisibleby is odd }}"), HasSubstr("cannot be chained"));
}

// As in jinja2: an unknown filter or test is a compile-time error, except inside an `if` (or an
// inline if), where it fails only when evaluated.
TEST(JinjaTemplate, UnknownFiltersAndTests) {
  EXPECT_EQ(ParseError("{{ x | frob }}"),
            "chat template line 1, column 8: filter 'frob' (expected a known filter)");
  EXPECT_EQ(ParseError("{% for m in [1] %}{{ m is frob }}{% endfor %}"),
            "chat template line 1, column 27: test 'frob' (expected a known test)");
  EXPECT_EQ(Render("{% if false %}{{ x | frob }}{% endif %}ok"), "ok");
  EXPECT_EQ(Render("{{ x | frob if false else 'ok' }}"), "ok");
  EXPECT_EQ(RenderError("{% if true %}{{ 1 | frob }}{% endif %}"),
            "chat template line 1: No filter named 'frob'.");
  EXPECT_EQ(RenderError("{% if 1 is frob %}{% endif %}"),
            "chat template line 1: No test named 'frob'.");
  // jinja2 filters left out say so.
  EXPECT_EQ(ParseError("{{ x | groupby('a') }}"),
            "chat template line 1, column 8: filter 'groupby' (expected a filter this interpreter "
            "implements)");
  EXPECT_EQ(RenderError("{% if true %}{{ [] | urlize }}{% endif %}"),
            "chat template line 1: the jinja2 filter 'urlize' is not supported");
}

// ---- runtime errors ----

TEST(JinjaTemplate, RaiseExceptionGivesItsMessageUnchanged) {
  EXPECT_EQ(RenderError("line one\n{{ raise_exception('Conversation roles must alternate') }}"),
            "Conversation roles must alternate");
  EXPECT_EQ(RenderError("{% macro check() %}{{ raise_exception('from a macro') }}{% endmacro %}"
                        "{% for i in [1] %}{{ check() }}{% endfor %}"),
            "from a macro");
}

TEST(JinjaTemplate, RuntimeErrorsNameTheProblemAndLine) {
  EXPECT_EQ(RenderError("ok\n{{ no_such_function() }}"),
            "chat template line 2: 'no_such_function' is undefined");
  EXPECT_EQ(RenderError("{{ x.y.z }}"), "chat template line 1: 'x' is undefined");
  EXPECT_EQ(RenderError("{{ {}.a.b }}"),
            "chat template line 1: 'dict object' has no attribute 'a'");
  EXPECT_EQ(RenderError("{{ messages[3].role }}", Json(R"({"messages": []})")),
            "chat template line 1: list object has no element 3");
  EXPECT_EQ(RenderError("{{ 'a' + 1 }}"),
            "chat template line 1: can only concatenate str (not \"int\") to str");
  EXPECT_EQ(RenderError("{{ 1 + 'a' }}"),
            "chat template line 1: unsupported operand type(s) for +: 'int' and 'str'");
  EXPECT_EQ(RenderError("{{ 1 < 'a' }}"),
            "chat template line 1: '<' not supported between instances of 'int' and 'str'");
  EXPECT_EQ(RenderError("{% for x in none %}{% endfor %}"),
            "chat template line 1: 'NoneType' object is not iterable");
  EXPECT_EQ(RenderError("{{ 1 // 0 }}"),
            "chat template line 1: integer division or modulo by zero");
  EXPECT_EQ(RenderError("{{ 5 | length }}"),
            "chat template line 1: object of type 'int' has no len()");
  EXPECT_EQ(RenderError("{{ 3() }}"), "chat template line 1: 'int' object is not callable");
  EXPECT_EQ(RenderError("{{ 'a'.split('') }}"), "chat template line 1: empty separator");
  EXPECT_EQ(RenderError("{{ x | tojson }}"),
            "chat template line 1: Object of type Undefined is not JSON serializable");
  EXPECT_EQ(RenderError("{% set x = 1 %}{% set x.y = 2 %}"),
            "chat template line 1: cannot assign attribute on non-namespace object");
  EXPECT_EQ(RenderError("{% for a, b in [(1, 2, 3)] %}{% endfor %}"),
            "chat template line 1: too many values to unpack (expected 2)");
  EXPECT_EQ(RenderError("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}"),
            "chat template line 1: macro 'm' takes not more than 1 argument(s)");
  EXPECT_EQ(RenderError("{% macro m(a) %}{% endmacro %}{{ m(b=1) }}"),
            "chat template line 1: macro 'm' takes no keyword argument 'b'");
}

// transformers renders in jinja2's ImmutableSandboxedEnvironment: lists and dicts cannot change.
TEST(JinjaTemplate, SandboxRefusesMutation) {
  EXPECT_EQ(RenderError("{% set l = [] %}{{ l.append(1) }}"),
            "chat template line 1: access to attribute 'append' of 'list' object is unsafe.");
  EXPECT_EQ(RenderError("{% set d = {} %}{{ d.update({'a': 1}) }}"),
            "chat template line 1: access to attribute 'update' of 'dict' object is unsafe.");
  EXPECT_EQ(RenderError("{{ range(100001) | length }}"),
            "chat template line 1: Range too big. The sandbox blocks ranges larger than "
            "MAX_RANGE (100000).");
}

// ---- limits ----

TEST(JinjaTemplate, RunawayRecursionIsStopped) {
  EXPECT_THAT(RenderError("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}"),
              HasSubstr("runaway recursion"));
  EXPECT_THAT(RenderError("{% macro m() %}{% for i in [1] %}{% if true %}{{ m() }}{% endif %}"
                          "{% endfor %}{% endmacro %}{{ m() }}"),
              HasSubstr("runaway recursion"));
}

TEST(JinjaTemplate, DeepNestingIsASyntaxError) {
  EXPECT_THAT(ParseError("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}"),
              HasSubstr("nesting too deep"));
  EXPECT_THAT(ParseError("{{ " + std::string(5000, '[') + std::string(5000, ']') + " }}"),
              HasSubstr("nesting too deep"));
  std::string chain = "{{ x";
  for (int i = 0; i < 5000; ++i) chain += " | trim";
  EXPECT_THAT(ParseError(chain + " }}"), HasSubstr("expression nested too deeply"));
  std::string sum = "{{ 1";
  for (int i = 0; i < 5000; ++i) sum += " + 1";
  EXPECT_THAT(ParseError(sum + " }}"), HasSubstr("expression nested too deeply"));
  std::string ifs;
  for (int i = 0; i < 1000; ++i) ifs += "{% if true %}";
  EXPECT_THAT(ParseError(ifs), HasSubstr("nesting too deep"));
}

TEST(JinjaTemplate, LoopIterationsAreBounded) {
  JinjaLimits limits;
  limits.max_loop_iterations = 1000;
  EXPECT_EQ(Render("{% for i in range(9) %}{% for j in range(100) %}{% endfor %}{% endfor %}ok",
                   ordered_json::object(), limits),
            "ok");
  EXPECT_THAT(RenderError("{% for i in range(100000) %}{% for j in range(100000) %}"
                          "{% endfor %}{% endfor %}",
                          ordered_json::object(), limits),
              HasSubstr("more than 1000 loop iterations"));
  // The default bound stops a 10^10-iteration template quickly.
  EXPECT_THAT(RenderError("{% for i in range(100000) %}{% for j in range(100000) %}"
                          "{% endfor %}{% endfor %}"),
              HasSubstr("loop iterations"));
}

TEST(JinjaTemplate, OutputAndStringsAreBounded) {
  JinjaLimits limits;
  limits.max_output_bytes = 1000;
  EXPECT_EQ(Render("{{ 'x' * 1000 }}", ordered_json::object(), limits), std::string(1000, 'x'));
  EXPECT_THAT(RenderError("{{ 'x' * 1001 }}", ordered_json::object(), limits),
              HasSubstr("larger than 1000 bytes"));
  EXPECT_THAT(RenderError("{% for i in range(10) %}{{ 'abcdefghijk' * 10 }}{% endfor %}",
                          ordered_json::object(), limits),
              HasSubstr("output larger than 1000 bytes"));
  // Doubling a string in a loop, huge repetitions and paddings, with the default limits.
  EXPECT_THAT(RenderError("{% set ns = namespace(s='x') %}{% for i in range(64) %}"
                          "{% set ns.s = ns.s ~ ns.s %}{% endfor %}"),
              HasSubstr("larger than"));
  EXPECT_THAT(RenderError("{{ 'x' * 10 ** 12 }}"), HasSubstr("larger than"));
  EXPECT_THAT(RenderError("{{ [1] * 10 ** 12 }}"), HasSubstr("larger than"));
  EXPECT_THAT(RenderError("{{ 'x' | center(10 ** 12) }}"), HasSubstr("larger than"));
  EXPECT_THAT(RenderError("{{ 'a\\nb' | indent(10 ** 12) }}"), HasSubstr("larger than"));
  EXPECT_THAT(RenderError("{% set big = 'x' * 1000000 %}{{ [big] * 100000 }}"),
              HasSubstr("larger than"));
  EXPECT_THAT(RenderError("{{ {'a': [1, 2]} | tojson(indent=10 ** 8) }}"),
              HasSubstr("larger than"));
  EXPECT_THAT(RenderError("{{ 2 ** 100 }}"), HasSubstr("integer overflow"));
}

TEST(JinjaTemplate, MacroCallsAreBounded) {
  JinjaLimits limits;
  limits.max_macro_calls = 50;
  EXPECT_THAT(RenderError("{% macro m() %}x{% endmacro %}{% for i in range(51) %}{{ m() }}"
                          "{% endfor %}",
                          ordered_json::object(), limits),
              HasSubstr("more than 50 macro calls"));
}

TEST(JinjaTemplate, ValueNestingIsBounded) {
  EXPECT_THAT(RenderError("{% set ns = namespace(l=[]) %}{% for i in range(1000) %}"
                          "{% set ns.l = [ns.l] %}{% endfor %}"),
              HasSubstr("nested deeper than"));
  ordered_json deep = 1;
  for (int i = 0; i < 1000; ++i) deep = ordered_json::array({deep});
  auto parsed = JinjaTemplate::Parse("{{ x }}");
  ASSERT_TRUE(parsed.ok());
  auto rendered = parsed->Render(ordered_json{{"x", deep}});
  ASSERT_FALSE(rendered.ok());
  EXPECT_THAT(std::string(rendered.status().message()), HasSubstr("deeper than"));
  // A namespace that contains itself prints as Python prints a recursive dict.
  EXPECT_EQ(Render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}"),
            "<Namespace {'me': <Namespace {...}>}>");
}

// ---- the context ----

TEST(JinjaTemplate, ContextKeepsKeyOrderAndPythonNumbers) {
  const ordered_json tool = Json(R"({"type": "function", "function": {"name": "f",
      "parameters": {"zeta": 1, "alpha": 2.0, "big": 12345678901234567890, "neg": -3}}})");
  EXPECT_EQ(Render("{{ tool | tojson }}", ordered_json{{"tool", tool}}),
            R"({"type": "function", "function": {"name": "f", "parameters": {"zeta": 1, )"
            R"("alpha": 2.0, "big": 1.2345678901234567e+19, "neg": -3}}})");
  EXPECT_EQ(Render("{% for k, v in tool.function.parameters.items() %}{{ k }}={{ v }} "
                   "{% endfor %}",
                   ordered_json{{"tool", tool}}),
            "zeta=1 alpha=2.0 big=1.2345678901234567e+19 neg=-3 ");
  // A plain nlohmann::json converts implicitly; its keys are already sorted.
  const nlohmann::json sorted = nlohmann::json::parse(R"({"b": 1, "a": 2})");
  auto parsed = JinjaTemplate::Parse("{{ d | tojson }}");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed->Render(nlohmann::json{{"d", sorted}}), R"({"a": 2, "b": 1})");
}

TEST(JinjaTemplate, ContextMustBeAnObject) {
  auto parsed = JinjaTemplate::Parse("x{{ y }}");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed->Render(nullptr), "x");
  EXPECT_FALSE(parsed->Render(ordered_json::array()).ok());
  EXPECT_FALSE(parsed->Render(3).ok());
}

TEST(JinjaTemplate, InvalidUtf8PassesThroughAsSingleCharacters) {
  const std::string bad = "a\xff\xc3z";
  EXPECT_EQ(
      Render("{{ s }}|{{ s | length }}|{{ s[1:3] }}|{{ s | upper }}", ordered_json{{"s", bad}}),
      bad + "|4|\xff\xc3|A\xff\xc3Z");
}

// ---- RenderChatTemplate ----

TEST(RenderChatTemplate, PassesTransformersVariables) {
  auto parsed = JinjaTemplate::Parse(
      "{{ bos_token is defined }} {{ eos_token }} {{ tools is defined }} {{ tools is none }} "
      "{{ documents is none }} {{ add_generation_prompt }} {{ messages | length }} "
      "{{ enable_thinking is defined }}");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const ordered_json messages = Json(R"([{"role": "user", "content": "hi"}])");
  EXPECT_EQ(*RenderChatTemplate(*parsed, messages, true, "", "</s>"),
            "False </s> True True True True 1 False");
  EXPECT_EQ(*RenderChatTemplate(*parsed, messages, false, "<s>", "",
                                Json(R"({"enable_thinking": false, "tools": []})")),
            "True  True False True False 1 True");
  EXPECT_FALSE(RenderChatTemplate(*parsed, messages, false, "", "", Json("[1]")).ok());
}

// ---- sharing ----

TEST(JinjaTemplate, ConcurrentRendersOfOneTemplateAgree) {
  auto parsed = JinjaTemplate::Parse(
      "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
      "{{ loop.index }}:{{ m.content | upper }}{% endfor %}={{ ns.n }} {{ data | tojson }}");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const JinjaTemplate shared_copy = *parsed;  // copies share the parsed tree
  std::vector<std::string> outputs(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      ordered_json context;
      context["messages"] = ordered_json::array();
      for (int i = 0; i <= t; ++i) {
        context["messages"].push_back({{"content", absl::StrCat("m", i)}});
      }
      context["data"] = {{"t", t}};
      for (int round = 0; round < 200; ++round) {
        auto rendered = shared_copy.Render(context);
        if (!rendered.ok()) return;
        outputs[t] = *rendered;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < 8; ++t) {
    std::string expected;
    for (int i = 0; i <= t; ++i) absl::StrAppend(&expected, i + 1, ":M", i);
    absl::StrAppend(&expected, "=", t + 1, " {\"t\": ", t, "}");
    EXPECT_EQ(outputs[t], expected);
  }
}

}  // namespace
}  // namespace tailor::service
