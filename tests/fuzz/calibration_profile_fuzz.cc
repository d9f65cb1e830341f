// A calibration profile (`tailor profile` output, engine/profile_io.cc): ParseProfile, and a
// re-serialization of what it accepts that must parse back.
#include <cstring>

#include "engine/profile.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto p = tailor::ParseProfile({reinterpret_cast<const std::byte*>(data), size}, "fuzz.profile");
  if (!p.ok()) return 0;
  const std::string again = tailor::SerializeProfile(*p);
  auto q = tailor::ParseProfile({reinterpret_cast<const std::byte*>(again.data()), again.size()}, "again.profile");
  TAILOR_FUZZ_CHECK(q.ok());
  TAILOR_FUZZ_CHECK(tailor::SerializeProfile(*q) == again);
  return 0;
}
