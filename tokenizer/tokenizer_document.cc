#include "tokenizer/tokenizer_document.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tailor::tokenizer_internal {
namespace {

using Event = Json::parse_event_t;

// Follows the parser's position (the key and the kind of container at each depth) and moves the
// entries of model.vocab and the elements of model.merges out of the tree being built.
class Collector {
 public:
  explicit Collector(TokenizerDocument* out) : out_(out) {}

  // nlohmann's parser callback: false drops `parsed` from the tree.
  bool operator()(int depth, Event event, Json& parsed) {
    const size_t d = static_cast<size_t>(depth);
    if (keys_.size() <= d + 1) {
      keys_.resize(d + 2);
      is_object_.resize(d + 2, false);
    }
    switch (event) {
      case Event::key:
        keys_[d] = parsed.is_string() ? parsed.get<std::string>() : std::string();
        return !InVocab(d);  // false: nlohmann makes no placeholder for the entry
      case Event::object_start:
      case Event::array_start:
        is_object_[d] = event == Event::object_start;
        return true;
      case Event::value:
        if (InVocab(d)) {
          VocabEntry e;
          e.token = keys_[d];
          e.is_integer = parsed.is_number_integer();
          e.id = e.is_integer ? (parsed.is_number_unsigned() && parsed.get<uint64_t>() > INT64_MAX
                                     ? INT64_MAX
                                     : parsed.get<int64_t>())
                              : 0;
          out_->vocab.push_back(std::move(e));
          return false;
        }
        if (InMerges(d)) {
          MergeEntry m;
          if (parsed.is_string()) {
            m.kind = MergeEntry::Kind::kString;
            m.left = std::move(parsed.get_ref<std::string&>());
          }
          out_->merges.push_back(std::move(m));
          return false;
        }
        return true;
      case Event::object_end:
      case Event::array_end:
        if (InVocab(d)) {  // an object or array where an id belongs
          out_->vocab.push_back(VocabEntry{keys_[d], 0, false});
          return false;
        }
        if (InMerges(d)) {
          MergeEntry m;
          if (parsed.is_array() && parsed.size() == 2 && parsed[0].is_string() &&
              parsed[1].is_string()) {
            m.kind = MergeEntry::Kind::kPair;
            m.left = std::move(parsed[0].get_ref<std::string&>());
            m.right = std::move(parsed[1].get_ref<std::string&>());
          }
          out_->merges.push_back(std::move(m));
          return false;
        }
        return true;
    }
    return true;
  }

 private:
  // A direct member of the object model.vocab / element of the array model.merges.
  bool InVocab(size_t d) const {
    return d == 3 && is_object_[0] && keys_[1] == "model" && is_object_[1] && keys_[2] == "vocab" &&
           is_object_[2];
  }
  bool InMerges(size_t d) const {
    return d == 3 && is_object_[0] && keys_[1] == "model" && is_object_[1] &&
           keys_[2] == "merges" && !is_object_[2];
  }

  TokenizerDocument* out_;
  std::vector<std::string> keys_;  // by depth: the last key read in the object at that depth
  std::vector<bool> is_object_;    // by depth: the container there is an object
};

}  // namespace

absl::StatusOr<TokenizerDocument> ParseTokenizerDocument(std::string_view text,
                                                         const std::string& origin) {
  TokenizerDocument doc;
  Collector collector(&doc);
  try {
    doc.tree = Json::parse(text.begin(), text.end(),
                           [&collector](int depth, Event event, Json& parsed) {
                             return collector(depth, event, parsed);
                           });
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": not a valid tokenizer.json (", e.what(), ")"));
  }
  return doc;
}

}  // namespace tailor::tokenizer_internal
