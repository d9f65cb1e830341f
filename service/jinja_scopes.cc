// A port of jinja2's symbol tracking (idtracking.Symbols, FrameSymbolVisitor, RootVisitor) to
// this interpreter's syntax tree.
#include "service/jinja_scopes.h"

#include <map>
#include <set>
#include <string>
#include <vector>

namespace tailor::service::jinja {
namespace {

enum class Load { kParameter, kResolve, kAlias, kUndefined };

// The names one scope declares and how each is first bound. Copied for the branches of an if.
class Symbols {
 public:
  explicit Symbols(const Symbols* parent) : parent_(parent) {}

  bool FindRef(const std::string& name) const {
    for (const Symbols* s = this; s != nullptr; s = s->parent_) {
      if (s->loads_.count(name) != 0) return true;
    }
    return false;
  }
  bool OuterHas(const std::string& name) const {
    return parent_ != nullptr && parent_->FindRef(name);
  }

  void Store(const std::string& name) {
    stores_.insert(name);
    if (loads_.count(name) == 0) loads_[name] = OuterHas(name) ? Load::kAlias : Load::kUndefined;
  }
  void DeclareParameter(const std::string& name) {
    stores_.insert(name);
    loads_[name] = Load::kParameter;
  }
  void LoadName(const std::string& name) {
    if (!FindRef(name)) loads_[name] = Load::kResolve;
  }

  // After an if: names some branch assigns (and this scope had not) start with the outer value.
  void BranchUpdate(const std::vector<const Symbols*>& branches) {
    std::set<std::string> new_stores;
    for (const Symbols* branch : branches) {
      new_stores.insert(branch->stores_.begin(), branch->stores_.end());
    }
    for (const std::string& name : stores_) new_stores.erase(name);
    for (const Symbols* branch : branches) {
      for (const auto& [name, load] : branch->loads_) loads_[name] = load;
      stores_.insert(branch->stores_.begin(), branch->stores_.end());
    }
    for (const std::string& name : new_stores) {
      loads_[name] = OuterHas(name) ? Load::kAlias : Load::kResolve;
    }
  }

  ScopeEntries Entries() const {
    ScopeEntries entries;
    for (const auto& [name, load] : loads_) {
      switch (load) {
        case Load::kParameter:
          break;  // bound by the loop or call itself
        case Load::kResolve:
          entries.emplace_back(name, ScopeLoad::kResolve);
          break;
        case Load::kAlias:
          entries.emplace_back(name, ScopeLoad::kAlias);
          break;
        case Load::kUndefined:
          entries.emplace_back(name, ScopeLoad::kUndefined);
          break;
      }
    }
    return entries;
  }

