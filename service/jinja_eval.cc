#include "service/jinja_eval.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "service/jinja_builtins.h"
#include "service/jinja_text.h"

namespace tailor::service::jinja {
namespace {

// A macro, or a call block's body passed to the macro as `caller`. `closure` is the scope the
// definition ran in; the Interpreter owns it and outlives this object.
class MacroCallable : public Callable {
 public:
  MacroCallable(const Stmt* def, Frame* closure) : def_(def), closure_(closure) {}
  std::string name() const override {
    return def_->kind == StmtKind::kMacro ? def_->text : "caller";
  }
  bool is_macro() const override { return true; }
  absl::StatusOr<Value> Call(Interpreter& interp, CallArgs args) const override {
    return interp.CallMacro(*def_, closure_, std::move(args));
  }

 private:
  const Stmt* def_;
  Frame* closure_;
};

// loop.cycle(...) and loop.changed(...).
class LoopMethod : public Callable {
 public:
  LoopMethod(Value loop, std::string name) : loop_(std::move(loop)), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  absl::StatusOr<Value> Call(Interpreter& /*interp*/, CallArgs args) const override {
    LoopState& loop = loop_.loop();
    if (name_ == "cycle") {
      if (args.positional.empty()) return RuntimeError("no items for cycling given");
      return args.positional[loop.index0 % args.positional.size()];
    }
    Value current = Value::List(std::move(args.positional));
    if (loop.has_changed_value && Equals(Value::List(loop.changed_value->items), current)) {
      return Value::Bool(false);
    }
    loop.has_changed_value = true;
    loop.changed_value = current.list_data();
    return Value::Bool(true);
  }

 private:
  Value loop_;
  std::string name_;
};

// Decrements a counter when a scope ends (macro call depth).
class DepthGuard {
 public:
  explicit DepthGuard(int* depth) : depth_(depth) { ++*depth_; }
  ~DepthGuard() { --*depth_; }

