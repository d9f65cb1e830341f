// The Jinja interpreter: renders a parsed template with jinja2's scoping (for bodies, macros and
// call/filter/set/with blocks are scopes of their own, bound on entry as jinja_scopes.h decided;
// a for body is entered afresh each iteration, so `set` inside a loop does not leak out; if
// bodies share their scope; macros read the scope they were defined in, as it is when they run),
// its Undefined semantics and its sandboxed attribute/item lookup.
//
// One Interpreter per render: it owns every scope and counts the work done against JinjaLimits.
// Not thread-safe (renders on different threads use different Interpreters over the same
// immutable syntax tree).
#ifndef TAILOR_SERVICE_JINJA_EVAL_H_
#define TAILOR_SERVICE_JINJA_EVAL_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/jinja_ast.h"
#include "service/jinja_template.h"
#include "service/jinja_value.h"

namespace tailor::service::jinja {

// Lists and dicts may nest this deep (deeper context is refused, deeper literals fail).
inline constexpr int kMaxValueDepth = 256;
// Nesting of statement bodies and expression evaluations during one render (macro recursion
// included): bounds the native stack a render uses to well under 1 MiB (about 1 KiB a level).
// jinja2 itself stops at Python's recursion limit, at a few hundred template levels.
inline constexpr int kMaxEvalDepth = 500;

// A variable scope. Owned by the Interpreter (stable address for the whole render); macros keep
// a pointer to the scope they were defined in.
struct Frame {
  Frame* parent = nullptr;
  absl::flat_hash_map<std::string, Value> vars;
};

class Interpreter {
 public:
  explicit Interpreter(const JinjaLimits& limits) : limits_(limits) {}
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  // `context` is a dict of the template's variables.
  absl::StatusOr<std::string> Render(const TemplateAst& ast, const Value& context);

  // ---- for builtins ----
  absl::StatusOr<Value> CallValue(const Value& callee, CallArgs args);
  // jinja2's sandboxed getattr / getitem: methods, then items (or the reverse for getitem);
  // Undefined (with jinja2's message) when missing; an error when `obj` is Undefined.
  absl::StatusOr<Value> GetAttr(const Value& obj, absl::string_view name);
  absl::StatusOr<Value> GetItem(const Value& obj, const Value& key);
  // Accounts for a string or list of `bytes` just built: an error past the limits.
  absl::Status Produced(size_t bytes);
  // raise_exception(message): the render fails with exactly `message`.
  absl::Status Raise(std::string message);
  // Namespaces (and loop objects) can end up containing themselves; the interpreter empties the
  // ones it was given when it is destroyed, so that such cycles are freed.
  void Track(std::shared_ptr<Namespace> ns) { namespaces_.push_back(std::move(ns)); }
  // Runs a macro (or a call block's body, as `caller`) with `closure` as the enclosing scope.
  absl::StatusOr<Value> CallMacro(const Stmt& def, Frame* closure, CallArgs args);
  // Python's binary operators (+ - * / // % **) and `item in container`.
  absl::StatusOr<Value> Arith(BinaryOp op, const Value& a, const Value& b);
  absl::StatusOr<bool> Contains(const Value& container, const Value& item);
  const JinjaLimits& limits() const { return limits_; }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Frame* NewFrame(Frame* parent);
  // Binds what a scope declares when it is entered (see jinja_scopes.h); aliases read the
  // scopes enclosing `frame`.
  void EnterScope(const ScopeEntries& entries, Frame* frame);
  Value Lookup(const std::string& name, Frame* frame) const;
  Value Resolve(const std::string& name) const;  // the render context, then the globals
  absl::Status Assign(const Target& target, const Value& value, Frame* frame);

  absl::Status Exec(const StmtList& body, Frame* frame, std::string* out);
  absl::Status ExecStmt(const Stmt& s, Frame* frame, std::string* out);
  absl::Status ExecFor(const Stmt& s, Frame* frame, std::string* out);
  absl::Status Emit(const Value& v, std::string* out);
  absl::StatusOr<std::string> RenderBody(const StmtList& body, Frame* frame);

  absl::StatusOr<Value> Eval(const Expr& e, Frame* frame);
  absl::StatusOr<Value> EvalImpl(const Expr& e, Frame* frame);
  absl::StatusOr<CallArgs> EvalArgs(const Expr& e, Frame* frame);
  absl::StatusOr<Value> EvalCompare(const Expr& e, Frame* frame);
  absl::StatusOr<Value> EvalSlice(const Value& obj, const Expr& slice, Frame* frame);
  absl::StatusOr<Value> LoopAttr(const Value& loop, absl::string_view name);

  // Prefixes "chat template line L: " to the first error of the render (not to raise_exception).
  absl::Status Located(absl::Status status, int line);

  const JinjaLimits limits_;
  std::deque<Frame> frames_;  // every scope of the render; addresses stay valid
  Frame* context_ = nullptr;  // the render's variables (the outermost frame)
  std::vector<std::shared_ptr<Namespace>> namespaces_;  // see Track()
  std::vector<std::shared_ptr<LoopState>> loops_;
  Flow flow_ = Flow::kNormal;
  Value block_input_;  // the body text a filter block / set block filters
  bool error_located_ = false;
  int call_depth_ = 0;
  int eval_depth_ = 0;
  int64_t macro_calls_ = 0;
  int64_t iterations_ = 0;
  size_t total_bytes_ = 0;
};

}  // namespace tailor::service::jinja

#endif  // TAILOR_SERVICE_JINJA_EVAL_H_
