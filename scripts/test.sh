#!/usr/bin/env bash
# Builds tailor and runs every test suite (CTest). Exits non-zero on any failure.
#
#   scripts/test.sh [CTEST ARGS...]                      Release build in build/, every test
#   scripts/test.sh --sanitize address,undefined [--ci]  ASan+UBSan build in build-asan/, every
#                                                        test (--ci: only the tests labelled
#                                                        `sanitize`, and only what they need built)
#   scripts/test.sh --sanitize thread                    TSan build in build-tsan/: the tests
#                                                        labelled `tsan` (scheduler, engine core,
#                                                        thread pool, server)
# Sanitized builds make their own default package (BUILD_DIR=... make-default-package.sh), since
# their tests read it from their own build directory. Suppressions: tests/sanitizers/.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${JOBS:-$(nproc)}"
SANITIZE=""
CI_SUBSET=0
CTEST_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize) SANITIZE="${2:?--sanitize needs address,undefined or thread}"; shift 2 ;;
    --sanitize=*) SANITIZE="${1#--sanitize=}"; shift ;;
    --ci) CI_SUBSET=1; shift ;;
    *) CTEST_ARGS+=("$1"); shift ;;
  esac
done

if [ -z "$SANITIZE" ]; then
  if [ ! -f build/CMakeCache.txt ]; then
    cmake -S . -B build -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" >/dev/null
  fi
  cmake --build build -j "$JOBS"
  # The CLI tests use the default package; remake it if this build changed the compiler.
  scripts/make-default-package.sh
  cd build
  ctest --output-on-failure -j "$JOBS" "${CTEST_ARGS[@]}"
  exit 0
fi

case "$SANITIZE" in
  address,undefined|undefined,address|address|undefined) DIR=build-asan ;;
  thread) DIR=build-tsan ;;
  *) echo "test.sh: --sanitize takes address,undefined or thread, got '$SANITIZE'" >&2; exit 2 ;;
esac
SUPP="$PWD/tests/sanitizers"
# Findings are fatal; leaks are checked at exit (servers started by tests included: their exit
# status turns non-zero). The variables reach every process the tests start.
export ASAN_OPTIONS="detect_leaks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$SUPP/lsan.supp"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$SUPP/tsan.supp"
cmake -S . -B "$DIR" -DCMAKE_BUILD_TYPE=Debug -DTAILOR_SANITIZE="$SANITIZE" >/dev/null
if [ "$DIR" = build-tsan ]; then
  cmake --build "$DIR" -j "$JOBS" --target tailor_tsan_tests
  LABEL=(-L tsan)
elif [ "$CI_SUBSET" = 1 ]; then
  cmake --build "$DIR" -j "$JOBS" --target tailor_sanitize_ci
  LABEL=(-L sanitize)
else
  cmake --build "$DIR" -j "$JOBS"
  LABEL=()
fi
BUILD_DIR="$DIR" scripts/make-default-package.sh
cd "$DIR"
ctest --output-on-failure -j "$JOBS" "${LABEL[@]}" "${CTEST_ARGS[@]}"