 private:
  int* depth_;
};

std::string TooDeep() {
  return absl::StrCat("template nested more than ", kMaxEvalDepth,
                      " levels deep while rendering (runaway recursion?)");
}

// Python's slice.indices() walk: the positions a[start:stop:step] selects out of `length`.
std::vector<int64_t> SliceIndices(int64_t length, const Value& start_v, const Value& stop_v,
                                  int64_t step) {
  const auto adjust = [&](const Value& v, bool is_start) -> int64_t {
    if (v.is_none() || v.is_undefined()) {
      if (is_start) return step < 0 ? length - 1 : 0;
      return step < 0 ? -1 : length;
    }
    int64_t i = v.as_int();
    if (i < 0) {
      i += length;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= length) {
      i = step < 0 ? length - 1 : length;
    }
    return i;
  };
  const int64_t start = adjust(start_v, true);
  const int64_t stop = adjust(stop_v, false);
  std::vector<int64_t> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(i);
  return out;
}

}  // namespace

Interpreter::~Interpreter() {
  for (const std::shared_ptr<Namespace>& ns : namespaces_) ns->Clear();
  for (const std::shared_ptr<LoopState>& loop : loops_) {
    loop->items.reset();
    loop->changed_value.reset();
  }
}

absl::StatusOr<std::string> Interpreter::Render(const TemplateAst& ast, const Value& context) {
  context_ = NewFrame(nullptr);
  if (context.is_dict()) {
    for (const auto& [key, value] : context.dict().items()) context_->vars[Str(key)] = value;
  }
  Frame* root = NewFrame(context_);
  EnterScope(ast.scope, root);
  std::string out;
  TAILOR_RETURN_IF_ERROR(Exec(ast.body, root, &out));
  return out;
}

Frame* Interpreter::NewFrame(Frame* parent) {
  frames_.emplace_back();
  frames_.back().parent = parent;
  return &frames_.back();
}

void Interpreter::EnterScope(const ScopeEntries& entries, Frame* frame) {
  for (const auto& [name, load] : entries) {
    switch (load) {
      case ScopeLoad::kResolve:
        frame->vars[name] = Resolve(name);
        break;
      case ScopeLoad::kAlias:
        frame->vars[name] = Lookup(name, frame->parent);
        break;
      case ScopeLoad::kUndefined:
        frame->vars[name] = Value::Undefined(absl::StrCat(PyStrRepr(name), " is undefined"));
        break;
    }
  }
}

Value Interpreter::Resolve(const std::string& name) const {
  const auto it = context_->vars.find(name);
  if (it != context_->vars.end()) return it->second;
  Value global = LookupGlobal(name);
  if (!global.is_undefined()) return global;
  return Value::Undefined(absl::StrCat(PyStrRepr(name), " is undefined"));
}

Value Interpreter::Lookup(const std::string& name, Frame* frame) const {
  for (const Frame* f = frame; f != nullptr; f = f->parent) {
    const auto it = f->vars.find(name);
    if (it != f->vars.end()) return it->second;
  }
  Value global = LookupGlobal(name);
  if (!global.is_undefined()) return global;
  return Value::Undefined(absl::StrCat(PyStrRepr(name), " is undefined"));
}

absl::Status Interpreter::Assign(const Target& target, const Value& value, Frame* frame) {
  switch (target.kind) {
    case Target::Kind::kName:
      frame->vars[target.name] = value;
      return absl::OkStatus();
    case Target::Kind::kNamespaceAttr: {
      const Value ns = Lookup(target.name, frame);
      if (ns.kind() != Value::Kind::kNamespace) {
        return RuntimeError("cannot assign attribute on non-namespace object");
      }
      ns.ns().Set(target.attr, value);
      return absl::OkStatus();
    }
    case Target::Kind::kTuple: {
      TAILOR_ASSIGN_OR_RETURN(auto items, Iterate(value));
      const size_t want = target.items.size();
      if (items->items.size() < want) {
        return RuntimeError(absl::StrCat("not enough values to unpack (expected ", want, ", got ",
                                         items->items.size(), ")"));
      }
      if (items->items.size() > want) {
        return RuntimeError(absl::StrCat("too many values to unpack (expected ", want, ")"));
      }
      for (size_t i = 0; i < want; ++i) {
        TAILOR_RETURN_IF_ERROR(Assign(target.items[i], items->items[i], frame));
      }
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

absl::Status Interpreter::Located(absl::Status status, int line) {
  if (status.ok() || error_located_) return status;
  error_located_ = true;
  return absl::Status(status.code(),
                      absl::StrCat("chat template line ", line, ": ", status.message()));
}

absl::Status Interpreter::Raise(std::string message) {
  error_located_ = true;
  return absl::InvalidArgumentError(message);
}

absl::Status Interpreter::Produced(size_t bytes) {
  if (bytes > limits_.max_output_bytes) {
    return RuntimeError(absl::StrCat("a string or list larger than ", limits_.max_output_bytes,
                                     " bytes (JinjaLimits::max_output_bytes)"));
  }
  total_bytes_ += bytes;
  if (total_bytes_ > limits_.max_total_bytes) {
    return RuntimeError(absl::StrCat("more than ", limits_.max_total_bytes,
                                     " bytes of strings and lists built "
                                     "(JinjaLimits::max_total_bytes)"));
  }
  return absl::OkStatus();
}

// ---- statements ----

absl::Status Interpreter::Exec(const StmtList& body, Frame* frame, std::string* out) {
  DepthGuard depth(&eval_depth_);
  if (eval_depth_ > kMaxEvalDepth) return RuntimeError(TooDeep());
  for (const StmtPtr& s : body) {
    TAILOR_RETURN_IF_ERROR(Located(ExecStmt(*s, frame, out), s->line));
    if (flow_ != Flow::kNormal) break;
  }
  return absl::OkStatus();
}

absl::Status Interpreter::Emit(const Value& v, std::string* out) {
  AppendStr(v, out, limits_.max_output_bytes);
  if (out->size() > limits_.max_output_bytes) {
    return RuntimeError(absl::StrCat("output larger than ", limits_.max_output_bytes,
                                     " bytes (JinjaLimits::max_output_bytes)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Interpreter::RenderBody(const StmtList& body, Frame* frame) {
  std::string text;
  TAILOR_RETURN_IF_ERROR(Exec(body, frame, &text));
  TAILOR_RETURN_IF_ERROR(Produced(text.size()));
  return text;
}

absl::Status Interpreter::ExecStmt(const Stmt& s, Frame* frame, std::string* out) {
  switch (s.kind) {
    case StmtKind::kText:
      return Emit(Value::String(s.text), out);
    case StmtKind::kOutput: {
      TAILOR_ASSIGN_OR_RETURN(Value v, Eval(*s.expr, frame));
      return Emit(v, out);
    }
    case StmtKind::kIf:
      for (const IfBranch& branch : s.branches) {
        TAILOR_ASSIGN_OR_RETURN(Value test, Eval(*branch.test, frame));
        if (Truthy(test)) return Exec(branch.body, frame, out);
      }
      return Exec(s.else_body, frame, out);
    case StmtKind::kFor:
      return ExecFor(s, frame, out);
    case StmtKind::kSet: {
      TAILOR_ASSIGN_OR_RETURN(Value v, Eval(*s.expr, frame));
      return Assign(s.target, v, frame);
    }
    case StmtKind::kSetBlock:
    case StmtKind::kFilterBlock: {
      Frame* inner = NewFrame(frame);
      EnterScope(s.scope, inner);
      TAILOR_ASSIGN_OR_RETURN(std::string text, RenderBody(s.body, inner));
      Value v = Value::String(std::move(text));
      if (s.expr != nullptr) {
        const Value saved = std::exchange(block_input_, v);
        absl::StatusOr<Value> filtered = Eval(*s.expr, frame);
        block_input_ = saved;
        TAILOR_ASSIGN_OR_RETURN(v, std::move(filtered));
      }
      if (s.kind == StmtKind::kFilterBlock) return Emit(v, out);
      return Assign(s.target, v, frame);
    }
    case StmtKind::kMacro:
      frame->vars[s.text] = Value::Function(std::make_shared<MacroCallable>(&s, frame));
      return absl::OkStatus();
    case StmtKind::kCallBlock: {
      TAILOR_ASSIGN_OR_RETURN(Value callee, Eval(*s.expr->subject, frame));
      TAILOR_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(*s.expr, frame));
      args.keyword.emplace_back("caller",
                                Value::Function(std::make_shared<MacroCallable>(&s, frame)));
      TAILOR_ASSIGN_OR_RETURN(Value result, CallValue(callee, std::move(args)));
      return Emit(result, out);
    }
    case StmtKind::kWith: {
      Frame* inner = NewFrame(frame);
      EnterScope(s.scope, inner);
      for (const auto& [target, expr] : s.assignments) {
        TAILOR_ASSIGN_OR_RETURN(Value v, Eval(*expr, frame));
        TAILOR_RETURN_IF_ERROR(Assign(target, v, inner));
      }
      return Exec(s.body, inner, out);
    }
    case StmtKind::kBreak:
      flow_ = Flow::kBreak;
      return absl::OkStatus();
    case StmtKind::kContinue:
      flow_ = Flow::kContinue;
      return absl::OkStatus();
    case StmtKind::kScope: {
      Frame* inner = NewFrame(frame);
      EnterScope(s.scope, inner);
      return Exec(s.body, inner, out);
    }
  }
  return absl::OkStatus();
}

absl::Status Interpreter::ExecFor(const Stmt& s, Frame* frame, std::string* out) {
  TAILOR_ASSIGN_OR_RETURN(Value iterable, Eval(*s.expr, frame));
  TAILOR_ASSIGN_OR_RETURN(std::shared_ptr<const ListData> items, Iterate(iterable));
  const auto count_iteration = [&]() -> absl::Status {
    if (++iterations_ > limits_.max_loop_iterations) {
      return RuntimeError(absl::StrCat("more than ", limits_.max_loop_iterations,
                                       " loop iterations (JinjaLimits::max_loop_iterations)"));
    }
    return absl::OkStatus();
  };
  if (s.condition != nullptr) {  // for x in items if cond: filter first (loop.length counts kept)
    std::vector<Value> kept;
    Frame* test_frame = NewFrame(frame);
    for (const Value& item : items->items) {
      TAILOR_RETURN_IF_ERROR(count_iteration());
      test_frame->vars.clear();
      EnterScope(s.test_scope, test_frame);
      TAILOR_RETURN_IF_ERROR(Assign(s.target, item, test_frame));
      TAILOR_ASSIGN_OR_RETURN(Value keep, Eval(*s.condition, test_frame));
      if (Truthy(keep)) kept.push_back(item);
    }
    items = Value::List(std::move(kept)).list_data();
  }
  // One scope per loop, emptied and entered again at each iteration: what the body sets lasts
  // one iteration and never reaches the enclosing scope (jinja2 rebinds the body's names at the
  // start of every iteration).
  Frame* body_frame = NewFrame(frame);
  auto loop = std::make_shared<LoopState>();
  loops_.push_back(loop);
  loop->items = items;
  const Value loop_value = Value::Loop(loop);
  // jinja2 clears its "run the else block" flag at the end of an iteration's body, so `else` also
  // runs when every iteration ended in break or continue.
  bool completed_one = false;
  for (size_t i = 0; i < items->items.size(); ++i) {
    TAILOR_RETURN_IF_ERROR(count_iteration());
    body_frame->vars.clear();
    loop->index0 = i;
    body_frame->vars["loop"] = loop_value;
    TAILOR_RETURN_IF_ERROR(Assign(s.target, items->items[i], body_frame));
    EnterScope(s.scope, body_frame);
    TAILOR_RETURN_IF_ERROR(Exec(s.body, body_frame, out));
    const Flow flow = std::exchange(flow_, Flow::kNormal);
    if (flow == Flow::kNormal) completed_one = true;
    if (flow == Flow::kBreak) break;
  }
  if (!completed_one) {
    Frame* else_frame = NewFrame(frame);
    EnterScope(s.else_scope, else_frame);
    return Exec(s.else_body, else_frame, out);
  }
  return absl::OkStatus();
}

absl::StatusOr<Value> Interpreter::CallMacro(const Stmt& def, Frame* closure, CallArgs args) {
  DepthGuard depth(&call_depth_);
  const std::string name = def.kind == StmtKind::kMacro ? def.text : "caller";
  if (call_depth_ > limits_.max_call_depth) {
    return RuntimeError(absl::StrCat("macro calls nested deeper than ", limits_.max_call_depth,
                                     " (runaway recursion in '", name, "'?)"));
  }
  if (++macro_calls_ > limits_.max_macro_calls) {
    return RuntimeError(absl::StrCat("more than ", limits_.max_macro_calls,
                                     " macro calls (JinjaLimits::max_macro_calls)"));
  }
  Frame* frame = NewFrame(closure);
  EnterScope(def.scope, frame);
  const std::vector<MacroParam>& params = def.params;
  std::vector<bool> bound(params.size(), false);
  std::vector<Value> extra;
  for (size_t i = 0; i < args.positional.size(); ++i) {
    if (i < params.size()) {
      frame->vars[params[i].name] = std::move(args.positional[i]);
      bound[i] = true;
    } else {
      extra.push_back(std::move(args.positional[i]));
    }
  }
  if (!extra.empty() && !def.uses_varargs) {
    return RuntimeError(absl::StrCat("macro ", PyStrRepr(name), " takes not more than ",
                                     params.size(), " argument(s)"));
  }
  std::vector<std::pair<Value, Value>> extra_kw;
  for (auto& [key, value] : args.keyword) {
    const auto it = std::find_if(params.begin(), params.end(),  // (clang 14 cannot capture `key`)
                                 [&name = key](const MacroParam& p) { return p.name == name; });
    if (it != params.end()) {
      const size_t index = static_cast<size_t>(it - params.begin());
      if (bound[index]) {
        return RuntimeError(absl::StrCat("macro ", PyStrRepr(name),
                                         " got multiple values for argument ", PyStrRepr(key)));
      }
      frame->vars[key] = std::move(value);
      bound[index] = true;
    } else if (key == "caller") {
      frame->vars["caller"] = std::move(value);
    } else if (def.uses_kwargs) {
      extra_kw.emplace_back(Value::String(key), std::move(value));
    } else {
      return RuntimeError(
          absl::StrCat("macro ", PyStrRepr(name), " takes no keyword argument ", PyStrRepr(key)));
    }
  }
  for (size_t i = 0; i < params.size(); ++i) {
    if (bound[i]) continue;
    if (params[i].default_value != nullptr) {
      TAILOR_ASSIGN_OR_RETURN(frame->vars[params[i].name], Eval(*params[i].default_value, frame));
    } else {
      frame->vars[params[i].name] = Value::Undefined(
          absl::StrCat("parameter ", PyStrRepr(params[i].name), " was not provided"));
    }
  }
  if (def.uses_varargs) frame->vars["varargs"] = Value::Tuple(std::move(extra));
  if (def.uses_kwargs) frame->vars["kwargs"] = Value::Dict(std::move(extra_kw));
  TAILOR_ASSIGN_OR_RETURN(std::string text, RenderBody(def.body, frame));
  return Value::String(std::move(text));
}

// ---- expressions ----

absl::StatusOr<Value> Interpreter::Eval(const Expr& e, Frame* frame) {
  DepthGuard depth(&eval_depth_);
  if (eval_depth_ > kMaxEvalDepth) return Located(RuntimeError(TooDeep()), e.line);
  absl::StatusOr<Value> result = EvalImpl(e, frame);
  if (!result.ok()) return Located(result.status(), e.line);
  return result;
}

absl::StatusOr<CallArgs> Interpreter::EvalArgs(const Expr& e, Frame* frame) {
  CallArgs args;
  for (const ExprPtr& item : e.items) {
    TAILOR_ASSIGN_OR_RETURN(Value v, Eval(*item, frame));
    args.positional.push_back(std::move(v));
  }
  if (e.dyn_args != nullptr) {
    TAILOR_ASSIGN_OR_RETURN(Value v, Eval(*e.dyn_args, frame));
    TAILOR_ASSIGN_OR_RETURN(auto items, Iterate(v));
    for (const Value& item : items->items) args.positional.push_back(item);
  }
  for (const Keyword& kw : e.kwargs) {
    TAILOR_ASSIGN_OR_RETURN(Value v, Eval(*kw.value, frame));
    args.keyword.emplace_back(kw.name, std::move(v));
  }
  if (e.dyn_kwargs != nullptr) {
    TAILOR_ASSIGN_OR_RETURN(Value v, Eval(*e.dyn_kwargs, frame));
    if (!v.is_dict()) {
      return RuntimeError(absl::StrCat("argument after ** must be a mapping, not ", TypeName(v)));
    }
    for (const auto& [key, value] : v.dict().items()) {
      if (!key.is_string()) return RuntimeError("keywords must be strings");
      args.keyword.emplace_back(key.str(), value);
    }
  }
  return args;
}

absl::StatusOr<Value> Interpreter::EvalImpl(const Expr& e, Frame* frame) {
  switch (e.kind) {
    case ExprKind::kConst:
      return e.constant;
    case ExprKind::kName:
      return Lookup(e.name, frame);
    case ExprKind::kList:
    case ExprKind::kTuple:
    case ExprKind::kDict: {
      std::vector<Value> values;
      values.reserve(e.items.size());
      for (const ExprPtr& item : e.items) {
        TAILOR_ASSIGN_OR_RETURN(Value v, Eval(*item, frame));
        values.push_back(std::move(v));
      }
      TAILOR_RETURN_IF_ERROR(Produced(values.size() * sizeof(Value)));
      Value result;
      if (e.kind == ExprKind::kDict) {
        std::vector<std::pair<Value, Value>> pairs;
        for (size_t i = 0; i + 1 < values.size(); i += 2) {
          const Value::Kind k = values[i].kind();
          if (k == Value::Kind::kList || k == Value::Kind::kDict) {
            return RuntimeError(absl::StrCat("unhashable type: '", TypeName(values[i]), "'"));
          }
          pairs.emplace_back(std::move(values[i]), std::move(values[i + 1]));
        }
        result = Value::Dict(std::move(pairs));
      } else {
        result =
            Value::Sequence(e.kind == ExprKind::kList ? Value::Kind::kList : Value::Kind::kTuple,
                            std::move(values));
      }
      if (result.depth() > kMaxValueDepth) {
        return RuntimeError(
            absl::StrCat("lists and dicts nested deeper than ", kMaxValueDepth, " levels"));
      }
      return result;
    }
    case ExprKind::kGetAttr: {
      TAILOR_ASSIGN_OR_RETURN(Value obj, Eval(*e.subject, frame));
      return GetAttr(obj, e.name);
    }
    case ExprKind::kGetItem: {
      TAILOR_ASSIGN_OR_RETURN(Value obj, Eval(*e.subject, frame));
      if (e.items[0]->kind == ExprKind::kSlice) return EvalSlice(obj, *e.items[0], frame);
      TAILOR_ASSIGN_OR_RETURN(Value key, Eval(*e.items[0], frame));
      return GetItem(obj, key);
    }
    case ExprKind::kSlice:
      return RuntimeError("a slice outside of [ ]");
    case ExprKind::kCall: {
      TAILOR_ASSIGN_OR_RETURN(Value callee, Eval(*e.subject, frame));
      TAILOR_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, frame));
      return CallValue(callee, std::move(args));
    }
    case ExprKind::kFilter: {
      Value input = block_input_;
      if (e.subject != nullptr) {
        TAILOR_ASSIGN_OR_RETURN(input, Eval(*e.subject, frame));
      }
      TAILOR_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, frame));
      return ApplyFilter(*this, e.name, input, std::move(args));
    }
    case ExprKind::kTest: {
      TAILOR_ASSIGN_OR_RETURN(Value input, Eval(*e.subject, frame));
      TAILOR_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, frame));
      TAILOR_ASSIGN_OR_RETURN(bool result, ApplyTest(*this, e.name, input, std::move(args)));
      return Value::Bool(result);
    }
    case ExprKind::kNeg:
    case ExprKind::kPos: {
      TAILOR_ASSIGN_OR_RETURN(Value v, Eval(*e.items[0], frame));
      if (v.is_undefined()) return RuntimeError(v.str());
      const bool neg = e.kind == ExprKind::kNeg;
      if (v.kind() == Value::Kind::kFloat) return Value::Float(neg ? -v.as_float() : v.as_float());
      if (v.is_integral()) {
        if (neg && v.as_int() == INT64_MIN) return RuntimeError("integer overflow");
        return Value::Int(neg ? -v.as_int() : v.as_int());
      }
      return RuntimeError(
          absl::StrCat("bad operand type for unary ", neg ? "-" : "+", ": '", TypeName(v), "'"));
    }
    case ExprKind::kNot: {
      TAILOR_ASSIGN_OR_RETURN(Value v, Eval(*e.items[0], frame));
      return Value::Bool(!Truthy(v));
    }
    case ExprKind::kBinary: {
      TAILOR_ASSIGN_OR_RETURN(Value a, Eval(*e.items[0], frame));
      TAILOR_ASSIGN_OR_RETURN(Value b, Eval(*e.items[1], frame));
      return Arith(e.binary_op, a, b);
    }
    case ExprKind::kAnd:
    case ExprKind::kOr: {
      TAILOR_ASSIGN_OR_RETURN(Value a, Eval(*e.items[0], frame));
      if (Truthy(a) == (e.kind == ExprKind::kOr)) return a;
      return Eval(*e.items[1], frame);
    }
    case ExprKind::kConcat: {
      std::string s;
      for (const ExprPtr& item : e.items) {
        TAILOR_ASSIGN_OR_RETURN(Value v, Eval(*item, frame));
        AppendStr(v, &s, limits_.max_output_bytes);
        if (s.size() > limits_.max_output_bytes) break;  // Produced() reports it
      }
      TAILOR_RETURN_IF_ERROR(Produced(s.size()));
      return Value::String(std::move(s));
    }
    case ExprKind::kCompare:
      return EvalCompare(e, frame);
    case ExprKind::kCondExpr: {
      TAILOR_ASSIGN_OR_RETURN(Value test, Eval(*e.items[0], frame));
      if (Truthy(test)) return Eval(*e.items[1], frame);
      if (e.items[2] != nullptr) return Eval(*e.items[2], frame);
      return Value::Undefined(absl::StrCat("the inline if-expression on line ", e.line,
                                           " evaluated to false and no else section was "
                                           "defined."));
    }
  }
  return RuntimeError("unknown expression");
}

