#!/usr/bin/env bash
# N `tailor serve` replicas behind HAProxy, all on loopback ports, for a user on one machine.
#
#   scripts/cluster.sh start N [--package DIR] [--port P] [--policy leastconn|prefix]
#       starts N replicas (each on a free port, with an agent-check port) and HAProxy on
#       127.0.0.1:P (default 8080) with deploy/haproxy/haproxy.cfg.in (and sse_guard.lua); prints
#       "balancer: http://127.0.0.1:P" on stdout once HAProxy sees every replica healthy.
#   scripts/cluster.sh status
#       one line per replica: "replica I pid PID port PORT up|down" (up: the process runs and
#       HAProxy's health check passes).
#   scripts/cluster.sh stop
#       drains and stops the replicas (SIGTERM; requests in flight finish), then HAProxy.
#
# Environment: TAILOR_CLUSTER_DIR (state, sockets and logs; default
# $XDG_RUNTIME_DIR/tailor-cluster or /tmp/tailor-cluster-$USER), TAILOR_BIN (default
# build/tailor), TAILOR_PREFIX_CHARS (K, the prompt bytes the prefix policy hashes; default 64),
# TAILOR_SERVE_ARGS (more `tailor serve` flags, e.g. "--kv-cache-mb 64").
# Exit status: 0 done, 2 bad usage, 1 a failure (the message names it).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ -n "${XDG_RUNTIME_DIR:-}" ]; then DEFAULT_DIR="$XDG_RUNTIME_DIR/tailor-cluster"; else DEFAULT_DIR="/tmp/tailor-cluster-${USER:-$(id -un)}"; fi
RUN="${TAILOR_CLUSTER_DIR:-$DEFAULT_DIR}"
BIN="${TAILOR_BIN:-$ROOT/build/tailor}"
TEMPLATE="$ROOT/deploy/haproxy/haproxy.cfg.in"
PREFIX_CHARS="${TAILOR_PREFIX_CHARS:-64}"

die() { echo "cluster.sh: $1" >&2; exit "${2:-1}"; }
usage() {
  echo "usage: scripts/cluster.sh start N [--package DIR] [--port P] [--policy leastconn|prefix]" >&2
  echo "       scripts/cluster.sh status | stop" >&2
  exit 2
}

# True when PID is alive and runs the command we started (guards against a reused pid).
ours() {
  local pid="$1" what="$2"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- "$what"
}

# HAProxy's statistics as CSV (empty when HAProxy is not answering).
stats_csv() {
  curl -s --max-time 2 --unix-socket "$RUN/stats-http.sock" 'http://localhost/;csv' 2>/dev/null || true
}

# "UP", "DOWN", ... for server rI of the active backend.
server_status() {
  local csv="$1" i="$2" backend
  backend="tailor_$(cat "$RUN/policy")"
  awk -F, -v b="$backend" -v s="r$i" '$1 == b && $2 == s { print $18 }' <<<"$csv"
}

stop_all() {
  if [ -f "$RUN/replicas" ]; then
    local i pid port aport
    while read -r i pid port aport; do
      ours "$pid" " serve " && kill -TERM "$pid" 2>/dev/null || true
    done <"$RUN/replicas"
    # Requests in flight finish (up to --shutdown-timeout, 30 s); then whatever is left is killed.
    local deadline=$((SECONDS + 40))
    while read -r i pid port aport; do
      while ours "$pid" " serve " && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
      if ours "$pid" " serve "; then kill -KILL "$pid" 2>/dev/null || true; fi
    done <"$RUN/replicas"
  fi
  if [ -f "$RUN/haproxy.pid" ]; then
    local hpid
    hpid="$(cat "$RUN/haproxy.pid")"
    if ours "$hpid" haproxy; then
      kill -TERM "$hpid" 2>/dev/null || true
      for _ in $(seq 50); do ours "$hpid" haproxy || break; sleep 0.1; done
    fi
  fi
  rm -f "$RUN/replicas" "$RUN/replicas.starting" "$RUN/haproxy.pid" "$RUN/haproxy.cfg" "$RUN/policy" "$RUN/port" \
        "$RUN/haproxy.sock" "$RUN/stats-http.sock" "$RUN/http.sock"
}

