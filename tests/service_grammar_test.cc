// Grammar engine for constrained decoding (service/grammar/): per-construct accept/reject
// checks, error messages, the token matcher on small vocabularies, and property tests that
// sample under random logits over the real tok512 and Llama-2 vocabularies until EOS and check
// the outputs independently (nlohmann parse + a small schema validator, std::regex, choices),
// and masks compared token by token with a slow reference (prefix checks of output + token).
#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "service/grammar/grammar.h"
#include "service/grammar/grammar_matcher.h"
#include "service/grammar/token_mask_cache.h"
#include "service/grammar/token_vocabulary.h"
#include "tokenizer/tokenizer.h"

namespace tailor::grammar {
namespace {

using nlohmann::json;

std::shared_ptr<const Grammar> Schema(const std::string& text) {
  auto g = GrammarFromJsonSchemaText(text);
  EXPECT_TRUE(g.ok()) << g.status() << " for " << text;
  return g.ok() ? *g : nullptr;
}

std::shared_ptr<const Grammar> Regex(const std::string& re) {
  auto g = GrammarFromRegex(re);
  EXPECT_TRUE(g.ok()) << g.status() << " for " << re;
  return g.ok() ? *g : nullptr;
}

std::string SchemaError(const std::string& text) {
  auto g = GrammarFromJsonSchemaText(text);
  EXPECT_FALSE(g.ok()) << text;
  if (g.ok()) return "";
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(g.status().message());
}

std::string RegexError(const std::string& re) {
  auto g = GrammarFromRegex(re);
  EXPECT_FALSE(g.ok()) << re;
  if (g.ok()) return "";
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(g.status().message());
}

// ---------------------------------------------------------------- JSON schema constructs

TEST(GrammarJsonSchema, String) {
  auto g = Schema(R"({"type":"string"})");
  EXPECT_TRUE(g->Matches(R"("")"));
  EXPECT_TRUE(g->Matches(R"("abc def")"));
  EXPECT_TRUE(g->Matches(R"("q\"\\\/\b\f\n\r\t\u00e9\uD83D")") == false);  // lone surrogate escape
  EXPECT_TRUE(g->Matches(R"("q\"\\\/\b\f\n\r\t\u00e9")"));
  EXPECT_TRUE(g->Matches("\"h\xC3\xA9llo \xF0\x9F\x98\x80\""));  // UTF-8 é and an emoji
  EXPECT_FALSE(g->Matches("\"a\x01\""));                           // control byte
  EXPECT_FALSE(g->Matches("\"\xC3\""));                            // truncated character
  EXPECT_FALSE(g->Matches("\"\xED\xA0\x80\""));                    // encoded surrogate
  EXPECT_FALSE(g->Matches("\"\xC0\xAF\""));                        // overlong
  EXPECT_FALSE(g->Matches(R"("\x")"));
  EXPECT_FALSE(g->Matches(R"("abc)"));
  EXPECT_TRUE(g->IsPrefix("\"ab\xC3"));
  EXPECT_EQ(g->ShortestMatchBytes(), 2);
}

TEST(GrammarJsonSchema, NumbersAndLiterals) {
  auto integer = Schema(R"({"type":"integer"})");
  for (const char* ok : {"0", "-7", "123456789012345"}) EXPECT_TRUE(integer->Matches(ok)) << ok;
  for (const char* bad : {"01", "1.5", "-", "1234567890123456", "+1", "1e3"}) {
    EXPECT_FALSE(integer->Matches(bad)) << bad;
  }
  auto number = Schema(R"({"type":"number"})");
  for (const char* ok : {"0", "-0.5", "3.25e+10", "1E-2", "12"}) EXPECT_TRUE(number->Matches(ok)) << ok;
  for (const char* bad : {".5", "1.", "1e", "--1", "0x10"}) EXPECT_FALSE(number->Matches(bad)) << bad;
  auto b = Schema(R"({"type":"boolean"})");
  EXPECT_TRUE(b->Matches("true"));
  EXPECT_TRUE(b->Matches("false"));
  EXPECT_FALSE(b->Matches("null"));
  auto nullable = Schema(R"({"type":["string","null"]})");
  EXPECT_TRUE(nullable->Matches("null"));
  EXPECT_TRUE(nullable->Matches(R"("x")"));
  EXPECT_FALSE(nullable->Matches("1"));
}

TEST(GrammarJsonSchema, IntegerBoundsMatchExactlyTheIntegersInRange) {
  struct Case {
    const char* bounds;
    int64_t lo, hi;
  };
  for (const Case& c : std::vector<Case>{{R"("minimum":0,"maximum":0)", 0, 0},
                                         {R"("minimum":0,"maximum":9)", 0, 9},
                                         {R"("minimum":0,"maximum":100)", 0, 100},
                                         {R"("minimum":-37,"maximum":125)", -37, 125},
                                         {R"("minimum":10,"maximum":99)", 10, 99},
                                         {R"("minimum":-1000,"maximum":-1)", -1000, -1},
                                         {R"("minimum":13,"maximum":4567)", 13, 4567},
                                         {R"("minimum":2.5,"exclusiveMaximum":20)", 3, 19},
                                         {R"("exclusiveMinimum":-5,"maximum":7.9)", -4, 7},
                                         {R"("minimum":995,"maximum":1004)", 995, 1004}}) {
    auto g = Schema(std::string(R"({"type":"integer",)") + c.bounds + "}");
    ASSERT_NE(g, nullptr) << c.bounds;
    for (int64_t x = c.lo - 120; x <= c.hi + 120; ++x) {
      EXPECT_EQ(g->Matches(std::to_string(x)), x >= c.lo && x <= c.hi) << c.bounds << ": " << x;
    }
    EXPECT_FALSE(g->Matches("-0")) << c.bounds;
    EXPECT_FALSE(g->Matches("00")) << c.bounds;
  }
  // One side only, and zod's safe-integer bounds (z.number().int()), which the 15-digit cap implies.
  auto non_negative = Schema(R"({"type":"integer","minimum":0})");
  EXPECT_TRUE(non_negative->Matches("0"));
  EXPECT_TRUE(non_negative->Matches("999999999999999"));
  EXPECT_FALSE(non_negative->Matches("-1"));
  EXPECT_FALSE(non_negative->Matches("01"));
  auto safe = Schema(R"({"type":"integer","minimum":-9007199254740991,"maximum":9007199254740991})");
  for (const char* ok : {"0", "-7", "123456789012345", "-999999999999999"}) EXPECT_TRUE(safe->Matches(ok)) << ok;
  EXPECT_FALSE(safe->Matches("1234567890123456"));
  EXPECT_NE(SchemaError(R"({"type":"integer","minimum":5,"maximum":4})").find("no integer"), std::string::npos);
  EXPECT_NE(SchemaError(R"({"minimum":5})").find("integer"), std::string::npos);
}

TEST(GrammarJsonSchema, ObjectPropertiesInOrderOptionalOmitted) {
  auto g = Schema(R"({"type":"object","properties":{"b":{"type":"integer"},"a":{"type":"string"},
                      "c":{"type":"boolean"}},"required":["a"],"additionalProperties":false})");
  EXPECT_TRUE(g->Matches(R"({"b":1,"a":"x","c":true})"));
  EXPECT_TRUE(g->Matches(R"({"a":"x"})"));
  EXPECT_TRUE(g->Matches(R"({"b": 1, "a": "x"})"));
  EXPECT_TRUE(g->Matches("{\n  \"a\": \"x\",\n  \"c\": false\n}"));
  EXPECT_FALSE(g->Matches(R"({"a":"x","b":1})"));  // out of schema order
  EXPECT_FALSE(g->Matches(R"({"b":1})"));          // required a missing
  EXPECT_FALSE(g->Matches(R"({"a":"x","d":1})"));  // undeclared key
  EXPECT_FALSE(g->Matches(R"({"a":"x",})"));
  EXPECT_FALSE(g->Matches(R"({"a":"x"}  )"));
  EXPECT_FALSE(g->Matches("{\"a\":   \"x\"}"));  // whitespace is bounded
  auto all_optional = Schema(R"({"type":"object","properties":{"p":{"type":"integer"},"q":{"type":"null"}}})");
  EXPECT_TRUE(all_optional->Matches("{}"));
  EXPECT_TRUE(all_optional->Matches(R"({"q":null})"));
  EXPECT_TRUE(all_optional->Matches(R"({"p":2,"q":null})"));
  EXPECT_FALSE(all_optional->Matches(R"({,"q":null})"));
  auto free_object = Schema(R"({"type":"object"})");
  EXPECT_TRUE(free_object->Matches(R"({"anything":[1,{"x":null}],"y":"z"})"));
  auto empty_object = Schema(R"({"type":"object","additionalProperties":false})");
  EXPECT_TRUE(empty_object->Matches("{}"));
  EXPECT_FALSE(empty_object->Matches(R"({"a":1})"));
}

TEST(GrammarJsonSchema, ArraysEnumsConstAnyOf) {
  auto arr = Schema(R"({"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":3})");
  EXPECT_TRUE(arr->Matches("[1]"));
  EXPECT_TRUE(arr->Matches("[1, 2,3]"));
  EXPECT_FALSE(arr->Matches("[]"));
  EXPECT_FALSE(arr->Matches("[1,2,3,4]"));
  EXPECT_FALSE(arr->Matches("[1,]"));
  auto any_arr = Schema(R"({"type":"array"})");
  EXPECT_TRUE(any_arr->Matches(R"([1,"a",null,{"b":[]}])"));
  EXPECT_TRUE(any_arr->Matches("[]"));
  auto e = Schema(R"({"enum":["red","gr\"een",3,null,{"a":1}]})");
  EXPECT_TRUE(e->Matches(R"("red")"));
  EXPECT_TRUE(e->Matches(R"("gr\"een")"));
  EXPECT_TRUE(e->Matches("3"));
  EXPECT_TRUE(e->Matches("null"));
  EXPECT_TRUE(e->Matches(R"({"a":1})"));
  EXPECT_FALSE(e->Matches(R"("blue")"));
  auto c = Schema(R"({"const":"get_weather"})");
  EXPECT_TRUE(c->Matches(R"("get_weather")"));
  EXPECT_FALSE(c->Matches(R"("get_weathe")"));
  auto any_of = Schema(R"({"anyOf":[{"type":"integer"},{"type":"object","properties":{"k":{"type":"string"}},
                          "required":["k"]}]})");
  EXPECT_TRUE(any_of->Matches("42"));
  EXPECT_TRUE(any_of->Matches(R"({"k":"v"})"));
  EXPECT_FALSE(any_of->Matches(R"("s")"));
}

