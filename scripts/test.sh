#!/usr/bin/env bash
# Builds tailor and runs every test suite (CTest). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${JOBS:-$(nproc)}"
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" >/dev/null
fi
cmake --build build -j "$JOBS"
# The CLI tests use the default package; remake it if this build changed the compiler.
scripts/make-default-package.sh
cd build
ctest --output-on-failure -j "$JOBS" "$@"
