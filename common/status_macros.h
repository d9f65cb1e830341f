// Early-return helpers for absl::Status / absl::StatusOr (abseil 20220623 has no public ones).
#ifndef TAILOR_COMMON_STATUS_MACROS_H_
#define TAILOR_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define TAILOR_CONCAT_INNER_(a, b) a##b
#define TAILOR_CONCAT_(a, b) TAILOR_CONCAT_INNER_(a, b)

#define TAILOR_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::absl::Status tailor_status_ = (expr);          \
    if (!tailor_status_.ok()) return tailor_status_; \
  } while (0)

#define TAILOR_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return std::move(tmp).status();      \
  lhs = std::move(tmp).value()

// TAILOR_ASSIGN_OR_RETURN(auto x, MakeX()); declares or assigns lhs from a StatusOr.
#define TAILOR_ASSIGN_OR_RETURN(lhs, expr) \
  TAILOR_ASSIGN_OR_RETURN_IMPL_(TAILOR_CONCAT_(tailor_statusor_, __LINE__), lhs, expr)

#endif  // TAILOR_COMMON_STATUS_MACROS_H_
