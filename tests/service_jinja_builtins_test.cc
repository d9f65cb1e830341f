// The Jinja interpreter against jinja2: built-in filters (with transformers' tojson), tests,
// the Python str/dict/list methods templates call, and the global functions.
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
  "msgs": [
    {
      "role": "system",
      "content": "S"
    },
    {
      "role": "user",
      "content": "U1"
    },
    {
      "role": "assistant",
      "content": "A1"
    },
    {
      "role": "user",
      "content": "U2"
    }
  ],
  "d": {
    "b": 1,
    "a": 2
  },
  "s": "  hello world  ",
  "data": {
    "name": "fn",
    "params": {
      "type": "object",
      "properties": {
        "x": {
          "type": "integer"
        }
      },
      "required": [
        "x"
      ]
    },
    "list": [
      1,
      2.5,
      null,
      true,
      "é\n\"q\""
    ],
    "empty": {},
    "el": []
  },
  "obj": {
    "z": 1,
    "a": "é",
    "items": "I",
    "m": 2.5
  }
})j";

// clang-format off
const Case kCases[] = {
    {"trim", nullptr,
     R"j([{{ '  x \n '|trim }}][{{ 'xxaxx'|trim('x') }}][{{ '\u3000a\u3000'|trim }}][{{ undefined_thing|trim }}])j",
     R"j([x][a][a][])j"},
    {"case_filters", nullptr,
     R"j({{ 'Hello World'|upper }} {{ 'Hello'|lower }} {{ 'hello WORLD'|capitalize }} {{ 'hello big-world (x)'|title }} {{ 'Ünïcödé straße'|upper }} {{ 'ΣΑΣ ΟΔΟΣ'|lower }} {{ 'привет'|upper }})j",
     R"j(HELLO WORLD hello Hello world Hello Big-World (X) ÜNÏCÖDÉ STRASSE σας οδος ПРИВЕТ)j"},
    {"replace", nullptr,
     R"j({{ 'abc'|replace('b', 'X') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ 'abc'|replace('', '-') }} {{ 5|replace('5', 'five') }})j",
     R"j(aXc bba -a-b-c- five)j"},
    {"indent", nullptr,
     R"j({{ 'line1\nline2\n\nline4'|indent }}|{{ 'a\nb'|indent(2, true) }}|{{ 'a\n\nb'|indent(width='> ', blank=true) }}|{{ 'single'|indent(8) }})j",
     "line1\n    line2\n\n    line4|  a\n  b|a\n> \n> b|single"},
    {"center_truncate_wordcount", nullptr,
     R"j([{{ 'ab'|center(6) }}] {{ 'hello world foo'|truncate(9) }}|{{ 'hello world foo'|truncate(9, true) }}|{{ 'hello'|truncate(20) }} {{ 'a b  c'|wordcount }})j",
     R"j([  ab  ] hello...|hello ...|hello 3)j"},
    {"string_and_escape", nullptr,
     R"j({{ 5|string ~ 'x' }} {{ [1]|string }} {{ none|string }} {{ 'a<b>&"\''|e }} {{ 'x'|safe }} {{ 1.0|string }})j",
     R"j(5x [1] None a&lt;b&gt;&amp;&#34;&#39; x 1.0)j"},
    {"format_filter", nullptr,
     R"j({{ '%s-%d'|format('a', 3) }} {{ '%(a)s'|format(a=1) }})j",
     R"j(a-3 1)j"},
    {"first_last_length", nullptr,
     R"j({{ [1, 2, 3]|first }} {{ [1, 2, 3]|last }} [{{ []|first }}] {{ 'abc'|first }} {{ 'abc'|last }} {{ d|first }} {{ [1, 2, 3]|length }} {{ 'héllo'|count }} {{ d|length }} {{ undefined_thing|length }})j",
     R"j(1 3 [] a c b 3 5 2 0)j"},
    {"join", nullptr,
     R"j({{ [1, 2, 3]|join('-') }} {{ [1, 2, 3]|join }} {{ [1, 'a', none]|join(', ') }} {{ msgs|join(',', attribute='role') }})j",
     R"j(1-2-3 123 1, a, None system,user,assistant,user)j"},
    {"sort", nullptr,
     R"j({{ [3, 1, 2]|sort }} {{ [3, 1, 2]|sort(reverse=true) }} {{ ['b', 'A', 'c']|sort }} {{ ['b', 'A', 'c']|sort(case_sensitive=true) }} {{ [{'n': 2}, {'n': 1}]|sort(attribute='n') }} {{ [{'a': 2, 'b': 1}, {'a': 1, 'b': 2}, {'a': 1, 'b': 1}]|sort(attribute='a,b')|map(attribute='b')|list }})j",
     R"j([1, 2, 3] [3, 2, 1] ['A', 'b', 'c'] ['A', 'b', 'c'] [{'n': 1}, {'n': 2}] [1, 2, 1])j"},
    {"reverse", nullptr,
     R"j({{ [1, 2, 3]|reverse|list }} {{ 'abc'|reverse }} {{ 'héllo'|reverse }} {{ d|reverse|list }}{% for i in range(3)|reverse %}{{ i }}{% endfor %})j",
     R"j([3, 2, 1] cba olléh ['a', 'b']210)j"},
    {"unique", nullptr,
     R"j({{ [1, 1, 2, 'a', 'A']|unique|list }} {{ ['b', 'A', 'a', 'B']|unique(case_sensitive=true)|list }} {{ msgs|unique(attribute='role')|map(attribute='content')|list }})j",
     R"j([1, 2, 'a'] ['b', 'A', 'a', 'B'] ['S', 'U1', 'A1'])j"},
    {"min_max_sum", nullptr,
     R"j({{ [1, 2, 3]|min }} {{ [1, 2, 3]|max }} {{ ['b', 'A']|min }} {{ [{'v': 3}, {'v': 1}]|max(attribute='v') }} [{{ []|max }}] {{ [1, 2, 3]|sum }} {{ [0.5, 1.5]|sum }} {{ [[1], [2]]|sum(start=[]) }} {{ [{'c': 2}, {'c': 3}]|sum(attribute='c') }})j",
     R"j(1 3 A {'v': 3} [] 6 2.0 [1, 2] 5)j"},
    {"select_reject", nullptr,
     R"j({{ [1, 2, 3, 4]|select('odd')|list }} {{ [1, 2, 3, 4]|reject('even')|list }} {{ [0, 1, '', 2]|select|list }} {{ [1, 5, 10]|select('gt', 4)|list }} {{ [1, 5, 10]|select('divisibleby', 5)|list }})j",
     R"j([1, 3] [1, 3] [1, 2] [5, 10] [5, 10])j"},
    {"selectattr_rejectattr", nullptr,
     R"j({{ msgs|selectattr('role', 'equalto', 'user')|map(attribute='content')|list }} {{ msgs|rejectattr('role', 'eq', 'user')|map(attribute='content')|list }} {{ msgs|selectattr('missing')|list }} {{ msgs|selectattr('role', 'in', ['system', 'user'])|list|length }} {{ msgs|selectattr('content', 'string')|list|length }})j",
     R"j(['U1', 'U2'] ['S', 'A1'] [] 3 4)j"},
    {"map", nullptr,
     R"j({{ msgs|map(attribute='role')|join(',') }} {{ ['a', 'b']|map('upper')|list }} {{ [1.5, 2.5]|map('round')|list }} {{ ['1', '2']|map('int')|sum }} {{ msgs|map(attribute='missing', default='d')|list }} {{ ['ab', 'cd']|map('replace', 'b', 'B')|list }})j",
     R"j(system,user,assistant,user ['A', 'B'] [2.0, 2.0] 3 ['d', 'd', 'd', 'd'] ['aB', 'cd'])j"},
    {"attribute_paths", nullptr,
     R"j({{ [{'a': {'b': 3}}]|map(attribute='a.b')|list }} {{ [[1, 2], [3, 4]]|map(attribute='1')|list }})j",
     R"j([3] [2, 4])j"},
    {"generators_are_truthy", nullptr,
     R"j({% set g = [1, 2, 3]|select('odd') %}{{ g is iterable }}{{ (g|list)|length }}{% if g %} truthy{% endif %}{% if []|select %} always{% endif %})j",
     R"j(True2 truthy always)j"},
    {"list_items_dictsort", nullptr,
     R"j({{ d|items|list }} {{ d|dictsort }} {{ d|dictsort(by='value') }} {{ d|dictsort(reverse=true) }} {{ d|list }} {{ 'ab'|list }} {{ (1, 2)|list }})j",
     R"j([('b', 1), ('a', 2)] [('a', 2), ('b', 1)] [('b', 1), ('a', 2)] [('b', 1), ('a', 2)] ['b', 'a'] ['a', 'b'] [1, 2])j"},
    {"batch", nullptr,
     R"j({{ [1, 2, 3, 4, 5]|batch(2)|list }} {{ [1, 2, 3]|batch(2, 'x')|list }})j",
     R"j([[1, 2], [3, 4], [5]] [[1, 2], [3, 'x']])j"},
    {"default", nullptr,
     R"j({{ undefined_thing|default('dflt') }} [{{ ''|default('e') }}] {{ ''|default('e', true) }} {{ none|d('n', boolean=true) }} {{ 0|default(5) }} {{ undefined_thing|default(none) is none }})j",
     R"j(dflt [] e n 0 True)j"},
    {"int_float_abs_round", nullptr,
     R"j({{ '3'|int + 1 }} {{ '3.7'|int }} {{ 'x'|int }} {{ 'x'|int(9) }} {{ 3.9|int }} {{ ' 12 '|int }} {{ '0x1A'|int(0, 16) }} {{ '2.5'|float }} {{ 'q'|float }} {{ 3|float }} {{ -3|abs }} {{ -2.5|abs }})j",
     R"j(4 3 0 9 3 12 26 2.5 0.0 3.0 3 2.5)j"},
    {"round", nullptr,
     R"j({{ 2.567|round(2) }} {{ 2.5|round }} {{ 3.5|round }} {{ 0.5|round }} {{ 1.25|round(1) }} {{ 2.675|round(2) }} {{ -1.5|round }} {{ 2.1|round(method='ceil') }} {{ 2.9|round(method='floor') }} {{ 7|round }} {{ 1234.5|round(-2) }})j",
     R"j(2.57 2.0 4.0 0.0 1.2 2.67 -2.0 3.0 2.0 7 1200.0)j"},
    {"tojson_compact", nullptr,
     R"j({{ data|tojson }})j",
     R"j({"name": "fn", "params": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}, "list": [1, 2.5, null, true, "é\n\"q\""], "empty": {}, "el": []})j"},
    {"tojson_indent", nullptr,
     R"j({{ data|tojson(indent=2) }}
{{ data.params|tojson(indent=4) }}
{{ [1, 2]|tojson(indent='\t') }})j",
     "{\n  \"name\": \"fn\",\n  \"params\": {\n    \"type\": \"object\",\n    \"properties\": {\n      \"x\": {\n        \"type\": \"integer\"\n      }\n    },\n    \"required\": [\n      \"x\"\n    ]\n  },\n  \"list\": [\n    1,\n    2.5,\n    null,\n    true,\n    \"é\\n\\\"q\\\"\"\n  ],\n  \"empty\": {},\n  \"el\": []\n}\n{\n    \"type\": \"object\",\n    \"properties\": {\n        \"x\": {\n            \"type\": \"integer\"\n        }\n    },\n    \"required\": [\n        \"x\"\n    ]\n}\n[\n\t1,\n\t2\n]"},
    {"tojson_options", nullptr,
     R"j({{ d|tojson(sort_keys=true) }} {{ {'a': 1}|tojson(separators=(',', ':')) }} {{ 'é\u2028\x7f\x01'|tojson }} {{ 'é😀'|tojson(ensure_ascii=true) }} {{ [1, (2, 3)]|tojson }} {{ 1.0|tojson }} {{ 1e100|tojson }} {{ '<>&\''|tojson }})j",
     "{\"a\": 2, \"b\": 1} {\"a\":1} \"é\342\200\250\177\\u0001\" \"\\u00e9\\ud83d\\ude00\" [1, [2, 3]] 1.0 1e+100 \"<>&'\""},
    {"tojson_keeps_key_order", nullptr,
     R"j({{ obj|tojson }} {% for k in obj %}{{ k }}{% endfor %})j",
     R"j({"z": 1, "a": "é", "items": "I", "m": 2.5} zaitemsm)j"},
    {"number_tests", nullptr,
     R"j({{ 1 is odd }} {{ 2 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 1 is number }} {{ true is number }} {{ 1 is integer }} {{ true is integer }} {{ 1.0 is float }} {{ 3.0 is odd }})j",
     R"j(True True True False True True True False True True)j"},
    {"type_tests", nullptr,
     R"j({{ none is none }} {{ 'a' is string }} {{ true is boolean }} {{ {} is mapping }} {{ [] is sequence }} {{ 'x' is sequence }} {{ {} is sequence }} {{ 1 is sequence }} {{ [] is iterable }} {{ 'x' is iterable }} {{ 1 is iterable }} {{ none is iterable }} {{ undefined_thing is iterable }})j",
     R"j(True True True True True True True False True True False False True)j"},
    {"value_tests", nullptr,
     R"j({{ true is true }} {{ 1 is true }} {{ false is false }} {{ 0 is false }} {{ 'ab' is lower }} {{ 'AB' is upper }} {{ 'Ab' is lower }} {{ range is callable }} {{ 1 is callable }} {{ 'upper' is filter }} {{ 'odd' is test }} {{ 'nope' is filter }})j",
     R"j(True False True False True True False True False True True False)j"},
    {"comparison_tests", nullptr,
     R"j({{ 1 is eq 1 }} {{ 1 is ne 2 }} {{ 1 is lt 2 }} {{ 2 is ge 2 }} {{ 3 is gt 2 }} {{ 2 is le 1 }} {{ [1, 2]|select('==', 1)|list }} {{ 1 is equalto 2 }} {{ 1 is in [1] }} {{ 1 is sameas 1 }} {{ none is sameas none }})j",
     R"j(True True True True True False [1] False True True True)j"},
    {"defined_tests", nullptr,
     R"j({{ undefined_thing is defined }} {{ undefined_thing is undefined }} {{ undefined_thing is not defined }} {{ d is defined and d.a is defined }} {{ d.zz is defined }} {{ msgs[9] is defined }} {{ none is defined }})j",
     R"j(False True True True False False True)j"},
    {"str_strip_split", nullptr,
     R"j([{{ s.strip() }}][{{ s.lstrip() }}][{{ s.rstrip() }}] {{ s.split() }} {{ s.split(' ') }} {{ 'a,b,,c'.split(',') }} {{ '  a  b  '.split(None, 1) }} {{ ' a b '.rsplit(None, 1) }} {{ 'a.b.c'.rsplit('.', 1) }} {{ ''.split() }} {{ ''.split(',') }})j",
     R"j([hello world][hello world  ][  hello world] ['hello', 'world'] ['', '', 'hello', 'world', '', ''] ['a', 'b', '', 'c'] ['a', 'b  '] [' a', 'b'] ['a.b', 'c'] [] [''])j"},
    {"str_strip_chars", nullptr,
     R"j({{ 'xxhixx'.strip('x') }} {{ 'abcba'.strip('ab') }} {{ 'é é'.strip('é') }} {{ '\n\nx\n'.lstrip('\n') }})j",
     R"j(hi c   x
)j"},
    {"str_think_split", nullptr,
     R"j({{ '<think>x</think>\n\nanswer'.split('</think>')[-1].lstrip('\n') }}|{{ '<think>\nr\n</think>a'.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') }})j",
     R"j(answer|r)j"},
    {"str_search", nullptr,
     R"j({{ s.startswith('  he') }} {{ s.endswith(('x', 'ld  ')) }} {{ 'text'.startswith('ex', 1) }} {{ 'text'.endswith('x', 0, 3) }} {{ s.find('l') }} {{ s.rfind('l') }} {{ 'héllo'.find('l') }} {{ s.find('zz') }} {{ s.count('l') }} {{ 'tab'.count('') }} {{ 'aaa'.count('aa') }})j",
     R"j(True True True True 4 11 2 -1 3 4 1)j"},
    {"str_transform", nullptr,
     R"j({{ s.upper() }} {{ 'hELLO wORLD'.title() }} {{ 'hELLO'.capitalize() }} {{ 'aBc'.swapcase() }} {{ s.replace('l', 'L') }} {{ s.replace('l', 'L', 2) }} {{ 'x'.join(['1', '2']) }} {{ 'a\nb\r\nc'.splitlines() }})j",
     R"j(  HELLO WORLD   Hello World Hello AbC   heLLo worLd     heLLo world   1x2 ['a', 'b', 'c'])j"},
    {"str_pad_partition", nullptr,
     R"j([{{ 'abc'.center(9, '*') }}] [{{ '5'.zfill(3) }}] [{{ '-5'.zfill(4) }}] [{{ 'ab'.ljust(4) }}] [{{ 'ab'.rjust(4, '.') }}] {{ 'ab'.partition('b') }} {{ 'abc'.rpartition('x') }} {{ 'pre_x'.removeprefix('pre_') }} {{ 'x.py'.removesuffix('.py') }})j",
     R"j([***abc***] [005] [-005] [ab  ] [..ab] ('a', 'b', '') ('', '', 'abc') x x)j"},
    {"str_predicates", nullptr,
     R"j({{ '  '.isspace() }} {{ 'abc'.isalpha() }} {{ '123'.isdigit() }} {{ 'Ab1'.isalnum() }} {{ 'ABC'.isupper() }} {{ 'Abc'.islower() }} {{ ''.isdigit() }} {{ 'Hello World'.istitle() }})j",
     R"j(True True True True True False False True)j"},
    {"str_format", nullptr,
     R"j({{ '{} and {}'.format(1, 'b') }} {{ '{0}{1}{0}'.format('a', 'b') }} {{ '{x}!'.format(x=3) }} {{ '{:>5}|{:<4}|{:^5}'.format('a', 'b', 'c') }} {{ '{:.2f}'.format(3.14159) }} {{ '{:05d}'.format(42) }} {{ '{!r}'.format('q') }} {{ '{{}}'.format() }} {{ '{:x}'.format(255) }} {{ '{}'.format(1.5) }})j",
     R"j(1 and b aba 3!     a|b   |  c   3.14 00042 'q' {} ff 1.5)j"},
    {"percent_format", nullptr,
     R"j({{ '%s-%d-%05.1f-%x-%r' % ('a', 3, 2.345, 255, 'q') }} {{ '%(a)s=%(b)d' % {'a': 'k', 'b': 2} }} {{ '%5s|%-5s|' % ('ab', 'cd') }} {{ '%.2f%%' % 12.345 }} {{ '%s' % 5 }})j",
     R"j(a-3-002.3-ff-'q' k=2    ab|cd   | 12.35% 5)j"},
    {"dict_methods", nullptr,
     R"j({{ obj.get('a') }} {{ obj.get('zz', 7) }} {{ obj.get('zz') }} {{ d.items()|list }} {{ d.keys()|list }} {{ d.values()|list }} {{ obj['items'] }} {{ obj.items is defined }})j",
     R"j(é 7 None [('b', 1), ('a', 2)] ['b', 'a'] [1, 2] I True)j"},
    {"list_methods", nullptr,
     R"j({{ [1, 2, 2].index(2) }} {{ [1, 2, 2].count(2) }} {{ (1, 2).index(2) }})j",
     R"j(1 2 1)j"},
    {"range", nullptr,
     R"j({{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ range(5, 0, -2)|list }} {{ range(0)|list }})j",
     R"j([0, 1, 2] [1, 4, 7] [5, 3, 1] [])j"},
    {"dict_and_namespace", nullptr,
     R"j({{ dict(a=1, b=2) }} {{ dict([('x', 1)]) }} {{ dict({'k': 1}, z=2) }} {{ namespace(a=1).a }})j",
     R"j({'a': 1, 'b': 2} {'x': 1} {'k': 1, 'z': 2} 1)j"},
};
// clang-format on

class JinjaBuiltins : public ::testing::TestWithParam<Case> {};

TEST_P(JinjaBuiltins, RendersAsJinja2Does) { testing_jinja::ExpectRendersAsJinja2(GetParam(), kContext); }

INSTANTIATE_TEST_SUITE_P(Cases, JinjaBuiltins, ::testing::ValuesIn(kCases), testing_jinja::CaseName);

}  // namespace
}  // namespace tailor::service
