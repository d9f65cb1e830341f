// Shared by the libFuzzer targets (tests/fuzz/*_fuzz.cc): each target's LLVMFuzzerTestOneInput
// hands its input bytes to one of tailor's real parsing entry points and checks only what must
// hold for every input (no crash, no leak, no hang: the sanitizers and libFuzzer check those),
// plus the invariants named in each target.
#ifndef TAILOR_TESTS_FUZZ_FUZZ_UTIL_H_
#define TAILOR_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "absl/strings/string_view.h"

namespace tailor::fuzz {

// The input as text, for entry points taking std::string_view or absl::string_view: Debian's
// abseil was built in C++17 mode, so under clang the two are different types.
struct Text {
  const char* data;
  size_t size;
  operator std::string_view() const { return {data, size}; }
  operator absl::string_view() const { return {data, size}; }
};

inline Text AsText(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A broken invariant: print it and abort, which libFuzzer reports as a crash with the input.
#define TAILOR_FUZZ_CHECK(cond)                                                        \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)

}  // namespace tailor::fuzz

#endif  // TAILOR_TESTS_FUZZ_FUZZ_UTIL_H_
