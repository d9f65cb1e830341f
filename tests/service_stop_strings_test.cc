// The incremental stop-string matcher against a brute-force reference, over every way of cutting
// the text into chunks, with several stop strings, overlapping prefixes and UTF-8.
#include "service/stop_strings.h"

#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tailor::service {
namespace {

struct Expected {
  std::string text;  // what is emitted in total
  bool stopped = false;
  std::string stop_string;
};

// Reference: scan end positions left to right; the first end position where some stop string
// ends wins; among those, the longest (earliest start).
Expected Reference(const std::string& text, const std::vector<std::string>& stops) {
  for (size_t end = 1; end <= text.size(); ++end) {
    const std::string* best = nullptr;
    for (const std::string& s : stops) {
      if (s.empty() || s.size() > end) continue;
      if (text.compare(end - s.size(), s.size(), s) == 0 && (best == nullptr || s.size() > best->size())) {
        best = &s;
      }
    }
    if (best != nullptr) return {text.substr(0, end - best->size()), true, *best};
  }
  return {text, false, ""};
}

// The longest suffix of `text` that is a proper prefix of some stop string (what must be held).
size_t MustHold(const std::string& text, const std::vector<std::string>& stops) {
  for (size_t k = text.size(); k > 0; --k) {
    for (const std::string& s : stops) {
      if (s.size() > k && s.compare(0, k, text, text.size() - k, k) == 0) return k;
    }
  }
  return 0;
}

// Runs the matcher over `chunks`, checking the invariants after every push; returns the outcome.
Expected Run(const std::vector<std::string>& chunks, const std::vector<std::string>& stops) {
  StopStringMatcher m(stops);
  Expected got;
  std::string seen;
  for (const std::string& c : chunks) {
    auto r = m.Push(c);
    got.text += r.text;
    if (got.stopped) {
      EXPECT_TRUE(r.text.empty());
      EXPECT_FALSE(r.stopped);
      continue;
    }
    seen += c;
    if (r.stopped) {
      got.stopped = true;
      got.stop_string = r.stop_string;
      EXPECT_TRUE(m.stopped());
    } else {
      // Emits exactly everything that cannot be the start of a stop string.
      EXPECT_EQ(got.text, seen.substr(0, seen.size() - MustHold(seen, stops)));
      EXPECT_EQ(m.held_bytes(), seen.size() - got.text.size());
    }
  }
  got.text += m.Finish();
  EXPECT_EQ(m.Finish(), "");
  EXPECT_TRUE(m.Push("more").text.empty());
  return got;
}

// Every way of cutting `text` into chunks (2^(n-1) ways), plus empty chunks in between.
void CheckAllCuts(const std::string& text, const std::vector<std::string>& stops) {
  const Expected want = Reference(text, stops);
  const size_t n = text.size();
  ASSERT_LE(n, 16u);
  const uint32_t ways = n == 0 ? 1 : (1u << (n - 1));
  for (uint32_t mask = 0; mask < ways; ++mask) {
    std::vector<std::string> chunks;
    std::string cur;
    for (size_t i = 0; i < n; ++i) {
      cur += text[i];
      if (i + 1 < n && (mask >> i) & 1u) {
        chunks.push_back(cur);
        if (mask & 1u) chunks.push_back("");  // sometimes an empty chunk too
        cur.clear();
      }
    }
    chunks.push_back(cur);
    const Expected got = Run(chunks, stops);
    ASSERT_EQ(got.text, want.text) << "text '" << text << "' mask " << mask;
    ASSERT_EQ(got.stopped, want.stopped) << "text '" << text << "' mask " << mask;
    ASSERT_EQ(got.stop_string, want.stop_string) << "text '" << text << "' mask " << mask;
  }
}

TEST(StopStrings, NoStopStringsPassThrough) {
  StopStringMatcher m({});
  EXPECT_EQ(m.Push("abc").text, "abc");
  EXPECT_EQ(m.Push("").text, "");
  EXPECT_EQ(m.held_bytes(), 0u);
  EXPECT_EQ(m.Finish(), "");
  StopStringMatcher empty_only({"", ""});
  EXPECT_EQ(empty_only.Push("x").text, "x");
  EXPECT_TRUE(empty_only.stop_strings().empty());
}

TEST(StopStrings, HoldsBackAPossibleStart) {
  StopStringMatcher m({"###"});
  auto r = m.Push("Hello #");
  EXPECT_EQ(r.text, "Hello ");
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(m.held_bytes(), 1u);
  r = m.Push("# not");
  EXPECT_EQ(r.text, "## not");
  r = m.Push(" ##");
  EXPECT_EQ(r.text, " ");
  r = m.Push("# tail");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.stop_string, "###");
  EXPECT_EQ(r.text, "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.Push("x").text, "");
  EXPECT_EQ(m.Finish(), "");
}

TEST(StopStrings, FinishReleasesHeldText) {
  StopStringMatcher m({"</answer>"});
  EXPECT_EQ(m.Push("42 </ans").text, "42 ");
  EXPECT_EQ(m.Finish(), "</ans");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.Push("wer>").text, "");
}

