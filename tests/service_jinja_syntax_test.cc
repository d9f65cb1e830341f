// The Jinja interpreter against jinja2: whitespace control (trim_blocks, lstrip_blocks, `-`,
// `+`), literals, operators, attribute/item access, if/for/set/macro/call/filter/with and
// jinja2's scoping rules.
//
// Every expected string is what jinja2 3.1.6 renders with the environment transformers'
// apply_chat_template builds (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
// loopcontrols, transformers' tojson); the templates are written for these tests.
#include <ostream>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "service/jinja_template.h"
#include "tests/jinja_cases.h"

namespace tailor::service {
namespace {

using ordered_json = nlohmann::ordered_json;

using testing_jinja::Case;

// The variables most cases render with.
constexpr const char* kContext = R"j({
  "messages": [
    {
      "role": "system",
      "content": "Sys"
    },
    {
      "role": "user",
      "content": "Hi"
    },
    {
      "role": "assistant",
      "content": "Yo"
    }
  ],
  "d": {
    "a": 1,
    "b": [
      1,
      2
    ]
  },
  "l": [
    1,
    2,
    3
  ],
  "s": "  hello world  ",
  "n": null,
  "flag": true
})j";

// clang-format off
const Case kCases[] = {
    {"trim_blocks_eats_one_newline", nullptr,
     R"j({% if true %}
A
{% endif %}
B
)j",
     R"j(A
B)j"},
    {"lstrip_blocks_indent_before_tags", nullptr,
     R"j(a
  {% if true %}
    b
  {% endif %}
c)j",
     R"j(a
    b
c)j"},
    {"lstrip_not_for_expressions", nullptr,
     R"j(x
   {{ 1 }}
   y)j",
     R"j(x
   1
   y)j"},
    {"lstrip_only_whitespace_prefix", nullptr,
     R"j(  x {% if true %}y{% endif %})j",
     R"j(  x y)j"},
    {"lstrip_tabs_and_nbsp", nullptr,
     "\t{% if true %}tab{% endif %}\n\302\240 {% if true %}nbsp{% endif %}",
     R"j(tabnbsp)j"},
    {"minus_strips_all_whitespace", nullptr,
     "a  \n {%- if true -%} \n b \n {%- endif -%}  \n c",
     R"j(abc)j"},
    {"minus_on_expressions", nullptr,
     "x \n {{- 1 -}} \n y",
     R"j(x1y)j"},
    {"plus_disables_lstrip", nullptr,
     R"j(a
  {%+ if true %}b{% endif %}
)j",
     R"j(a
  b)j"},
    {"plus_disables_trim_blocks", nullptr,
     R"j(x{% if true +%}
y{% endif %})j",
     R"j(x
