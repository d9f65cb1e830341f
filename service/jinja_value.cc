#include "service/jinja_value.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "service/jinja_text.h"

namespace tailor::service::jinja {
namespace {

const std::string& EmptyString() {
  static const std::string* const kEmpty = new std::string();
  return *kEmpty;
}

int ChildDepth(const Value& v) { return v.depth(); }

}  // namespace

// ---- construction and access ----

Value Value::Undefined(std::string hint) {
  Value v(Kind::kUndefined);
  v.ptr_ = std::make_shared<const std::string>(std::move(hint));
  return v;
}

Value Value::Bool(bool b) {
  Value v(Kind::kBool);
  v.scalar_.b = b;
  return v;
}

Value Value::Int(int64_t i) {
  Value v(Kind::kInt);
  v.scalar_.i = i;
  return v;
}

Value Value::Float(double f) {
  Value v(Kind::kFloat);
  v.scalar_.f = f;
  return v;
}

Value Value::String(std::string s) {
  Value v(Kind::kString);
  v.ptr_ = std::make_shared<const std::string>(std::move(s));
  return v;
}

Value Value::Sequence(Kind kind, std::vector<Value> items) {
  auto data = std::make_shared<ListData>();
  int depth = 0;
  for (const Value& item : items) depth = std::max(depth, ChildDepth(item));
  data->depth = depth + 1;
  data->items = std::move(items);
  return Sequence(kind, std::shared_ptr<const ListData>(std::move(data)));
}

Value Value::Sequence(Kind kind, std::shared_ptr<const ListData> data) {
  Value v(kind);
  v.ptr_ = std::move(data);
  return v;
}

Value Value::Dict(std::vector<std::pair<Value, Value>> items) {
  return Dict(DictData::Build(std::move(items)));
}

Value Value::Dict(std::shared_ptr<const DictData> data) {
  Value v(Kind::kDict);
  v.ptr_ = std::move(data);
  return v;
}

Value Value::MakeNamespace(std::shared_ptr<Namespace> ns) {
  Value v(Kind::kNamespace);
  v.ptr_ = std::move(ns);
  return v;
}

Value Value::Loop(std::shared_ptr<LoopState> loop) {
  Value v(Kind::kLoop);
  v.ptr_ = std::move(loop);
  return v;
}

Value Value::Function(std::shared_ptr<const Callable> fn) {
  Value v(Kind::kCallable);
  v.ptr_ = std::move(fn);
  return v;
}

const std::string& Value::str() const {
  const auto* p = std::get_if<std::shared_ptr<const std::string>>(&ptr_);
  return p != nullptr && *p != nullptr ? **p : EmptyString();
}

const std::shared_ptr<const ListData>& Value::list_data() const {
  return std::get<std::shared_ptr<const ListData>>(ptr_);
}

const std::vector<Value>& Value::items() const { return list_data()->items; }

const DictData& Value::dict() const { return *dict_data(); }

const std::shared_ptr<const DictData>& Value::dict_data() const {
  return std::get<std::shared_ptr<const DictData>>(ptr_);
}

Namespace& Value::ns() const { return *ns_ptr(); }

const std::shared_ptr<Namespace>& Value::ns_ptr() const {
  return std::get<std::shared_ptr<Namespace>>(ptr_);
}

LoopState& Value::loop() const { return *std::get<std::shared_ptr<LoopState>>(ptr_); }

const Callable& Value::callable() const { return *std::get<std::shared_ptr<const Callable>>(ptr_); }

int Value::depth() const {
  if (is_sequence()) return list_data()->depth;
  if (kind_ == Kind::kDict) return dict().depth();
  return 0;
}

std::shared_ptr<const DictData> DictData::Build(std::vector<std::pair<Value, Value>> items) {
  auto data = std::make_shared<DictData>();
  data->items_.reserve(items.size());
  int depth = 0;
  for (auto& [key, value] : items) {
    depth = std::max({depth, ChildDepth(key), ChildDepth(value)});
    const ptrdiff_t existing = data->IndexOf(key);
    if (existing >= 0) {  // a repeated key: the last value wins, at the first position
      data->items_[static_cast<size_t>(existing)].second = std::move(value);
      continue;
    }
    if (key.is_string()) data->string_index_.emplace(key.str(), data->items_.size());
    data->items_.emplace_back(std::move(key), std::move(value));
  }
  data->depth_ = depth + 1;
  return data;
}

ptrdiff_t DictData::IndexOf(const Value& key) const {
  if (key.is_string()) {
    const auto it = string_index_.find(key.str());
    return it == string_index_.end() ? -1 : static_cast<ptrdiff_t>(it->second);
  }
  for (size_t i = 0; i < items_.size(); ++i) {
    if (!items_[i].first.is_string() && Equals(items_[i].first, key)) {
      return static_cast<ptrdiff_t>(i);
    }
  }
  return -1;
}

const Value* DictData::Find(const Value& key) const {
  const ptrdiff_t i = IndexOf(key);
  return i < 0 ? nullptr : &items_[static_cast<size_t>(i)].second;
}

const Value* DictData::FindString(absl::string_view key) const {
  const auto it = string_index_.find(key);
  return it == string_index_.end() ? nullptr : &items_[it->second].second;
}

const Value* Namespace::Find(absl::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &attrs_[it->second].second;
}

void Namespace::Set(const std::string& name, Value value) {
  const auto [it, inserted] = index_.emplace(name, attrs_.size());
  if (inserted) {
    attrs_.emplace_back(name, std::move(value));
  } else {
    attrs_[it->second].second = std::move(value);
  }
}

void Namespace::Clear() {
  attrs_.clear();
  index_.clear();
}

// ---- Python semantics ----

std::string TypeName(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "Undefined";
    case Value::Kind::kNone:
      return "NoneType";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
      return "int";
    case Value::Kind::kFloat:
      return "float";
    case Value::Kind::kString:
      return "str";
    case Value::Kind::kList:
      return "list";
    case Value::Kind::kTuple:
      return "tuple";
    case Value::Kind::kIterator:
      return "generator";
    case Value::Kind::kDict:
      return "dict";
    case Value::Kind::kNamespace:
      return "Namespace";
    case Value::Kind::kLoop:
      return "LoopContext";
    case Value::Kind::kCallable:
      return v.callable().is_macro() ? "Macro" : "function";
  }
  return "object";
}

