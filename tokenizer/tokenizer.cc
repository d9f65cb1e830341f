#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/gguf_file.h"
#include "common/mapped_file.h"
#include "common/status_macros.h"
#include "tokenizer/gguf_bpe.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/model_proto.h"
#include "tokenizer/sp_tokenizer.h"
#include "tokenizer/vocabulary_readers.h"

namespace tailor {
namespace {

using tokenizer_internal::HfTokenizer;
using tokenizer_internal::Json;
using tokenizer_internal::SpecialTokenNames;
using tokenizer_internal::SpTokenizer;

// The first four bytes of `path` ("" if shorter or unreadable).
std::string Magic(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  char buf[4];
  if (!in.read(buf, 4)) return "";
  return std::string(buf, 4);
}

// True if `bytes` starts like a JSON object (after an optional UTF-8 BOM and white space).
bool LooksLikeJson(std::string_view bytes) {
  if (bytes.starts_with("\xEF\xBB\xBF")) bytes.remove_prefix(3);
  const size_t pos = bytes.find_first_not_of(" \t\r\n");
  return pos != std::string_view::npos && bytes[pos] == '{';
}

// "bos_token" / "eos_token" of a tokenizer_config.json: a string, or {"content": string, ...};
// null or absent: not said.
absl::StatusOr<std::optional<std::string>> ConfigToken(const Json& config, const char* key,
                                                       const std::string& src) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::optional<std::string>();
  if (it->is_string()) return std::optional<std::string>(it->get<std::string>());
  if (it->is_object()) {
    auto content = it->find("content");
    if (content != it->end() && content->is_string()) {
      return std::optional<std::string>(content->get<std::string>());
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      src, ": field '", key, "': expected a string, {\"content\": string} or null"));
}

// BOS/EOS names from the tokenizer_config.json beside `tokenizer_json`, if there is one.
absl::StatusOr<SpecialTokenNames> ReadConfigNames(const std::filesystem::path& tokenizer_json) {
  SpecialTokenNames names;
  const std::filesystem::path config = tokenizer_json.parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(config, ec)) return names;
  const std::string src = config.string();
  TAILOR_ASSIGN_OR_RETURN(std::string text, ReadFileToString(config));
  Json doc;
  try {
    doc = Json::parse(text);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(src, ": not valid JSON (", e.what(), ")"));
  }
  if (!doc.is_object()) return absl::InvalidArgumentError(absl::StrCat(src, ": expected an object"));
  TAILOR_ASSIGN_OR_RETURN(names.bos_token, ConfigToken(doc, "bos_token", src));
  TAILOR_ASSIGN_OR_RETURN(names.eos_token, ConfigToken(doc, "eos_token", src));
  return names;
}

}  // namespace

Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::Wrap(std::unique_ptr<SpTokenizer> sp,
                                           std::string_view origin) {
  auto tok = std::unique_ptr<Tokenizer>(new Tokenizer());
  tok->origin_ = std::string(origin);
  tok->sp_ = sp.get();
  tok->bos_id_ = sp->bos_id();
  tok->eos_id_ = sp->eos_id();
  tok->unk_id_ = sp->unk_id();
  tok->backend_ = std::move(sp);
  return tok;
}