TEST(GrammarJsonSchema, RecursiveRefs) {
  auto tree = Schema(R"({"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},
      "kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v","kids"]}},
      "$ref":"#/$defs/node"})");
  EXPECT_TRUE(tree->Matches(R"({"v":1,"kids":[]})"));
  EXPECT_TRUE(tree->Matches(R"({"v":1,"kids":[{"v":2,"kids":[{"v":3,"kids":[]}]},{"v":4,"kids":[]}]})"));
  EXPECT_FALSE(tree->Matches(R"({"v":1,"kids":[{"v":2}]})"));
  auto list = Schema(R"({"type":"object","properties":{"name":{"type":"string"},
      "next":{"anyOf":[{"$ref":"#"},{"type":"null"}]}},"required":["name","next"]})");
  EXPECT_TRUE(list->Matches(R"({"name":"a","next":{"name":"b","next":null}})"));
  auto defs = Schema(R"({"definitions":{"c":{"enum":["r","g"]}},"type":"array","items":{"$ref":"#/definitions/c"}})");
  EXPECT_TRUE(defs->Matches(R"(["r","g","r"])"));
  EXPECT_FALSE(defs->Matches(R"(["b"])"));
}

TEST(GrammarJsonSchema, ErrorsNameKeywordAndLocation) {
  EXPECT_EQ(SchemaError(R"({"type":"object","properties":{"zip":{"type":"string","pattern":"[0-9]{5}"}}})"),
            "unsupported JSON schema keyword 'pattern' at #/properties/zip");
  EXPECT_EQ(SchemaError(R"({"type":"string","format":"date"})"), "unsupported JSON schema keyword 'format' at #");
  EXPECT_EQ(SchemaError(R"({"type":"array","items":{"type":"string","minLength":2}})"),
            "unsupported JSON schema keyword 'minLength' at #/items");
  EXPECT_EQ(SchemaError(R"({"oneOf":[{"type":"string"}]})"), "unsupported JSON schema keyword 'oneOf' at #");
  EXPECT_EQ(SchemaError(R"({"$defs":{"a":{"type":"integer","multipleOf":2}},"$ref":"#/$defs/a"})"),
            "unsupported JSON schema keyword 'multipleOf' at #/$defs/a");
  EXPECT_EQ(SchemaError(R"({"type":"number","minimum":0})"),
            "unsupported JSON schema keyword 'minimum' for type 'number' (supported for 'integer') at #");
  EXPECT_EQ(SchemaError(R"({"anyOf":[{"type":"string"},{"not":{}}]})"),
            "unsupported JSON schema keyword 'not' at #/anyOf/1");
  for (const char* kw : {"allOf", "if", "patternProperties", "maxLength", "uniqueItems", "prefixItems"}) {
    const std::string msg = SchemaError(std::string(R"({"type":"object",")") + kw + R"(":[]})");
    EXPECT_NE(msg.find(std::string("'") + kw + "'"), std::string::npos) << msg;
  }
  EXPECT_NE(SchemaError(R"({"$ref":"#/$defs/missing"})").find("not found"), std::string::npos);
  EXPECT_NE(SchemaError(R"({"type":"strin"})").find("unknown type 'strin'"), std::string::npos);
  EXPECT_NE(SchemaError(R"({"type":"object","properties":{"a":{}},"required":["b"]})").find("'b'"),
            std::string::npos);
  EXPECT_NE(SchemaError(R"({"anyOf":[{"$ref":"#"},{"type":"null"}]})").find("left-recursive"), std::string::npos);
  EXPECT_NE(SchemaError(R"({"type":"object","properties":{"a":{"$ref":"#"}},"required":["a"]})").find("matches no"),
            std::string::npos);
  EXPECT_NE(SchemaError("{not json").find("not valid JSON"), std::string::npos);
  // nlohmann::json (sorted keys) is accepted too.
  EXPECT_TRUE(GrammarFromJsonSchema(json::parse(R"({"type":"integer","title":"t"})")).ok());
}

TEST(GrammarJsonSchema, AnyJsonObject) {
  auto g = GrammarForAnyJsonObject();
  EXPECT_TRUE(g->Matches("{}"));
  EXPECT_TRUE(g->Matches(R"({"a": [1, 2.5, "x", true, false, null, {"b": {}}]})"));
  EXPECT_FALSE(g->Matches("[]"));
  EXPECT_FALSE(g->Matches(R"({"a" 1})"));
  EXPECT_FALSE(g->Matches(R"({a:1})"));
  EXPECT_EQ(GrammarForAnyJsonObject().get(), g.get());  // built once
}

TEST(GrammarJsonSchema, ManyOptionalPropertiesStayCompact) {
  // 40 optional properties: the "what may follow property j" rules are O(n^2) small edges, not
  // an exponential expansion.
  json props = json::object();
  for (int i = 0; i < 40; ++i) props[absl::StrCat("p", 100 + i)] = {{"type", "integer"}};
  auto g = GrammarFromJsonSchema(json{{"type", "object"}, {"properties", props}});
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_LT((*g)->num_states(), 8000);  // 5603 when written
  EXPECT_TRUE((*g)->Matches(R"({"p103":1,"p120":2,"p139":3})"));
  EXPECT_FALSE((*g)->Matches(R"({"p120":2,"p103":1})"));
  EXPECT_TRUE((*g)->Matches("{}"));
}

// ---------------------------------------------------------------- regex, choices, builder

TEST(GrammarRegex, Constructs) {
  auto g = Regex(R"(^[a-z]+@[a-z0-9_]+\.(com|org)$)");
  EXPECT_TRUE(g->Matches("bob@mail_1.com"));
  EXPECT_FALSE(g->Matches("bob@mail.net"));
  EXPECT_FALSE(g->Matches("Bob@mail.com"));
  auto d = Regex(R"(\d{3}-\d{2,}-?\w*\s?\S)");
  EXPECT_TRUE(d->Matches("123-45-ab_ x"));
  EXPECT_TRUE(d->Matches("123-456x"));
  EXPECT_FALSE(d->Matches("12-45x"));
  auto dot = Regex("a.c");
  EXPECT_TRUE(dot->Matches("abc"));
  EXPECT_TRUE(dot->Matches("a\xC3\xA9" "c"));  // one UTF-8 character
  EXPECT_FALSE(dot->Matches("a\nc"));
  EXPECT_FALSE(dot->Matches("a\xC3\xA9\xC3\xA9" "c"));
  auto neg = Regex(R"([^a-c\d]+)");
  EXPECT_TRUE(neg->Matches("xyz\xE2\x82\xAC"));
  EXPECT_FALSE(neg->Matches("xa"));
  EXPECT_FALSE(neg->Matches("x1"));
  auto q = Regex(R"((?:ab){2}(?<n>x|yz)?c{1,3}?d*e+\{\}[-+]\u00e9)");
  EXPECT_TRUE(q->Matches("ababyzcceee{}-\xC3\xA9"));
  EXPECT_TRUE(q->Matches("ababcde{}+\xC3\xA9"));
  EXPECT_FALSE(q->Matches("abcde{}+\xC3\xA9"));
  auto lit = Regex(R"(a{b)");  // '{' that starts no quantifier is literal
  EXPECT_TRUE(lit->Matches("a{b"));
}

TEST(GrammarRegex, UnsupportedSyntaxIsNamed) {
  EXPECT_NE(RegexError(R"((a)\1)").find("backreference"), std::string::npos);
  EXPECT_NE(RegexError("a(?=b)").find("lookahead"), std::string::npos);
  EXPECT_NE(RegexError("(?<!a)b").find("lookbehind"), std::string::npos);
  EXPECT_NE(RegexError(R"(\bword)").find("word boundary"), std::string::npos);
  EXPECT_NE(RegexError("(?i)abc").find("group syntax"), std::string::npos);
  EXPECT_NE(RegexError("a^b").find("'^'"), std::string::npos);
  EXPECT_NE(RegexError("(ab").find("missing ')'"), std::string::npos);
  EXPECT_NE(RegexError("ab)").find("unmatched"), std::string::npos);
  EXPECT_NE(RegexError("*a").find("nothing to repeat"), std::string::npos);
  EXPECT_NE(RegexError("[abc").find("unterminated"), std::string::npos);
  EXPECT_NE(RegexError("a{5,2}").find("m < n"), std::string::npos);
}

TEST(GrammarChoices, ExactlyOne) {
  auto g = GrammarFromChoices({"yes", "no", "not sure"});
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE((*g)->Matches("no"));
  EXPECT_TRUE((*g)->Matches("not sure"));
  EXPECT_FALSE((*g)->Matches("not"));
  EXPECT_FALSE((*g)->Matches("yesno"));
  EXPECT_FALSE(GrammarFromChoices({}).ok());
}

TEST(GrammarBuilder, ToolCallsOneOrMore) {
  GrammarBuilder b;
  auto args = b.JsonSchema(json::parse(
      R"({"type":"object","properties":{"city":{"type":"string"},"unit":{"enum":["c","f"]}},
          "required":["city","unit"],"additionalProperties":false})"));
  ASSERT_TRUE(args.ok());
  auto name = b.JsonSchema(json::parse(R"({"const":"get_weather"})"));
  ASSERT_TRUE(name.ok());
  auto call = b.Sequence({b.Literal("<tool_call>\n{\"name\": "), *name, b.Literal(", \"arguments\": "), *args,
                          b.Literal("}\n</tool_call>")});
  auto g = b.Build(b.Choice({b.OneOrMore(call), b.Sequence({b.Literal("text: "), b.AnyJsonObject()})}));
  ASSERT_TRUE(g.ok()) << g.status();
  const std::string one =
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>";
  EXPECT_TRUE((*g)->Matches(one));
  EXPECT_TRUE((*g)->Matches(one + one));
  EXPECT_TRUE((*g)->Matches("text: {\"x\":1}"));
  EXPECT_FALSE((*g)->Matches(""));
  EXPECT_FALSE((*g)->Matches(one + "\n"));
  EXPECT_FALSE((*g)->Matches("<tool_call>\n{\"name\": \"other\", \"arguments\": {}}\n</tool_call>"));
}

// ---------------------------------------------------------------- vocabulary and matcher

std::shared_ptr<const TokenVocabulary> ToyVocab() {
  std::vector<std::string> bytes = {"", ""};  // 0: EOS, 1: a control token
  for (int b = 0; b < 256; ++b) bytes.push_back(std::string(1, static_cast<char>(b)));  // 2..257
  for (const char* t : {"{\"", "\":", "\"}", "yes", "no", "ye", "\xC3", "\xA9\"", "abc\"", "true"}) {
    bytes.push_back(t);  // 258..
  }
  return TokenVocabulary::Build(bytes, {0});
}
int32_t Tok(const TokenVocabulary& v, const std::string& s) {
  for (int32_t id = 0; id < v.size(); ++id) {
    if (v.bytes(id) == s && !v.is_eos(id)) return id;
  }
  return -1;
}

TEST(GrammarMatcher, TrieAndByteCoverage) {
  auto v = ToyVocab();
  EXPECT_TRUE(v->covers_all_bytes());
  EXPECT_EQ(v->max_token_bytes(), 4);
  EXPECT_FALSE(TokenVocabulary::Build({"a", "b"}, {})->covers_all_bytes());
  // Every non-special token appears once in the trie, at a node spelling its bytes.
  int32_t count = 0;
  for (const auto& node : v->trie()) count += node.tokens_end - node.tokens_begin;
  EXPECT_EQ(count, v->size() - 2);
}

TEST(GrammarMatcher, ChoiceMaskEosAndCanContinue) {
  auto v = ToyVocab();
  GrammarMatcher m(*GrammarFromChoices({"yes", "no"}), v);
  std::vector<float> logits(v->size() + 5, 0.0f);  // padded beyond the vocabulary
  m.ApplyMask(logits, 100);
  std::vector<std::string> allowed;
  for (int32_t t = 0; t < static_cast<int32_t>(logits.size()); ++t) {
    if (std::isfinite(logits[t])) allowed.push_back(v->bytes(t));
  }
  EXPECT_EQ(allowed, (std::vector<std::string>{"n", "y", "yes", "no", "ye"}));
  EXPECT_FALSE(m.IsAllowed(0, 100));  // EOS before complete
  EXPECT_EQ(m.Accept(0).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(m.Accept(1).code(), absl::StatusCode::kFailedPrecondition);  // special
  EXPECT_EQ(m.Accept(Tok(*v, "true")).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(m.Output(), "");
  ASSERT_TRUE(m.Accept(Tok(*v, "ye")).ok());
  EXPECT_FALSE(m.IsComplete());
  ASSERT_TRUE(m.Accept(Tok(*v, "s")).ok());
  EXPECT_TRUE(m.IsComplete());
  EXPECT_FALSE(m.CanContinue());
  EXPECT_TRUE(m.IsAllowed(0, 100));
  EXPECT_FALSE(m.IsAllowed(Tok(*v, "s"), 100));
  ASSERT_TRUE(m.Accept(0).ok());
  EXPECT_TRUE(m.IsFinished());
  EXPECT_EQ(m.Output(), "yes");
  EXPECT_FALSE(m.Accept(0).ok());
}

TEST(GrammarMatcher, TokensSplitUtf8Characters) {
  auto v = ToyVocab();
  GrammarMatcher m(Schema(R"({"type":"object","properties":{"k":{"type":"string"}},"required":["k"]})"), v);
  for (const std::string& t : {std::string("{\""), std::string("k"), std::string("\":"), std::string("\"")}) {
    ASSERT_TRUE(m.Accept(Tok(*v, t)).ok()) << t;
  }
  EXPECT_TRUE(m.IsAllowed(Tok(*v, "\xC3"), 100));
  EXPECT_FALSE(m.IsAllowed(Tok(*v, "\xA9\""), 100));  // a continuation byte cannot start
  ASSERT_TRUE(m.Accept(Tok(*v, "\xC3")).ok());
  EXPECT_TRUE(m.IsAllowed(Tok(*v, "\xA9\""), 100));
  EXPECT_FALSE(m.IsAllowed(Tok(*v, "\""), 100));  // would end mid-character
  EXPECT_FALSE(m.IsAllowed(Tok(*v, "abc\""), 100));
  ASSERT_TRUE(m.Accept(Tok(*v, "\xA9\"")).ok());
  ASSERT_TRUE(m.Accept(Tok(*v, "}")).ok());
  EXPECT_TRUE(m.IsComplete());
  EXPECT_EQ(m.Output(), "{\"k\":\"\xC3\xA9\"}");
}

TEST(GrammarMatcher, BudgetForcesCompletion) {
  auto v = ToyVocab();
  auto g = Schema(R"({"type":"object","properties":{"k":{"type":"string"}},"required":["k"]})");
  const int32_t shortest = g->ShortestMatchBytes();  // {"k":""}
  EXPECT_EQ(shortest, 8);
  GrammarMatcher m(g, v);
  // With exactly shortest + 1 tokens, the first token must be "{" or "{\"".
  std::vector<float> logits(v->size(), 0.0f);
  m.ApplyMask(logits, shortest + 1);
  for (int32_t t = 0; t < v->size(); ++t) {
    if (std::isfinite(logits[t])) {
      EXPECT_TRUE(v->bytes(t) == "{" || v->bytes(t) == "{\"") << v->bytes(t);
    }
  }
  ASSERT_TRUE(m.Accept(Tok(*v, "{\"")).ok());
  ASSERT_TRUE(m.Accept(Tok(*v, "k")).ok());
  ASSERT_TRUE(m.Accept(Tok(*v, "\":")).ok());
  ASSERT_TRUE(m.Accept(Tok(*v, "\"")).ok());
  // 2 tokens left: only the closing "} in one token fits (then EOS).
  for (int32_t t = 0; t < v->size(); ++t) {
    EXPECT_EQ(m.IsAllowed(t, 2), v->bytes(t) == "\"}") << t;
  }
  // Best effort when nothing fits: the tokens that complete soonest.
  EXPECT_TRUE(m.IsAllowed(Tok(*v, "\"}"), 1));
  EXPECT_GT(m.stats().budget_walks + m.stats().cache_misses, 0);
}

// ---------------------------------------------------------------- property tests

// A validator for the supported schema subset (independent of the grammar code).
bool Validate(const json& v, const json& s, const json& root);

bool ValidateType(const json& v, const std::string& type, const json& s, const json& root) {
  if (type == "string") return v.is_string();
  if (type == "integer") return v.is_number_integer();
  if (type == "number") return v.is_number();
  if (type == "boolean") return v.is_boolean();
  if (type == "null") return v.is_null();
  if (type == "array") {
    if (!v.is_array()) return false;
    if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) return false;
    if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) return false;
    for (const json& item : v) {
      if (s.contains("items") && !Validate(item, s["items"], root)) return false;
    }
    return true;
  }
  if (type == "object") {
    if (!v.is_object()) return false;
    const json props = s.value("properties", json::object());
    for (const json& r : s.value("required", json::array())) {
      if (!v.contains(r.get<std::string>())) return false;
    }
    for (const auto& [key, value] : v.items()) {
      if (props.contains(key)) {
        if (!Validate(value, props[key], root)) return false;
      } else if (s.contains("additionalProperties") && s["additionalProperties"] == false) {
        return false;
      }
    }
    return true;
  }
  return false;
}

bool Validate(const json& v, const json& s, const json& root) {
  if (s.is_boolean()) return s.get<bool>();
  if (s.contains("$ref")) {
    const std::string ref = s["$ref"];
    return Validate(v, root.at(json::json_pointer(ref.substr(1))), root);
  }
  if (s.contains("anyOf")) {
    for (const json& alt : s["anyOf"]) {
      if (Validate(v, alt, root)) return true;
    }
    return false;
  }
  if (s.contains("const")) return v == s["const"];
  if (s.contains("enum")) {
    for (const json& e : s["enum"]) {
      if (v == e) return true;
    }
    return false;
  }
  std::vector<std::string> types;
  if (s.contains("type")) {
    if (s["type"].is_string()) types.push_back(s["type"]);
    else for (const json& t : s["type"]) types.push_back(t);
  } else if (s.contains("properties")) {
    types.push_back("object");
  } else if (s.contains("items")) {
    types.push_back("array");
  } else {
    return true;
  }
  for (const std::string& t : types) {
    if (ValidateType(v, t, s, root)) return true;
  }
  return false;
}

struct Sampled {
  std::string output;
  bool finished = false;  // EOS accepted
  int32_t tokens = 0;     // EOS included
};

// Samples under the matcher's masks from random logits (Gumbel-max at `temperature`) until EOS
// or `budget` tokens. Fails the test if a sampled (allowed) token is rejected by Accept.
Sampled Sample(std::shared_ptr<const Grammar> g, std::shared_ptr<const TokenVocabulary> v, uint32_t seed,
               float temperature, int32_t budget) {
  GrammarMatcher m(std::move(g), v);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::uniform_real_distribution<double> uniform(1e-12, 1.0);
  std::vector<float> logits(v->size());
  Sampled out;
  for (int32_t step = 0; step < budget; ++step) {
    for (float& l : logits) l = normal(rng);
    m.ApplyMask(logits, budget - step);
    int32_t best = -1;
    double best_score = -INFINITY;
    for (int32_t t = 0; t < v->size(); ++t) {
      if (!std::isfinite(logits[t])) continue;
      const double score = logits[t] / temperature - std::log(-std::log(uniform(rng)));
      if (score > best_score) best_score = score, best = t;
    }
    if (best < 0) {
      ADD_FAILURE() << "empty mask after \"" << m.Output() << "\"";
      break;
    }
    const bool eos = v->is_eos(best);
    if (eos) {
      EXPECT_TRUE(m.IsComplete());
    }
    const absl::Status s = m.Accept(best);
    EXPECT_TRUE(s.ok()) << s;
    if (!s.ok()) break;
    ++out.tokens;
    if (eos) {
      out.finished = true;
      break;
    }
  }
  out.output = m.Output();
  return out;
}

struct Vocabs {
  std::shared_ptr<const TokenVocabulary> tok512, llama2;
};

const Vocabs& LoadVocabs() {
  static const Vocabs* vocabs = [] {
    auto* v = new Vocabs;
    for (auto [path, slot] : {std::pair{"/models/stories260K/tok512.model", &v->tok512},
                              std::pair{"/models/tokenizers/llama2-tokenizer.model", &v->llama2}}) {
      auto tok = Tokenizer::Load(std::string(TAILOR_SHARED_DIR) + path, 0);
      EXPECT_TRUE(tok.ok()) << tok.status();
      if (tok.ok()) *slot = TokenVocabulary::FromTokenizer(**tok);
    }
    return v;
  }();
  return *vocabs;
}

// Budgets: the tightest that still guarantees completion, a few above, and a generous one.
std::vector<int32_t> Budgets(const Grammar& g, int32_t generous) {
  const int32_t s = g.ShortestMatchBytes();
  return {s + 1, s + 2, s + 5, s + 20, std::max(generous, s + 1)};
}

void CheckProperty(const std::shared_ptr<const TokenVocabulary>& vocab, const std::shared_ptr<const Grammar>& g,
                   int seeds, int32_t generous, const std::function<bool(const std::string&)>& valid,
                   const std::string& what) {
  ASSERT_TRUE(vocab != nullptr);
  ASSERT_TRUE(vocab->covers_all_bytes());
  const float temperatures[] = {0.3f, 1.0f, 4.0f};
  for (int seed = 0; seed < seeds; ++seed) {
    for (int32_t budget : Budgets(*g, generous)) {
      const float temperature = temperatures[(seed + budget) % 3];
      const Sampled r = Sample(g, vocab, 1000 * seed + budget, temperature, budget);
      ASSERT_TRUE(r.finished) << what << " budget " << budget << " seed " << seed << ": \"" << r.output << "\"";
      ASSERT_LE(r.tokens, budget);
      ASSERT_TRUE(g->Matches(r.output)) << r.output;
      ASSERT_TRUE(valid(r.output)) << what << ": \"" << r.output << "\"";
    }
  }
}

const char* kSchemas[] = {
    R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},
        "tags":{"type":"array","items":{"type":"string"},"maxItems":3}},"required":["name","age"],
        "additionalProperties":false})",
    R"({"type":"object","properties":{"a":{"type":"object","properties":{"b":{"type":["number","null"]},
        "c":{"enum":["x","y",3,null]}},"required":["c"]},"d":{"type":"boolean"}},"required":["a","d"]})",
    R"({"anyOf":[{"type":"string"},{"type":"object","properties":{"k":{"const":"v"}},"required":["k"]},
        {"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":2}]})",
    R"({"$defs":{"node":{"type":"object","properties":{"value":{"type":"integer"},
        "children":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["value","children"]}},
        "$ref":"#/$defs/node"})",
    R"({"type":"object","properties":{"name":{"type":"string"},"next":{"anyOf":[{"$ref":"#"},{"type":"null"}]}},
        "required":["name","next"]})",
    R"({"definitions":{"color":{"enum":["red","green"]}},"type":"array","items":{"$ref":"#/definitions/color"},
        "minItems":2})",
    R"({"type":"object","properties":{"p":{"type":"integer"},"q":{"type":"string"},"r":{"type":"null"}}})",
    R"({})",
};

