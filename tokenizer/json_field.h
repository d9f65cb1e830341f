// Typed, checked access to the fields of a JSON document (nlohmann::json) whose errors name the
// file and the field: "tok/tokenizer.json: field 'model.merges[3]': expected a string".
// Nothing here throws; a missing or mistyped field is a Status.
#ifndef TAILOR_TOKENIZER_JSON_FIELD_H_
#define TAILOR_TOKENIZER_JSON_FIELD_H_

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace tailor::tokenizer_internal {

using Json = nlohmann::json;

// Debian's abseil has its own absl::string_view, not an alias of std::string_view: StrCat and
// abseil's string-keyed hash maps take it, converted here.
inline absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }
template <typename T>
const T& StrArg(const T& v) {
  return v;
}
inline absl::string_view StrArg(std::string_view s) { return AbslView(s); }
inline absl::string_view StrArg(const std::string& s) { return AbslView(s); }

// One node of a document with the path that leads to it. Holds pointers to the node and to the
// origin string, which must outlive it. Cheap to copy.
class JsonField {
 public:
  JsonField(const Json& node, const std::string& origin) : node_(&node), origin_(&origin) {}

  const Json& node() const { return *node_; }
  const std::string& path() const { return path_; }
  const std::string& origin() const { return *origin_; }
  // "field 'a.b[2]'" (or "the document" at the root).
  std::string Name() const {
    return path_.empty() ? std::string("the document") : absl::StrCat("field '", path_, "'");
  }

  // InvalidArgument "<origin>: <Name()>: <what...>".
  template <typename... Args>
  absl::Status Error(const Args&... what) const {
    return absl::InvalidArgumentError(absl::StrCat(*origin_, ": ", Name(), ": ", StrArg(what)...));
  }

  bool is_object() const { return node_->is_object(); }
  bool is_array() const { return node_->is_array(); }
  bool is_null() const { return node_->is_null(); }

  // The member `key` of this object, or nullopt when this is not an object, or the member is
  // absent or null.
  std::optional<JsonField> Get(std::string_view key) const {
    if (!node_->is_object()) return std::nullopt;
    auto it = node_->find(std::string(key));
    if (it == node_->end() || it->is_null()) return std::nullopt;
    return Child(*it, path_.empty() ? std::string(key) : absl::StrCat(path_, ".", AbslView(key)));
  }
  // Element i of this array (i < size()).
  JsonField At(size_t i) const { return Child((*node_)[i], absl::StrCat(path_, "[", i, "]")); }
  size_t size() const { return node_->is_array() || node_->is_object() ? node_->size() : 0; }

  // A required member.
  absl::StatusOr<JsonField> Require(std::string_view key) const {
    if (!node_->is_object()) return Error("expected an object");
    std::optional<JsonField> f = Get(key);
    if (!f) return Error("'", key, "' is missing");
    return *f;
  }

  absl::StatusOr<std::string> String() const {
    if (!node_->is_string()) return Error("expected a string, got ", node_->type_name());
    return node_->get_ref<const std::string&>();
  }
  absl::StatusOr<bool> Bool() const {
    if (!node_->is_boolean()) return Error("expected true or false, got ", node_->type_name());
    return node_->get<bool>();
  }
  absl::StatusOr<int64_t> Int() const {
    if (node_->is_number_unsigned()) {
      const uint64_t v = node_->get<uint64_t>();
      if (v > static_cast<uint64_t>(INT64_MAX)) return Error("the number ", v, " is too large");
      return static_cast<int64_t>(v);
    }
    if (node_->is_number_integer()) return node_->get<int64_t>();
    return Error("expected an integer, got ", node_->type_name());
  }
  absl::StatusOr<double> Number() const {
    if (!node_->is_number()) return Error("expected a number, got ", node_->type_name());
    return node_->get<double>();
  }

  // Optional members with defaults (absent or null: the default; present: must have the type).
  absl::StatusOr<bool> BoolOr(std::string_view key, bool fallback) const {
    std::optional<JsonField> f = Get(key);
    return f ? f->Bool() : absl::StatusOr<bool>(fallback);
  }
  absl::StatusOr<std::string> StringOr(std::string_view key, std::string fallback) const {
    std::optional<JsonField> f = Get(key);
    return f ? f->String() : absl::StatusOr<std::string>(std::move(fallback));
  }
  absl::StatusOr<int64_t> IntOr(std::string_view key, int64_t fallback) const {
    std::optional<JsonField> f = Get(key);
    return f ? f->Int() : absl::StatusOr<int64_t>(fallback);
  }

  // How many members and elements lead here from the root.
  int depth() const { return depth_; }

  // The "type" member of a component (normalizer, pre-tokenizer, ...), which must be one of
  // `supported`; the error lists them. Components nested (through "Sequence") deeper than
  // kMaxDepth are refused, so that parsing them cannot exhaust the stack.
  static constexpr int kMaxDepth = 64;
  absl::StatusOr<std::string> Type(std::initializer_list<std::string_view> supported) const {
    if (depth_ > kMaxDepth) return Error("nested more than ", kMaxDepth, " levels deep");
    auto list = [&] {
      std::string s;
      for (std::string_view t : supported) absl::StrAppend(&s, s.empty() ? "" : ", ", AbslView(t));
      return s;
    };
    if (!node_->is_object()) return Error("expected an object with a \"type\"");
    std::optional<JsonField> t = Get("type");
    if (!t) return Error("has no \"type\" (supported: ", list(), ")");
    absl::StatusOr<std::string> type = t->String();
    if (!type.ok()) return type.status();
    for (std::string_view s : supported) {
      if (*type == s) return type;
    }
    return t->Error("\"", *type, "\" is not supported (supported: ", list(), ")");
  }

 private:
  JsonField Child(const Json& node, std::string path) const {
    JsonField f(node, *origin_);
    f.path_ = std::move(path);
    f.depth_ = depth_ + 1;
    return f;
  }

  const Json* node_;
  const std::string* origin_;
  std::string path_;
  int depth_ = 0;
};

}  // namespace tailor::tokenizer_internal

#endif  // TAILOR_TOKENIZER_JSON_FIELD_H_
