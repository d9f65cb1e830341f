#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/unicode_text.h"

namespace tailor::tokenizer_internal {
namespace {

// The start of the character that ends just before byte `end` of well-formed UTF-8 `text`.
size_t PrevCharStart(std::string_view text, size_t end) {
  size_t start = end - 1;
  while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
  return start;
}

bool WordCharBefore(std::string_view text, size_t pos) {
  if (pos == 0) return false;
  size_t len;
  return IsWordChar(DecodeChar(text, PrevCharStart(text, pos), &len));
}

bool WordCharAt(std::string_view text, size_t pos) {
  if (pos >= text.size()) return false;
  size_t len;
  return IsWordChar(DecodeChar(text, pos, &len));
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) {
  first_.fill(-1);
  nodes_.emplace_back();
  for (AddedToken& token : tokens) {
    if (token.content.empty()) continue;
    int32_t node = 0;
    for (char c : token.content) {
      const auto b = static_cast<uint8_t>(c);
      int32_t next = Child(node, b);
      if (next < 0) {
        next = static_cast<int32_t>(nodes_.size());
        nodes_.emplace_back();
        auto& children = nodes_[node].children;
        children.insert(std::lower_bound(children.begin(), children.end(), std::make_pair(b, 0)),
                        {b, next});
        if (node == 0) first_[b] = next;
      }
      node = next;
    }
    if (nodes_[node].token < 0) {
      nodes_[node].token = static_cast<int32_t>(tokens_.size());
      tokens_.push_back(std::move(token));
    }
  }
}

int32_t AddedTokenMatcher::Child(int32_t node, uint8_t byte) const {
  if (node == 0) return first_[byte];
  const auto& children = nodes_[node].children;
  auto it = std::lower_bound(children.begin(), children.end(), std::make_pair(byte, int32_t{0}));
  return it != children.end() && it->first == byte ? it->second : -1;
}

std::pair<int32_t, size_t> AddedTokenMatcher::LongestAt(std::string_view text, size_t pos) const {
  std::pair<int32_t, size_t> best{-1, 0};
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    node = Child(node, static_cast<uint8_t>(text[i]));
    if (node < 0) break;
    if (nodes_[node].token >= 0) best = {nodes_[node].token, i + 1 - pos};
  }
  return best;
}

std::vector<TextSegment> AddedTokenMatcher::Split(std::string_view text) const {
  std::vector<TextSegment> out;
  size_t done = 0;  // text before this is in `out`
  size_t scan = 0;  // where the search for the next match starts
  while (!tokens_.empty() && scan < text.size()) {
    size_t pos = scan;
    std::pair<int32_t, size_t> m{-1, 0};
    for (; pos < text.size(); ++pos) {
      if (first_[static_cast<uint8_t>(text[pos])] < 0) continue;
      m = LongestAt(text, pos);
      if (m.first >= 0) break;
    }
    if (m.first < 0) break;
    const AddedToken& token = tokens_[m.first];
    size_t start = pos, stop = pos + m.second;
    scan = stop;
    if (token.single_word && (WordCharBefore(text, start) || WordCharAt(text, stop))) continue;
    if (token.lstrip) {
      while (start > done) {
        const size_t prev = PrevCharStart(text, start);
        size_t len;
        if (!IsWhiteSpace(DecodeChar(text, prev, &len))) break;
        start = prev;
      }
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        size_t len;
        if (!IsWhiteSpace(DecodeChar(text, stop, &len))) break;
        stop += len;
      }
      scan = stop;
    }
    if (done < start) out.push_back({done, start, -1});
    out.push_back({start, stop, token.id});
    done = stop;
  }
  if (done < text.size()) out.push_back({done, text.size(), -1});
  return out;
}

}  // namespace tailor::tokenizer_internal