 private:
  const Symbols* parent_;
  std::map<std::string, Load> loads_;  // the names this scope declares
  std::set<std::string> stores_;
};

// ---- one scope's own statements (FrameSymbolVisitor) ----

void VisitExpr(const Expr* e, Symbols* sym) {
  if (e == nullptr) return;
  if (e->kind == ExprKind::kName) sym->LoadName(e->name);
  VisitExpr(e->subject.get(), sym);
  for (const ExprPtr& item : e->items) VisitExpr(item.get(), sym);
  for (const Keyword& kw : e->kwargs) VisitExpr(kw.value.get(), sym);
  VisitExpr(e->dyn_args.get(), sym);
  VisitExpr(e->dyn_kwargs.get(), sym);
}

void VisitTarget(const Target& t, bool parameter, Symbols* sym) {
  switch (t.kind) {
    case Target::Kind::kName:
      if (parameter) {
        sym->DeclareParameter(t.name);
      } else {
        sym->Store(t.name);
      }
      break;
    case Target::Kind::kNamespaceAttr:
      sym->LoadName(t.name);
      break;
    case Target::Kind::kTuple:
      for (const Target& item : t.items) VisitTarget(item, parameter, sym);
      break;
  }
}

void VisitStmts(const StmtList& body, Symbols* sym);

void VisitIf(const Stmt& s, Symbols* sym) {
  VisitExpr(s.branches[0].test.get(), sym);
  Symbols body = *sym;
  VisitStmts(s.branches[0].body, &body);
  // jinja2 keeps elif branches as a list of nested ifs visited in one copy.
  Symbols elifs = *sym;
  for (size_t i = 1; i < s.branches.size(); ++i) {
    VisitExpr(s.branches[i].test.get(), &elifs);
    Symbols branch = elifs;
    VisitStmts(s.branches[i].body, &branch);
    const Symbols empty = elifs;
    elifs.BranchUpdate({&branch, &empty, &empty});
  }
  Symbols otherwise = *sym;
  VisitStmts(s.else_body, &otherwise);
  sym->BranchUpdate({&body, &elifs, &otherwise});
}

void VisitStmt(const Stmt& s, Symbols* sym) {
  switch (s.kind) {
    case StmtKind::kOutput:
      VisitExpr(s.expr.get(), sym);
      break;
    case StmtKind::kIf:
      VisitIf(s, sym);
      break;
    case StmtKind::kFor:
      VisitExpr(s.expr.get(), sym);
      break;  // the iterable; the rest is inner
    case StmtKind::kSet:
      VisitExpr(s.expr.get(), sym);
      VisitTarget(s.target, false, sym);
      break;
    case StmtKind::kSetBlock:
      VisitTarget(s.target, false, sym);
      break;
    case StmtKind::kMacro:
      sym->Store(s.text);
      break;
    case StmtKind::kCallBlock:
    case StmtKind::kFilterBlock:
      VisitExpr(s.expr.get(), sym);
      break;
    case StmtKind::kWith:
      for (const auto& [target, value] : s.assignments) VisitExpr(value.get(), sym);
      break;
    default:
      break;  // text, break, continue, generation
  }
}

void VisitStmts(const StmtList& body, Symbols* sym) {
  for (const StmtPtr& s : body) VisitStmt(*s, sym);
}

// ---- nested scopes (RootVisitor), each analysed with its enclosing scope complete ----

void AnalyzeNested(const StmtList& body, const Symbols& parent);

ScopeEntries AnalyzeBody(const StmtList& body, Symbols* sym) {
  VisitStmts(body, sym);
  AnalyzeNested(body, *sym);
  return sym->Entries();
}

void AnalyzeCallable(Stmt* s, const Symbols& parent) {
  Symbols sym(&parent);
  for (const MacroParam& p : s->params) sym.DeclareParameter(p.name);
  for (const MacroParam& p : s->params) VisitExpr(p.default_value.get(), &sym);
  VisitStmts(s->body, &sym);
  for (const char* special : {"caller", "varargs", "kwargs"}) sym.DeclareParameter(special);
  AnalyzeNested(s->body, sym);
  s->scope = sym.Entries();
}

void AnalyzeStmt(Stmt* s, const Symbols& parent) {
  switch (s->kind) {
    case StmtKind::kIf:
      for (IfBranch& branch : s->branches) AnalyzeNested(branch.body, parent);
      AnalyzeNested(s->else_body, parent);
      break;
    case StmtKind::kFor: {
      Symbols body(&parent);
      body.DeclareParameter("loop");
      VisitTarget(s->target, true, &body);
      s->scope = AnalyzeBody(s->body, &body);
      Symbols otherwise(&parent);
      s->else_scope = AnalyzeBody(s->else_body, &otherwise);
      Symbols test(&parent);
      VisitTarget(s->target, true, &test);
      VisitExpr(s->condition.get(), &test);
      s->test_scope = test.Entries();
      break;
    }
    case StmtKind::kMacro:
    case StmtKind::kCallBlock:
      AnalyzeCallable(s, parent);
      break;
    case StmtKind::kFilterBlock: {
      Symbols sym(&parent);
      VisitStmts(s->body, &sym);
      VisitExpr(s->expr.get(), &sym);
      AnalyzeNested(s->body, sym);
      s->scope = sym.Entries();
      break;
    }
    case StmtKind::kWith: {
      Symbols sym(&parent);
      for (const auto& [target, value] : s->assignments) VisitTarget(target, true, &sym);
      s->scope = AnalyzeBody(s->body, &sym);
      break;
    }
    case StmtKind::kSetBlock:
    case StmtKind::kScope: {
      Symbols sym(&parent);
      s->scope = AnalyzeBody(s->body, &sym);
      break;
    }
    default:
      break;
  }
}

void AnalyzeNested(const StmtList& body, const Symbols& parent) {
  for (const StmtPtr& s : body) AnalyzeStmt(s.get(), parent);
}

}  // namespace

void AnalyzeScopes(TemplateAst* ast) {
  Symbols root(nullptr);
  ast->scope = AnalyzeBody(ast->body, &root);
}

}  // namespace tailor::service::jinja
