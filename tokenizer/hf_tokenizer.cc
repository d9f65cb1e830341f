#include "tokenizer/hf_tokenizer.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "tokenizer/unicode_text.h"

namespace tailor::tokenizer_internal {
namespace {

class HfDecoder final : public IncrementalDecoder {
 public:
  HfDecoder(const HfTokenizer& tok, const DecoderPipeline& pipeline, bool skip_special)
      : tok_(&tok), stream_(pipeline), skip_special_(skip_special) {}
  void Push(int32_t id, std::string* out) override {
    std::optional<std::string_view> token = tok_->IdToToken(id);
    if (!token || (skip_special_ && tok_->IsSpecial(id))) return;
    stream_.Push(*token, out);
  }
  void Finish(std::string* out) override { stream_.Finish(out); }
  std::unique_ptr<IncrementalDecoder> Clone() const override {
    return std::make_unique<HfDecoder>(*this);
  }

 private:
  const HfTokenizer* tok_;
  DecodeStream stream_;
  bool skip_special_;
};

// The ids a post-processor's special token entry stands for: TemplateProcessing's
// special_tokens[name].ids.
absl::StatusOr<std::vector<int32_t>> TemplateIds(const JsonField& special_tokens,
                                                 const std::string& name, int32_t vocab_size) {
  std::optional<JsonField> entry = special_tokens.Get(name);
  if (!entry) return special_tokens.Error("has no entry for \"", name, "\"");
  TAILOR_ASSIGN_OR_RETURN(JsonField ids, entry->Require("ids"));
  if (!ids.is_array()) return ids.Error("expected an array of token ids");
  std::vector<int32_t> out;
  for (size_t i = 0; i < ids.size(); ++i) {
    TAILOR_ASSIGN_OR_RETURN(int64_t id, ids.At(i).Int());
    if (id < 0 || id >= vocab_size) {
      return ids.At(i).Error("id ", id, " is not a token (the vocabulary has ", vocab_size, ")");
    }
    out.push_back(static_cast<int32_t>(id));
  }
  return out;
}

// Optional string-or-null member of the "tailor" section.
absl::StatusOr<std::optional<std::string>> OptionalString(const JsonField& section,
                                                          std::string_view key) {
  std::optional<JsonField> f = section.Get(key);
  if (!f) return std::optional<std::string>();
  TAILOR_ASSIGN_OR_RETURN(std::string s, f->String());
  return std::optional<std::string>(std::move(s));
}

}  // namespace

absl::StatusOr<std::unique_ptr<HfTokenizer>> HfTokenizer::Create(std::string document,
                                                                 const std::string& origin,
                                                                 const SpecialTokenNames& names) {
  auto tok = std::unique_ptr<HfTokenizer>(new HfTokenizer());
  tok->origin_ = origin;
  TAILOR_ASSIGN_OR_RETURN(const TokenizerDocument parsed, ParseTokenizerDocument(document, origin));
  tok->document_ = std::move(document);
  const Json& doc = parsed.tree;
  const JsonField root(doc, tok->origin_);
  if (!root.is_object()) return root.Error("expected a JSON object (a tokenizer.json)");

  TAILOR_ASSIGN_OR_RETURN(JsonField model, root.Require("model"));
  if (model.Get("type") || !model.Get("merges")) {  // HF infers BPE from "merges" when untyped
    TAILOR_RETURN_IF_ERROR(model.Type({"BPE"}).status());
  }
  std::optional<JsonField> added = root.Get("added_tokens");
  if (added && !added->is_array()) return added->Error("expected an array");
  // Ids beyond this cannot be justified by the document: every id names an entry.
  const int64_t id_limit =
      static_cast<int64_t>(parsed.vocab.size() + (added ? added->size() : 0));
  TAILOR_ASSIGN_OR_RETURN(tok->model_,
                          BpeModel::Parse(model, parsed, std::max<int64_t>(id_limit, 1)));

  std::vector<AddedToken> added_tokens;
  TAILOR_RETURN_IF_ERROR(tok->ParseAddedTokens(root, id_limit, &added_tokens));
  int32_t n = tok->model_->id_end();
  for (const AddedToken& t : added_tokens) n = std::max(n, t.id + 1);
  tok->tokens_.resize(static_cast<size_t>(n));
  tok->flags_.assign(static_cast<size_t>(n), 0);
  for (int32_t id = 0; id < tok->model_->id_end(); ++id) {
    if (std::optional<std::string_view> t = tok->model_->IdToToken(id)) {
      tok->tokens_[id] = std::string(*t);
      tok->flags_[id] = kPresent;
    }
  }
  for (const AddedToken& t : added_tokens) {
    tok->tokens_[t.id] = t.content;
    tok->flags_[t.id] = kPresent | kAdded | (t.special ? kSpecial : 0);
    tok->added_ids_.emplace(t.content, t.id);
  }

  if (std::optional<JsonField> f = root.Get("normalizer")) {
    TAILOR_ASSIGN_OR_RETURN(tok->normalizer_, Normalizer::Parse(*f));
  }
  if (std::optional<JsonField> f = root.Get("pre_tokenizer")) {
    TAILOR_ASSIGN_OR_RETURN(tok->pre_tokenizer_, PreTokenizer::Parse(*f));
  }
  TAILOR_ASSIGN_OR_RETURN(tok->decoder_, DecoderPipeline::Parse(root.Get("decoder")));
  TAILOR_RETURN_IF_ERROR(tok->ParsePostProcessor(root.Get("post_processor")));

  std::vector<AddedToken> raw, normalized;
  for (AddedToken& t : added_tokens) {
    if (t.normalized) {
      if (tok->normalizer_ != nullptr) t.content = tok->normalizer_->Apply(std::move(t.content));
      normalized.push_back(std::move(t));
    } else {
      raw.push_back(std::move(t));
    }
  }
  tok->raw_added_ = AddedTokenMatcher(std::move(raw));
  tok->normalized_added_ = AddedTokenMatcher(std::move(normalized));

  // BOS and EOS.
  SpecialTokenNames from_document;
  if (std::optional<JsonField> section = root.Get("tailor")) {
    tok->document_has_names_ = true;
    TAILOR_ASSIGN_OR_RETURN(from_document.bos_token, OptionalString(*section, "bos_token"));
    TAILOR_ASSIGN_OR_RETURN(from_document.eos_token, OptionalString(*section, "eos_token"));
  }
  tok->bos_token_ = names.bos_token ? names.bos_token : from_document.bos_token;
  tok->eos_token_ = names.eos_token ? names.eos_token : from_document.eos_token;
  tok->document_has_names_ = tok->document_has_names_ &&
                             tok->bos_token_ == from_document.bos_token &&
                             tok->eos_token_ == from_document.eos_token;
  auto id_of = [&](const std::optional<std::string>& name) {
    std::optional<int32_t> id = name ? tok->PieceToId(*name) : std::nullopt;
    return id ? *id : -1;
  };
  tok->bos_id_ = id_of(tok->bos_token_);
  tok->eos_id_ = id_of(tok->eos_token_);
  if (!tok->bos_token_ && !tok->prefix_.empty() && tok->IsSpecial(tok->prefix_[0])) {
    tok->bos_id_ = tok->prefix_[0];
  }
  return tok;
}

absl::Status HfTokenizer::ParseAddedTokens(const JsonField& doc, int64_t id_limit,
                                           std::vector<AddedToken>* tokens) {
  std::optional<JsonField> list = doc.Get("added_tokens");
  if (!list) return absl::OkStatus();
  absl::flat_hash_map<int32_t, size_t> seen;
  for (size_t i = 0; i < list->size(); ++i) {
    const JsonField entry = list->At(i);
    AddedToken t;
    TAILOR_ASSIGN_OR_RETURN(JsonField id, entry.Require("id"));
    TAILOR_ASSIGN_OR_RETURN(int64_t v, id.Int());
    if (v < 0 || v >= id_limit) {
      return id.Error("id ", v, " is out of range; expected 0..", id_limit - 1,
                      " for a document with this many tokens");
    }
    t.id = static_cast<int32_t>(v);
    TAILOR_ASSIGN_OR_RETURN(JsonField content, entry.Require("content"));
    TAILOR_ASSIGN_OR_RETURN(t.content, content.String());
    if (t.content.empty()) continue;  // HF ignores empty added tokens
    if (!IsValidUtf8(t.content)) return content.Error("not valid UTF-8");
    TAILOR_ASSIGN_OR_RETURN(t.special, entry.BoolOr("special", false));
    TAILOR_ASSIGN_OR_RETURN(t.lstrip, entry.BoolOr("lstrip", false));
    TAILOR_ASSIGN_OR_RETURN(t.rstrip, entry.BoolOr("rstrip", false));
    TAILOR_ASSIGN_OR_RETURN(t.single_word, entry.BoolOr("single_word", false));
    TAILOR_ASSIGN_OR_RETURN(t.normalized, entry.BoolOr("normalized", !t.special));
    auto [it, inserted] = seen.emplace(t.id, i);
    if (!inserted) {
      return id.Error("id ", t.id, " is also the id of added_tokens[", it->second, "]");
    }
    tokens->push_back(std::move(t));
  }
  return absl::OkStatus();
}

absl::Status HfTokenizer::ParsePostProcessor(const std::optional<JsonField>& field) {
  if (!field) return absl::OkStatus();
  TAILOR_ASSIGN_OR_RETURN(std::string type,
                          field->Type({"TemplateProcessing", "ByteLevel", "Sequence",
                                       "BertProcessing", "RobertaProcessing"}));
  if (type == "ByteLevel") return absl::OkStatus();  // offsets only
  if (type == "Sequence") {
    TAILOR_ASSIGN_OR_RETURN(JsonField list, field->Require("processors"));
    if (!list.is_array()) return list.Error("expected an array");
    for (size_t i = 0; i < list.size(); ++i) {
      std::vector<int32_t> outer_prefix = std::move(prefix_), outer_suffix = std::move(suffix_);
      prefix_.clear();
      suffix_.clear();
      TAILOR_RETURN_IF_ERROR(ParsePostProcessor(list.At(i)));
      // Each processor wraps what the ones before it produced.
      prefix_.insert(prefix_.end(), outer_prefix.begin(), outer_prefix.end());
      outer_suffix.insert(outer_suffix.end(), suffix_.begin(), suffix_.end());
      suffix_ = std::move(outer_suffix);
    }
    return absl::OkStatus();
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    for (const char* key : {"cls", "sep"}) {  // ["[CLS]", 101]
      TAILOR_ASSIGN_OR_RETURN(JsonField pair, field->Require(key));
      if (!pair.is_array() || pair.size() != 2) return pair.Error("expected [token, id]");
      TAILOR_ASSIGN_OR_RETURN(int64_t id, pair.At(1).Int());
      if (id < 0 || id >= vocab_size()) return pair.At(1).Error("id ", id, " is not a token");
      (std::string_view(key) == "cls" ? prefix_ : suffix_).push_back(static_cast<int32_t>(id));
    }
    return absl::OkStatus();
  }
  // TemplateProcessing: "single" = [{"SpecialToken": {"id": name}} | {"Sequence": {"id": "A"}}].
  TAILOR_ASSIGN_OR_RETURN(JsonField single, field->Require("single"));
  TAILOR_ASSIGN_OR_RETURN(JsonField special_tokens, field->Require("special_tokens"));
  if (!single.is_array()) return single.Error("expected an array");
  bool seen_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const JsonField item = single.At(i);
    if (std::optional<JsonField> seq = item.Get("Sequence")) {
      TAILOR_ASSIGN_OR_RETURN(std::string id, seq->StringOr("id", "A"));
      if (id != "A" || seen_sequence) {
        return seq->Error("a single-sequence template must hold sequence A once");
      }
      seen_sequence = true;
    } else if (std::optional<JsonField> sp = item.Get("SpecialToken")) {
      TAILOR_ASSIGN_OR_RETURN(JsonField name, sp->Require("id"));
      TAILOR_ASSIGN_OR_RETURN(std::string token, name.String());
      TAILOR_ASSIGN_OR_RETURN(std::vector<int32_t> ids,
                              TemplateIds(special_tokens, token, vocab_size()));
      std::vector<int32_t>& dest = seen_sequence ? suffix_ : prefix_;
      dest.insert(dest.end(), ids.begin(), ids.end());
    } else {
      return item.Error("expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    }
  }
  if (!seen_sequence) return single.Error("has no {\"Sequence\": {\"id\": \"A\"}}");
  return absl::OkStatus();
}

std::vector<int32_t> HfTokenizer::Encode(std::string_view text,
                                         const EncodeOptions& options) const {
  const std::string valid = ToValidUtf8(text);
  std::vector<int32_t> ids;
  if (options.add_special_tokens) ids = prefix_;
  std::vector<PreToken> words;
  for (const TextSegment& raw : raw_added_.Split(valid)) {
    if (raw.id >= 0) {
      ids.push_back(raw.id);
      continue;
    }
    std::string piece = valid.substr(raw.start, raw.end - raw.start);
    if (normalizer_ != nullptr) piece = normalizer_->Apply(std::move(piece));
    for (const TextSegment& seg : normalized_added_.Split(piece)) {
      if (seg.id >= 0) {
        ids.push_back(seg.id);
        continue;
      }
      words.clear();
      words.push_back(PreToken{piece.substr(seg.start, seg.end - seg.start),
                               raw.start == 0 && seg.start == 0});
      if (pre_tokenizer_ != nullptr) pre_tokenizer_->Apply(&words);
      for (const PreToken& w : words) model_->Tokenize(w.text, &ids);
    }
  }
  if (options.add_special_tokens) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
  return ids;
}

std::unique_ptr<IncrementalDecoder> HfTokenizer::NewDecoder(bool skip_special_tokens) const {
  return std::make_unique<HfDecoder>(*this, decoder_, skip_special_tokens);
}

std::optional<std::string_view> HfTokenizer::IdToToken(int32_t id) const {
  if (id < 0 || id >= vocab_size() || !(flags_[id] & kPresent)) return std::nullopt;
  return std::string_view(tokens_[id]);
}

std::string_view HfTokenizer::Piece(int32_t id) const {
  std::optional<std::string_view> t = IdToToken(id);
  return t ? *t : std::string_view();
}

std::optional<int32_t> HfTokenizer::PieceToId(std::string_view piece) const {
  auto it = added_ids_.find(AbslView(piece));
  if (it != added_ids_.end()) return it->second;
  return model_->TokenToId(piece);
}

PieceType HfTokenizer::Type(int32_t id) const {
  if (!IdToToken(id)) return PieceType::kUnused;
  if (flags_[id] & kSpecial) return PieceType::kControl;
  if (flags_[id] & kAdded) return PieceType::kUserDefined;
  if (id == model_->unk_id()) return PieceType::kUnknown;
  if (model_->byte_fallback()) {
    const std::string& t = tokens_[id];
    const std::string_view hex = "0123456789ABCDEF";
    if (t.size() == 6 && t.starts_with("<0x") && t[5] == '>') {
      const size_t hi = hex.find(t[3]), lo = hex.find(t[4]);
      if (hi != hex.npos && lo != hex.npos && model_->byte_id(static_cast<uint8_t>(hi * 16 + lo)) == id) {
        return PieceType::kByte;
      }
    }
  }
  return PieceType::kNormal;
}

bool HfTokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && id < vocab_size() && (flags_[id] & kSpecial);
}

std::string HfTokenizer::TokenText(int32_t id) const {
  std::optional<std::string_view> t = IdToToken(id);
  if (!t) return {};
  if (flags_[id] & kAdded) return std::string(*t);
  return decoder_.TokenText(*t);
}

SerializedTokenizer HfTokenizer::Serialize() const {
  SerializedTokenizer s{"tokenizer.json", document_};
  if (document_has_names_ || (!bos_token_ && !eos_token_)) return s;
  Json names = Json::object();
  names["bos_token"] = bos_token_ ? Json(*bos_token_) : Json(nullptr);
  names["eos_token"] = eos_token_ ? Json(*eos_token_) : Json(nullptr);
  // Appended as the last member, without re-encoding the (large) rest; JSON readers (nlohmann,
  // and so Create) keep the last of repeated keys, should the document have a "tailor" already.
  const size_t brace = document_.find_last_of('}');
  s.bytes = absl::StrCat(document_.substr(0, brace), ",\"tailor\":", names.dump(),
                         document_.substr(brace));
  return s;
}

}  // namespace tailor::tokenizer_internal
