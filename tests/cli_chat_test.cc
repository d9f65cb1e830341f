// `tailor chat` end to end: through a pipe (replies one per turn, commands, EOF) and through a
// pseudo-terminal (prompt, streaming, Ctrl-C stops a reply, /exit), on a small stories260K package.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#if __has_include(<pty.h>)
#include <pty.h>
#define TAILOR_TEST_HAVE_PTY 1
#endif

#include <chrono>
#include <regex>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace tailor {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using testing_util::CommandResult;
using testing_util::RunCommand;
using testing_util::TempDir;
using testing_util::WriteAll;

const std::string kStories = std::string(TAILOR_SHARED_DIR) + "/models/stories260K";

class CliChat : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new TempDir();
    WriteAll(*tmp_ / "specs.json", R"({"specializations": [
        {"batch_size": "1", "seq_len": "1", "ctx_len": "256"},
        {"batch_size": "1", "seq_len": "16", "ctx_len": "256"}]})");
    CommandResult r = RunCommand({TAILOR_BINARY, "compile", "--model", kStories + "/stories260K.bin", "--tokenizer",
                                  kStories + "/tok512.bin", "--specializations", (*tmp_ / "specs.json").string(),
                                  "--out", (*tmp_ / "pkg").string(), "--target", "native", "--compile-only"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() { delete tmp_; }
  static std::string Package() { return (*tmp_ / "pkg").string(); }

  static CommandResult Chat(const std::string& input, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {TAILOR_BINARY, "chat", "--package", Package(), "--temperature", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCommand(args, input);
  }

  static TempDir* tmp_;
};
TempDir* CliChat::tmp_ = nullptr;

int LastPromptTokens(const std::string& stats) {
  std::smatch m;
  std::string rest = stats;
  int last = -1;
  static const std::regex re("last reply: prompt ([0-9]+) tokens");
  while (std::regex_search(rest, m, re)) {
    last = std::stoi(m[1]);
    rest = m.suffix();
  }
  return last;
}

TEST_F(CliChat, PipeTurnsCommandsAndEndOfInput) {
  const std::string opts = "--max-tokens";
  CommandResult r = Chat("Hello there\nTell me about the cat\n/stats\n/exit\nnever sent\n", {opts, "12"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Two replies, each ended by a newline; no prompt text on stdout.
  EXPECT_THAT(r.out, Not(HasSubstr(">>>")));
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.back(), '\n');
  // /stats: tokens/s and the specializations used, on stderr; the second turn's prompt holds the
  // first exchange, so it is longer than the same message sent alone.
  EXPECT_THAT(r.err, AllOf(HasSubstr("tok/s"), HasSubstr("b1_s1_c256"), HasSubstr("b1_s16_c256")));
  const int two_turn_prompt = LastPromptTokens(r.err);
  CommandResult alone = Chat("Tell me about the cat\n/stats\n", {opts, "12"});
  ASSERT_EQ(alone.exit_code, 0) << alone.err;
  EXPECT_GT(two_turn_prompt, LastPromptTokens(alone.err) + 5);

  // Greedy replies are deterministic; /exit ends the session (the line after it is not sent).
  CommandResult again = Chat("Hello there\nTell me about the cat\n/exit\n", {opts, "12"});
  EXPECT_EQ(again.out, r.out);
  // End of input without /exit ends with 0 too, and the first reply is the same.
  CommandResult first = Chat("Hello there", {opts, "12"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_TRUE(r.out.starts_with(first.out)) << first.out << "\n---\n" << r.out;
}

TEST_F(CliChat, ResetAndSystem) {
  // After /reset and /system, a turn is answered as in a fresh session with --system.
  CommandResult r = Chat("Hello there\n/reset\n/system You tell stories.\nOnce upon a time\n", {"--max-tokens", "10"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  CommandResult fresh = Chat("Once upon a time\n", {"--max-tokens", "10", "--system", "You tell stories."});
  ASSERT_EQ(fresh.exit_code, 0) << fresh.err;
  CommandResult hello = Chat("Hello there\n", {"--max-tokens", "10"});
  EXPECT_EQ(r.out, hello.out + fresh.out);
  EXPECT_THAT(r.err, AllOf(HasSubstr("conversation cleared"), HasSubstr("system message set")));
  // /system alone clears it again.
  CommandResult cleared = Chat("/system x\n/system\nHello there\n", {"--max-tokens", "10"});
  EXPECT_EQ(cleared.out, hello.out);
}

TEST_F(CliChat, LongConversationsDropTheOldestTurns) {
  std::string input;
  const std::string message =
      "The little dog ran to the park and played with a red ball all day long with his friend the cat";
  for (int i = 0; i < 6; ++i) input += message + "\n";
  // A message that cannot fit at all is refused, and the session goes on.
  std::string huge;
  for (int i = 0; i < 80; ++i) huge += "the big red ball ";
  input += huge + "\n" + message + "\n";
  CommandResult r = Chat(input, {"--max-tokens", "40"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, AllOf(HasSubstr("dropped the oldest"), HasSubstr("not sent")));
}

TEST_F(CliChat, BadFlagsExitTwo) {
  CommandResult r = Chat("", {"--chat-template", "nope"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("chatml"));
  r = RunCommand({TAILOR_BINARY, "chat", "--package", (*tmp_ / "missing").string()}, "");
  EXPECT_EQ(r.exit_code, 2);
}

#ifdef TAILOR_TEST_HAVE_PTY
// A child process on a pseudo-terminal; reads its output with a deadline.
class PtyProcess {
 public:
  explicit PtyProcess(const std::vector<std::string>& argv) {
    pid_ = forkpty(&master_, nullptr, nullptr, nullptr);
    if (pid_ == 0) {
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      setenv("TERM", "dumb", 1);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~PtyProcess() {
    if (pid_ > 0 && !waited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) close(master_);
  }
  bool started() const { return pid_ > 0; }
  void Write(const std::string& s) { ASSERT_EQ(write(master_, s.data(), s.size()), static_cast<ssize_t>(s.size())); }
  // Reads until `pred(output so far)` holds or `seconds` pass; returns whether it held.
  template <typename Pred>
  bool ReadUntil(Pred pred, double seconds = 60) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (!pred(output_)) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd fd = {master_, POLLIN, 0};
      if (poll(&fd, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      const ssize_t n = read(master_, buf, sizeof buf);
      if (n <= 0) return pred(output_);  // the child closed the terminal
      output_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  bool ReadUntilContains(const std::string& text, size_t from, double seconds = 60) {
    return ReadUntil([&](const std::string& out) { return out.find(text, from) != std::string::npos; }, seconds);
  }
  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    waited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  const std::string& output() const { return output_; }

 private:
  int master_ = -1;
  pid_t pid_ = -1;
  bool waited_ = false;
  std::string output_;
};

TEST_F(CliChat, TerminalPromptStreamingAndCtrlC) {
  // The greedy reply to this line is a long story (no stop string of chatml occurs in it), so
  // Ctrl-C, written as soon as the reply's first text arrives, lands while it streams.
  PtyProcess p({TAILOR_BINARY, "chat", "--package", Package(), "--temperature", "0", "--chat-template", "chatml"});
  ASSERT_TRUE(p.started());
  ASSERT_TRUE(p.ReadUntilContains(">>> ", 0)) << p.output();
  size_t mark = p.output().size();
  // On a loaded machine the whole reply (a few hundred tokens of a tiny model) can finish
  // before the Ctrl-C reaches it; then the exchange is tried again (/reset keeps it short).
  bool stopped = false;
  for (int attempt = 0; attempt < 5 && !stopped; ++attempt) {
    mark = p.output().size();
    p.Write("Once upon a time there was a little girl\r");
    // The reply streams: text arrives after the echoed line, before the next prompt.
    ASSERT_TRUE(p.ReadUntil([&](const std::string& out) {
      const size_t line_end = out.find('\n', mark);
      return line_end != std::string::npos && out.find_first_not_of("\r\n ", line_end) != std::string::npos;
    })) << p.output();
    p.Write("\x03");
    ASSERT_TRUE(p.ReadUntilContains(">>> ", mark)) << p.output();
    stopped = p.output().find("reply stopped (Ctrl-C)", mark) != std::string::npos;
    if (!stopped) {
      const size_t reset = p.output().size();
      p.Write("/reset\r");
      ASSERT_TRUE(p.ReadUntilContains(">>> ", reset)) << p.output();
    }
  }
  EXPECT_THAT(p.output().substr(mark), HasSubstr("reply stopped (Ctrl-C)"));
  // The session goes on: Ctrl-C at the prompt clears the line; a command runs; /exit leaves.
  mark = p.output().size();
  p.Write("some text\x03");
  ASSERT_TRUE(p.ReadUntilContains(">>> ", mark)) << p.output();
  mark = p.output().size();
  p.Write("/stats\r");
  ASSERT_TRUE(p.ReadUntilContains("tok/s", mark)) << p.output();
  ASSERT_TRUE(p.ReadUntilContains(">>> ", mark)) << p.output();
#ifdef TAILOR_BINARY_HAS_READLINE
  // History: Ctrl-P (previous line) brings /stats back.
  mark = p.output().size();
  p.Write("\x10\r");
  ASSERT_TRUE(p.ReadUntilContains("tok/s", mark)) << p.output();
  ASSERT_TRUE(p.ReadUntilContains(">>> ", mark)) << p.output();
#endif
  p.Write("/exit\r");
  p.ReadUntil([](const std::string&) { return false; }, 5);  // drain until the child closes
  EXPECT_EQ(p.Wait(), 0) << p.output();
}
#endif

}  // namespace
}  // namespace tailor