TEST(StopStrings, SplitOverManyTokens) {
  StopStringMatcher m({"\nUser:"});
  std::string out;
  bool stopped = false;
  for (const char* tok : {"Sure", ".", "\n", "U", "se", "r", ":", " more"}) {
    auto r = m.Push(tok);
    out += r.text;
    stopped = stopped || r.stopped;
  }
  EXPECT_TRUE(stopped);
  EXPECT_EQ(out, "Sure.");
}

TEST(StopStrings, FirstToCompleteWins) {
  // "bc" completes before "abcd" could; chunking cannot change that.
  CheckAllCuts("xabcd", {"abcd", "bc"});
  EXPECT_EQ(Reference("xabcd", {"abcd", "bc"}).text, "xa");
  // Same end: the longer (earlier start) wins.
  EXPECT_EQ(Reference("xabc", {"bc", "abc"}).text, "x");
  CheckAllCuts("xabcy", {"bc", "abc"});
}

TEST(StopStrings, AllCutsFixedCases) {
  CheckAllCuts("", {"a"});
  CheckAllCuts("hello world", {"wor"});
  CheckAllCuts("hello world", {"world!"});
  CheckAllCuts("aaaaab", {"aab"});          // self-overlapping prefix
  CheckAllCuts("abababac", {"ababac"});     // KMP-style overlap
  CheckAllCuts("abcabd", {"abd", "cab"});
  CheckAllCuts("one\n\ntwo", {"\n\n", "\n"});
  CheckAllCuts("stop", {"stop"});
  CheckAllCuts("xxsto", {"stop", "top"});
  CheckAllCuts("a</s>b", {"</s>", "<", "s>"});
}

TEST(StopStrings, AllCutsRandom) {
  std::mt19937 rng(12345);
  auto random_string = [&](size_t max_len, int alphabet) {
    std::string s(std::uniform_int_distribution<size_t>(0, max_len)(rng), 'a');
    for (char& c : s) c = static_cast<char>('a' + std::uniform_int_distribution<int>(0, alphabet - 1)(rng));
    return s;
  };
  for (int trial = 0; trial < 300; ++trial) {
    const std::string text = random_string(11, 3);
    std::vector<std::string> stops;
    const int count = std::uniform_int_distribution<int>(1, 4)(rng);
    for (int i = 0; i < count; ++i) stops.push_back(random_string(4, 3));
    CheckAllCuts(text, stops);
  }
}

bool ValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

TEST(StopStrings, Utf8) {
  // "é" is C3 A9; "日本" is E6 97 A5 E6 9C AC; "🙂" is F0 9F 99 82.
  const std::string text = "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x99\x82!";
  const std::vector<std::string> stops = {"\xE6\x9C\xAC \xF0\x9F\x99\x82", "\xC3\xA9\xC3\xA9"};
  EXPECT_EQ(Reference(text, stops).text, "caf\xC3\xA9 \xE6\x97\xA5");
  // Every cut at byte level (including inside characters).
  CheckAllCuts(text.substr(0, 16), stops);
  // Cuts at character boundaries only: every emitted piece is valid UTF-8.
  std::vector<std::string> chars;
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    chars.push_back(text.substr(i, len));
    i += len;
  }
  const uint32_t ways = 1u << (chars.size() - 1);
  for (uint32_t mask = 0; mask < ways; ++mask) {
    StopStringMatcher m(stops);
    std::string cur, out;
    bool stopped = false;
    for (size_t i = 0; i < chars.size(); ++i) {
      cur += chars[i];
      if (i + 1 == chars.size() || ((mask >> i) & 1u)) {
        auto r = m.Push(cur);
        ASSERT_TRUE(ValidUtf8(r.text)) << mask;
        out += r.text;
        stopped = stopped || r.stopped;
        cur.clear();
      }
    }
    out += m.Finish();
    ASSERT_TRUE(stopped);
    ASSERT_EQ(out, "caf\xC3\xA9 \xE6\x97\xA5") << mask;
  }
  // A stop string that shares a lead byte with other characters does not hold them forever.
  StopStringMatcher m({"\xE6\x9C\xAC"});
  EXPECT_EQ(m.Push("\xE6\x97\xA5").text, "\xE6\x97\xA5");
  EXPECT_EQ(m.Push("\xE6").text, "");
  EXPECT_EQ(m.Push("\x97\xA5").text, "\xE6\x97\xA5");
}

}  // namespace
}  // namespace tailor::service
