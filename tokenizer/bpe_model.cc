#include "tokenizer/bpe_model.h"

#include <queue>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "tokenizer/unicode_text.h"

namespace tailor::tokenizer_internal {
namespace {

// A merge waiting in the queue: the pair starting at symbol `pos` becomes `merged_id`.
struct Candidate {
  int32_t rank;
  int32_t pos;
  int32_t merged_id;
};
// Orders the priority queue so that its top is the lowest rank, then the leftmost position.
struct Later {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  }
};

struct Symbol {
  int32_t id;
  int32_t prev;  // -1 at the start
  int32_t next;  // -1 at the end
  bool alive;
};

// Reads an optional string setting that tailor supports only when null or "".
absl::Status RequireEmpty(const JsonField& model, std::string_view key) {
  std::optional<JsonField> f = model.Get(key);
  if (!f) return absl::OkStatus();
  absl::StatusOr<std::string> s = f->String();
  if (!s.ok()) return s.status();
  if (!s->empty()) return f->Error("\"", *s, "\" is not supported (only null or \"\")");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::Parse(const JsonField& model,
                                                          const TokenizerDocument& doc,
                                                          int64_t id_limit) {
  auto bpe = std::unique_ptr<BpeModel>(new BpeModel());
  TAILOR_RETURN_IF_ERROR(RequireEmpty(model, "continuing_subword_prefix"));
  TAILOR_RETURN_IF_ERROR(RequireEmpty(model, "end_of_word_suffix"));
  if (std::optional<JsonField> dropout = model.Get("dropout")) {
    TAILOR_ASSIGN_OR_RETURN(double p, dropout->Number());
    if (p != 0.0) return dropout->Error(p, " is not supported (only null or 0: no dropout)");
  }
  TAILOR_ASSIGN_OR_RETURN(bpe->byte_fallback_, model.BoolOr("byte_fallback", false));
  TAILOR_ASSIGN_OR_RETURN(bpe->fuse_unk_, model.BoolOr("fuse_unk", false));
  TAILOR_ASSIGN_OR_RETURN(bpe->ignore_merges_, model.BoolOr("ignore_merges", false));

  TAILOR_ASSIGN_OR_RETURN(JsonField vocab, model.Require("vocab"));
  if (!vocab.is_object()) return vocab.Error("expected an object mapping token strings to ids");
  bpe->vocab_.reserve(doc.vocab.size());
  int64_t max_id = -1;
  for (const VocabEntry& e : doc.vocab) {
    if (!e.is_integer) return vocab.Error("the id of token \"", e.token, "\" is not an integer");
    if (e.id < 0 || e.id >= id_limit) {
      return vocab.Error("token \"", e.token, "\" has id ", e.id, "; expected 0..", id_limit - 1,
                         " for a document with this many tokens");
    }
    bpe->vocab_.insert_or_assign(e.token, static_cast<int32_t>(e.id));  // the last one wins
    max_id = std::max(max_id, e.id);
  }
  if (bpe->vocab_.empty()) return vocab.Error("the vocabulary is empty");
  bpe->tokens_.resize(static_cast<size_t>(max_id + 1));
  bpe->present_.assign(static_cast<size_t>(max_id + 1), false);
  for (const auto& [token, id] : bpe->vocab_) {
    if (bpe->present_[id]) {
      return vocab.Error("id ", id, " belongs to both \"", bpe->tokens_[id], "\" and \"", token, "\"");
    }
    bpe->present_[id] = true;
    bpe->tokens_[id] = token;
  }
  for (int b = 0; b < 256; ++b) {
    std::optional<int32_t> id = bpe->TokenToId(absl::StrFormat("<0x%02X>", b));
    bpe->byte_ids_[b] = id ? *id : -1;
  }
  if (std::optional<JsonField> unk = model.Get("unk_token")) {
    TAILOR_ASSIGN_OR_RETURN(std::string token, unk->String());
    std::optional<int32_t> id = bpe->TokenToId(token);
    if (!id) return unk->Error("\"", token, "\" is not in model.vocab");
    bpe->unk_id_ = *id;
  }

  TAILOR_ASSIGN_OR_RETURN(JsonField merges, model.Require("merges"));
  if (!merges.is_array()) return merges.Error("expected an array");
  if (doc.merges.size() > static_cast<size_t>(INT32_MAX)) return merges.Error("too many merges");
  bpe->merges_.reserve(doc.merges.size());
  std::string merged;
  for (size_t i = 0; i < doc.merges.size(); ++i) {
    const MergeEntry& m = doc.merges[i];
    auto error = [&](auto&&... what) {
      return absl::InvalidArgumentError(absl::StrCat(merges.origin(), ": field '", merges.path(),
                                                     "[", i, "]': ", StrArg(what)...));
    };
    std::string_view left = m.left, right = m.right;
    if (m.kind == MergeEntry::Kind::kString) {  // "a b"
      const size_t space = left.find(' ');
      if (space == std::string::npos || left.find(' ', space + 1) != std::string::npos) {
        return error("\"", m.left, "\" is not two tokens separated by one space");
      }
      right = left.substr(space + 1);
      left = left.substr(0, space);
    } else if (m.kind != MergeEntry::Kind::kPair) {
      return error("expected \"a b\" or [\"a\", \"b\"]");
    }
    std::optional<int32_t> l = bpe->TokenToId(left), r = bpe->TokenToId(right);
    if (!l || !r) return error("token \"", !l ? left : right, "\" is not in model.vocab");
    merged.assign(left);
    merged.append(right);
    std::optional<int32_t> id = bpe->TokenToId(merged);
    if (!id) return error("the merged token \"", merged, "\" is not in model.vocab");
    // As HF's map built from the list: a repeated pair keeps its last rank.
    bpe->merges_.insert_or_assign(PairKey(*l, *r), Merge{static_cast<int32_t>(i), *id});
  }
  return bpe;
}

std::optional<std::string_view> BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size() || !present_[id]) return std::nullopt;
  return std::string_view(tokens_[id]);
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(AbslView(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

void BpeModel::Tokenize(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (std::optional<int32_t> id = TokenToId(word)) {
      ids->push_back(*id);
      return;
    }
  }
  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  bool pending_unk = false;  // an unknown symbol not yet added (fuse_unk may extend it)
  size_t pos = 0;
  while (pos < word.size()) {
    const size_t len = CharLength(static_cast<uint8_t>(word[pos]));
    const std::string_view ch = word.substr(pos, len);
    pos += len;
    if (std::optional<int32_t> id = TokenToId(ch)) {
      if (pending_unk) symbols.push_back(unk_id_);
      pending_unk = false;
      symbols.push_back(*id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : ch) all = all && byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all) {  // as HF, a pending unknown symbol stays pending across byte tokens
        for (char c : ch) symbols.push_back(byte_ids_[static_cast<uint8_t>(c)]);
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (pending_unk && !fuse_unk_) symbols.push_back(unk_id_);
      pending_unk = true;
    }  // without an unknown token the character is dropped, as HF does
  }
  if (pending_unk) symbols.push_back(unk_id_);
  MergeSymbols(&symbols);
  ids->insert(ids->end(), symbols.begin(), symbols.end());
}

void BpeModel::MergeSymbols(std::vector<int32_t>* ids) const {
  const int32_t n = static_cast<int32_t>(ids->size());
  if (n < 2 || merges_.empty()) return;
  std::vector<Symbol> sym(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) sym[i] = Symbol{(*ids)[i], i - 1, i + 1 < n ? i + 1 : -1, true};
  std::priority_queue<Candidate, std::vector<Candidate>, Later> queue;
  for (int32_t i = 0; i + 1 < n; ++i) {
    if (const Merge* m = FindMerge(sym[i].id, sym[i + 1].id)) queue.push({m->rank, i, m->merged_id});
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& s = sym[top.pos];
    if (!s.alive || s.next < 0) continue;
    Symbol& right = sym[s.next];
    const Merge* m = FindMerge(s.id, right.id);
    if (m == nullptr || m->merged_id != top.merged_id) continue;  // a stale entry
    s.id = top.merged_id;
    right.alive = false;
    s.next = right.next;
    if (s.next >= 0) sym[s.next].prev = top.pos;
    if (s.prev >= 0) {
      if (const Merge* p = FindMerge(sym[s.prev].id, s.id)) queue.push({p->rank, s.prev, p->merged_id});
    }
    if (s.next >= 0) {
      if (const Merge* q = FindMerge(s.id, sym[s.next].id)) queue.push({q->rank, top.pos, q->merged_id});
    }
  }
  ids->clear();
  for (int32_t i = 0; i >= 0; i = sym[i].next) ids->push_back(sym[i].id);
}

}  // namespace tailor::tokenizer_internal
