#!/usr/bin/env bash
# libFuzzer targets of tailor's untrusted-input parsers (tests/fuzz/README.md).
#   scripts/fuzz.sh --list              the target names
#   scripts/fuzz.sh TARGET SECONDS      build if needed, run TARGET for SECONDS
#   scripts/fuzz.sh --all SECONDS       every target in turn, SECONDS each (CI)
#   scripts/fuzz.sh --build             build only
# Exits non-zero on a crash, a leak, a sanitizer report, an input slower than 1 s or over the
# memory limit; libFuzzer writes the input to build-fuzz/artifacts/TARGET/ (crash-*, leak-*,
# timeout-*, oom-*). Corpora live in build-fuzz/corpus/TARGET (seeded from tests/fuzz/corpus and
# the shared test files; they grow across runs). Extra libFuzzer flags: FUZZ_FLAGS="-runs=N".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD="${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
SHARED="$ROOT/../shared"
JOBS="${JOBS:-$(nproc)}"
TARGETS=(spec_config hf_config safetensors gguf llama2c sentencepiece_model tokenizer_json
         package_manifest calibration_profile exec_inputs openai_completions openai_chat
         batch_input chat_template)

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

build() {
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    CC=clang-14 CXX=clang++-14 cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTAILOR_FUZZ=ON >/dev/null
  fi
  cmake --build "$BUILD" -j "$JOBS" --target fuzz_targets
}

# Copies seeds into the target's corpus: the committed hand-written ones and, where the shared
# test files hold that format, small real files (never committed: they are model data).
seed() {
  local t=$1 dir="$BUILD/corpus/$1"
  mkdir -p "$dir"
  if [ -d "tests/fuzz/corpus/$t" ]; then cp -n tests/fuzz/corpus/"$t"/* "$dir"/ 2>/dev/null || true; fi
  local files=()
  case $t in
    spec_config) files=("$ROOT"/configs/*.json) ;;
    hf_config) files=("$SHARED"/models/*/config.json) ;;
    safetensors) files=("$SHARED"/models/stories260K-hf/model.safetensors
                        "$SHARED"/models/tiny-mistral-f16/model.safetensors
                        "$SHARED"/models/tiny-llama-gqa-bf16-sharded/*.safetensors) ;;
    gguf) files=("$SHARED"/models/stories260K/stories260K.gguf
                 "$SHARED"/models/quant-test/quant-test-Q4_K_M.gguf)  # K-quant blocks
          python3 tests/fuzz/make_gguf_seeds.py "$dir" ;;  # few-KB llama/qwen2 files
    llama2c) files=("$SHARED"/models/stories260K/stories260K.bin) ;;
    sentencepiece_model) files=("$SHARED"/models/stories260K/tok512.model) ;;
    package_manifest) files=("$ROOT"/build/default-package/manifest.json) ;;
    chat_template) files=("$SHARED"/models/*/tokenizer_config.json) ;;
  esac
  local f i=0
  for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    i=$((i + 1))
    if [ "$t" = chat_template ]; then  # the template text out of tokenizer_config.json
      python3 -c 'import json,sys; t=json.load(open(sys.argv[1])).get("chat_template"); t and sys.stdout.write(t if isinstance(t,str) else t[0]["template"])' \
        "$f" > "$dir/shared-$i.jinja" 2>/dev/null || true
      [ -s "$dir/shared-$i.jinja" ] || rm -f "$dir/shared-$i.jinja"
    else
      cp -n "$f" "$dir/shared-$i-$(basename "$f")"
    fi
  done
}

run() {
  local t=$1 seconds=$2
  local bin="$BUILD/${t}_fuzz"
  [ -x "$bin" ] || { echo "fuzz: no target '$t' (see --list)" >&2; exit 2; }
  seed "$t"
  mkdir -p "$BUILD/artifacts/$t"
  echo "fuzz: $t for ${seconds}s" >&2
  # detect_leaks: LeakSanitizer at exit and per input; -timeout: one input over 1 s fails;
  # -rss_limit_mb / -malloc_limit_mb: a parser that allocates what its input does not justify
  # fails (the seeds are at most a few MB).
  ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=0:${ASAN_OPTIONS:-}" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}" \
  TAILOR_FUZZ_PACKAGE="$ROOT/build/default-package" \
    "$bin" -max_total_time="$seconds" -timeout=1 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
      -print_final_stats=1 \
      -artifact_prefix="$BUILD/artifacts/$t/" ${FUZZ_FLAGS:-} "$BUILD/corpus/$t"
}

case "${1:-}" in
  --list) printf '%s\n' "${TARGETS[@]}" ;;
  --build) build ;;
  --all)
    [ $# -eq 2 ] || usage
    build
    for t in "${TARGETS[@]}"; do run "$t" "$2"; done ;;
  ""|-h|--help) usage ;;
  *)
    [ $# -eq 2 ] || usage
    build
    run "$1" "$2" ;;
esac