std::string ObjectTypeRepr(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kNone:
      return "None";
    case Value::Kind::kUndefined:
      return "jinja2.runtime.Undefined object";
    case Value::Kind::kNamespace:
      return "jinja2.utils.Namespace object";
    case Value::Kind::kLoop:
      return "jinja2.runtime.LoopContext object";
    case Value::Kind::kCallable:
      return v.callable().is_macro() ? "jinja2.runtime.Macro object" : "function object";
    default:
      return TypeName(v) + " object";
  }
}

bool Truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return false;
    case Value::Kind::kBool:
      return v.as_bool();
    case Value::Kind::kInt:
      return v.as_int() != 0;
    case Value::Kind::kFloat:
      return v.as_float() != 0.0;
    case Value::Kind::kString:
      return !v.str().empty();
    case Value::Kind::kList:
    case Value::Kind::kTuple:
      return !v.items().empty();
    case Value::Kind::kDict:
      return v.dict().size() != 0;
    default:
      return true;  // generators, namespaces, loops, callables
  }
}

namespace {

// Namespaces are the only values that can contain themselves; `active` holds the ones being
// printed so a cycle prints as "{...}" (as Python's dict repr does).
void AppendReprImpl(const Value& v, std::string* out, size_t limit,
                    std::vector<const Namespace*>* active);

void AppendStrImpl(const Value& v, std::string* out, size_t limit,
                   std::vector<const Namespace*>* active) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return;
    case Value::Kind::kString:
      out->append(v.str());
      return;
    default:
      AppendReprImpl(v, out, limit, active);
  }
}

void AppendReprImpl(const Value& v, std::string* out, size_t limit,
                    std::vector<const Namespace*>* active) {
  if (out->size() > limit) return;
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      out->append("Undefined");
      return;
    case Value::Kind::kNone:
      out->append("None");
      return;
    case Value::Kind::kBool:
      out->append(v.as_bool() ? "True" : "False");
      return;
    case Value::Kind::kInt:
      absl::StrAppend(out, v.as_int());
      return;
    case Value::Kind::kFloat:
      out->append(PyFloatRepr(v.as_float()));
      return;
    case Value::Kind::kString:
      out->append(PyStrRepr(v.str()));
      return;
    case Value::Kind::kList:
    case Value::Kind::kTuple: {
      const bool tuple = v.kind() == Value::Kind::kTuple;
      out->push_back(tuple ? '(' : '[');
      const auto& items = v.items();
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out->append(", ");
        AppendReprImpl(items[i], out, limit, active);
      }
      if (tuple && items.size() == 1) out->push_back(',');
      out->push_back(tuple ? ')' : ']');
      return;
    }
    case Value::Kind::kIterator:
      out->append("<generator object>");
      return;
    case Value::Kind::kDict: {
      out->push_back('{');
      bool first = true;
      for (const auto& [key, value] : v.dict().items()) {
        if (!first) out->append(", ");
        first = false;
        AppendReprImpl(key, out, limit, active);
        out->append(": ");
        AppendReprImpl(value, out, limit, active);
      }
      out->push_back('}');
      return;
    }
    case Value::Kind::kNamespace: {
      const Namespace* ns = v.ns_ptr().get();
      if (std::find(active->begin(), active->end(), ns) != active->end()) {
        out->append("<Namespace {...}>");
        return;
      }
      active->push_back(ns);
      out->append("<Namespace {");
      bool first = true;
      for (const auto& [name, value] : ns->attrs()) {
        if (!first) out->append(", ");
        first = false;
        out->append(PyStrRepr(name));
        out->append(": ");
        AppendReprImpl(value, out, limit, active);
      }
      out->append("}>");
      active->pop_back();
      return;
    }
    case Value::Kind::kLoop: {
      const LoopState& loop = v.loop();
      absl::StrAppend(out, "<LoopContext ", loop.index0 + 1, "/", loop.items->items.size(), ">");
      return;
    }
    case Value::Kind::kCallable:
      if (v.callable().is_macro()) {
        absl::StrAppend(out, "<Macro ", PyStrRepr(v.callable().name()), ">");
      } else {
        absl::StrAppend(out, "<function ", v.callable().name(), ">");
      }
      return;
  }
}

}  // namespace

