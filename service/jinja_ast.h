// The syntax tree of a parsed Jinja template. Built once by the parser, then immutable: renders on
// any number of threads only read it. Nodes own their children (unique_ptr).
#ifndef TAILOR_SERVICE_JINJA_AST_H_
#define TAILOR_SERVICE_JINJA_AST_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "service/jinja_value.h"

namespace tailor::service::jinja {

enum class ExprKind {
  kConst,     // constant
  kName,      // name
  kList,      // items
  kTuple,     // items
  kDict,      // items: key, value, key, value, ...
  kGetAttr,   // subject.name
  kGetItem,   // subject[items[0]]
  kSlice,     // items[0..2]: start, stop, step (each may be null); only inside kGetItem
  kCall,      // subject(items..., kwargs...)
  kFilter,    // subject | name(items..., kwargs...); subject null in filter blocks
  kTest,      // subject is name(items..., kwargs...)
  kNeg,       // -items[0]
  kPos,       // +items[0]
  kNot,       // not items[0]
  kBinary,    // items[0] bin_op items[1]
  kAnd,       // items[0] and items[1]
  kOr,        // items[0] or items[1]
  kConcat,    // items[0] ~ items[1] ~ ...
  kCompare,   // items[0] cmp_ops[0] items[1] cmp_ops[1] items[2] ... (Python chaining)
  kCondExpr,  // items[1] if items[0] else items[2] (items[2] may be null)
};

enum class BinaryOp { kAdd, kSub, kMul, kDiv, kFloorDiv, kMod, kPow };
enum class CompareOpKind { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn };

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Keyword {
  std::string name;
  ExprPtr value;
};

struct Expr {
  ExprKind kind = ExprKind::kConst;
  int line = 1;
  int column = 1;
  Value constant;
  std::string name;
  ExprPtr subject;
  std::vector<ExprPtr> items;
  std::vector<Keyword> kwargs;
  ExprPtr dyn_args;    // f(*x)
  ExprPtr dyn_kwargs;  // f(**x)
  BinaryOp binary_op = BinaryOp::kAdd;
  std::vector<CompareOpKind> compare_ops;
  int depth = 1;  // 1 + the deepest child (bounded by the parser)
};

// The left side of set/for/with: a name, ns.attr, or a (possibly nested) tuple of them.
struct Target {
  enum class Kind { kName, kNamespaceAttr, kTuple };
  Kind kind = Kind::kName;
  std::string name;  // the variable (or the namespace's variable)
  std::string attr;  // kNamespaceAttr
  std::vector<Target> items;
  int line = 1;
  int column = 1;
};

enum class StmtKind {
  kText,       // text
  kOutput,     // {{ expr }}
  kIf,         // branches, else_body
  kFor,        // for target in expr [if condition] body [else else_body]
  kSet,        // set target = expr
  kSetBlock,   // set target [| filter] body endset; expr = the filter chain (subject null) or null
  kMacro,      // macro text(params) body
  kCallBlock,  // call(params) expr body
  kFilterBlock,  // filter expr body
  kWith,         // with targets = values body
  kBreak,
  kContinue,
  kScope,  // a body rendered in place ({% generation %})
};

// How a scope starts out binding a name it declares (jinja2's idtracking load instructions),
// computed once after parsing by AnalyzeScopes (jinja_scopes.h).
enum class ScopeLoad {
  kResolve,    // from the render context / globals
  kAlias,      // a copy of the enclosing scopes' current value
  kUndefined,  // undefined until the scope assigns it (even if an outer scope has it)
};
using ScopeEntries = std::vector<std::pair<std::string, ScopeLoad>>;

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using StmtList = std::vector<StmtPtr>;

struct IfBranch {
  ExprPtr test;
  StmtList body;
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // null when required
};

struct Stmt {
  StmtKind kind = StmtKind::kText;
  int line = 1;
  int column = 1;
  std::string text;  // kText: the text; kMacro: the name
  ExprPtr expr;
  ExprPtr condition;  // kFor's `if`
  Target target;
  std::vector<IfBranch> branches;
  StmtList body;
  StmtList else_body;
  std::vector<MacroParam> params;
  std::vector<std::pair<Target, ExprPtr>> assignments;  // kWith
  // kMacro/kCallBlock: whether the body names varargs / kwargs (jinja2 then accepts extra
  // positional / keyword arguments).
  bool uses_varargs = false;
  bool uses_kwargs = false;
  // The names the statement's own scope binds on entry: the body of for (each iteration),
  // macro, call, filter, with, set block and generation blocks; kFor also has its else body's
  // and its `if` filter's.
  ScopeEntries scope;
  ScopeEntries else_scope;
  ScopeEntries test_scope;
};

struct TemplateAst {
  StmtList body;
  ScopeEntries scope;  // the top level's
};

}  // namespace tailor::service::jinja

#endif  // TAILOR_SERVICE_JINJA_AST_H_