absl::StatusOr<bool> Interpreter::Contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kString:
      if (!item.is_string()) {
        return RuntimeError(
            absl::StrCat("'in <string>' requires string as left operand, not ", TypeName(item)));
      }
      return container.str().find(item.str()) != std::string::npos;
    case Value::Kind::kList:
    case Value::Kind::kTuple:
    case Value::Kind::kIterator:
      return std::any_of(container.items().begin(), container.items().end(),
                         [&](const Value& v) { return Equals(v, item); });
    case Value::Kind::kDict:
      if (item.kind() == Value::Kind::kList || item.kind() == Value::Kind::kDict) {
        return RuntimeError(absl::StrCat("unhashable type: '", TypeName(item), "'"));
      }
      return container.dict().Find(item) != nullptr;
    case Value::Kind::kUndefined:
      return false;
    default:
      return RuntimeError(
          absl::StrCat("argument of type '", TypeName(container), "' is not iterable"));
  }
}

absl::StatusOr<Value> Interpreter::EvalCompare(const Expr& e, Frame* frame) {
  TAILOR_ASSIGN_OR_RETURN(Value left, Eval(*e.items[0], frame));
  for (size_t i = 0; i < e.compare_ops.size(); ++i) {
    TAILOR_ASSIGN_OR_RETURN(Value right, Eval(*e.items[i + 1], frame));
    bool result = false;
    switch (e.compare_ops[i]) {
      case CompareOpKind::kEq:
        result = Equals(left, right);
        break;
      case CompareOpKind::kNe:
        result = !Equals(left, right);
        break;
      case CompareOpKind::kIn:
      case CompareOpKind::kNotIn: {
        TAILOR_ASSIGN_OR_RETURN(result, Contains(right, left));
        if (e.compare_ops[i] == CompareOpKind::kNotIn) result = !result;
        break;
      }
      default: {
        const CompareOpKind op = e.compare_ops[i];
        const char* symbol = op == CompareOpKind::kLt   ? "<"
                             : op == CompareOpKind::kLe ? "<="
                             : op == CompareOpKind::kGt ? ">"
                                                        : ">=";
        TAILOR_ASSIGN_OR_RETURN(result, CompareOp(left, right, symbol));
      }
    }
    if (!result) return Value::Bool(false);
    left = std::move(right);
  }
  return Value::Bool(true);
}

