// `tailor batch` (placeholder until the serving session lands).
#include <iostream>

#include "api/commands.h"

namespace tailor {

int RunBatch(const std::vector<std::string>& args, const Environment& env) {
  (void)args;
  (void)env;
  std::cerr << "tailor: batch is not implemented yet\n";
  return 1;
}

}  // namespace tailor
