#!/usr/bin/env bash
# Prefix affinity, measured: one shared-prefix trace replayed through HAProxy over N replicas
# (scripts/cluster.sh), once per policy (leastconn, then prefix), each on fresh replicas (cold
# caches). Prints cluster_bench's line per policy; JSON per policy in $OUT (default /tmp).
#
#   bench/cluster_bench.sh [--replicas N (3)] [--port P (18090)] [--package DIR] [--repeats R (1)]
#                          [-- make_trace flags replacing the defaults below]
# Needs build/tailor, build/make_trace, build/cluster_bench and haproxy.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
N=3 PORT=18090 PACKAGE="$ROOT/build/default-package" REPEATS=1 OUT="${OUT:-/tmp}"
TRACE_FLAGS=(--requests 600 --rate 30 --prompt-len lognormal:32:0.5 --output-len lognormal:32:0.5
             --shared-prefix-fraction 0.5 --num-prefixes 48 --prefix-len 128 --max-total-len 320 --seed 7)
while [ $# -gt 0 ]; do
  case "$1" in
    --replicas) N="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --package) PACKAGE="$2"; shift 2 ;;
    --repeats) REPEATS="$2"; shift 2 ;;
    --) shift; TRACE_FLAGS=("$@"); break ;;
    *) echo "cluster_bench.sh: unexpected argument '$1'" >&2; exit 2 ;;
  esac
done
export TAILOR_CLUSTER_DIR="${TAILOR_CLUSTER_DIR:-/tmp/tailor-cluster-bench-$$}"
TRACE="$OUT/cluster_bench_trace.jsonl"
"$ROOT/build/make_trace" --out "$TRACE" "${TRACE_FLAGS[@]}" >&2
trap '"$ROOT/scripts/cluster.sh" stop >/dev/null 2>&1 || true' EXIT
for r in $(seq "$REPEATS"); do
  for policy in leastconn prefix; do
    "$ROOT/scripts/cluster.sh" start "$N" --port "$PORT" --policy "$policy" --package "$PACKAGE" >&2
    ports="$("$ROOT/scripts/cluster.sh" status | awk '{print $6}' | paste -sd, -)"
    "$ROOT/build/cluster_bench" --url "http://127.0.0.1:$PORT" --trace "$TRACE" --package "$PACKAGE" \
      --replicas "$ports" --label "$policy" --json "$OUT/cluster_bench_${policy}_$r.json" || true
    "$ROOT/scripts/cluster.sh" stop
  done
done