y)j"},
    {"comments_trim_like_blocks", nullptr,
     R"j({# comment #}
line
  {# indented #}
  z {#- tight -#} w)j",
     R"j(line
  zw)j"},
    {"raw_block", nullptr,
     R"j({% raw %}{{ not parsed }}{% if %}{% endraw %})j",
     R"j({{ not parsed }}{% if %})j"},
    {"raw_block_whitespace", nullptr,
     R"j(  {% raw %}
  {{x}}
  {% endraw %}
after {%- raw -%}  {{ y }}  {%- endraw -%}  end)j",
     R"j(
  {{x}}
after{{ y }}end)j"},
    {"single_trailing_newline_dropped", nullptr,
     R"j(text
)j",
     R"j(text)j"},
    {"only_one_trailing_newline_dropped", nullptr,
     R"j(text

)j",
     R"j(text
)j"},
    {"crlf_normalized", nullptr,
     "line1\015\nline2\015line3\015\n",
     R"j(line1
line2
line3)j"},
    {"for_loop_lines", nullptr,
     R"j({% for i in [1, 2] %}
  {{ i }}
{% endfor %}
)j",
     R"j(  1
  2
)j"},
    {"block_at_line_start_after_text", nullptr,
     R"j({%- if true %}a{% endif -%}

  b)j",
     R"j(ab)j"},
    {"braces_inside_expressions", nullptr,
     R"j({{ {'a': {'b': 1}} }} {{ {'a': {'b': 1}}['a'] }}{% set x = {'k': {'j': 2}} %}{{ x.k.j }})j",
     R"j({'a': {'b': 1}} {'b': 1}2)j"},
    {"delimiters_in_strings", nullptr,
     R"j({{ '{{' }}{{ '}}' }}{{ '{%' ~ '%}' }}{{ '{#' }})j",
     R"j({{}}{%%}{#)j"},
    {"integers", nullptr,
     R"j({{ 42 }} {{ 1_000 }} {{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ -7 }})j",
     R"j(42 1000 31 15 5 -7)j"},
    {"floats_print_like_python", nullptr,
     R"j({{ 1.0 }} {{ 1e3 }} {{ 0.1 + 0.2 }} {{ 1/3 }} {{ 2.5e-5 }} {{ 1e16 }} {{ 1.5e16 }} {{ 123456789.0 }} {{ 1e-4 }} {{ -0.0 }} {{ 3.0 * 2 }})j",
     R"j(1.0 1000.0 0.30000000000000004 0.3333333333333333 2.5e-05 1e+16 1.5e+16 123456789.0 0.0001 -0.0 6.0)j"},
    {"constants", nullptr,
     R"j({{ none }} {{ None }} {{ true }} {{ True }} {{ false }} {{ False }})j",
     R"j(None None True True False False)j"},
    {"containers_print_like_python", nullptr,
     R"j({{ [none, true, 'x', 1.5] }} {{ {'a': none, 'b': [1, (2,)]} }} {{ ('a',) }} {{ () }} {{ (1, 2) }} {{ [] }} {{ {} }})j",
     R"j([None, True, 'x', 1.5] {'a': None, 'b': [1, (2,)]} ('a',) () (1, 2) [] {})j"},
    {"string_repr_quotes", nullptr,
     R"j({{ ["it's", 'say "hi"', 'both \' "', 'tab\there', 'nl\n', 'é'] }})j",
     R"j(["it's", 'say "hi"', 'both \' "', 'tab\there', 'nl\n', 'é'])j"},
    {"string_escapes", nullptr,
     R"j({{ 'a\nb\tc\\d\'e\"f\x41\u00e9\U0001F600\101\q' }})j",
     "a\nb\tc\\d'e\"fAé😀A\\q"},
    {"string_spans_lines", nullptr,
     R"j({{ 'multi
line' }})j",
     R"j(multi
line)j"},
    {"adjacent_strings_concatenate", nullptr,
     R"j({{ 'a' "b" 'c' }})j",
     R"j(abc)j"},
    {"arithmetic", nullptr,
     R"j({{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 10 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 4 / 2 }} {{ 2 ** -1 }})j",
     R"j(7 9 1024 64 4 3 -4 1 2 3.5 2.0 0.5)j"},
    {"float_floor_and_mod", nullptr,
     R"j({{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 10 % -3 }} {{ 5.5 % -2 }})j",
     R"j(3.0 0.5 -2 -0.5)j"},
    {"bool_is_int", nullptr,
     R"j({{ true + 1 }} {{ true == 1 }} {{ 1 == 1.0 }} {{ false * 3 }})j",
     R"j(2 True True 0)j"},
    {"concatenation", nullptr,
     R"j({{ 1 ~ 2 ~ 'a' }} {{ 'a' + 'b' }} {{ [1] + [2] }} {{ (1,) + (2,) }} {{ 'ab' * 3 }} {{ 3 * [0] }} {{ 'x' * 0 }}|{{ 'a' ~ none ~ true ~ 1.5 }})j",
     R"j(12a ab [1, 2] (1, 2) ababab [0, 0, 0] |aNoneTrue1.5)j"},
    {"precedence_of_tilde", nullptr,
     R"j({{ 'a' ~ 1 + 'b' }} {{ 2 * 3 ~ 4 }} {{ 'x' ~ 2 ** 2 }})j",
     R"j(a1b 64 x4)j"},
    {"comparisons", nullptr,
     R"j({{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ none == none }} {{ [1, 2] == [1, 2] }} {{ (1, 2) == [1, 2] }} {{ {'a': 1} == {'a': 1} }} {{ 1 != 1.0 }})j",
     R"j(True True True False True True False True False)j"},
    {"membership", nullptr,
     R"j({{ 'a' in 'cat' }} {{ 1 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} {{ not 1 in [1] }} {{ 'x' in undefined_thing }})j",
     R"j(True True True True False False)j"},
    {"logic_returns_operands", nullptr,
     R"j({{ true and 'x' }} {{ false or 'y' }} {{ 0 or '' }}|{{ none and 1 }} {{ not none }} {{ 5 > 3 and 'yes' or 'no' }})j",
     R"j(x y |None True yes)j"},
    {"inline_if", nullptr,
     R"j({{ 'yes' if 1 > 0 else 'no' }} {{ 'yes' if 0 }}|{{ 'a' if false else 'b' if false else 'c' }})j",
     R"j(yes |c)j"},
    {"unary_minus_binds_before_filters", nullptr,
     R"j({{ -3|abs }} {{ -(3|abs) }} {{ not true|string }})j",
     R"j(3 -3 False)j"},
    {"item_and_attribute_access", nullptr,
     R"j({{ l[1] }} {{ l[-1] }} {{ l.0 }} {{ d.a }} {{ d['a'] }} {{ d.b[1] }} {{ messages[0]['role'] }} {{ messages[-1].content }})j",
     R"j(2 3 1 1 1 2 system Yo)j"},
    {"unicode_indexing", nullptr,
     R"j({{ 'héllo'[1] }} {{ 'héllo'[1:3] }} {{ 'héllo'|length }} {{ 'héllo'[-1] }})j",
     R"j(é él 5 o)j"},
    {"slicing", nullptr,
     R"j({{ [1, 2, 3, 4, 5][1:4:2] }} {{ 'abcdef'[::-2] }} {{ [1, 2, 3][5:] }} {{ (1, 2, 3)[1:] }} {{ 'abc'[-5:2] }} {{ l[::-1] }} {{ messages[1:]|length }})j",
     R"j([2, 4] fdb [] (2, 3) ab [3, 2, 1] 2)j"},
    {"missing_is_undefined", nullptr,
     R"j([{{ d.missing }}][{{ l[10] }}][{{ n.x }}][{{ d.missing is defined }}][{{ undefined_thing }}])j",
     R"j([][][][False][])j"},
    {"dict_methods_win_over_keys", nullptr,
     R"j({{ {'items': 1}.items()|list }} {{ {'items': 1}['items'] }} {{ d.keys()|list }})j",
     R"j([('items', 1)] 1 ['a', 'b'])j"},
    {"if_elif_else", nullptr,
     R"j({% if false %}a{% elif 0 %}b{% elif 'x' %}c{% else %}d{% endif %}{% if false %}{% else %}e{% endif %})j",
     R"j(ce)j"},
    {"loop_variables", nullptr,
     R"j({% for i in range(3) %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.depth }},{% endfor %})j",
     R"j(10TrueFalse3321,21FalseFalse3211,32FalseTrue3101,)j"},
    {"loop_prev_next_cycle", nullptr,
     R"j({% for i in 'abc' %}{{ loop.previtem }}-{{ i }}-{{ loop.nextitem }}|{{ loop.cycle('x', 'y') }} {% endfor %})j",
     "-a-b|x a-b-c|y b-c-|x "},
    {"loop_changed", nullptr,
     R"j({% for x in [1, 1, 2, 2, 3] %}{% if loop.changed(x) %}{{ x }}{% endif %}{% endfor %})j",
     R"j(123)j"},
    {"loop_over_dict_and_items", nullptr,
     R"j({% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %})j",
     R"j(a=1;b=[1, 2];ab)j"},
    {"tuple_unpacking", nullptr,
     R"j({% for a, b in [(1, 2), [3, 4]] %}{{ a + b }}{% endfor %}{% for (a, b), c in [((1, 2), 3)] %}{{ a }}{{ b }}{{ c }}{% endfor %})j",
     R"j(37123)j"},
    {"loop_filter_and_length", nullptr,
     R"j({% for i in [1, 2, 3, 4, 5, 6] if i is even %}{{ i }}/{{ loop.length }}{% if loop.last %}!{% endif %}{% else %}none{% endfor %})j",
     R"j(2/34/36/3!)j"},
    {"loop_else", nullptr,
     R"j({% for i in [] %}x{% else %}empty{% endfor %} {% for i in undefined_thing %}y{% else %}undefined{% endfor %} {% for x in [1] if x > 5 %}{% else %}filtered{% endfor %})j",
     R"j(empty undefined filtered)j"},
    {"break_and_continue", nullptr,
     R"j({% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %})j",
     R"j(0134)j"},
    {"break_inner_loop_only", nullptr,
     R"j({% for i in [1, 2] %}{% for j in [3, 4] %}{% if j == 4 %}{% break %}{% endif %}{{ i }}{{ j }}{% endfor %}{% endfor %})j",
     R"j(1323)j"},
    {"else_after_break_in_first_iteration", nullptr,
     R"j({% for x in [1, 2, 3] %}{{ x }}{% break %}{% else %}else{% endfor %} {% for x in [1, 2] %}{% continue %}{% else %}else{% endfor %} {% for x in [1, 2] %}{% if x == 2 %}{% break %}{% endif %}{% else %}else{% endfor %})j",
     "1else else "},
    {"nested_loop_outer_loop_variable", nullptr,
     R"j({% for a in [1, 2] %}{% set outer = loop %}{% for b in [3] %}{{ outer.index }}{{ loop.index }}{% endfor %}{% endfor %})j",
     R"j(1121)j"},
    {"alternation_check_style", nullptr,
     R"j({% for m in messages[1:] %}{{ (m.role == 'user') != (loop.index0 % 2 == 0) }}{% endfor %})j",
     R"j(FalseFalse)j"},
    {"set_inside_for_does_not_leak", nullptr,
     R"j({% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }})j",
     R"j(231)j"},
    {"set_inside_for_is_per_iteration", nullptr,
     R"j({% for i in [1, 2, 3] %}{% if i > 1 %}[{{ y }}]{% endif %}{% set y = i %}{% endfor %})j",
     R"j([][])j"},
    {"set_inside_if_leaks", nullptr,
     R"j({% if true %}{% set x = 1 %}{% endif %}{{ x }}{% for i in [1] %}{% if true %}{% set z = 1 %}{% endif %}{{ z }}{% endfor %}[{{ z }}])j",
     R"j(11[])j"},
    {"namespace_carries_out_of_loops", nullptr,
     R"j({% set ns = namespace(x=1, found=false) %}{% for i in [1, 2] %}{% set ns.x = ns.x + i %}{% if i == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.x }} {{ ns.found }})j",
     R"j(4 True)j"},
    {"namespace_print_and_missing", nullptr,
     R"j({% set ns = namespace() %}{% set ns.a = 'v' %}{{ ns.a }}[{{ ns.b }}]{{ ns }})j",
     R"j(v[]<Namespace {'a': 'v'}>)j"},
    {"namespace_from_dict", nullptr,
     R"j({% set n2 = namespace({'k': 'v'}, z=1) %}{{ n2.k }}{{ n2.z }})j",
     R"j(v1)j"},
    {"set_tuple_and_multiple_targets", nullptr,
     R"j({% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = 1, 2 %}{{ t }})j",
     R"j(12(1, 2))j"},
    {"block_set", nullptr,
     R"j({% set x %}block {{ 1 + 1 }}{% endset %}[{{ x }}]{% set y | upper %}up{% endset %}{{ y }}{% set z %}{% set inner = 1 %}{% endset %}[{{ inner }}])j",
     R"j([block 2]UP[])j"},
    {"set_shadows_context", nullptr,
     R"j({% set messages = messages[1:] %}{{ messages|length }}{% for m in messages %}{{ m.role }}{% endfor %})j",
     R"j(2userassistant)j"},
    {"loop_variable_gone_after_loop", nullptr,
     R"j({% for i in [1] %}{% set inner = 5 %}{% endfor %}[{{ i }}][{{ inner }}][{{ loop }}])j",
     R"j([][][])j"},
    {"assigned_later_is_undefined_in_nested_scopes", R"j({"y": 9})j",
     R"j({% for i in [1] %}[{{ y }}]{% endfor %}{% set y = 1 %}{{ y }})j",
     R"j([]1)j"},
    {"read_before_assignment_keeps_context_value", R"j({"y": 9})j",
     R"j({{ y }}{% for i in [1] %}[{{ y }}]{% endfor %}{% set y = 1 %}{{ y }})j",
     R"j(9[9]1)j"},
    {"assignment_in_if_keeps_outer_value", R"j({"y": 9})j",
     R"j({% if false %}{% set y = 1 %}{% endif %}{% for i in [1] %}[{{ y }}]{% endfor %})j",
     R"j([9])j"},
    {"macro_called_before_assignment", R"j({"y": 9})j",
     R"j({% macro m() %}[{{ y }}]{% endmacro %}{{ m() }}{% set y = 1 %}{{ m() }})j",
     R"j([][1])j"},
    {"loop_body_assignment_hides_outer", R"j({"z": 9})j",
     R"j({% for i in [1, 2] %}{% for j in [0] %}[{{ z }}]{% endfor %}{% set z = i %}{{ z }}{% endfor %})j",
     R"j([]1[]2)j"},
    {"with_block", nullptr,
     R"j({% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}])j",
     R"j(3[])j"},
    {"macro_defaults_and_keywords", nullptr,
     R"j({% macro greet(name, punct='!') %}Hello {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(punct='.', name='C') }} {{ greet() }})j",
     R"j(Hello A! Hello B? Hello C. Hello !)j"},
    {"macro_sees_outer_scope_when_called", nullptr,
     R"j({% macro m() %}{{ v }}{% endmacro %}{% set v = 1 %}{{ m() }}{% set v = 2 %}{{ m() }})j",
     R"j(12)j"},
    {"macro_scope_is_its_own", nullptr,
     R"j({% set x = 'outer' %}{% macro m() %}{% set x = 'inner' %}{{ x }}{% endmacro %}{{ m() }}{{ x }})j",
     R"j(innerouter)j"},
    {"macro_recursion", nullptr,
     R"j({% macro rec(n) %}{% if n > 0 %}{{ n }}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(5) }})j",
     R"j(54321)j"},
    {"macro_varargs_kwargs", nullptr,
     R"j({% macro va() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ va(1, 2, k=3) }})j",
     R"j((1, 2){'k': 3})j"},
    {"macro_splat_arguments", nullptr,
     R"j({% macro m(a, b) %}{{ a }}-{{ b }}{% endmacro %}{{ m(*[1, 2]) }} {{ m(**{'a': 3, 'b': 4}) }} {{ m(1, **{'b': 5}) }})j",
     R"j(1-2 3-4 1-5)j"},
    {"macro_whitespace", nullptr,
     R"j({% macro tag(name, content='') -%}
<{{ name }}>{{ content }}</{{ name }}>
{%- endmacro %}
{{ tag('b', 'bold') }}
{{ tag('i') }})j",
     R"j(<b>bold</b>