void CheckSchemas(const std::shared_ptr<const TokenVocabulary>& vocab, int seeds, int32_t generous) {
  for (const char* text : kSchemas) {
    const json schema = json::parse(text);
    CheckProperty(vocab, Schema(text), seeds, generous, [&](const std::string& out) {
      const json v = json::parse(out, nullptr, false);
      return !v.is_discarded() && Validate(v, schema, schema);
    }, text);
  }
  CheckProperty(vocab, GrammarForAnyJsonObject(), seeds, generous, [](const std::string& out) {
    const json v = json::parse(out, nullptr, false);
    return !v.is_discarded() && v.is_object();
  }, "json_object");
}

void CheckRegexesAndChoices(const std::shared_ptr<const TokenVocabulary>& vocab, int seeds, int32_t generous) {
  for (const char* re : {R"([a-z]+@[a-z0-9_]+\.(com|org))", R"(\d{3}-\d{2,4}( [A-Z]\w*)?)",
                         R"((yes|no|maybe)!*)", R"(\(\d+(,\s?\d+)*\))"}) {
    const std::regex reference(re);
    CheckProperty(vocab, Regex(re), seeds, generous,
                  [&](const std::string& out) { return std::regex_match(out, reference); }, re);
  }
  // A negated class over code points (std::regex would count bytes): 2 to 8 characters, none of
  // them '"', '\\' or a newline, as valid UTF-8.
  CheckProperty(vocab, Regex(R"([^"\\\n]{2,8})"), seeds, generous, [](const std::string& out) {
    int chars = 0;
    for (size_t i = 0; i < out.size(); ++chars) {
      const auto b = static_cast<uint8_t>(out[i]);
      const size_t n = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC2 ? 2 : 0;
      if (n == 0 || i + n > out.size() || b == '"' || b == '\\' || b == '\n') return false;
      for (size_t k = 1; k < n; ++k) {
        if ((static_cast<uint8_t>(out[i + k]) & 0xC0) != 0x80) return false;
      }
      i += n;
    }
    return chars >= 2 && chars <= 8;
  }, "negated class");
  const std::vector<std::string> choices = {"positive", "negative", "neutral", "n/a", "\xC3\xA9t\xC3\xA9"};
  CheckProperty(vocab, *GrammarFromChoices(choices), seeds, generous, [&](const std::string& out) {
    return std::find(choices.begin(), choices.end(), out) != choices.end();
  }, "choices");
}

