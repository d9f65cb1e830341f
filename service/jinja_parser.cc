#include "service/jinja_parser.h"

#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "service/jinja_builtins.h"
#include "service/jinja_parser_internal.h"
#include "service/jinja_scopes.h"

namespace tailor::service::jinja {

absl::StatusOr<std::unique_ptr<TemplateAst>> TemplateParser::Run() {
  auto ast = std::make_unique<TemplateAst>();
  TAILOR_RETURN_IF_ERROR(Subparse(nullptr, &ast->body));
  for (const Unknown& unknown : unknowns_) {
    if (!unknown.soft) {
      const bool unsupported = unknown.is_filter && IsUnsupportedJinjaFilter(unknown.name);
      return SyntaxError(unknown.line, unknown.column,
                         absl::StrCat(unknown.is_filter ? "filter '" : "test '", unknown.name, "'"),
                         unsupported         ? "a filter this interpreter implements"
                         : unknown.is_filter ? "a known filter"
                                             : "a known test");
    }
  }
  return ast;
}

// Parses template content into *body until a tag named in *end (left as the current token,
// after its "{%") or, with end null, the end of the template.
absl::Status TemplateParser::Subparse(const Names* end, StmtList* body) {
  while (Cur().kind != TokenKind::kEof) {
    const Token& token = Cur();
    if (token.kind == TokenKind::kData) {
      StmtPtr s = NewStmt(StmtKind::kText, token);
      s->text = token.text;
      body->push_back(std::move(s));
      Next();
    } else if (token.kind == TokenKind::kVariableBegin) {
      StmtPtr s = NewStmt(StmtKind::kOutput, Next());
      TAILOR_ASSIGN_OR_RETURN(s->expr, ParseTuple(false, true, {}));
      TAILOR_RETURN_IF_ERROR(ExpectKind(TokenKind::kVariableEnd, "'}}'"));
      body->push_back(std::move(s));
    } else if (token.kind == TokenKind::kBlockBegin) {
      Next();
      if (end != nullptr && Cur().kind == TokenKind::kName) {
        for (absl::string_view name : *end) {
          if (Cur().text == name) return absl::OkStatus();
        }
      }
      Nest nest(this);
      if (nest.too_deep()) return FailDepth();
      TAILOR_RETURN_IF_ERROR(ParseStatement(end, body));
      TAILOR_RETURN_IF_ERROR(ExpectKind(TokenKind::kBlockEnd, "'%}'"));
    } else {
      return Fail("template text, '{{' or '{%'");
    }
  }
  if (end != nullptr) return Fail(Quoted(*end));
  return absl::OkStatus();
}

// parse_statements: an optional ':', the "%}" ending the opening tag, the body up to one of
// `end`; with drop_end, the end tag's name is consumed.
absl::Status TemplateParser::ParseBody(const Names& end, bool drop_end, StmtList* body) {
  SkipOp(":");
  TAILOR_RETURN_IF_ERROR(ExpectKind(TokenKind::kBlockEnd, "'%}'"));
  TAILOR_RETURN_IF_ERROR(Subparse(&end, body));
  if (drop_end) Next();
  return absl::OkStatus();
}

absl::Status TemplateParser::ParseStatement(const Names* open_end, StmtList* body) {
  const Token& tag = Cur();
  if (tag.kind != TokenKind::kName) return Fail("a tag name");
  const std::string& name = tag.text;
  StmtPtr s;
  if (name == "if") {
    TAILOR_ASSIGN_OR_RETURN(s, ParseIf());
  } else if (name == "for") {
    TAILOR_ASSIGN_OR_RETURN(s, ParseFor());
  } else if (name == "set") {
    TAILOR_ASSIGN_OR_RETURN(s, ParseSet());
  } else if (name == "macro" || name == "call") {
    TAILOR_ASSIGN_OR_RETURN(s, ParseMacroOrCall(name == "macro"));
  } else if (name == "filter") {
    s = NewStmt(StmtKind::kFilterBlock, Next());
    TAILOR_ASSIGN_OR_RETURN(s->expr, ParseFilter(nullptr, /*start_inline=*/true));
    TAILOR_RETURN_IF_ERROR(ParseScopedBody({"endfilter"}, s.get()));
  } else if (name == "with") {
    TAILOR_ASSIGN_OR_RETURN(s, ParseWith());
  } else if (name == "generation") {
    s = NewStmt(StmtKind::kScope, Next());
    TAILOR_RETURN_IF_ERROR(ParseBody({"endgeneration"}, true, &s->body));
  } else if (name == "print") {
    const Token& at = Next();
    bool first = true;
    while (Cur().kind != TokenKind::kBlockEnd) {
      if (!first) TAILOR_RETURN_IF_ERROR(ExpectOp(","));
      first = false;
      StmtPtr out = NewStmt(StmtKind::kOutput, at);
      TAILOR_ASSIGN_OR_RETURN(out->expr, ParseExpression(true));
      body->push_back(std::move(out));
    }
    return absl::OkStatus();
  } else if (name == "break" || name == "continue") {
    if (loop_depth_ == 0) {
      return SyntaxError(tag.line, tag.column, absl::StrCat("'", name, "' outside of a loop"),
                         "'break' and 'continue' only inside 'for'");
    }
    s = NewStmt(name == "break" ? StmtKind::kBreak : StmtKind::kContinue, Next());
  } else if (name == "block" || name == "extends" || name == "include" || name == "import" ||
             name == "from" || name == "autoescape") {
    return SyntaxError(tag.line, tag.column, absl::StrCat("tag '", name, "'"),
                       "a tag chat templates use: template inheritance and imports are not "
                       "supported");
  } else {
    return SyntaxError(tag.line, tag.column, absl::StrCat("unknown tag '", name, "'"),
                       open_end != nullptr
                           ? Quoted(*open_end)
                           : "a tag such as 'if', 'for', 'set', 'macro' or 'filter'");
  }
  body->push_back(std::move(s));
  return absl::OkStatus();
}

// A body with its own scope (for, macro, call, filter, with, set block): `break` is allowed
// only in for bodies and unknown filters there are compile-time errors, as in jinja2.
absl::Status TemplateParser::ParseScopedBody(const Names& end, Stmt* s, bool loop) {
  const int saved_loop = loop_depth_;
  const bool saved_soft = soft_;
  loop_depth_ = loop ? loop_depth_ + 1 : 0;
  soft_ = false;
  absl::Status status = ParseBody(end, /*drop_end=*/end.size() == 1, &s->body);
  loop_depth_ = saved_loop;
  soft_ = saved_soft;
  return status;
}

absl::StatusOr<StmtPtr> TemplateParser::ParseIf() {
  StmtPtr s = NewStmt(StmtKind::kIf, Next());
  const bool saved_soft = soft_;
  soft_ = true;
  while (true) {
    IfBranch branch;
    TAILOR_ASSIGN_OR_RETURN(branch.test, ParseTuple(false, false, {}));
    TAILOR_RETURN_IF_ERROR(ParseBody({"elif", "else", "endif"}, false, &branch.body));
    s->branches.push_back(std::move(branch));
    const std::string keyword = Next().text;
    if (keyword == "elif") continue;
    if (keyword == "else") TAILOR_RETURN_IF_ERROR(ParseBody({"endif"}, true, &s->else_body));
    break;
  }
  soft_ = saved_soft;
  return s;
}

absl::StatusOr<StmtPtr> TemplateParser::ParseFor() {
  StmtPtr s = NewStmt(StmtKind::kFor, Next());
  TAILOR_ASSIGN_OR_RETURN(s->target, ParseAssignTarget({"in"}, false));
  if (!SkipName("in")) return Fail("'in'");
  TAILOR_ASSIGN_OR_RETURN(s->expr, ParseTuple(false, false, {"recursive"}));
  if (SkipName("if")) {
    TAILOR_ASSIGN_OR_RETURN(s->condition, ParseExpression(true));
  }
  if (IsName("recursive")) return Fail("'%}' (recursive loops are not supported)");
  TAILOR_RETURN_IF_ERROR(ParseScopedBody({"endfor", "else"}, s.get(), /*loop=*/true));
  if (Next().text == "else") {
    const bool saved_soft = soft_;
    soft_ = false;
    absl::Status status = ParseBody({"endfor"}, true, &s->else_body);
    soft_ = saved_soft;
    TAILOR_RETURN_IF_ERROR(status);
  }
  return s;
}

absl::StatusOr<StmtPtr> TemplateParser::ParseSet() {
  const Token& at = Next();
  TAILOR_ASSIGN_OR_RETURN(Target target, ParseAssignTarget({}, true));
  if (SkipOp("=")) {
    StmtPtr s = NewStmt(StmtKind::kSet, at);
    s->target = std::move(target);
    TAILOR_ASSIGN_OR_RETURN(s->expr, ParseTuple(false, true, {}));
    return s;
  }
  StmtPtr s = NewStmt(StmtKind::kSetBlock, at);
  s->target = std::move(target);
  if (IsOp("|")) {
    TAILOR_ASSIGN_OR_RETURN(s->expr, ParseFilter(nullptr, false));
  }
  TAILOR_RETURN_IF_ERROR(ParseScopedBody({"endset"}, s.get()));
  return s;
}

absl::Status TemplateParser::ParseSignature(Stmt* s) {
  TAILOR_RETURN_IF_ERROR(ExpectOp("("));
  bool has_default = false;
  while (!IsOp(")")) {
    if (!s->params.empty()) TAILOR_RETURN_IF_ERROR(ExpectOp(","));
    if (Cur().kind != TokenKind::kName) return Fail("a parameter name");
    MacroParam param;
    param.name = Next().text;
    if (SkipOp("=")) {
      TAILOR_ASSIGN_OR_RETURN(param.default_value, ParseExpression(true));
      has_default = true;
    } else if (has_default) {
      return Fail("a default value (a parameter without one follows one with)");
    }
    s->params.push_back(std::move(param));
  }
  return ExpectOp(")");
}

absl::StatusOr<StmtPtr> TemplateParser::ParseMacroOrCall(bool macro) {
  StmtPtr s = NewStmt(macro ? StmtKind::kMacro : StmtKind::kCallBlock, Next());
  if (macro) {
    if (Cur().kind != TokenKind::kName) return Fail("the macro's name");
    s->text = Next().text;
    TAILOR_RETURN_IF_ERROR(ParseSignature(s.get()));
  } else {
    if (IsOp("(")) TAILOR_RETURN_IF_ERROR(ParseSignature(s.get()));
    const Token& at = Cur();
    TAILOR_ASSIGN_OR_RETURN(s->expr, ParseExpression(true));
    if (s->expr->kind != ExprKind::kCall) {
      return SyntaxError(at.line, at.column, "an expression that is not a call",
                         "a macro call after 'call'");
    }
  }
  macros_.push_back(s.get());
  absl::Status status = ParseScopedBody({macro ? "endmacro" : "endcall"}, s.get());
  macros_.pop_back();
  TAILOR_RETURN_IF_ERROR(status);
  return s;
}

absl::StatusOr<StmtPtr> TemplateParser::ParseWith() {
  StmtPtr s = NewStmt(StmtKind::kWith, Next());
  while (Cur().kind != TokenKind::kBlockEnd) {
    if (!s->assignments.empty()) TAILOR_RETURN_IF_ERROR(ExpectOp(","));
    TAILOR_ASSIGN_OR_RETURN(Target target, ParseAssignTarget({}, false));
    TAILOR_RETURN_IF_ERROR(ExpectOp("="));
    TAILOR_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
    s->assignments.emplace_back(std::move(target), std::move(value));
  }
  TAILOR_RETURN_IF_ERROR(ParseScopedBody({"endwith"}, s.get()));
  return s;
}

// parse_assign_target: a name, `ns.attr` (with_namespace), or a tuple of those (parenthesised
// parts may nest), ending where a tuple ends or at one of `end`.
absl::StatusOr<Target> TemplateParser::ParseAssignTarget(const Names& end, bool with_namespace) {
  Nest nest(this);
  if (nest.too_deep()) return FailDepth();
  Target tuple;
  tuple.kind = Target::Kind::kTuple;
  tuple.line = Cur().line;
  tuple.column = Cur().column;
  bool is_tuple = false;
  while (true) {
    if (!tuple.items.empty()) TAILOR_RETURN_IF_ERROR(ExpectOp(","));
    if (IsTupleEnd(end)) break;
    Target item;
    item.line = Cur().line;
    item.column = Cur().column;
    if (SkipOp("(")) {
      TAILOR_ASSIGN_OR_RETURN(item, ParseAssignTarget({}, false));
      TAILOR_RETURN_IF_ERROR(ExpectOp(")"));
    } else if (Cur().kind == TokenKind::kName) {
      static constexpr absl::string_view kConstants[] = {"true", "false", "none",
                                                         "True", "False", "None"};
      for (absl::string_view c : kConstants) {
        if (Cur().text == c) return Fail("a name to assign to (not a constant)");
      }
      item.name = Next().text;
      if (with_namespace && SkipOp(".")) {
        if (Cur().kind != TokenKind::kName) return Fail("an attribute name");
        item.kind = Target::Kind::kNamespaceAttr;
        item.attr = Next().text;
      }
    } else {
      return Fail("a name to assign to");
    }
    tuple.items.push_back(std::move(item));
    if (!IsOp(",")) break;
    is_tuple = true;
  }
  if (is_tuple) return tuple;
  if (tuple.items.empty()) return Fail("a name to assign to");
  return std::move(tuple.items[0]);
}

absl::StatusOr<std::unique_ptr<TemplateAst>> ParseTemplate(absl::string_view source) {
  TAILOR_ASSIGN_OR_RETURN(std::vector<Token> tokens, Lex(source));
  TAILOR_ASSIGN_OR_RETURN(std::unique_ptr<TemplateAst> ast,
                          TemplateParser(std::move(tokens)).Run());
  AnalyzeScopes(ast.get());
  return ast;
}

}  // namespace tailor::service::jinja
