// Python's arithmetic for the interpreter: + - * / // % ** on numbers (bool counting as int),
// concatenation and repetition of str/list/tuple, and `str % args` formatting.
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "service/jinja_builtins.h"
#include "service/jinja_eval.h"

namespace tailor::service::jinja {
namespace {

const char* OpSymbol(BinaryOp op) {
  switch (op) {
    case BinaryOp::kAdd:
      return "+";
    case BinaryOp::kSub:
      return "-";
    case BinaryOp::kMul:
      return "*";
    case BinaryOp::kDiv:
      return "/";
    case BinaryOp::kFloorDiv:
      return "//";
    case BinaryOp::kMod:
      return "%";
    case BinaryOp::kPow:
      return "** or pow()";
  }
  return "?";
}

absl::Status Unsupported(BinaryOp op, const Value& a, const Value& b) {
  return RuntimeError(absl::StrCat("unsupported operand type(s) for ", OpSymbol(op), ": '",
                                   TypeName(a), "' and '", TypeName(b), "'"));
}

absl::Status Overflow() { return RuntimeError("integer overflow (beyond 64 bits)"); }

// CPython's float divmod (floor division and modulo with the sign of the divisor).
void FloatDivMod(double vx, double wx, double* floordiv, double* mod) {
  double m = std::fmod(vx, wx);
  double div = (vx - m) / wx;
  if (m != 0.0) {
    if ((wx < 0) != (m < 0)) {
      m += wx;
      div -= 1.0;
    }
  } else {
    m = std::copysign(0.0, wx);
  }
  double fd;
  if (div != 0.0) {
    fd = std::floor(div);
    if (div - fd > 0.5) fd += 1.0;
  } else {
    fd = std::copysign(0.0, vx / wx);
  }
  *floordiv = fd;
  *mod = m;
}

absl::StatusOr<Value> IntPow(int64_t base, int64_t exp) {
  int64_t result = 1;
  while (exp > 0) {
    if (exp & 1) {
      if (__builtin_mul_overflow(result, base, &result)) return Overflow();
    }
    exp >>= 1;
    if (exp > 0 && __builtin_mul_overflow(base, base, &base)) return Overflow();
  }
  return Value::Int(result);
}

}  // namespace

absl::StatusOr<Value> Interpreter::Arith(BinaryOp op, const Value& a, const Value& b) {
  if (a.is_undefined()) return RuntimeError(a.str());
  if (b.is_undefined()) return RuntimeError(b.str());
  if (a.is_number() && b.is_number()) {
    const bool ints = a.is_integral() && b.is_integral();
    const int64_t x = a.as_int();
    const int64_t y = b.as_int();
    const double fx = a.as_float();
    const double fy = b.as_float();
    int64_t r = 0;
    switch (op) {
      case BinaryOp::kAdd:
        if (!ints) return Value::Float(fx + fy);
        if (__builtin_add_overflow(x, y, &r)) return Overflow();
        return Value::Int(r);
      case BinaryOp::kSub:
        if (!ints) return Value::Float(fx - fy);
        if (__builtin_sub_overflow(x, y, &r)) return Overflow();
        return Value::Int(r);
      case BinaryOp::kMul:
        if (!ints) return Value::Float(fx * fy);
        if (__builtin_mul_overflow(x, y, &r)) return Overflow();
        return Value::Int(r);
      case BinaryOp::kDiv:
        if (fy == 0.0) return RuntimeError("division by zero");
        return Value::Float(fx / fy);
      case BinaryOp::kFloorDiv:
      case BinaryOp::kMod: {
        const bool floordiv = op == BinaryOp::kFloorDiv;
        if (ints) {
          if (y == 0) {
            return RuntimeError(floordiv ? "integer division or modulo by zero"
                                         : "integer modulo by zero");
          }
          if (y == -1) {  // INT64_MIN / -1 overflows; the remainder is always 0
            if (!floordiv) return Value::Int(0);
            if (x == INT64_MIN) return Overflow();
            return Value::Int(-x);
          }
          int64_t q = x / y;
          int64_t m = x % y;
          if (m != 0 && ((m < 0) != (y < 0))) {
            q -= 1;
            m += y;
          }
          return Value::Int(floordiv ? q : m);
        }
        if (fy == 0.0)
          return RuntimeError(floordiv ? "float floor division by zero" : "float modulo");
        double fd = 0.0;
        double fm = 0.0;
        FloatDivMod(fx, fy, &fd, &fm);
        return Value::Float(floordiv ? fd : fm);
      }
      case BinaryOp::kPow:
        if (ints && y >= 0) return IntPow(x, y);
        if (fx == 0.0 && fy < 0) return RuntimeError("0.0 cannot be raised to a negative power");
        if (fx < 0 && fy != std::floor(fy)) {
          return RuntimeError("a negative number raised to a fractional power (complex result)");
        }
        {
          const double p = std::pow(fx, fy);
          if (std::isinf(p) && std::isfinite(fx) && std::isfinite(fy)) {
            return RuntimeError("(34, 'Numerical result out of range')");
          }
          return Value::Float(p);
        }
    }
  }
  const auto repeat_count = [&](const Value& n) -> int64_t { return n.as_int(); };
  switch (op) {
    case BinaryOp::kAdd:
      if (a.is_string() && b.is_string()) {
        TAILOR_RETURN_IF_ERROR(Produced(a.str().size() + b.str().size()));
        return Value::String(a.str() + b.str());
      }
      if ((a.kind() == Value::Kind::kList || a.kind() == Value::Kind::kTuple) &&
          a.kind() == b.kind()) {
        std::vector<Value> items = a.items();
        items.insert(items.end(), b.items().begin(), b.items().end());
        TAILOR_RETURN_IF_ERROR(Produced(items.size() * sizeof(Value)));
        return Value::Sequence(a.kind(), std::move(items));
      }
      if (a.is_string() || a.kind() == Value::Kind::kList || a.kind() == Value::Kind::kTuple) {
        return RuntimeError(absl::StrCat("can only concatenate ", TypeName(a), " (not \"",
                                         TypeName(b), "\") to ", TypeName(a)));
      }
      return Unsupported(op, a, b);
    case BinaryOp::kMul: {
      const Value* seq = nullptr;
      const Value* count = nullptr;
      if (b.is_integral()) seq = &a, count = &b;
      if (a.is_integral()) seq = &b, count = &a;
      if (seq == nullptr || !(seq->is_string() || seq->kind() == Value::Kind::kList ||
                              seq->kind() == Value::Kind::kTuple)) {
        if ((a.is_string() || a.is_sequence()) && b.kind() == Value::Kind::kFloat) {
          return RuntimeError(absl::StrCat("can't multiply sequence by non-int of type 'float'"));
        }
        return Unsupported(op, a, b);
      }
      const int64_t n = std::max<int64_t>(0, repeat_count(*count));
      if (seq->is_string()) {
        const size_t unit = seq->str().size();
        if (unit != 0 && static_cast<uint64_t>(n) > limits().max_output_bytes / unit) {
          return Produced(limits().max_output_bytes + 1);
        }
        TAILOR_RETURN_IF_ERROR(Produced(unit * static_cast<size_t>(n)));
        std::string out;
        out.reserve(unit * static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) out += seq->str();
        return Value::String(std::move(out));
      }
      const size_t unit = seq->items().size() * sizeof(Value);
      if (unit != 0 && static_cast<uint64_t>(n) > limits().max_output_bytes / unit) {
        return Produced(limits().max_output_bytes + 1);
      }
      TAILOR_RETURN_IF_ERROR(Produced(unit * static_cast<size_t>(n)));
      std::vector<Value> items;
      for (int64_t i = 0; i < n; ++i) {
        items.insert(items.end(), seq->items().begin(), seq->items().end());
      }
      return Value::Sequence(seq->kind(), std::move(items));
    }
    case BinaryOp::kMod:
      if (a.is_string()) {
        TAILOR_ASSIGN_OR_RETURN(std::string s, PercentFormat(a.str(), b));
        TAILOR_RETURN_IF_ERROR(Produced(s.size()));
        return Value::String(std::move(s));
      }
      return Unsupported(op, a, b);
    default:
      return Unsupported(op, a, b);
  }
}

}  // namespace tailor::service::jinja