TEST(GrammarProperty, Tok512Schemas) { CheckSchemas(LoadVocabs().tok512, 6, 120); }
TEST(GrammarProperty, Tok512RegexesAndChoices) { CheckRegexesAndChoices(LoadVocabs().tok512, 6, 80); }
TEST(GrammarProperty, Llama2Schemas) { CheckSchemas(LoadVocabs().llama2, 2, 80); }
TEST(GrammarProperty, Llama2RegexesAndChoices) { CheckRegexesAndChoices(LoadVocabs().llama2, 2, 60); }

// Token t is allowed (generous budget) iff Output() + bytes(t) is a prefix of the language;
// EOS iff Output() is a match. Checked at `steps` steps of a random walk per grammar.
void CheckAgainstBruteForce(const std::shared_ptr<const TokenVocabulary>& vocab,
                            const std::vector<std::shared_ptr<const Grammar>>& grammars, int steps) {
  ASSERT_TRUE(vocab != nullptr);
  for (size_t gi = 0; gi < grammars.size(); ++gi) {
    GrammarMatcher m(grammars[gi], vocab);
    std::mt19937 rng(gi);
    for (int step = 0; step < steps && !m.IsFinished(); ++step) {
      std::vector<int32_t> allowed;
      for (int32_t t = 0; t < vocab->size(); ++t) {
        const bool expected = vocab->is_eos(t) ? grammars[gi]->Matches(m.Output())
                              : !vocab->bytes(t).empty() && grammars[gi]->IsPrefix(m.Output() + vocab->bytes(t));
        ASSERT_EQ(m.IsAllowed(t, 1 << 20), expected) << "grammar " << gi << " after \"" << m.Output()
                                                      << "\" token " << t << " \"" << vocab->bytes(t) << "\"";
        if (expected) allowed.push_back(t);
      }
      ASSERT_FALSE(allowed.empty());
      ASSERT_TRUE(m.Accept(allowed[rng() % allowed.size()]).ok());
    }
    EXPECT_GT(m.stats().cache_hits, 0);
  }
}

