#!/usr/bin/env bash
# Compiles build/default-package from stories260K with configs/default-specializations.json
# (BUILD_DIR=build-asan: that build's tailor makes build-asan/default-package, the package its
# tests use).
# The model comes from ../shared/models/stories260K when present; otherwise it is downloaded
# from karpathy/tinyllamas on Hugging Face into build/models/.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${BUILD_DIR:-build}"
OUT="$BUILD/default-package"
SPEC=configs/default-specializations.json
SHARED=../shared/models/stories260K
if [ -f "$SHARED/stories260K.bin" ] && [ -f "$SHARED/tok512.model" ]; then
  MODEL="$SHARED/stories260K.bin"; TOK="$SHARED/tok512.model"
else
  mkdir -p build/models
  MODEL=build/models/stories260K.bin; TOK=build/models/tok512.bin
  for f in stories260K.bin tok512.bin; do
    if [ ! -s "build/models/$f" ]; then
      echo "setup: downloading $f (karpathy/tinyllamas)" >&2
      if ! curl -fsSL --retry 2 -o "build/models/$f.tmp" \
           "https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/$f"; then
        rm -f "build/models/$f.tmp"
        echo "setup: cannot download $f: this machine seems offline." >&2
        echo "setup: put stories260K.bin and tok512.bin in build/models/ (or ../shared/models/stories260K/)" >&2
        echo "setup: and run scripts/make-default-package.sh again." >&2
        exit 1
      fi
      mv "build/models/$f.tmp" "build/models/$f"
    fi
  done
fi
# Rebuild only when the package is missing or older than its inputs or the compiler.
if [ -f "$OUT/manifest.json" ] && [ "$OUT/manifest.json" -nt "$SPEC" ] && [ "$OUT/manifest.json" -nt "$BUILD/tailor" ]; then
  echo "setup: $OUT is up to date" >&2
  exit 0
fi
rm -rf "$OUT"
"./$BUILD/tailor" compile --model "$MODEL" --tokenizer "$TOK" --specializations "$SPEC" --out "$OUT"
