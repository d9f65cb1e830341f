// tailor batch's progress line: tokens/s counts tokens as the engine generates them (from the
// counter it is given), before any request finishes; done/total and the ETA follow requests.
#include "api/batch_progress.h"

#include <atomic>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tailor::batch {
namespace {

using ::testing::HasSubstr;

TEST(BatchProgress, TokensCountAsGeneratedNotWhenRequestsFinish) {
  std::atomic<int64_t> engine_tokens{1000};  // tokens generated before the batch started
  BatchProgress progress(4, [&engine_tokens] { return engine_tokens.load(); });
  EXPECT_EQ(progress.tokens(), 0);
  EXPECT_THAT(progress.Line(2.0), HasSubstr("] 0/4  0.0 tok/s  ETA ?"));

  // Two long requests are generating; none has finished.
  engine_tokens += 50;
  EXPECT_EQ(progress.tokens(), 50);
  EXPECT_THAT(progress.Line(2.0), HasSubstr("] 0/4  25.0 tok/s  ETA ?"));

  progress.Finished(/*failed=*/false);
  progress.Finished(/*failed=*/true);
  engine_tokens += 30;
  const std::string line = progress.Line(4.0);
  EXPECT_THAT(line, HasSubstr("[============            ] 2/4  20.0 tok/s  ETA 0:04"));
  EXPECT_EQ(progress.done(), 2);
  EXPECT_EQ(progress.failed(), 1);
}

TEST(BatchProgress, Clock) {
  EXPECT_EQ(Clock(4.4), "0:04");
  EXPECT_EQ(Clock(3725), "1:02:05");
}

}  // namespace
}  // namespace tailor::batch