// The masks (precomputed per-state sets + walks of the stack-dependent tokens, and the cache)
// against a slow reference.
TEST(GrammarProperty, MasksEqualBruteForceReference) {
  std::vector<std::shared_ptr<const Grammar>> grammars = {GrammarForAnyJsonObject(), Regex(R"((ab|a)*[^x]{1,3}\d?)")};
  for (const char* text : kSchemas) grammars.push_back(Schema(text));
  CheckAgainstBruteForce(LoadVocabs().tok512, grammars, 40);
}

// The same over Llama 2's 32000 tokens (multi-byte tokens cross string ends, keys and values),
// fewer steps since the reference checks every token at every step.
TEST(GrammarProperty, Llama2MasksEqualBruteForceReference) {
  CheckAgainstBruteForce(LoadVocabs().llama2,
                         {GrammarForAnyJsonObject(), Schema(kSchemas[0]), Schema(kSchemas[2]), Schema(kSchemas[4]),
                          Regex(R"([a-z]+(\.[a-z]+)*@[a-z0-9_]+\.(com|org|net))")},
                         25);
}

// Masks with the shared TokenMaskCache equal full trie walks (a matcher without one) at every
// step of random walks, with generous and small budgets (the latter must fall back to per-token
// completion lengths exactly as before).
void CheckPrecomputedEqualsFullWalk(const std::shared_ptr<const TokenVocabulary>& vocab,
                                    const std::vector<std::shared_ptr<const Grammar>>& grammars, int steps) {
  ASSERT_TRUE(vocab != nullptr);
  const size_t words = (vocab->size() + 63) / 64;
  for (size_t gi = 0; gi < grammars.size(); ++gi) {
    const auto& g = grammars[gi];
    GrammarMatcher fast(g, vocab, std::make_shared<TokenMaskCache>(g, vocab));
    GrammarMatcher full(g, vocab, nullptr);
    std::mt19937 rng(100 + gi);
    std::vector<uint64_t> a(words), b(words);
    for (int step = 0; step < steps && fast.CanContinue(); ++step) {
      const int32_t shortest = fast.ShortestCompletionBytes();
      for (int32_t budget : {1 << 20, shortest + 40, shortest + 3, shortest + 2, 1}) {
        fast.FillBitmask(a, budget);
        full.FillBitmask(b, budget);
        ASSERT_EQ(a, b) << "grammar " << gi << " budget " << budget << " after \"" << fast.Output() << "\"";
      }
      fast.FillBitmask(a, 1 << 20);
      std::vector<int32_t> allowed;
      for (int32_t t = 0; t < vocab->size(); ++t) {
        if (((a[t >> 6] >> (t & 63)) & 1) && !vocab->is_eos(t)) allowed.push_back(t);
      }
      if (allowed.empty()) break;
      // Mostly short tokens, so walks get deep into nested values.
      int32_t t = allowed[rng() % allowed.size()];
      for (int k = 0; k < 3 && vocab->bytes(t).size() > 2; ++k) t = allowed[rng() % allowed.size()];
      ASSERT_TRUE(fast.Accept(t).ok());
      ASSERT_TRUE(full.Accept(t).ok());
    }
    EXPECT_GT(fast.stats().cache_misses, 0);
  }
}

