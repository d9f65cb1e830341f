#include "service/grammar/expr.h"

#include <algorithm>

namespace tailor::grammar::internal {
namespace {

// UTF-8 encoding of `cp` (< 0x110000) into `out`; returns its length in bytes.
int Encode(uint32_t cp, uint8_t out[4]) {
  if (cp < 0x80) {
    out[0] = static_cast<uint8_t>(cp);
    return 1;
  }
  if (cp < 0x800) {
    out[0] = static_cast<uint8_t>(0xC0 | (cp >> 6));
    out[1] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = static_cast<uint8_t>(0xE0 | (cp >> 12));
    out[1] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
    out[2] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = static_cast<uint8_t>(0xF0 | (cp >> 18));
  out[1] = static_cast<uint8_t>(0x80 | ((cp >> 12) & 0x3F));
  out[2] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
  out[3] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
  return 4;
}

// Appends to `alts` byte-range sequences matching exactly the encodings of [lo, hi]. Splits the
// range until lo and hi have the same length and differ only in a way that a product of byte
// ranges describes: each trailing 6-bit group below the first differing one spans 00..3F.
void SplitUtf8(ExprPool& pool, uint32_t lo, uint32_t hi, std::vector<int32_t>& alts) {
  if (lo > hi) return;
  static constexpr uint32_t kMaxOfLength[] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
  for (uint32_t bound : kMaxOfLength) {
    if (lo <= bound && hi > bound) {
      SplitUtf8(pool, lo, bound, alts);
      SplitUtf8(pool, bound + 1, hi, alts);
      return;
    }
  }
  for (int i = 1; i < 4; ++i) {
    const uint32_t m = (1u << (6 * i)) - 1;  // the low i continuation groups
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        SplitUtf8(pool, lo, lo | m, alts);
        SplitUtf8(pool, (lo | m) + 1, hi, alts);
        return;
      }
      if ((hi & m) != m) {
        SplitUtf8(pool, lo, (hi & ~m) - 1, alts);
        SplitUtf8(pool, hi & ~m, hi, alts);
        return;
      }
    }
  }
  uint8_t a[4], b[4];
  const int n = Encode(lo, a);
  Encode(hi, b);
  std::vector<int32_t> seq;
  for (int i = 0; i < n; ++i) seq.push_back(pool.Bytes(a[i], b[i]));
  alts.push_back(seq.size() == 1 ? seq[0] : pool.Seq(std::move(seq)));
}

}  // namespace

int32_t ExprPool::Add(Expr e) {
  exprs_.push_back(std::move(e));
  return static_cast<int32_t>(exprs_.size()) - 1;
}

int32_t ExprPool::Empty() { return Add(Expr{}); }

int32_t ExprPool::Bytes(uint8_t lo, uint8_t hi) {
  Expr e;
  e.kind = ExprKind::kBytes;
  e.lo = lo;
  e.hi = hi;
  return Add(std::move(e));
}

int32_t ExprPool::Literal(absl::string_view bytes) {
  if (bytes.empty()) return Empty();
  std::vector<int32_t> kids;
  for (char c : bytes) kids.push_back(Bytes(static_cast<uint8_t>(c), static_cast<uint8_t>(c)));
  return kids.size() == 1 ? kids[0] : Seq(std::move(kids));
}

int32_t ExprPool::Seq(std::vector<int32_t> kids) {
  if (kids.empty()) return Empty();
  if (kids.size() == 1) return kids[0];
  Expr e;
  e.kind = ExprKind::kSeq;
  e.kids = std::move(kids);
  return Add(std::move(e));
}

int32_t ExprPool::Alt(std::vector<int32_t> kids) {
  if (kids.size() == 1) return kids[0];
  Expr e;
  e.kind = ExprKind::kAlt;  // no kids: matches nothing
  e.kids = std::move(kids);
  return Add(std::move(e));
}

int32_t ExprPool::Repeat(int32_t kid, int32_t min, int32_t max) {
  Expr e;
  e.kind = ExprKind::kRepeat;
  e.min = min;
  e.max = max;
  e.kids = {kid};
  return Add(std::move(e));
}

int32_t ExprPool::Call(int32_t rule) {
  Expr e;
  e.kind = ExprKind::kCall;
  e.rule = rule;
  return Add(std::move(e));
}

int32_t ExprPool::Codepoints(std::vector<CodepointRange> ranges) {
  // Clip to valid scalar values, drop surrogates, sort and merge.
  std::vector<CodepointRange> clean;
  for (auto [lo, hi] : ranges) {
    hi = std::min<uint32_t>(hi, 0x10FFFF);
    if (lo > hi) continue;
    if (lo < 0xD800 && hi >= 0xD800) {
      clean.push_back({lo, 0xD7FF});
      lo = 0xD800;
    }
    if (lo >= 0xD800 && lo <= 0xDFFF) lo = 0xE000;
    if (lo <= hi) clean.push_back({lo, hi});
  }
  std::sort(clean.begin(), clean.end());
  std::vector<CodepointRange> merged;
  for (const auto& r : clean) {
    if (!merged.empty() && r.first <= merged.back().second + 1) {
      merged.back().second = std::max(merged.back().second, r.second);
    } else {
      merged.push_back(r);
    }
  }
  std::vector<int32_t> alts;
  for (auto [lo, hi] : merged) SplitUtf8(*this, lo, hi, alts);
  return Alt(std::move(alts));
}

int32_t ExprPool::NewRule(std::string name) {
  rule_body_.push_back(-1);
  rule_names_.push_back(std::move(name));
  return static_cast<int32_t>(rule_body_.size()) - 1;
}

}  // namespace tailor::grammar::internal
