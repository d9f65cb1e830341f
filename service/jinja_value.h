// Values of the Jinja interpreter, with the semantics of the Python objects jinja2 works on:
// None, bool, int, float, str, list, tuple, dict (insertion-ordered), generators (what filters
// such as map/select return: always true, no len()), jinja2's Undefined, namespace(), the loop
// object, and callables (macros, globals, bound methods).
//
// Ownership: a Value is a small handle; strings, lists and dicts are immutable and shared by
// reference count (transformers renders in jinja2's ImmutableSandboxedEnvironment, where lists and
// dicts cannot be modified). Namespaces and loop objects are the mutable exceptions; they are
// created by one render and only touched by the thread running it. Values made by Parse (template
// literals) are immutable and may be shared by concurrent renders.
#ifndef TAILOR_SERVICE_JINJA_VALUE_H_
#define TAILOR_SERVICE_JINJA_VALUE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tailor::service::jinja {

class Value;
class Interpreter;

struct ListData;
class DictData;
class Namespace;
struct LoopState;
class Callable;
struct CallArgs;

class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kTuple,
    kIterator,
    kDict,
    kNamespace,
    kLoop,
    kCallable,
  };

  Value() = default;  // Undefined without a hint
  static Value Undefined(std::string hint);
  static Value None() { return Value(Kind::kNone); }
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value String(std::string s);
  static Value List(std::vector<Value> items) { return Sequence(Kind::kList, std::move(items)); }
  static Value Tuple(std::vector<Value> items) { return Sequence(Kind::kTuple, std::move(items)); }
  static Value Iterator(std::vector<Value> items) {
    return Sequence(Kind::kIterator, std::move(items));
  }
  static Value Sequence(Kind kind, std::vector<Value> items);
  static Value Sequence(Kind kind, std::shared_ptr<const ListData> data);
  static Value Dict(std::vector<std::pair<Value, Value>> items);
  static Value Dict(std::shared_ptr<const DictData> data);
  static Value MakeNamespace(std::shared_ptr<Namespace> ns);
  static Value Loop(std::shared_ptr<LoopState> loop);
  static Value Function(std::shared_ptr<const Callable> fn);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  // list, tuple or generator
  bool is_sequence() const {
    return kind_ == Kind::kList || kind_ == Kind::kTuple || kind_ == Kind::kIterator;
  }
  bool is_number() const {  // Python numbers, bool included
    return kind_ == Kind::kBool || kind_ == Kind::kInt || kind_ == Kind::kFloat;
  }
  bool is_integral() const { return kind_ == Kind::kBool || kind_ == Kind::kInt; }

  bool as_bool() const { return scalar_.b; }
  int64_t as_int() const {  // bool or int
    return kind_ == Kind::kBool ? (scalar_.b ? 1 : 0) : scalar_.i;
  }
  double as_float() const {  // any number
    return kind_ == Kind::kFloat ? scalar_.f : static_cast<double>(as_int());
  }
  // The string of a kString, or the message of a kUndefined ("'x' is undefined").
  const std::string& str() const;
  const std::shared_ptr<const ListData>& list_data() const;
  const std::vector<Value>& items() const;  // of a list, tuple or generator
  const DictData& dict() const;
  const std::shared_ptr<const DictData>& dict_data() const;
  Namespace& ns() const;
  const std::shared_ptr<Namespace>& ns_ptr() const;
  LoopState& loop() const;
  const Callable& callable() const;
  // Nesting depth of lists/dicts (0 for everything else).
  int depth() const;

 private:
  explicit Value(Kind kind) : kind_(kind) {}

  Kind kind_ = Kind::kUndefined;
  union {
    bool b;
    int64_t i;
    double f;
  } scalar_ = {};
  std::variant<std::monostate, std::shared_ptr<const std::string>, std::shared_ptr<const ListData>,
               std::shared_ptr<const DictData>, std::shared_ptr<Namespace>,
               std::shared_ptr<LoopState>, std::shared_ptr<const Callable>>
      ptr_;
};