std::vector<std::shared_ptr<const Grammar>> AllTestGrammars() {
  std::vector<std::shared_ptr<const Grammar>> grammars = {
      GrammarForAnyJsonObject(), Regex(R"((ab|a)*[^x]{1,3}\d?)"), Regex(R"(\(\d+(,\s?\d+)*\))"),
      Regex(R"([a-z]+(\.[a-z]+)*@[a-z0-9_]+\.(com|org|net))"), *GrammarFromChoices({"positive", "negative", "n/a"})};
  for (const char* text : kSchemas) grammars.push_back(Schema(text));
  return grammars;
}

TEST(GrammarProperty, PrecomputedMasksEqualFullWalkTok512) {
  CheckPrecomputedEqualsFullWalk(LoadVocabs().tok512, AllTestGrammars(), 80);
}

TEST(GrammarProperty, PrecomputedMasksEqualFullWalkLlama2) {
  CheckPrecomputedEqualsFullWalk(LoadVocabs().llama2, AllTestGrammars(), 120);
}

// Matchers of one (grammar, vocabulary) pair share one TokenMaskCache while any of them lives:
// the second request computes no state the first already did.
TEST(GrammarMatcher, MaskCacheSharedAcrossMatchers) {
  const auto& vocab = LoadVocabs().tok512;
  ASSERT_TRUE(vocab != nullptr);
  auto g = Schema(kSchemas[0]);
  auto cache = TokenMaskCache::Get(g, vocab);
  EXPECT_EQ(cache, TokenMaskCache::Get(g, vocab));
  std::vector<float> logits(vocab->size(), 0.0f);
  const std::string prefix = "{\"name\": \"ab";
  auto run = [&] {
    GrammarMatcher m(g, vocab);
    for (char c : prefix) {
      m.ApplyMask(logits, 1000);
      ASSERT_TRUE(m.Accept(Tok(*vocab, std::string(1, c))).ok()) << c;
    }
    m.ApplyMask(logits, 1000);
    // Most tokens are decided by the precomputed per-state sets.
    EXPECT_LT(m.stats().dependent_walked, m.stats().cache_misses * vocab->size() / 4);
  };
  run();
  const int32_t computed = cache->num_computed();
  EXPECT_GT(computed, 0);
  run();
  EXPECT_EQ(cache->num_computed(), computed);
}

