#!/usr/bin/env bash
# One-command set-up: installs every dependency from Debian's packages, configures and builds
# tailor into build/, then compiles the default package (build/default-package). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake pkg-config
      libabsl-dev libsentencepiece-dev nlohmann-json3-dev libcpp-httplib-dev libeigen3-dev
      libgtest-dev libgmock-dev libbenchmark-dev libreadline-dev libpcre2-dev libutf8proc-dev
      curl ca-certificates haproxy
      clang-14 libclang-rt-14-dev)  # the fuzz build (scripts/fuzz.sh): clang with libFuzzer

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

JOBS="${JOBS:-$(nproc)}"
cmake -S . -B build -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" >/dev/null
cmake --build build -j "$JOBS"

if [ -x scripts/make-default-package.sh ]; then
  scripts/make-default-package.sh
fi
echo "setup: done. Try: ./build/tailor generate --prompt 'Once upon a time'" >&2