absl::StatusOr<Value> Interpreter::EvalSlice(const Value& obj, const Expr& slice, Frame* frame) {
  Value bounds[3];
  for (int k = 0; k < 3; ++k) {
    if (slice.items[k] != nullptr) {
      TAILOR_ASSIGN_OR_RETURN(bounds[k], Eval(*slice.items[k], frame));
    }
  }
  // Slices bypass jinja2's getitem: Python's obj[a:b:c] runs, and its TypeErrors propagate.
  if (obj.is_undefined()) return RuntimeError(obj.str());
  if (obj.is_dict()) return RuntimeError("unhashable type: 'slice'");
  if (!obj.is_string() && obj.kind() != Value::Kind::kList && obj.kind() != Value::Kind::kTuple) {
    return RuntimeError(absl::StrCat("'", TypeName(obj), "' object is not subscriptable"));
  }
  for (const Value& b : bounds) {
    if (!b.is_undefined() && !b.is_none() && !b.is_integral()) {
      return RuntimeError("slice indices must be integers or None or have an __index__ method");
    }
  }
  const int64_t step = bounds[2].is_integral() ? bounds[2].as_int() : 1;
  if (step == 0) return RuntimeError("slice step cannot be zero");
  if (obj.is_string()) {
    const std::string& s = obj.str();
    if (IsAscii(s)) {
      std::string out;
      for (int64_t i : SliceIndices(static_cast<int64_t>(s.size()), bounds[0], bounds[1], step)) {
        out.push_back(s[static_cast<size_t>(i)]);
      }
      return Value::String(std::move(out));
    }
    const std::u32string cps = DecodeUtf8(s);
    std::u32string out;
    for (int64_t i : SliceIndices(static_cast<int64_t>(cps.size()), bounds[0], bounds[1], step)) {
      out.push_back(cps[static_cast<size_t>(i)]);
    }
    return Value::String(EncodeUtf8(out));
  }
  const auto& items = obj.items();  // a list or tuple
  std::vector<Value> out;
  for (int64_t i : SliceIndices(static_cast<int64_t>(items.size()), bounds[0], bounds[1], step)) {
    out.push_back(items[static_cast<size_t>(i)]);
  }
  return Value::Sequence(obj.kind(), std::move(out));
}

