// jinja2's built-in filters, tests and global functions, transformers' additions (tojson with
// json.dumps' options, raise_exception, strftime_now), and the Python methods of str, dict and
// list that templates call. Stateless tables; thread-safe.
#ifndef TAILOR_SERVICE_JINJA_BUILTINS_H_
#define TAILOR_SERVICE_JINJA_BUILTINS_H_

#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/jinja_value.h"

namespace tailor::service::jinja {

bool IsKnownFilter(absl::string_view name);
// jinja2 filters this interpreter does not implement (groupby, slice, urlize, ...).
bool IsUnsupportedJinjaFilter(absl::string_view name);
bool IsKnownTest(absl::string_view name);

// `input | name(args)`; an unknown name is a runtime error ("No filter named 'x'.").
absl::StatusOr<Value> ApplyFilter(Interpreter& interp, absl::string_view name, const Value& input,
                                  CallArgs args);
// `input is name(args)`.
absl::StatusOr<bool> ApplyTest(Interpreter& interp, absl::string_view name, const Value& input,
                               CallArgs args);

// The global functions (range, dict, namespace, raise_exception, strftime_now); Undefined for
// other names.
Value LookupGlobal(absl::string_view name);

// Attribute `name` of a str, dict, list or tuple that is a Python method: true with *method set
// to the bound method, or (for methods that modify a list/dict, which transformers' sandbox
// forbids) to an Undefined whose use reports jinja2's SecurityError message.
bool LookupMethod(const Value& receiver, absl::string_view name, Value* method);

// Python's `format % args` (%s %r %a %d %i %u %f %F %e %E %g %G %x %X %o %c %%, flags, width,
// precision, %(name)s with a dict).
absl::StatusOr<std::string> PercentFormat(const std::string& format, const Value& args);

// Binds call arguments to a Python signature: (*out)[i] is parameter names[i], if given.
// Errors read like Python's ("f() got an unexpected keyword argument 'x'").
absl::Status BindArgs(absl::string_view function, const CallArgs& args,
                      std::initializer_list<absl::string_view> names,
                      std::vector<std::optional<Value>>* out, size_t required = 0);

// jinja2's make_attrgetter: "a.b.0" looks up a, then b, then item 0, through GetItem.
absl::StatusOr<Value> GetAttributePath(Interpreter& interp, const Value& item,
                                       const Value& attribute);

}  // namespace tailor::service::jinja

#endif  // TAILOR_SERVICE_JINJA_BUILTINS_H_