std::unique_ptr<Tokenizer> Tokenizer::Wrap(std::unique_ptr<HfTokenizer> hf,
                                           std::string_view origin) {
  auto tok = std::unique_ptr<Tokenizer>(new Tokenizer());
  tok->origin_ = std::string(origin);
  tok->hf_ = hf.get();
  tok->bos_id_ = hf->bos_id();
  tok->eos_id_ = hf->eos_id();
  tok->unk_id_ = hf->unk_id();
  tok->backend_ = std::move(hf);
  return tok;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromSerializedModel(
    std::string_view model_proto_bytes, std::string_view origin) {
  TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<SpTokenizer> sp,
                          SpTokenizer::Create(model_proto_bytes, std::string(origin)));
  return Wrap(std::move(sp), origin);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromVocabulary(const Vocabulary& vocab,
                                                                     std::string_view origin) {
  TAILOR_ASSIGN_OR_RETURN(std::string proto,
                          tokenizer_internal::BuildModelProto(vocab, std::string(origin)));
  return FromSerializedModel(proto, origin);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromTokenizerJson(
    std::string document, std::string_view origin, std::optional<std::string> bos_token,
    std::optional<std::string> eos_token) {
  const SpecialTokenNames names{std::move(bos_token), std::move(eos_token)};
  TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<HfTokenizer> hf,
                          HfTokenizer::Create(std::move(document), std::string(origin), names));
  return Wrap(std::move(hf), origin);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const GgufFile& gguf) {
  const std::string src = gguf.path().string();
  if (gguf.GetString("tokenizer.ggml.model") == "gpt2") {
    TAILOR_ASSIGN_OR_RETURN(std::string text, tokenizer_internal::TokenizerJsonFromGguf(gguf));
    TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<HfTokenizer> hf, HfTokenizer::Create(std::move(text), src, {}));
    return Wrap(std::move(hf), src);
  }
  TAILOR_ASSIGN_OR_RETURN(Vocabulary vocab, ReadGgufVocabulary(gguf));
  TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok, FromVocabulary(vocab, src));
  for (const char* key : {"tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token"}) {
    if (!gguf.Has(key)) continue;
    std::optional<bool> add = gguf.GetBool(key);
    if (!add) return absl::InvalidArgumentError(absl::StrCat(src, ": metadata '", key, "' is not a bool"));
    std::string_view(key).ends_with("bos_token") ? tok->set_add_bos(*add) : tok->set_add_eos(*add);
  }
  return tok;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::filesystem::path& path,
                                                           int32_t expected_vocab_size) {
  const std::string src = path.string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat("tokenizer file ", src, " does not exist"));
  }
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer ", src, " is not a regular file"));
  }
  const std::string ext = path.extension().string();
  std::unique_ptr<Tokenizer> tok;
  if (Magic(path) == "GGUF" || ext == ".gguf") {
    TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> gguf, GgufFile::Open(path));
    TAILOR_ASSIGN_OR_RETURN(tok, FromGguf(*gguf));
  } else if (ext == ".bin") {
    absl::StatusOr<Vocabulary> vocab = ReadLlama2cVocabulary(path, expected_vocab_size);
    if (vocab.ok()) {
      TAILOR_ASSIGN_OR_RETURN(tok, FromVocabulary(*vocab, src));
    } else {  // perhaps a sentencepiece model named .bin; if not, the llama2.c error is the one
      absl::StatusOr<std::string> bytes = ReadFileToString(path);
      absl::StatusOr<std::unique_ptr<Tokenizer>> sp =
          bytes.ok() ? FromSerializedModel(*bytes, src) : bytes.status();
      if (!sp.ok()) return vocab.status();
      tok = std::move(*sp);
    }
  } else {
    TAILOR_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
    if (ext == ".json" || LooksLikeJson(bytes)) {
      TAILOR_ASSIGN_OR_RETURN(SpecialTokenNames names, ReadConfigNames(path));
      absl::StatusOr<std::unique_ptr<Tokenizer>> hf =
          FromTokenizerJson(std::string(bytes), src, names.bos_token, names.eos_token);
      if (hf.ok()) {
        tok = std::move(*hf);
      } else {
        if (ext == ".json") return hf.status();
        absl::StatusOr<std::unique_ptr<Tokenizer>> sp = FromSerializedModel(bytes, src);
        if (!sp.ok()) return hf.status();  // it looked like JSON: that error is the one
        tok = std::move(*sp);
      }
    } else {
      absl::StatusOr<std::unique_ptr<Tokenizer>> sp = FromSerializedModel(bytes, src);
      if (sp.ok()) {
        tok = std::move(*sp);
      } else if (ext == ".model" || expected_vocab_size <= 0) {
        return sp.status();
      } else {  // no telling extension: perhaps a llama2.c tokenizer
        absl::StatusOr<Vocabulary> vocab = ReadLlama2cVocabulary(path, expected_vocab_size);
        if (!vocab.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(
              src, ": neither a sentencepiece model (", sp.status().message(),
              ") nor a llama2.c tokenizer (", vocab.status().message(), ")"));
        }
        TAILOR_ASSIGN_OR_RETURN(tok, FromVocabulary(*vocab, src));
      }
    }
  }
  if (expected_vocab_size > 0 && tok->vocab_size() > expected_vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer ", src, " has ", tok->vocab_size(),
                     " pieces but the model's vocabulary has ", expected_vocab_size,
                     " (a tokenizer with more tokens than the model's embedding rows is another model's)"));
  }
  // Fewer is normal when the embedding is padded (Qwen2/3: 151669 tokens, 151936 rows; Phi-3,
  // Gemma 3: tens of rows), but not by thousands of rows: that is another model's tokenizer
  // (Llama 3's 128256 tokens on a Qwen model).
  const int64_t padding_allowed = std::max<int64_t>(1024, expected_vocab_size / 64);
  if (expected_vocab_size > 0 && expected_vocab_size - tok->vocab_size() > padding_allowed) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer ", src, " has ", tok->vocab_size(), " pieces but the model's vocabulary has ",
                     expected_vocab_size, ": more than ", padding_allowed,
                     " rows of padding, so the tokenizer belongs to another model"));
  }
  return tok;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, const EncodeOptions& options) const {
  return backend_->Encode(text, options);
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::unique_ptr<tokenizer_internal::IncrementalDecoder> decoder =
      backend_->NewDecoder(skip_special_tokens);
  std::string out;
  for (int32_t id : ids) decoder->Push(id, &out);
  decoder->Finish(&out);
  return out;
}

