#include "tokenizer/gguf_bpe.h"

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "tokenizer/unicode_text.h"

namespace tailor::tokenizer_internal {
namespace {

constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kKnownPre =
    "llama-bpe, llama3, llama-v3, smaug-bpe, qwen2, default, gpt2";

Json ByteLevel(bool use_regex) {
  return Json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
              {"use_regex", use_regex}};
}

Json RegexPreTokenizer(std::string_view pattern) {
  Json split = {{"type", "Split"},
                {"pattern", {{"Regex", std::string(pattern)}}},
                {"behavior", "Isolated"},
                {"invert", false}};
  return Json{{"type", "Sequence"}, {"pretokenizers", Json::array({split, ByteLevel(false)})}};
}

// {"SpecialToken": {"id": name, "type_id": t}} and {"Sequence": {"id": seq, "type_id": t}}.
Json TemplateItem(const char* kind, const std::string& id, int type_id) {
  return Json{{kind, {{"id", id}, {"type_id", type_id}}}};
}

}  // namespace

absl::StatusOr<std::string> TokenizerJsonFromGguf(const GgufFile& gguf) {
  const std::string source = gguf.path().string();
  auto bad = [&](auto&&... what) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", what...));
  };
  std::optional<std::vector<std::string>> tokens = gguf.GetStringArray("tokenizer.ggml.tokens");
  if (!tokens) return bad("metadata 'tokenizer.ggml.tokens' is missing or not an array of strings");
  const size_t n = tokens->size();
  if (n == 0) return bad("metadata 'tokenizer.ggml.tokens' is empty");
  if (n > 0x7fffffff) return bad("metadata 'tokenizer.ggml.tokens' has too many tokens");
  std::optional<std::vector<std::string>> merges = gguf.GetStringArray("tokenizer.ggml.merges");
  if (!merges) {
    return bad("metadata 'tokenizer.ggml.merges' is missing or not an array of strings (a gpt2 ",
               "vocabulary needs its merges)");
  }
  std::vector<int64_t> types(n, 1);
  if (gguf.Has("tokenizer.ggml.token_type")) {
    std::optional<std::vector<int64_t>> t = gguf.GetIntArray("tokenizer.ggml.token_type");
    if (!t || t->size() != n) {
      return bad("metadata 'tokenizer.ggml.token_type' must be an array of ", n,
                 " integers (one per token)");
    }
    types = std::move(*t);
  }
  std::string pre = "default";
  if (gguf.Has("tokenizer.ggml.pre")) {
    std::optional<std::string> p = gguf.GetString("tokenizer.ggml.pre");
    if (!p) return bad("metadata 'tokenizer.ggml.pre' is not a string");
    pre = *p;
  }
  const bool llama3 = pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3";
  Json pre_tokenizer;
  if (llama3 || pre == "smaug-bpe") {
    pre_tokenizer = RegexPreTokenizer(kLlama3Pattern);
  } else if (pre == "qwen2") {
    pre_tokenizer = RegexPreTokenizer(kQwen2Pattern);
  } else if (pre == "default" || pre == "gpt2") {
    pre_tokenizer = ByteLevel(true);
  } else {
    return bad("tokenizer.ggml.pre '", pre, "' is not supported (supported: ", kKnownPre, ")");
  }
  auto get_bool = [&](const char* key, bool fallback) -> absl::StatusOr<bool> {
    if (!gguf.Has(key)) return fallback;
    std::optional<bool> v = gguf.GetBool(key);
    if (!v) return bad("metadata '", key, "' is not a bool");
    return *v;
  };
  auto get_id = [&](const char* key) -> absl::StatusOr<int64_t> {
    if (!gguf.Has(key)) return -1;
    std::optional<int64_t> v = gguf.GetInt(key);
    if (!v || *v < 0 || static_cast<size_t>(*v) >= n) {
      return bad("metadata '", key, "' must be a token id below ", n);
    }
    return *v;
  };
  TAILOR_ASSIGN_OR_RETURN(bool add_bos, get_bool("tokenizer.ggml.add_bos_token", llama3));
  TAILOR_ASSIGN_OR_RETURN(bool add_eos, get_bool("tokenizer.ggml.add_eos_token", false));
  TAILOR_ASSIGN_OR_RETURN(int64_t bos, get_id("tokenizer.ggml.bos_token_id"));
  TAILOR_ASSIGN_OR_RETURN(int64_t eos, get_id("tokenizer.ggml.eos_token_id"));

  // model.vocab and model.merges are written as text directly (a tree of 128k + 280k nodes
  // would cost more than the parse that follows).
  std::string vocab_text = "{";
  vocab_text.reserve(n * 16);
  Json added = Json::array();
  std::unordered_map<std::string_view, size_t> seen;
  seen.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& t = (*tokens)[i];
    const int64_t type = types[i];
    if (type < 0 || type > 6) {
      return bad("token ", i, " has tokenizer.ggml.token_type ", type, "; expected 0..6");
    }
    if (!IsValidUtf8(t)) return bad("token ", i, " of tokenizer.ggml.tokens is not valid UTF-8");
    auto [it, inserted] = seen.emplace(t, i);
    if (!inserted) return bad("token '", t, "' appears twice (ids ", it->second, " and ", i, ")");
    absl::StrAppend(&vocab_text, i == 0 ? "" : ",", Json(t).dump(), ":", i);
    if ((type == 2 || type == 3 || type == 4) && !t.empty()) {
      added.push_back(Json{{"id", i}, {"content", t}, {"single_word", false}, {"lstrip", false},
                           {"rstrip", false}, {"normalized", false}, {"special", type != 4}});
    }
  }
  vocab_text += "}";
  std::string merges_text = "[";
  merges_text.reserve(merges->size() * 12);
  for (size_t i = 0; i < merges->size(); ++i) {
    if (!IsValidUtf8((*merges)[i])) {
      return bad("merge ", i, " of tokenizer.ggml.merges is not valid UTF-8");
    }
    absl::StrAppend(&merges_text, i == 0 ? "" : ",", Json((*merges)[i]).dump());
  }
  merges_text += "]";

  Json post = Json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
                   {"use_regex", false}};
  if ((add_bos && bos >= 0) || (add_eos && eos >= 0)) {
    Json single = Json::array(), pair = Json::array(), specials = Json::object();
    auto special = [&](int64_t id) {
      const std::string& name = (*tokens)[static_cast<size_t>(id)];
      specials[name] = Json{{"id", name}, {"ids", {id}}, {"tokens", {name}}};
      return name;
    };
    if (add_bos && bos >= 0) {
      const std::string name = special(bos);
      single.push_back(TemplateItem("SpecialToken", name, 0));
      pair.push_back(TemplateItem("SpecialToken", name, 0));
    }
    single.push_back(TemplateItem("Sequence", "A", 0));
    pair.push_back(TemplateItem("Sequence", "A", 0));
    if (add_eos && eos >= 0) {
      const std::string name = special(eos);
      single.push_back(TemplateItem("SpecialToken", name, 0));
      pair.push_back(TemplateItem("SpecialToken", name, 0));
    }
    pair.push_back(TemplateItem("Sequence", "B", 1));
    post = Json{{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair},
                {"special_tokens", specials}};
  }

  Json model = Json{{"type", "BPE"},
                    {"dropout", nullptr},
                    {"unk_token", nullptr},
                    {"continuing_subword_prefix", nullptr},
                    {"end_of_word_suffix", nullptr},
                    {"fuse_unk", false},
                    {"byte_fallback", false},
                    {"ignore_merges", llama3}};
  std::string model_text = model.dump();
  model_text.pop_back();  // the closing brace: vocab and merges follow
  Json tailor = Json{
      {"source", "GGUF gpt2 vocabulary, tokenizer.ggml.pre " + pre},
      {"bos_token", bos >= 0 ? Json((*tokens)[static_cast<size_t>(bos)]) : Json(nullptr)},
      {"eos_token", eos >= 0 ? Json((*tokens)[static_cast<size_t>(eos)]) : Json(nullptr)}};
  return absl::StrCat("{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":",
                      added.dump(), ",\"normalizer\":null,\"pre_tokenizer\":", pre_tokenizer.dump(),
                      ",\"post_processor\":", post.dump(), ",\"decoder\":", ByteLevel(true).dump(),
                      ",\"model\":", model_text, ",\"vocab\":", vocab_text, ",\"merges\":",
                      merges_text, "},\"tailor\":", tailor.dump(), "}");
}

}  // namespace tailor::tokenizer_internal