absl::StatusOr<Value> Interpreter::CallValue(const Value& callee, CallArgs args) {
  if (callee.kind() == Value::Kind::kCallable)
    return callee.callable().Call(*this, std::move(args));
  if (callee.is_undefined()) return RuntimeError(callee.str());
  return RuntimeError(absl::StrCat("'", TypeName(callee), "' object is not callable"));
}

absl::StatusOr<Value> Interpreter::LoopAttr(const Value& loop_value, absl::string_view name) {
  const LoopState& loop = loop_value.loop();
  const auto& items = loop.items->items;
  const int64_t index0 = static_cast<int64_t>(loop.index0);
  const int64_t length = static_cast<int64_t>(items.size());
  if (name == "index") return Value::Int(index0 + 1);
  if (name == "index0") return Value::Int(index0);
  if (name == "revindex") return Value::Int(length - index0);
  if (name == "revindex0") return Value::Int(length - index0 - 1);
  if (name == "first") return Value::Bool(index0 == 0);
  if (name == "last") return Value::Bool(index0 + 1 == length);
  if (name == "length") return Value::Int(length);
  if (name == "depth") return Value::Int(1);
  if (name == "depth0") return Value::Int(0);
  if (name == "previtem") {
    if (index0 == 0) return Value::Undefined("there is no previous item");
    return items[loop.index0 - 1];
  }
  if (name == "nextitem") {
    if (index0 + 1 >= length) return Value::Undefined("there is no next item");
    return items[loop.index0 + 1];
  }
  if (name == "cycle" || name == "changed") {
    return Value::Function(std::make_shared<LoopMethod>(loop_value, std::string(name)));
  }
  return Value::Undefined(
      absl::StrCat(PyStrRepr(ObjectTypeRepr(loop_value)), " has no attribute ", PyStrRepr(name)));
}

