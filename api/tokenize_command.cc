// `tailor tokenize` and `tailor detokenize`: text <-> token ids with a model's tokenizer, as
// vLLM's /tokenize and /detokenize (and llama.cpp's llama-tokenize) users expect.
//
//   tailor tokenize (--tokenizer FILE | --model PATH | --package DIR) [--text TEXT] [--add-special-tokens]
//       stdout: one JSON array of ids ("[128000, 9906]"); the text is standard input without --text
//   tailor detokenize (--tokenizer FILE | --model PATH | --package DIR) [--tokens JSON] [--skip-special-tokens]
//       stdout: the text of a JSON array of ids (standard input without --tokens)
#include <iostream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/commands.h"
#include "api/flags.h"
#include "api/model_tokenizer.h"
#include "common/status_macros.h"
#include "engine/package.h"
#include "models/model_loader.h"
#include "nlohmann/json.hpp"

namespace tailor {
namespace {

std::vector<FlagSpec> Flags(bool tokenize) {
  std::vector<FlagSpec> specs = {
      {"tokenizer", true, {}, "a tokenizer file: tokenizer.json, a SentencePiece .model, a GGUF"},
      {"model", true, {}, "a model (Hugging Face directory, .gguf, llama2.c .bin): its tokenizer"},
      {"package", true, {}, "a compiled package: its tokenizer"},
  };
  if (tokenize) {
    specs.push_back({"text", true, {}, "the text (default: standard input)"});
    specs.push_back({"add-special-tokens", false, {}, "add what the tokenizer adds to a prompt (e.g. BOS)"});
  } else {
    specs.push_back({"tokens", true, {}, "a JSON array of token ids (default: standard input)"});
    specs.push_back({"skip-special-tokens", false, {}, "leave out special tokens (BOS, <|im_end|>, ...)"});
  }
  return specs;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> OpenTokenizer(const ParsedFlags& f) {
  const int given = f.Has("tokenizer") + f.Has("model") + f.Has("package");
  if (given != 1) {
    return absl::InvalidArgumentError("give exactly one of --tokenizer FILE, --model PATH, --package DIR");
  }
  if (f.Has("tokenizer")) return Tokenizer::Load(*f.Get("tokenizer"), /*expected_vocab_size=*/0);
  if (f.Has("model")) {
    TAILOR_ASSIGN_OR_RETURN(auto model, LoadModel(*f.Get("model")));
    return LoadModelTokenizer(*model);
  }
  TAILOR_ASSIGN_OR_RETURN(auto package, OpenPackage(*f.Get("package")));
  return LoadPackageTokenizer(*package);
}

std::string ReadStdin() { return std::string(std::istreambuf_iterator<char>(std::cin), {}); }

absl::Status Tokenize(const std::vector<std::string>& args) {
  TAILOR_ASSIGN_OR_RETURN(ParsedFlags f, ParseFlags(Flags(true), args));
  if (!f.positional().empty()) return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", f.positional()[0], "'"));
  TAILOR_ASSIGN_OR_RETURN(auto tokenizer, OpenTokenizer(f));
  const std::string text = f.Has("text") ? *f.Get("text") : ReadStdin();
  EncodeOptions options;
  options.add_special_tokens = f.Has("add-special-tokens");
  std::cout << "[" << absl::StrJoin(tokenizer->Encode(text, options), ", ") << "]\n";
  return absl::OkStatus();
}

absl::Status Detokenize(const std::vector<std::string>& args) {
  TAILOR_ASSIGN_OR_RETURN(ParsedFlags f, ParseFlags(Flags(false), args));
  if (!f.positional().empty()) return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", f.positional()[0], "'"));
  TAILOR_ASSIGN_OR_RETURN(auto tokenizer, OpenTokenizer(f));
  const std::string source = f.Has("tokens") ? "--tokens" : "standard input";
  const nlohmann::json j = nlohmann::json::parse(f.Has("tokens") ? *f.Get("tokens") : ReadStdin(), nullptr, false);
  if (j.is_discarded() || !j.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": expected a JSON array of token ids, e.g. [1, 2, 3]"));
  }
  std::vector<int32_t> ids;
  for (size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_number_integer() || j[i].get<int64_t>() < 0 || j[i].get<int64_t>() >= tokenizer->vocab_size()) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": element ", i, " (", j[i].dump(),
                                                     ") is not a token id in [0, ", tokenizer->vocab_size(), ")"));
    }
    ids.push_back(j[i].get<int32_t>());
  }
  std::cout << tokenizer->Decode(ids, f.Has("skip-special-tokens"));
  std::cout.flush();
  return absl::OkStatus();
}

}  // namespace

int RunTokenize(const std::vector<std::string>& args) {
  if (PrintHelpIfAsked(args,
                       "usage: tailor tokenize (--tokenizer FILE | --model PATH | --package DIR) [--text TEXT] "
                       "[--add-special-tokens]\nprints one JSON array of token ids\n",
                       Flags(true))) {
    return 0;
  }
  absl::Status s = Tokenize(args);
  return s.ok() ? 0 : ReportError(s);
}

int RunDetokenize(const std::vector<std::string>& args) {
  if (PrintHelpIfAsked(args,
                       "usage: tailor detokenize (--tokenizer FILE | --model PATH | --package DIR) [--tokens JSON] "
                       "[--skip-special-tokens]\nprints the text of a JSON array of token ids\n",
                       Flags(false))) {
    return 0;
  }
  absl::Status s = Detokenize(args);
  return s.ok() ? 0 : ReportError(s);
}

}  // namespace tailor
