#!/usr/bin/env bash
# Echo and idle-capacity benchmark of a standalone shaddock connector
# (examples/echo) with the load robot (tools/robot):
#   1. echo server with -rate -1 (no per-session limit; its default of
#      1000 req/s would answer 429): robot echo with 100, then 1000 clients;
#   2. a fresh echo server with the default heartbeat (30 s): robot idle with
#      15,000 sessions held idle, server RSS per session.
# Prints a summary table; JSON results and logs stay in $OUT.
#
# Env: OUT (results folder), TRANSPORT (ws|tcp, default ws), DURATION (10s),
# WARMUP (2s), SESSIONS (15000), HOLD (30s), ECHO_CLIENTS ("100 1000"),
# QUIET_MAX / QUIET_PCT (wait for an idle machine before each run, see lib.sh).
# Everything listens on 127.0.0.1 (a free port); the script stops what it
# started, by pid.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=tools/bench/lib.sh
. "$ROOT/tools/bench/lib.sh"
OUT="${OUT:-/tmp/shaddock-bench/echo-$(date +%Y%m%d-%H%M%S)}"
TRANSPORT="${TRANSPORT:-ws}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
SESSIONS="${SESSIONS:-15000}"
HOLD="${HOLD:-30s}"
ECHO_CLIENTS="${ECHO_CLIENTS:-100 1000}"
WS=true; [ "$TRANSPORT" = tcp ] && WS=false

command -v jq >/dev/null || { echo "echo.sh: jq is required for the summary table" >&2; exit 1; }
mkdir -p "$OUT/bin"
echo "building examples/echo and tools/robot into $OUT/bin" >&2
(cd "$ROOT" && go build -o "$OUT/bin/echo" ./examples/echo && go build -o "$OUT/bin/robot" ./tools/robot)

SERVER_PID=""
stop_server() {
  local pid="$SERVER_PID"
  [ -n "$pid" ] || return 0
  SERVER_PID=""
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
trap 'stop_server; sched_restore' EXIT
sched_neutral
trap 'exit 130' INT TERM

# start_server NAME ARGS...: starts the echo connector on a free port; sets
# SERVER_PID and ADDR (read back from its "listening" log line).
start_server() {
  local name="$1"; shift
  "$OUT/bin/echo" -addr 127.0.0.1:0 "$@" >"$OUT/$name.log" 2>&1 &
  SERVER_PID=$!
  ADDR=""
  for _ in $(seq 1 100); do
    ADDR="$(sed -n 's/.*msg="echo connector listening" addr=\([0-9.]*:[0-9]*\).*/\1/p' "$OUT/$name.log" | head -1)"
    [ -n "$ADDR" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "echo server exited:" >&2; cat "$OUT/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$ADDR" ] || { echo "echo server did not report its address; see $OUT/$name.log" >&2; exit 1; }
  echo "started $name (pid $SERVER_PID) on $ADDR: echo $*" >&2
}

start_server echo-server -rate -1
for n in $ECHO_CLIENTS; do
  wait_quiet
  echo "== robot echo: $n clients ($TRANSPORT)" >&2
  "$OUT/bin/robot" echo -addr "$ADDR" -ws="$WS" -clients "$n" -duration "$DURATION" -warmup "$WARMUP" \
    -cpu-pids "$SERVER_PID" -json "$OUT/echo-$n.json" | tee "$OUT/echo-$n.txt" || echo "robot echo: exit status $? (see errors)" >&2
done
stop_server

start_server idle-server -rate -1   # heartbeat: the default (30 s)
wait_quiet
echo "== robot idle: $SESSIONS sessions held $HOLD ($TRANSPORT)" >&2
"$OUT/bin/robot" idle -addr "$ADDR" -ws="$WS" -sessions "$SESSIONS" -server-pid "$SERVER_PID" -hold "$HOLD" \
  -json "$OUT/idle.json" | tee "$OUT/idle.txt" || echo "robot idle: exit status $? (see errors)" >&2
stop_server

echo
echo "shaddock examples/echo, $TRANSPORT, $(nproc) CPUs shared by server and robot; results in $OUT"
{
  echo "workload|req/s|p50 ms|p90 ms|p99 ms|max ms|server CPU %|server CPU s/10k req|robot CPU %|other CPU %|errors"
  for n in $ECHO_CLIENTS; do
    jq -r --arg n "$n" 'def r2: . * 100 | round / 100;
      ["echo \($n) clients", (.req_per_s|round), (.round_trip.p50_ms|r2), (.round_trip.p90_ms|r2),
      (.round_trip.p99_ms|r2), (.round_trip.max_ms|r2), (.cpu.server_cpu_pct|round), (.cpu.server_cpu_s_per_10k_req*1000|round/1000),
      (.cpu.robot_cpu_pct|round), (.cpu.other_cpu_pct|round), .error_count] | map(tostring) | join("|")' "$OUT/echo-$n.json"
  done
} | column -t -s'|'
echo
{
  echo "idle|sessions|baseline RSS MiB|connected RSS MiB|end-of-hold RSS MiB|bytes/session|hold s|idle server CPU %|close s|errors"
  jq -r '["idle", "\(.connected)/\(.sessions)", (.rss_baseline_bytes/1048576*10|round/10), (.rss_connected_bytes/1048576*10|round/10),
    (.rss_end_bytes/1048576*10|round/10), (.bytes_per_session|round), (.hold_s*10|round/10), (.cpu.server_cpu_pct*10|round/10),
    (.close_s*100|round/100), .error_count] | map(tostring) | join("|")' "$OUT/idle.json"
} | column -t -s'|'
