// The Jinja parser's internals, shared by jinja_parser.cc (statements) and
// jinja_parser_expr.cc (expressions). Not part of the interface; see jinja_parser.h.
// A TemplateParser is used once, by one thread.
#ifndef TAILOR_SERVICE_JINJA_PARSER_INTERNAL_H_
#define TAILOR_SERVICE_JINJA_PARSER_INTERNAL_H_

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "service/jinja_ast.h"
#include "service/jinja_lexer.h"
#include "service/jinja_parser.h"

namespace tailor::service::jinja {

using Names = std::vector<absl::string_view>;

// Recursive descent over the token stream, following jinja2's parser function by function.
class TemplateParser {
 public:
  explicit TemplateParser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  absl::StatusOr<std::unique_ptr<TemplateAst>> Run();

 private:
  struct Unknown {
    int line, column;
    std::string name;
    bool is_filter;
    bool soft;  // inside an `if` or a conditional expression: an error only when evaluated
  };

  // Counts nesting (statements and expressions) so hostile input cannot exhaust the stack.
  class Nest {
   public:
    explicit Nest(TemplateParser* p) : p_(p) { ++p_->depth_; }
    ~Nest() { --p_->depth_; }
    bool too_deep() const { return p_->depth_ > kMaxParseNesting; }

   private:
    TemplateParser* p_;
  };

  const Token& Cur() const { return tokens_[pos_]; }
  const Token& Peek() const { return tokens_[pos_ + 1 < tokens_.size() ? pos_ + 1 : pos_]; }
  const Token& Next() {
    const Token& t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return t;
  }
  bool IsName(absl::string_view name) const {
    return Cur().kind == TokenKind::kName && Cur().text == name;
  }
  bool IsOp(absl::string_view op) const {
    return Cur().kind == TokenKind::kOperator && Cur().text == op;
  }
  bool SkipOp(absl::string_view op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(absl::string_view name) {
    if (!IsName(name)) return false;
    Next();
    return true;
  }
  absl::Status Fail(absl::string_view expected) const {
    return SyntaxError(Cur().line, Cur().column, DescribeToken(Cur()), expected);
  }
  absl::Status FailDepth() const {
    return SyntaxError(Cur().line, Cur().column, "nesting too deep",
                       absl::StrCat("at most ", kMaxParseNesting, " nested levels"));
  }
  absl::Status ExpectOp(absl::string_view op) {
    if (!SkipOp(op)) return Fail(absl::StrCat("'", op, "'"));
    return absl::OkStatus();
  }
  absl::Status ExpectKind(TokenKind kind, absl::string_view what) {
    if (Cur().kind != kind) return Fail(what);
    Next();
    return absl::OkStatus();
  }
  static std::string Quoted(const Names& names) {
    std::vector<std::string> quoted;
    for (absl::string_view n : names) quoted.push_back(absl::StrCat("'", n, "'"));
    return absl::StrJoin(quoted, " or ");
  }

  ExprPtr NewExpr(ExprKind kind, const Token& at) const {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->column = at.column;
    return e;
  }
  StmtPtr NewStmt(StmtKind kind, const Token& at) const {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = at.line;
    s->column = at.column;
    return s;
  }

  // Sets e's depth from its children; too deep an expression is a syntax error (evaluating and
  // destroying the tree recurse that deep).
  absl::Status Seal(Expr* e) const {
    int depth = 0;
    const auto visit = [&](const ExprPtr& child) {
      if (child != nullptr) depth = std::max(depth, child->depth);
    };
    visit(e->subject);
    for (const ExprPtr& item : e->items) visit(item);
    for (const Keyword& kw : e->kwargs) visit(kw.value);
    visit(e->dyn_args);
    visit(e->dyn_kwargs);
    e->depth = depth + 1;
    if (e->depth > kMaxExprDepth) {
      return SyntaxError(e->line, e->column, "expression nested too deeply",
                         absl::StrCat("at most ", kMaxExprDepth, " levels"));
    }
    return absl::OkStatus();
  }

  // ---- statements (jinja_parser.cc) ----

  // Parses template content into *body until a tag named in *end (left as the current token,
  // after its "{%") or, with end null, the end of the template.
  absl::Status Subparse(const Names* end, StmtList* body);
  // parse_statements: an optional ':', the "%}" ending the opening tag, the body up to one of
  // `end`; with drop_end, the end tag's name is consumed.
  absl::Status ParseBody(const Names& end, bool drop_end, StmtList* body);
  absl::Status ParseStatement(const Names* open_end, StmtList* body);
  // A body with its own scope (for, macro, call, filter, with, set block): `break` is allowed
  // only in for bodies and unknown filters there are compile-time errors, as in jinja2.
  absl::Status ParseScopedBody(const Names& end, Stmt* s, bool loop = false);
  absl::StatusOr<StmtPtr> ParseIf();
  absl::StatusOr<StmtPtr> ParseFor();
  absl::StatusOr<StmtPtr> ParseSet();
  absl::Status ParseSignature(Stmt* s);
  absl::StatusOr<StmtPtr> ParseMacroOrCall(bool macro);
  absl::StatusOr<StmtPtr> ParseWith();
  // parse_assign_target: a name, `ns.attr` (with_namespace), or a tuple of those (parenthesised
  // parts may nest), ending where a tuple ends or at one of `end`.
  absl::StatusOr<Target> ParseAssignTarget(const Names& end, bool with_namespace);

  // ---- expressions, jinja2's precedence lowest first (jinja_parser_expr.cc) ----

  bool IsTupleEnd(const Names& end) const;
  // parse_tuple: expressions separated by commas; a tuple if there is a comma (or, in
  // parentheses, nothing at all).
  absl::StatusOr<ExprPtr> ParseTuple(bool explicit_parens, bool with_condexpr, const Names& end);
  absl::StatusOr<ExprPtr> ParseExpression(bool with_condexpr);
  absl::StatusOr<ExprPtr> ParseLogical(ExprKind kind, absl::string_view keyword);
  absl::StatusOr<ExprPtr> ParseOr() { return ParseLogical(ExprKind::kOr, "or"); }
  absl::StatusOr<ExprPtr> ParseNot();
  absl::StatusOr<ExprPtr> ParseCompare();
  absl::StatusOr<ExprPtr> ParseBinary(int level);
  absl::StatusOr<ExprPtr> ParseMath1() { return ParseBinary(0); }
  absl::StatusOr<ExprPtr> ParseUnary(bool with_filter);
  absl::StatusOr<ExprPtr> ParsePrimary();
  absl::StatusOr<ExprPtr> ParsePostfix(ExprPtr node);
  absl::StatusOr<ExprPtr> ParseSubscribed();
  // parse_call_args into e (positional, name=value, *args, **kwargs).
  absl::Status ParseCallArgs(Expr* e);
  absl::StatusOr<ExprPtr> ParseCall(ExprPtr callee);
  absl::StatusOr<std::string> ParseDottedName();
  void NoteUnknown(const Expr& e, bool is_filter);
  absl::StatusOr<ExprPtr> ParseFilter(ExprPtr node, bool start_inline);
  absl::StatusOr<ExprPtr> ParseTest(ExprPtr node);

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;         // enclosing for bodies (within the innermost macro)
  bool soft_ = false;          // inside an if statement's test or bodies
  std::vector<Stmt*> macros_;  // macros / call blocks being parsed (innermost last)
  std::vector<Unknown> unknowns_;
};

}  // namespace tailor::service::jinja

#endif  // TAILOR_SERVICE_JINJA_PARSER_INTERNAL_H_
