// The expression half of the Jinja parser: jinja2's parse_tuple, parse_expression down to
// parse_primary, subscripts, calls, filters and tests.
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "service/jinja_builtins.h"
#include "service/jinja_parser_internal.h"

namespace tailor::service::jinja {

bool TemplateParser::IsTupleEnd(const Names& end) const {
  const Token& t = Cur();
  if (t.kind == TokenKind::kVariableEnd || t.kind == TokenKind::kBlockEnd) return true;
  if (t.kind == TokenKind::kOperator && t.text == ")") return true;
  if (t.kind == TokenKind::kName) {
    for (absl::string_view name : end) {
      if (t.text == name) return true;
    }
  }
  return false;
}

// parse_tuple: expressions separated by commas; a tuple if there is a comma (or, in
// parentheses, nothing at all).
absl::StatusOr<ExprPtr> TemplateParser::ParseTuple(bool explicit_parens, bool with_condexpr,
                                                   const Names& end) {
  const Token& at = Cur();
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  while (true) {
    if (!items.empty()) TAILOR_RETURN_IF_ERROR(ExpectOp(","));
    if (IsTupleEnd(end)) break;
    TAILOR_ASSIGN_OR_RETURN(ExprPtr item, ParseExpression(with_condexpr));
    items.push_back(std::move(item));
    if (!IsOp(",")) break;
    is_tuple = true;
  }
  if (!is_tuple) {
    if (!items.empty()) return std::move(items[0]);
    if (!explicit_parens) return Fail("an expression");
  }
  ExprPtr e = NewExpr(ExprKind::kTuple, at);
  e->items = std::move(items);
  TAILOR_RETURN_IF_ERROR(Seal(e.get()));
  return e;
}

absl::StatusOr<ExprPtr> TemplateParser::ParseExpression(bool with_condexpr) {
  Nest nest(this);
  if (nest.too_deep()) return FailDepth();
  if (!with_condexpr) return ParseOr();
  // A conditional expression is a "soft" frame: unknown filters/tests in any of its parts fail
  // only when evaluated.
  const size_t first_unknown = unknowns_.size();
  TAILOR_ASSIGN_OR_RETURN(ExprPtr expr, ParseOr());
  bool conditional = false;
  while (IsName("if")) {
    const Token& at = Next();
    conditional = true;
    ExprPtr e = NewExpr(ExprKind::kCondExpr, at);
    e->line = expr->line;
    e->column = expr->column;
    TAILOR_ASSIGN_OR_RETURN(ExprPtr test, ParseOr());
    ExprPtr otherwise;
    if (SkipName("else")) {
      TAILOR_ASSIGN_OR_RETURN(otherwise, ParseExpression(true));
    }
    e->items.push_back(std::move(test));
    e->items.push_back(std::move(expr));
    e->items.push_back(std::move(otherwise));
    TAILOR_RETURN_IF_ERROR(Seal(e.get()));
    expr = std::move(e);
  }
  if (conditional) {
    for (size_t i = first_unknown; i < unknowns_.size(); ++i) unknowns_[i].soft = true;
  }
  return expr;
}

absl::StatusOr<ExprPtr> TemplateParser::ParseLogical(ExprKind kind, absl::string_view keyword) {
  TAILOR_ASSIGN_OR_RETURN(ExprPtr left,
                          kind == ExprKind::kOr ? ParseLogical(ExprKind::kAnd, "and") : ParseNot());
  while (IsName(keyword)) {
    ExprPtr e = NewExpr(kind, Next());
    TAILOR_ASSIGN_OR_RETURN(
        ExprPtr right, kind == ExprKind::kOr ? ParseLogical(ExprKind::kAnd, "and") : ParseNot());
    e->items.push_back(std::move(left));
    e->items.push_back(std::move(right));
    TAILOR_RETURN_IF_ERROR(Seal(e.get()));
    left = std::move(e);
  }
  return left;
}

absl::StatusOr<ExprPtr> TemplateParser::ParseNot() {
  if (IsName("not")) {
    Nest nest(this);
    if (nest.too_deep()) return FailDepth();
    ExprPtr e = NewExpr(ExprKind::kNot, Next());
    TAILOR_ASSIGN_OR_RETURN(ExprPtr operand, ParseNot());
    e->items.push_back(std::move(operand));
    TAILOR_RETURN_IF_ERROR(Seal(e.get()));
    return e;
  }
  return ParseCompare();
}

absl::StatusOr<ExprPtr> TemplateParser::ParseCompare() {
  TAILOR_ASSIGN_OR_RETURN(ExprPtr first, ParseMath1());
  ExprPtr e;
  while (true) {
    CompareOpKind op;
    const Token& t = Cur();
    if (t.kind == TokenKind::kOperator && (t.text == "==" || t.text == "!=" || t.text == "<" ||
                                           t.text == "<=" || t.text == ">" || t.text == ">=")) {
      op = t.text == "=="   ? CompareOpKind::kEq
           : t.text == "!=" ? CompareOpKind::kNe
           : t.text == "<"  ? CompareOpKind::kLt
           : t.text == "<=" ? CompareOpKind::kLe
           : t.text == ">"  ? CompareOpKind::kGt
                            : CompareOpKind::kGe;
      Next();
    } else if (IsName("in")) {
      op = CompareOpKind::kIn;
      Next();
    } else if (IsName("not") && Peek().kind == TokenKind::kName && Peek().text == "in") {
      op = CompareOpKind::kNotIn;
      Next();
      Next();
    } else {
      break;
    }
    if (e == nullptr) {
      e = NewExpr(ExprKind::kCompare, tokens_[pos_ - 1]);
      e->line = first->line;
      e->column = first->column;
      e->items.push_back(std::move(first));
    }
    TAILOR_ASSIGN_OR_RETURN(ExprPtr operand, ParseMath1());
    e->compare_ops.push_back(op);
    e->items.push_back(std::move(operand));
  }
  if (e == nullptr) return first;
  TAILOR_RETURN_IF_ERROR(Seal(e.get()));
  return e;
}

absl::StatusOr<ExprPtr> TemplateParser::ParseBinary(int level) {
  // level 0: + -; 1: ~ (concat); 2: * / // %; 3: **.
  if (level == 4) return ParseUnary(true);
  TAILOR_ASSIGN_OR_RETURN(ExprPtr left, ParseBinary(level + 1));
  while (Cur().kind == TokenKind::kOperator) {
    const std::string& op = Cur().text;
    BinaryOp bin;
    if (level == 0 && (op == "+" || op == "-")) {
      bin = op == "+" ? BinaryOp::kAdd : BinaryOp::kSub;
    } else if (level == 1 && op == "~") {
      ExprPtr e = NewExpr(ExprKind::kConcat, Next());
      e->line = left->line;
      e->column = left->column;
      e->items.push_back(std::move(left));
      do {
        TAILOR_ASSIGN_OR_RETURN(ExprPtr item, ParseBinary(level + 1));
        e->items.push_back(std::move(item));
      } while (SkipOp("~"));
      TAILOR_RETURN_IF_ERROR(Seal(e.get()));
      return e;
    } else if (level == 2 && (op == "*" || op == "/" || op == "//" || op == "%")) {
      bin = op == "*"    ? BinaryOp::kMul
            : op == "/"  ? BinaryOp::kDiv
            : op == "//" ? BinaryOp::kFloorDiv
                         : BinaryOp::kMod;
    } else if (level == 3 && op == "**") {
      bin = BinaryOp::kPow;
    } else {
      break;
    }
    ExprPtr e = NewExpr(ExprKind::kBinary, Next());
    e->binary_op = bin;
    TAILOR_ASSIGN_OR_RETURN(ExprPtr right, ParseBinary(level + 1));
    e->items.push_back(std::move(left));
    e->items.push_back(std::move(right));
    TAILOR_RETURN_IF_ERROR(Seal(e.get()));
    left = std::move(e);
  }
  return left;
}

absl::StatusOr<ExprPtr> TemplateParser::ParseUnary(bool with_filter) {
  Nest nest(this);
  if (nest.too_deep()) return FailDepth();
  ExprPtr node;
  if (IsOp("-") || IsOp("+")) {
    const ExprKind kind = IsOp("-") ? ExprKind::kNeg : ExprKind::kPos;
    node = NewExpr(kind, Next());
    TAILOR_ASSIGN_OR_RETURN(ExprPtr operand, ParseUnary(false));
    node->items.push_back(std::move(operand));
    TAILOR_RETURN_IF_ERROR(Seal(node.get()));
  } else {
    TAILOR_ASSIGN_OR_RETURN(node, ParsePrimary());
  }
  TAILOR_ASSIGN_OR_RETURN(node, ParsePostfix(std::move(node)));
  if (!with_filter) return node;
  // parse_filter_expr: filters, tests and calls, left to right.
  while (true) {
    if (IsOp("|")) {
      TAILOR_ASSIGN_OR_RETURN(node, ParseFilter(std::move(node), false));
    } else if (IsName("is")) {
      TAILOR_ASSIGN_OR_RETURN(node, ParseTest(std::move(node)));
    } else if (IsOp("(")) {
      TAILOR_ASSIGN_OR_RETURN(node, ParseCall(std::move(node)));
    } else {
      return node;
    }
  }
}

absl::StatusOr<ExprPtr> TemplateParser::ParsePrimary() {
  const Token& t = Cur();
  if (t.kind == TokenKind::kName) {
    Next();
    ExprPtr e = NewExpr(ExprKind::kConst, t);
    if (t.text == "true" || t.text == "True" || t.text == "false" || t.text == "False") {
      e->constant = Value::Bool(t.text[0] == 't' || t.text[0] == 'T');
    } else if (t.text == "none" || t.text == "None") {
      e->constant = Value::None();
    } else {
      e->kind = ExprKind::kName;
      e->name = t.text;
      if (!macros_.empty() && t.text == "varargs") macros_.back()->uses_varargs = true;
      if (!macros_.empty() && t.text == "kwargs") macros_.back()->uses_kwargs = true;
    }
    return e;
  }
  if (t.kind == TokenKind::kString) {
    ExprPtr e = NewExpr(ExprKind::kConst, t);
    std::string s;
    while (Cur().kind == TokenKind::kString) s += Next().text;  // adjacent strings concatenate
    e->constant = Value::String(std::move(s));
    return e;
  }
  if (t.kind == TokenKind::kInteger || t.kind == TokenKind::kFloat) {
    ExprPtr e = NewExpr(ExprKind::kConst, Next());
    e->constant =
        t.kind == TokenKind::kInteger ? Value::Int(t.int_value) : Value::Float(t.float_value);
    return e;
  }
  if (IsOp("(")) {
    Next();
    TAILOR_ASSIGN_OR_RETURN(ExprPtr e, ParseTuple(true, true, {}));
    TAILOR_RETURN_IF_ERROR(ExpectOp(")"));
    return e;
  }
  if (IsOp("[") || IsOp("{")) {
    const bool dict = IsOp("{");
    ExprPtr e = NewExpr(dict ? ExprKind::kDict : ExprKind::kList, Next());
    const absl::string_view close = dict ? "}" : "]";
    while (!IsOp(close)) {
      if (!e->items.empty()) TAILOR_RETURN_IF_ERROR(ExpectOp(","));
      if (IsOp(close)) break;
      TAILOR_ASSIGN_OR_RETURN(ExprPtr item, ParseExpression(true));
      e->items.push_back(std::move(item));
      if (dict) {
        TAILOR_RETURN_IF_ERROR(ExpectOp(":"));
        TAILOR_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
        e->items.push_back(std::move(value));
      }
    }
    TAILOR_RETURN_IF_ERROR(ExpectOp(close));
    TAILOR_RETURN_IF_ERROR(Seal(e.get()));
    return e;
  }
  return Fail("an expression");
}

absl::StatusOr<ExprPtr> TemplateParser::ParsePostfix(ExprPtr node) {
  while (true) {
    if (IsOp(".")) {
      const Token& dot = Next();
      const Token& attr = Cur();
      if (attr.kind == TokenKind::kName) {
        ExprPtr e = NewExpr(ExprKind::kGetAttr, dot);
        e->name = Next().text;
        e->subject = std::move(node);
        TAILOR_RETURN_IF_ERROR(Seal(e.get()));
        node = std::move(e);
      } else if (attr.kind == TokenKind::kInteger) {
        ExprPtr e = NewExpr(ExprKind::kGetItem, dot);
        ExprPtr index = NewExpr(ExprKind::kConst, attr);
        index->constant = Value::Int(Next().int_value);
        e->subject = std::move(node);
        e->items.push_back(std::move(index));
        TAILOR_RETURN_IF_ERROR(Seal(e.get()));
        node = std::move(e);
      } else {
        return Fail("an attribute name or number");
      }
    } else if (IsOp("[")) {
      ExprPtr e = NewExpr(ExprKind::kGetItem, Next());
      std::vector<ExprPtr> args;
      while (!IsOp("]")) {
        if (!args.empty()) TAILOR_RETURN_IF_ERROR(ExpectOp(","));
        TAILOR_ASSIGN_OR_RETURN(ExprPtr arg, ParseSubscribed());
        args.push_back(std::move(arg));
      }
      TAILOR_RETURN_IF_ERROR(ExpectOp("]"));
      if (args.size() == 1) {
        e->items.push_back(std::move(args[0]));
      } else {
        ExprPtr tuple = NewExpr(ExprKind::kTuple, tokens_[pos_ - 1]);
        tuple->items = std::move(args);
        e->items.push_back(std::move(tuple));
      }
      e->subject = std::move(node);
      TAILOR_RETURN_IF_ERROR(Seal(e.get()));
      node = std::move(e);
    } else if (IsOp("(")) {
      TAILOR_ASSIGN_OR_RETURN(node, ParseCall(std::move(node)));
    } else {
      return node;
    }
  }
}

absl::StatusOr<ExprPtr> TemplateParser::ParseSubscribed() {
  const Token& at = Cur();
  ExprPtr start;
  if (!IsOp(":")) {
    TAILOR_ASSIGN_OR_RETURN(start, ParseExpression(true));
    if (!IsOp(":")) return start;
  }
  Next();  // the first ':'
  ExprPtr slice = NewExpr(ExprKind::kSlice, at);
  ExprPtr stop;
  ExprPtr step;
  if (!IsOp(":") && !IsOp("]") && !IsOp(",")) {
    TAILOR_ASSIGN_OR_RETURN(stop, ParseExpression(true));
  }
  if (SkipOp(":") && !IsOp("]") && !IsOp(",")) {
    TAILOR_ASSIGN_OR_RETURN(step, ParseExpression(true));
  }
  slice->items.push_back(std::move(start));
  slice->items.push_back(std::move(stop));
  slice->items.push_back(std::move(step));
  TAILOR_RETURN_IF_ERROR(Seal(slice.get()));
  return slice;
}

// parse_call_args into e (positional, name=value, *args, **kwargs).
absl::Status TemplateParser::ParseCallArgs(Expr* e) {
  const Token& open = Cur();
  TAILOR_RETURN_IF_ERROR(ExpectOp("("));
  const auto invalid = [&]() {
    return SyntaxError(open.line, open.column, "invalid arguments",
                       "positional arguments, then name=value, *args and **kwargs");
  };
  bool require_comma = false;
  while (!IsOp(")")) {
    if (require_comma) {
      TAILOR_RETURN_IF_ERROR(ExpectOp(","));
      if (IsOp(")")) break;
    }
    if (IsOp("*")) {
      if (e->dyn_args != nullptr || e->dyn_kwargs != nullptr) return invalid();
      Next();
      TAILOR_ASSIGN_OR_RETURN(e->dyn_args, ParseExpression(true));
    } else if (IsOp("**")) {
      if (e->dyn_kwargs != nullptr) return invalid();
      Next();
      TAILOR_ASSIGN_OR_RETURN(e->dyn_kwargs, ParseExpression(true));
    } else if (Cur().kind == TokenKind::kName && Peek().kind == TokenKind::kOperator &&
               Peek().text == "=") {
      if (e->dyn_kwargs != nullptr) return invalid();
      Keyword kw;
      kw.name = Next().text;
      Next();
      TAILOR_ASSIGN_OR_RETURN(kw.value, ParseExpression(true));
      e->kwargs.push_back(std::move(kw));
    } else {
      if (e->dyn_args != nullptr || e->dyn_kwargs != nullptr || !e->kwargs.empty()) {
        return invalid();
      }
      TAILOR_ASSIGN_OR_RETURN(ExprPtr arg, ParseExpression(true));
      e->items.push_back(std::move(arg));
    }
    require_comma = true;
  }
  return ExpectOp(")");
}

absl::StatusOr<ExprPtr> TemplateParser::ParseCall(ExprPtr callee) {
  ExprPtr e = NewExpr(ExprKind::kCall, Cur());
  e->subject = std::move(callee);
  TAILOR_RETURN_IF_ERROR(ParseCallArgs(e.get()));
  TAILOR_RETURN_IF_ERROR(Seal(e.get()));
  return e;
}

absl::StatusOr<std::string> TemplateParser::ParseDottedName() {
  if (Cur().kind != TokenKind::kName) return Fail("a name");
  std::string name = Next().text;
  while (SkipOp(".")) {
    if (Cur().kind != TokenKind::kName) return Fail("a name");
    absl::StrAppend(&name, ".", Next().text);
  }
  return name;
}

void TemplateParser::NoteUnknown(const Expr& e, bool is_filter) {
  if (is_filter ? IsKnownFilter(e.name) : IsKnownTest(e.name)) return;
  unknowns_.push_back(Unknown{e.line, e.column, e.name, is_filter, soft_});
}

absl::StatusOr<ExprPtr> TemplateParser::ParseFilter(ExprPtr node, bool start_inline) {
  while (IsOp("|") || start_inline) {
    if (!start_inline) Next();
    start_inline = false;
    ExprPtr e = NewExpr(ExprKind::kFilter, Cur());
    TAILOR_ASSIGN_OR_RETURN(e->name, ParseDottedName());
    if (IsOp("(")) TAILOR_RETURN_IF_ERROR(ParseCallArgs(e.get()));
    NoteUnknown(*e, true);
    e->subject = std::move(node);
    TAILOR_RETURN_IF_ERROR(Seal(e.get()));
    node = std::move(e);
  }
  return node;
}

absl::StatusOr<ExprPtr> TemplateParser::ParseTest(ExprPtr node) {
  const Token& is = Next();
  const bool negated = SkipName("not");
  ExprPtr e = NewExpr(ExprKind::kTest, Cur());
  TAILOR_ASSIGN_OR_RETURN(e->name, ParseDottedName());
  const Token& t = Cur();
  if (IsOp("(")) {
    TAILOR_RETURN_IF_ERROR(ParseCallArgs(e.get()));
  } else if ((t.kind == TokenKind::kName || t.kind == TokenKind::kString ||
              t.kind == TokenKind::kInteger || t.kind == TokenKind::kFloat || IsOp("[") ||
              IsOp("{")) &&
             !IsName("else") && !IsName("or") && !IsName("and")) {
    // One argument without parentheses: `x is divisibleby 3`, `x is sameas none`.
    if (IsName("is")) return Fail("an argument (tests cannot be chained)");
    TAILOR_ASSIGN_OR_RETURN(ExprPtr arg, ParsePrimary());
    TAILOR_ASSIGN_OR_RETURN(arg, ParsePostfix(std::move(arg)));
    e->items.push_back(std::move(arg));
  }
  NoteUnknown(*e, false);
  e->subject = std::move(node);
  TAILOR_RETURN_IF_ERROR(Seal(e.get()));
  if (!negated) return e;
  ExprPtr n = NewExpr(ExprKind::kNot, is);
  n->items.push_back(std::move(e));
  TAILOR_RETURN_IF_ERROR(Seal(n.get()));
  return n;
}

}  // namespace tailor::service::jinja
