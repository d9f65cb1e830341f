// The specialization config: the seed's format, and one clear error per kind of mistake.
#include "engine/spec_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tailor {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<std::vector<Specialization>> Parse(const std::string& text) {
  return ParseSpecConfig(text, "spec.json", 512);
}

void ExpectError(const std::string& text, const std::vector<std::string>& fragments) {
  auto r = Parse(text);
  ASSERT_FALSE(r.ok()) << text;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  for (const auto& f : fragments) EXPECT_THAT(std::string(r.status().message()), HasSubstr(f)) << text;
}

TEST(SpecConfig, SeedFormatWithStringsAndIntegers) {
  auto r = Parse(R"({"specializations": [
      {"batch_size": "1", "seq_len": "128", "ctx_len": "512", "compile_opts": "-ols=2"},
      {"batch_size": 4, "seq_len": 1, "ctx_len": 256}]})");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].shape, (SpecShape{1, 128, 512}));
  EXPECT_EQ((*r)[0].ols, 2);
  EXPECT_EQ((*r)[1].shape, (SpecShape{4, 1, 256}));
  EXPECT_EQ((*r)[1].ols, 1);
  EXPECT_EQ((*r)[1].Name(), "b4_s1_c256");
}

TEST(SpecConfig, Errors) {
  ExpectError(R"({"specializations": [
  {"batch_size": "1", "seq_len": "1", "ctx_len": "512",}]})", {"spec.json:2:", "malformed JSON"});
  // Found by the spec_config fuzz target: a number beyond double's range threw nlohmann's
  // out_of_range (406), which the parse_error handler did not catch, and aborted `tailor compile`.
  ExpectError(R"({"specializations": [{"batch_size": 33333e3333, "seq_len": 1, "ctx_len": 8}]})",
              {"spec.json", "malformed JSON", "number overflow"});
  ExpectError(R"({"specializations": []})", {"empty"});
  ExpectError(R"({"specs": []})", {"\"specializations\""});
  ExpectError(R"({"specializations": [{"batch_size": "1", "seq_len": "1"}]})",
              {"specializations[0]", "missing symbol \"ctx_len\""});
  ExpectError(R"({"specializations": [{"batch": "1", "batch_size": "1", "seq_len": "1", "ctx_len": "8"}]})",
              {"specializations[0]", "unknown symbol \"batch\""});
  ExpectError(R"({"specializations": [{"batch_size": "1", "seq_len": "1", "ctx_len": "8"},
                                      {"batch_size": "two", "seq_len": "1", "ctx_len": "8"}]})",
              {"specializations[1].batch_size", "\"two\"", "not an integer"});
  ExpectError(R"({"specializations": [{"batch_size": "1.5", "seq_len": "1", "ctx_len": "8"}]})",
              {"specializations[0].batch_size", "not an integer"});
  ExpectError(R"({"specializations": [{"batch_size": "1", "seq_len": "0", "ctx_len": "8"}]})",
              {"specializations[0].seq_len", "positive"});
  ExpectError(R"({"specializations": [{"batch_size": "1", "seq_len": "-3", "ctx_len": "8"}]})",
              {"specializations[0].seq_len", "positive"});
  ExpectError(R"({"specializations": [{"batch_size": "1", "seq_len": "16", "ctx_len": "8"}]})",
              {"specializations[0]", "seq_len 16 is larger than ctx_len 8"});
  ExpectError(R"({"specializations": [{"batch_size": "1", "seq_len": "1", "ctx_len": "1024"}]})",
              {"specializations[0]", "ctx_len 1024", "maximum of 512"});
  ExpectError(R"({"specializations": [{"batch_size": "1", "seq_len": "1", "ctx_len": "8"},
                                      {"batch_size": "1", "seq_len": "1", "ctx_len": "8", "compile_opts": "-ols=2"}]})",
              {"specializations[1]", "duplicate of specializations[0]"});
  ExpectError(R"({"specializations": [{"batch_size": "1", "seq_len": "4", "ctx_len": "8"}]})",
              {"no decode specialization", "seq_len"});
  ExpectError(R"({"specializations": [{"batch_size": "1", "seq_len": "1", "ctx_len": "8", "compile_opts": "-O3"}]})",
              {"specializations[0].compile_opts", "'-O3'", "allowed: -ols=N"});
  ExpectError(R"({"specializations": [{"batch_size": "1", "seq_len": "1", "ctx_len": "8", "compile_opts": "-ols=x"}]})",
              {"specializations[0].compile_opts: -ols", "not an integer"});
}

}  // namespace
}  // namespace tailor
