// jinja2 decides at compile time how each scope starts out binding the names it uses
// (idtracking.py): a name a scope assigns (set, macro, block set) and did not read before is
// *undefined* there until assigned, even if the render context or an enclosing scope has it; a
// name assigned only inside an `if` keeps the outer value until then. Nested scopes (for bodies,
// macros, call/filter/set/with blocks) read their enclosing scopes' variables as they are when
// read. AnalyzeScopes records those decisions in the tree (TemplateAst::scope, Stmt::scope,
// else_scope, test_scope) for the interpreter to apply when it enters each scope.
//
// Called once by the parser on a tree nothing else references yet; not thread-safe.
#ifndef TAILOR_SERVICE_JINJA_SCOPES_H_
#define TAILOR_SERVICE_JINJA_SCOPES_H_

#include "service/jinja_ast.h"

namespace tailor::service::jinja {

void AnalyzeScopes(TemplateAst* ast);

}  // namespace tailor::service::jinja

#endif  // TAILOR_SERVICE_JINJA_SCOPES_H_