bool Tokenizer::byte_fallback() const {
  return sp_ != nullptr ? sp_->byte_fallback() : hf_->byte_fallback();
}
bool Tokenizer::add_dummy_prefix() const { return sp_ != nullptr && sp_->add_dummy_prefix(); }
bool Tokenizer::add_bos() const { return sp_ != nullptr ? sp_->add_bos() : hf_->adds_bos(); }
bool Tokenizer::add_eos() const {
  if (sp_ != nullptr) return sp_->add_eos();
  const std::vector<int32_t> ids = hf_->Encode("", {.add_special_tokens = true});
  return eos_id_ >= 0 && !ids.empty() && ids.back() == eos_id_;
}
void Tokenizer::set_add_bos(bool add) {
  if (sp_ != nullptr) sp_->set_add_bos(add);
}
void Tokenizer::set_add_eos(bool add) {
  if (sp_ != nullptr) sp_->set_add_eos(add);
}

absl::StatusOr<std::string> Tokenizer::ReferenceDecode(std::span<const int32_t> ids) const {
  if (sp_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(origin_, ": not a sentencepiece tokenizer (no reference decoder)"));
  }
  std::string text, error;
  if (!sp_->ReferenceDecode(ids, &text, &error)) {
    return absl::InvalidArgumentError(absl::StrCat(origin_, ": sentencepiece: ", error));
  }
  return text;
}

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer,
                                           std::span<const int32_t> context,
                                           bool skip_special_tokens)
    : decoder_(tokenizer.backend().NewDecoder(skip_special_tokens)) {
  std::string context_text;  // already shown to the user (or never to be shown)
  for (int32_t id : context) decoder_->Push(id, &context_text);
  decoder_->Clone()->Finish(&context_tail_);
  matching_ = !context_tail_.empty();
}

std::string StreamingDetokenizer::Filter(std::string text) {
  if (!matching_) return text;
  held_ += text;
  if (held_.size() >= context_tail_.size()) {
    matching_ = false;
    std::string out = held_.starts_with(context_tail_) ? held_.substr(context_tail_.size())
                                                       : std::move(held_);
    held_.clear();
    return out;
  }
  if (std::string_view(context_tail_).starts_with(held_)) return "";
  matching_ = false;  // the stream diverged from Decode(context): show all of it
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

std::string StreamingDetokenizer::Push(int32_t id) {
  std::string out;
  decoder_->Push(id, &out);
  return Filter(std::move(out));
}

std::string StreamingDetokenizer::Flush() {
  std::string out;
  decoder_->Finish(&out);
  out = Filter(std::move(out));
  if (matching_) {  // the whole stream is a strict prefix of Decode(context)'s tail: nothing new
    matching_ = false;
    held_.clear();
  }
  return out;
}

}  // namespace tailor