<i></i>)j"},
    {"call_block_and_caller", nullptr,
     R"j({% macro outer() %}[{{ caller() }}]{% endmacro %}{% call outer() %}inside{% endcall %}{% macro twice(x) %}<{{ caller(x * 2) }}>{% endmacro %}{% call(v) twice(3) %}v={{ v }}{% endcall %})j",
     R"j([inside]<v=6>)j"},
    {"filter_block", nullptr,
     R"j({% filter upper %}hello {{ 'x' }}{% endfilter %}{% filter replace('a', 'b')|upper %}aaa{% endfilter %}{% filter indent(2) %}one
two{% endfilter %})j",
     R"j(HELLO XBBBone
  two)j"},
    {"print_statement", nullptr,
     R"j({% print 'p' %}{% print 1, 2 %})j",
     R"j(p12)j"},
    {"generation_block", nullptr,
     R"j({% generation %}gen {{ 1 }}{% endgeneration %})j",
     R"j(gen 1)j"},
};
// clang-format on

class JinjaSyntax : public ::testing::TestWithParam<Case> {};

TEST_P(JinjaSyntax, RendersAsJinja2Does) { testing_jinja::ExpectRendersAsJinja2(GetParam(), kContext); }

INSTANTIATE_TEST_SUITE_P(Cases, JinjaSyntax, ::testing::ValuesIn(kCases), testing_jinja::CaseName);

}  // namespace
}  // namespace tailor::service
