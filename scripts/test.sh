#!/usr/bin/env bash
# Builds tailor and runs every test suite (CTest). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${JOBS:-$(nproc)}"
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" >/dev/null
fi
cmake --build build -j "$JOBS"
cd build
ctest --output-on-failure -j "$JOBS" "$@"
