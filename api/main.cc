// The `tailor` executable: one binary, subcommands. Exceptions stop here.
#include <cstdlib>
#include <exception>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "api/commands.h"
#ifdef TAILOR_HAVE_READLINE
#include "api/readline_line_reader.h"
#endif

namespace {

constexpr char kUsage[] =
    "usage: tailor <command> [options]\n"
    "commands:\n"
    "  generate   continue a prompt: tailor generate (--model PATH | --package DIR) --prompt TEXT\n"
    "  compile    compile a model into a package of specializations\n"
    "  inspect    print a package's specializations\n"
    "  exec       run a JSON input file on a package\n"
    "  serve      OpenAI-compatible HTTP server: tailor serve [--package DIR] [--port N]\n"
    "  chat       talk with a package's model: tailor chat [--package DIR] [--system TEXT]\n"
    "  batch      run an OpenAI batch file: tailor batch [--package DIR] --input FILE --output FILE\n"
    "  tokenize   text to token ids: tailor tokenize (--tokenizer FILE | --model PATH | --package DIR)\n"
    "  detokenize token ids to text: tailor detokenize (--tokenizer FILE | --model PATH | --package DIR)\n"
    "  perplexity llama-perplexity's protocol: tailor perplexity --package P --text FILE [--ctx N] [--base P]\n"
    "  calibrate  exec inputs for every specialization, cut from text: tailor calibrate --model PATH\n"
    "             --text FILE --specializations FILE --out inputs.json\n"
    "  profile    calibration profiles: tailor profile merge A B -o C | tailor profile show FILE\n"
    "  plan       propose a specialization set for a request trace: tailor plan --model M --trace T.jsonl\n"
    "             [--budget N] [--kv-cache-mb X] [--ctx-max C] --out specs.json\n"
    "run 'tailor <command> --help' for a command's options; 'tailor --version' for the version\n";

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(true);
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string command = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  tailor::Environment env;
  env.random_seed = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  try {
    if (const char* cxx = std::getenv("CXX")) env.cxx = cxx;
    if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
      env.cache_dir = std::string(xdg) + "/tailor";
    } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
      env.cache_dir = std::string(home) + "/.cache/tailor";
    }
#ifdef TAILOR_HAVE_READLINE
    env.terminal_line_reader = tailor::MakeReadlineLineReader;
#endif
    if (command == "generate") return tailor::RunGenerate(args, env);
    if (command == "compile") return tailor::RunCompile(args, env);
    if (command == "inspect") return tailor::RunInspect(args);
    if (command == "exec") return tailor::RunExec(args);
    if (command == "serve") return tailor::RunServe(args, env);
    if (command == "chat") return tailor::RunChat(args, env);
    if (command == "batch") return tailor::RunBatch(args, env);
    if (command == "tokenize") return tailor::RunTokenize(args);
    if (command == "detokenize") return tailor::RunDetokenize(args);
    if (command == "perplexity") return tailor::RunPerplexity(args);
    if (command == "calibrate") return tailor::RunCalibrate(args);
    if (command == "profile") return tailor::RunProfile(args);
    if (command == "plan") return tailor::RunPlan(args, env);
    if (command == "--help" || command == "-h" || command == "help") {
      std::cout << kUsage;
      return 0;
    }
    if (command == "--version" || command == "version") {
      std::cout << "tailor " << TAILOR_VERSION << " (git " << TAILOR_GIT_REVISION << ")\n";
      return 0;
    }
    std::cerr << "tailor: unknown command '" << command << "'\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "tailor: internal error: " << e.what() << "\n";
    return 1;
  }
}