struct ListData {
  std::vector<Value> items;
  int depth = 1;  // 1 + the deepest list/dict nested inside
};

// A Python dict: keys unique (by Python ==), kept in insertion order.
class DictData {
 public:
  // Later duplicates overwrite the value and keep the first position, as a dict literal does.
  static std::shared_ptr<const DictData> Build(std::vector<std::pair<Value, Value>> items);

  const std::vector<std::pair<Value, Value>>& items() const { return items_; }
  size_t size() const { return items_.size(); }
  int depth() const { return depth_; }
  const Value* Find(const Value& key) const;
  const Value* FindString(absl::string_view key) const;

 private:
  ptrdiff_t IndexOf(const Value& key) const;  // position in items_, or -1

  std::vector<std::pair<Value, Value>> items_;
  absl::flat_hash_map<std::string, size_t> string_index_;  // string keys -> position in items_
  int depth_ = 1;
};

// jinja2's namespace(): attributes settable with {% set ns.attr = value %}. Mutable; owned by the
// render that created it.
class Namespace {
 public:
  const Value* Find(absl::string_view name) const;
  void Set(const std::string& name, Value value);
  void Clear();  // drops every attribute (breaks reference cycles through this namespace)
  const std::vector<std::pair<std::string, Value>>& attrs() const { return attrs_; }

 private:
  std::vector<std::pair<std::string, Value>> attrs_;
  absl::flat_hash_map<std::string, size_t> index_;
};

// The state behind `loop` in a for body; advanced by the interpreter as the loop runs.
struct LoopState {
  std::shared_ptr<const ListData> items;
  size_t index0 = 0;
  bool has_changed_value = false;  // loop.changed() state
  std::shared_ptr<const ListData> changed_value;
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

class Callable {
 public:
  virtual ~Callable() = default;
  virtual std::string name() const = 0;
  virtual bool is_macro() const { return false; }
  virtual absl::StatusOr<Value> Call(Interpreter& interp, CallArgs args) const = 0;
};

// The longest str()/repr() built by default (beyond any default limit of a render).
inline constexpr size_t kStrCap = size_t{64} << 20;

// Python's type(v).__name__ ("int", "str", "NoneType", "generator", "Undefined", ...).
std::string TypeName(const Value& v);
// jinja2's object_type_repr: "None", "dict object", "jinja2.utils.Namespace object", ...
std::string ObjectTypeRepr(const Value& v);

bool Truthy(const Value& v);
// Python's str() and repr(). Never fails (nesting is bounded when values are built). Stops
// adding items of lists/dicts once *out is longer than `limit` (a list holding one big string
// many times would otherwise print terabytes); callers then report the size error.
void AppendStr(const Value& v, std::string* out, size_t limit = kStrCap);
void AppendRepr(const Value& v, std::string* out, size_t limit = kStrCap);
std::string Str(const Value& v);

// Python ==.
bool Equals(const Value& a, const Value& b);
// Python a <op> b for op in "<", "<=", ">", ">=": numbers, strings, and lists or tuples
// (lexicographically); TypeError's message for anything else, Undefined's message for Undefined.
absl::StatusOr<bool> CompareOp(const Value& a, const Value& b, absl::string_view op);
// len(v): code points of a str; 0 for Undefined; an error for generators and scalars.
absl::StatusOr<int64_t> Length(const Value& v);
// iter(v) as a list: the items of a sequence, the keys of a dict, the characters of a str,
// nothing for Undefined. An error for scalars, None and callables.
absl::StatusOr<std::shared_ptr<const ListData>> Iterate(const Value& v);

// A runtime error carrying jinja2/Python's message (InvalidArgument).
absl::Status RuntimeError(absl::string_view message);

}  // namespace tailor::service::jinja

#endif  // TAILOR_SERVICE_JINJA_VALUE_H_