// One grammar and vocabulary shared by matchers on several threads (both are immutable).
TEST(GrammarProperty, SharedAcrossThreads) {
  const auto& vocab = LoadVocabs().tok512;
  ASSERT_TRUE(vocab != nullptr);
  auto g = Schema(kSchemas[3]);
  std::vector<Sampled> results(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { results[i] = Sample(g, vocab, 77 + i, 1.0f, 60); });
  }
  for (std::thread& t : threads) t.join();
  for (const Sampled& r : results) {
    EXPECT_TRUE(r.finished);
    EXPECT_TRUE(g->Matches(r.output)) << r.output;
  }
}

// A byte-level BPE vocabulary (Llama 3, 128k tokens; special tokens excluded, <|eot_id|> or
// <|end_of_text|> as EOS): token bytes are raw, often partial UTF-8 characters.
TEST(GrammarProperty, Llama3ByteLevelBpe) {
  auto tok = Tokenizer::Load(std::string(TAILOR_SHARED_DIR) + "/models/tokenizers/llama3/tokenizer.json", 0);
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto vocab = TokenVocabulary::FromTokenizer(**tok);
  ASSERT_FALSE(vocab->eos_ids().empty());
  const json schema = json::parse(kSchemas[0]);
  CheckProperty(vocab, Schema(kSchemas[0]), 1, 60, [&](const std::string& out) {
    const json v = json::parse(out, nullptr, false);
    return !v.is_discarded() && Validate(v, schema, schema);
  }, "llama3 schema");
  const std::regex reference(R"(\d{3}-\d{2,4}( [A-Z]\w*)?)");
  CheckProperty(vocab, Regex(R"(\d{3}-\d{2,4}( [A-Z]\w*)?)"), 1, 40,
                [&](const std::string& out) { return std::regex_match(out, reference); }, "llama3 regex");
}

}  // namespace
}  // namespace tailor::grammar