cmd_start() {
  [ $# -ge 1 ] || usage
  local n="$1"; shift
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 64 ] || die "N: expected a replica count from 1 to 64, got '$n'" 2
  local package="$ROOT/build/default-package" port=8080 policy=leastconn
  while [ $# -gt 0 ]; do
    case "$1" in
      --package) [ $# -ge 2 ] || die "--package: expected a directory" 2; package="$2"; shift 2 ;;
      --port) [ $# -ge 2 ] || die "--port: expected a port" 2; port="$2"; shift 2 ;;
      --policy) [ $# -ge 2 ] || die "--policy: expected leastconn or prefix" 2; policy="$2"; shift 2 ;;
      *) die "unexpected argument '$1'" 2 ;;
    esac
  done
  [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "--port: expected 1-65535, got '$port'" 2
  case "$policy" in leastconn|prefix) ;; *) die "--policy: expected leastconn or prefix, got '$policy'" 2 ;; esac
  [[ "$PREFIX_CHARS" =~ ^[0-9]+$ ]] && [ "$PREFIX_CHARS" -ge 1 ] || die "TAILOR_PREFIX_CHARS: expected a positive integer, got '$PREFIX_CHARS'" 2
  [ -f "$package/manifest.json" ] || die "--package: '$package' is not a package directory (no manifest.json); build one with scripts/make-default-package.sh" 2
  [ -x "$BIN" ] || die "no tailor executable at $BIN (build it: cmake --build build --target tailor)"
  command -v haproxy >/dev/null || die "haproxy is not installed (Debian: apt-get install haproxy)"
  command -v curl >/dev/null || die "curl is not installed (Debian: apt-get install curl)"
  [ -f "$TEMPLATE" ] && [ -f "$(dirname "$TEMPLATE")/sse_guard.lua" ] || die "missing $TEMPLATE or sse_guard.lua next to it"
  if [ -f "$RUN/haproxy.pid" ] && ours "$(cat "$RUN/haproxy.pid")" haproxy; then
    die "a cluster is already running (state in $RUN): scripts/cluster.sh stop first"
  fi
  mkdir -p "$RUN"
  chmod 700 "$RUN"
  stop_all  # leftovers of a cluster that died
  echo "$policy" >"$RUN/policy"
  echo "$port" >"$RUN/port"
  package="$(cd "$package" && pwd)"
  # shellcheck disable=SC2086  # TAILOR_SERVE_ARGS is a list of flags
  for i in $(seq "$n"); do
    nohup "$BIN" serve --package "$package" --host 127.0.0.1 --port 0 --agent-port 0 --drain-delay 1 \
      ${TAILOR_SERVE_ARGS:-} </dev/null >"$RUN/replica-$i.log" 2>&1 &
    echo "$i $!" >>"$RUN/replicas.starting"
  done
  # Each replica prints its ports once its package is loaded.
  local deadline=$((SECONDS + 300)) i pid hp ap
  : >"$RUN/replicas"
  while read -r i pid; do
    hp=""
    while [ -z "$hp" ]; do
      hp="$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$RUN/replica-$i.log" | grep -o '[0-9]*$' || true)"
      if [ -z "$hp" ]; then
        if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
          echo "cluster.sh: replica $i did not start; its log ($RUN/replica-$i.log):" >&2
          tail -5 "$RUN/replica-$i.log" >&2
          mv "$RUN/replicas.starting" "$RUN/replicas"
          stop_all
          exit 1
        fi
        sleep 0.1
      fi
    done
    ap="$(grep -o 'agent-check on 127.0.0.1:[0-9]*' "$RUN/replica-$i.log" | grep -o '[0-9]*$')"
    echo "$i $pid $hp $ap" >>"$RUN/replicas"
  done <"$RUN/replicas.starting"
  rm -f "$RUN/replicas.starting"

  local servers=""
  while read -r i pid hp ap; do
    servers+="    server r$i 127.0.0.1:$hp agent-port $ap"$'\n'
  done <"$RUN/replicas"
  SERVERS="$servers" awk -v bind="127.0.0.1:$port" -v run="$RUN" -v policy="$policy" -v k="$PREFIX_CHARS" \
      -v deploy="$(dirname "$TEMPLATE")" '
    $0 == "@SERVERS@" { printf "%s", ENVIRON["SERVERS"]; next }
    { gsub(/@BIND@/, bind); gsub(/@RUN_DIR@/, run); gsub(/@POLICY@/, policy); gsub(/@PREFIX_CHARS@/, k)
      gsub(/@DEPLOY_DIR@/, deploy); print }
  ' "$TEMPLATE" >"$RUN/haproxy.cfg"
  if ! haproxy -c -q -f "$RUN/haproxy.cfg" >"$RUN/haproxy.log" 2>&1 ||
     ! haproxy -D -p "$RUN/haproxy.pid" -f "$RUN/haproxy.cfg" >>"$RUN/haproxy.log" 2>&1; then
    echo "cluster.sh: HAProxy did not start (port $port taken?):" >&2
    tail -5 "$RUN/haproxy.log" >&2
    stop_all
    exit 1
  fi
  # Ready when HAProxy's own checks pass for every replica.
  deadline=$((SECONDS + 60))
  while :; do
    local csv up=0
    csv="$(stats_csv)"
    while read -r i pid hp ap; do
      [ "$(server_status "$csv" "$i")" = "UP" ] && up=$((up + 1))
    done <"$RUN/replicas"
    [ "$up" -eq "$n" ] && break
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "cluster.sh: only $up of $n replicas are up in HAProxy after 60 s (scripts/cluster.sh status)" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "balancer: http://127.0.0.1:$port"
}

cmd_status() {
  [ -f "$RUN/replicas" ] || die "no cluster is running (state dir $RUN)"
  local csv i pid hp ap state
  csv="$(stats_csv)"
  [ -n "$csv" ] || echo "cluster.sh: HAProxy is not answering on $RUN/stats-http.sock" >&2
  while read -r i pid hp ap; do
    state=down
    if ours "$pid" " serve " && [ "$(server_status "$csv" "$i")" = "UP" ]; then state=up; fi
    echo "replica $i pid $pid port $hp $state"
  done <"$RUN/replicas"
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  status) shift; [ $# -eq 0 ] || usage; cmd_status ;;
  stop)
    shift; [ $# -eq 0 ] || usage
    [ -f "$RUN/replicas" ] || [ -f "$RUN/haproxy.pid" ] || die "no cluster is running (state dir $RUN)"
    stop_all
    ;;
  -h|--help) usage ;;
  *) usage ;;
esac