absl::StatusOr<Value> Interpreter::GetAttr(const Value& obj, absl::string_view name) {
  if (obj.is_undefined()) return RuntimeError(obj.str());
  Value method;
  if (LookupMethod(obj, name, &method)) return method;
  if (obj.is_dict()) {
    const Value* v = obj.dict().FindString(name);
    if (v != nullptr) return *v;
  } else if (obj.kind() == Value::Kind::kNamespace) {
    const Value* v = obj.ns().Find(name);
    if (v != nullptr) return *v;
  } else if (obj.kind() == Value::Kind::kLoop) {
    return LoopAttr(obj, name);
  }
  return Value::Undefined(
      absl::StrCat(PyStrRepr(ObjectTypeRepr(obj)), " has no attribute ", PyStrRepr(name)));
}

absl::StatusOr<Value> Interpreter::GetItem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) return RuntimeError(obj.str());
  if (obj.is_dict()) {
    const Value* v = obj.dict().Find(key);
    if (v != nullptr) return *v;
  } else if ((obj.kind() == Value::Kind::kList || obj.kind() == Value::Kind::kTuple ||
              obj.is_string()) &&
             key.is_integral()) {
    int64_t i = key.as_int();
    if (obj.is_string()) {
      const std::string& s = obj.str();
      if (IsAscii(s)) {
        const int64_t n = static_cast<int64_t>(s.size());
        if (i < 0) i += n;
        if (i >= 0 && i < n) return Value::String(std::string(1, s[static_cast<size_t>(i)]));
      } else {
        const std::u32string cps = DecodeUtf8(s);
        const int64_t n = static_cast<int64_t>(cps.size());
        if (i < 0) i += n;
        if (i >= 0 && i < n)
          return Value::String(EncodeUtf8(cps.substr(static_cast<size_t>(i), 1)));
      }
    } else {
      const int64_t n = static_cast<int64_t>(obj.items().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.items()[static_cast<size_t>(i)];
    }
  }
  if (key.is_string()) {
    // jinja2's sandboxed getitem falls back to the attribute of that name.
    if (obj.is_dict()) {
      Value method;
      if (LookupMethod(obj, key.str(), &method)) return method;
    } else {
      return GetAttr(obj, key.str());
    }
    return Value::Undefined(
        absl::StrCat(PyStrRepr(ObjectTypeRepr(obj)), " has no attribute ", PyStrRepr(key.str())));
  }
  std::string shown;
  AppendRepr(key, &shown);
  return Value::Undefined(absl::StrCat(ObjectTypeRepr(obj), " has no element ", shown));
}

}  // namespace tailor::service::jinja