void AppendStr(const Value& v, std::string* out, size_t limit) {
  std::vector<const Namespace*> active;
  AppendStrImpl(v, out, limit, &active);
}

std::string Str(const Value& v) {
  if (v.is_string()) return v.str();
  std::string out;
  AppendStr(v, &out);
  return out;
}

void AppendRepr(const Value& v, std::string* out, size_t limit) {
  std::vector<const Namespace*> active;
  AppendReprImpl(v, out, limit, &active);
}

bool Equals(const Value& a, const Value& b) {
  using Kind = Value::Kind;
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.as_int() == b.as_int();
    return a.as_float() == b.as_float();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      return a.str() == b.str();
    case Kind::kList:
    case Kind::kTuple: {
      const auto& x = a.items();
      const auto& y = b.items();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!Equals(x[i], y[i])) return false;
      }
      return true;
    }
    case Kind::kDict: {
      if (a.dict().size() != b.dict().size()) return false;
      for (const auto& [key, value] : a.dict().items()) {
        const Value* other = b.dict().Find(key);
        if (other == nullptr || !Equals(value, *other)) return false;
      }
      return true;
    }
    case Kind::kIterator:
      return a.list_data() == b.list_data();
    case Kind::kNamespace:
      return a.ns_ptr() == b.ns_ptr();
    case Kind::kLoop:
      return &a.loop() == &b.loop();
    case Kind::kCallable:
      return &a.callable() == &b.callable();
    default:
      return false;
  }
}

absl::StatusOr<bool> CompareOp(const Value& a, const Value& b, absl::string_view op) {
  const auto apply = [&](auto x, auto y) {
    if (op == "<") return x < y;
    if (op == "<=") return x <= y;
    if (op == ">") return x > y;
    return x >= y;
  };
  if (a.is_undefined()) return RuntimeError(a.str());
  if (b.is_undefined()) return RuntimeError(b.str());
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return apply(a.as_int(), b.as_int());
    return apply(a.as_float(), b.as_float());
  }
  if (a.is_string() && b.is_string()) return apply(a.str().compare(b.str()), 0);
  if (a.kind() == b.kind() && (a.kind() == Value::Kind::kList || a.kind() == Value::Kind::kTuple)) {
    const auto& x = a.items();
    const auto& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!Equals(x[i], y[i])) return CompareOp(x[i], y[i], op);
    }
    return apply(x.size(), y.size());
  }
  return RuntimeError(absl::StrCat("'", op, "' not supported between instances of '", TypeName(a),
                                   "' and '", TypeName(b), "'"));
}

absl::StatusOr<int64_t> Length(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return 0;
    case Value::Kind::kString:
      return static_cast<int64_t>(CodePointCount(v.str()));
    case Value::Kind::kList:
    case Value::Kind::kTuple:
      return static_cast<int64_t>(v.items().size());
    case Value::Kind::kDict:
      return static_cast<int64_t>(v.dict().size());
    default:
      return RuntimeError(absl::StrCat("object of type '", TypeName(v), "' has no len()"));
  }
}

absl::StatusOr<std::shared_ptr<const ListData>> Iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kList:
    case Value::Kind::kTuple:
    case Value::Kind::kIterator:
      return v.list_data();
    case Value::Kind::kUndefined:
      return std::make_shared<const ListData>();
    case Value::Kind::kDict: {
      std::vector<Value> keys;
      keys.reserve(v.dict().size());
      for (const auto& [key, value] : v.dict().items()) keys.push_back(key);
      return Value::List(std::move(keys)).list_data();
    }
    case Value::Kind::kString: {
      std::vector<Value> chars;
      const std::string& s = v.str();
      size_t pos = 0;
      while (pos < s.size()) {
        const size_t start = pos;
        NextCodePoint(s, &pos);
        chars.push_back(Value::String(s.substr(start, pos - start)));
      }
      return Value::List(std::move(chars)).list_data();
    }
    default:
      return RuntimeError(absl::StrCat("'", TypeName(v), "' object is not iterable"));
  }
}

absl::Status RuntimeError(absl::string_view message) { return absl::InvalidArgumentError(message); }

}  // namespace tailor::service::jinja
