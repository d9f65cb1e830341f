// Table-driven Jinja tests: a case is a template, its variables and what jinja2 3.1.6 renders
// (set up as transformers' apply_chat_template sets it up).
#ifndef TAILOR_TESTS_JINJA_CASES_H_
#define TAILOR_TESTS_JINJA_CASES_H_

#include <ostream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "service/jinja_template.h"

namespace tailor::service::testing_jinja {

struct Case {
  const char* name;
  const char* context;  // JSON; null for the suite's default variables
  const char* source;
  const char* expected;
};

// Named in test output by its name (not its bytes).
inline void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// Parses and renders `c` with its variables (or `default_context`) and expects jinja2's output.
inline void ExpectRendersAsJinja2(const Case& c, const char* default_context) {
  auto parsed = JinjaTemplate::Parse(c.source);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const nlohmann::ordered_json context =
      nlohmann::ordered_json::parse(c.context != nullptr ? c.context : default_context, nullptr, false);
  ASSERT_FALSE(context.is_discarded());
  auto rendered = parsed->Render(context);
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  EXPECT_EQ(*rendered, c.expected);
}

inline std::string CaseName(const ::testing::TestParamInfo<Case>& info) { return info.param.name; }

}  // namespace tailor::service::testing_jinja

#endif  // TAILOR_TESTS_JINJA_CASES_H_
