#!/usr/bin/env bash
# Chat benchmark: shaddock's examples/chat against Pomelo 2.2.7 (the
# pomelo-chat peer in ../shared/peers), same robot, same machine, one system
# at a time (they share ports 3014/3050/3051). For each system in $SYSTEMS:
# start it, run `robot chat` with -target all and -target peer, stop it; then
# print one table with the ratios shaddock / pomelo-nodelay and
# shaddock / pomelo-stock.
#
#   shaddock        bin/master start --env=development --daemon (bin/master, bin/chat built here)
#   pomelo-nodelay  PEER_NODELAY=1 start.sh (Nagle off: the fair CPU-bound comparison)
#   pomelo-stock    start.sh (stock: latency-bound by delayed ACKs)
#   shaddock-base   with BASE=<commit>: shaddock as of that commit (built from
#                   `git archive` into $OUT/base), for before/after figures
#
# The robot runs with GOMAXPROCS=$ROBOT_PROCS (default 1): it shares the
# machine with the system under test, and one core is plenty for it.
# Env: OUT (results folder), SYSTEMS (default all three, plus shaddock-base
# when BASE is set), BASE (a commit to compare shaddock with), USERS (200),
# ROOMS (10), DURATION (20s), WARMUP (2s), TRANSPORT (ws|tcp), TARGETS
# ("all peer"), PEER_DIR (the pomelo-chat peer), SHADDOCK_PIDS (pids to
# account instead of parsing `bin/master list`), QUIET_MAX / QUIET_PCT (wait
# for an idle machine before each run, see lib.sh), ROUNDS (1; with 3 or
# more the table shows medians, the rounds interleaving the systems), RATE (total sends per
# second, open loop; empty = closed loop), SCHED_NEUTRAL (1: autogroups off
# for the run, so every system gets the same share of the CPUs however it
# was launched; see sched_neutral in lib.sh).
# The script stops what it started (bin/master stop, the peer's stop.sh, which
# touches only its recorded pids), also on error or Ctrl-C.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=tools/bench/lib.sh
. "$ROOT/tools/bench/lib.sh"
OUT="${OUT:-/tmp/shaddock-bench/chat-$(date +%Y%m%d-%H%M%S)}"
BASE="${BASE:-}"
if [ -n "$BASE" ]; then
  SYSTEMS="${SYSTEMS:-shaddock-base shaddock pomelo-nodelay pomelo-stock}"
else
  SYSTEMS="${SYSTEMS:-shaddock pomelo-nodelay pomelo-stock}"
fi
BASE_DIR="$OUT/base"
USERS="${USERS:-200}"
ROOMS="${ROOMS:-10}"
DURATION="${DURATION:-20s}"
WARMUP="${WARMUP:-2s}"
TRANSPORT="${TRANSPORT:-ws}"
TARGETS="${TARGETS:-all peer}"
PEER_DIR="${PEER_DIR:-$ROOT/../shared/peers/pomelo-chat}"
POMELO_RUN="${POMELO_CHAT_RUN:-/tmp/peers/pomelo-chat-run}"
ROBOT_PROCS="${ROBOT_PROCS:-1}"
ROUNDS="${ROUNDS:-1}"   # every system runs once per round; the table shows medians
RATE="${RATE:-}"   # total sends per second (open loop); empty = closed loop
WS=true; [ "$TRANSPORT" = tcp ] && WS=false

command -v jq >/dev/null || { echo "chat.sh: jq is required for the table" >&2; exit 1; }
mkdir -p "$OUT/bin"
(cd "$ROOT" && go build -o "$OUT/bin/robot" ./tools/robot)

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ports_free() {
  local p
  for p in 3005 3014 3050 3051; do
    if port_busy "$p"; then echo "chat.sh: port $p is in use: another system is running; stop it first" >&2; return 1; fi
  done
}

RUNNING=""   # the system to stop on exit
stop_system() {
  local s="$RUNNING"
  [ -n "$s" ] || return 0
  RUNNING=""
  echo "stopping $s" >&2
  case "$s" in
    shaddock) (cd "$ROOT" && timeout 60 bin/master stop --env=development) >>"$OUT/shaddock.log" 2>&1 || echo "bin/master stop failed; see $OUT/shaddock.log" >&2 ;;
    shaddock-base) (cd "$BASE_DIR" && timeout 60 bin/master stop --env=development) >>"$OUT/shaddock-base.log" 2>&1 || echo "base master stop failed; see $OUT/shaddock-base.log" >&2 ;;
    pomelo-*) timeout 60 "$PEER_DIR/stop.sh" >>"$OUT/$s.log" 2>&1 || echo "stop.sh failed; see $OUT/$s.log" >&2 ;;
  esac
}
trap 'stop_system; sched_restore' EXIT
sched_neutral
trap 'exit 130' INT TERM

# shaddock_pids prints ID=PID for every server of `bin/master list` (the ID is
# the first column; the PID column is found by its header's character offset,
# the table being printed with padding) and master=PID from its footer, as
# Pomelo's pid files include its master.
shaddock_pids() { # shaddock_pids DIR LOG
  if [ -n "${SHADDOCK_PIDS:-}" ]; then echo "$SHADDOCK_PIDS"; return; fi
  (cd "$1" && timeout 20 bin/master list --env=development) | tee -a "$2" | awk '
    !col {
      u = toupper($0)
      if (match(u, /(^|[ \t|])PID([ \t|]|$)/)) { col = RSTART; if (substr(u, col, 1) != "P") col++ }
      next
    }
    /^env .*master .* pid [0-9]+/ { print "master=" $NF; next }   # the footer: the master itself
    { s = substr($0, col); if (match(s, /^[ \t|]*[0-9]+/)) { v = substr(s, RSTART, RLENGTH); gsub(/[^0-9]/, "", v); print $1 "=" v } }' | tr '\n' ' '
}

# start_system NAME: starts it and sets CPU_ARGS for the robot; returns 1
# (leaving RUNNING set for stop_system) when it does not come up.
start_system() {
  ports_free || return 1
  case "$1" in
    shaddock)
      RUNNING=shaddock
      (cd "$ROOT" && timeout 120 bin/master start --env=development --daemon) >>"$OUT/shaddock.log" 2>&1 || return 1
      local pids; pids="$(shaddock_pids "$ROOT" "$OUT/shaddock.log")"
      [ -n "${pids// /}" ] || { echo "no pids from bin/master list (see $OUT/shaddock.log); set SHADDOCK_PIDS" >&2; return 1; }
      CPU_ARGS=(-cpu-pids "$pids")
      ;;
    shaddock-base)
      RUNNING=shaddock-base
      (cd "$BASE_DIR" && timeout 120 bin/master start --env=development --daemon) >>"$OUT/shaddock-base.log" 2>&1 || return 1
      local pids; pids="$(shaddock_pids "$BASE_DIR" "$OUT/shaddock-base.log")"
      [ -n "${pids// /}" ] || { echo "no pids from the base's bin/master list (see $OUT/shaddock-base.log)" >&2; return 1; }
      CPU_ARGS=(-cpu-pids "$pids")
      ;;
    pomelo-nodelay|pomelo-stock)
      if [ ! -x "$POMELO_RUN/node_modules/.bin/pomelo" ]; then
        "$PEER_DIR/setup.sh" >>"$OUT/$1.log" 2>&1 || return 1
      fi
      RUNNING="$1"
      if [ "$1" = pomelo-nodelay ]; then
        PEER_NODELAY=1 "$PEER_DIR/start.sh" >>"$OUT/$1.log" 2>&1 || return 1
      else
        PEER_NODELAY=0 "$PEER_DIR/start.sh" >>"$OUT/$1.log" 2>&1 || return 1
      fi
      CPU_ARGS=(-cpu-pidfiles "$POMELO_RUN/run/*.pid")
      ;;
    *) echo "unknown system $1" >&2; return 1 ;;
  esac
  for _ in $(seq 1 50); do port_busy 3014 && break; sleep 0.2; done
  echo "started $1 (${CPU_ARGS[*]})" >&2
}

SKIPPED=""
if [[ " $SYSTEMS " == *" shaddock "* ]]; then
  if ! (cd "$ROOT" && mkdir -p bin && go build -o bin/master ./cmd/master && go build -o bin/chat ./examples/chat) >"$OUT/shaddock-build.log" 2>&1; then
    echo "shaddock does not build yet (see $OUT/shaddock-build.log): skipped" >&2
    SKIPPED=" shaddock"
    SYSTEMS="${SYSTEMS//shaddock/}"
  fi
fi

if [[ " $SYSTEMS " == *" shaddock-base "* ]]; then
  # The base runs its own demo servers.toml, on the same ports, one system
  # at a time like the others.
  if ! { rm -rf "$BASE_DIR" && mkdir -p "$BASE_DIR" && (cd "$ROOT" && git archive "$BASE") | tar -x -C "$BASE_DIR" &&
    (cd "$BASE_DIR" && mkdir -p bin && go build -o bin/master ./cmd/master && go build -o bin/chat ./examples/chat); } >"$OUT/shaddock-base-build.log" 2>&1; then
    echo "BASE=$BASE does not build (see $OUT/shaddock-base-build.log): skipped" >&2
    SKIPPED="$SKIPPED shaddock-base"
    SYSTEMS="${SYSTEMS//shaddock-base/}"
  fi
fi

# ROUNDS rounds, each running every system once, so that a slow spell of a
# shared machine hits all systems alike; the table shows per-field medians.
for round in $(seq 1 "$ROUNDS"); do
  for sys in $SYSTEMS; do
    [[ " $SKIPPED " == *" $sys "* ]] && continue
    if ! start_system "$sys"; then
      echo "$sys did not start (see $OUT/$sys.log): skipped" >&2
      stop_system
      SKIPPED="$SKIPPED $sys"
      continue
    fi
    for target in $TARGETS; do
      wait_quiet
      echo "== round $round/$ROUNDS, $sys: robot chat -target $target ($USERS users, $ROOMS rooms, $DURATION, $TRANSPORT${RATE:+, $RATE req/s open loop})" >&2
      GOMAXPROCS="$ROBOT_PROCS" "$OUT/bin/robot" chat -gate 127.0.0.1:3014 -ws="$WS" -users "$USERS" -rooms "$ROOMS" -duration "$DURATION" \
        -warmup "$WARMUP" -target "$target" ${RATE:+-rate "$RATE"} "${CPU_ARGS[@]}" -json "$OUT/$sys-$target-r$round.json" | tee "$OUT/$sys-$target-r$round.txt" \
        || echo "robot chat: exit status $? (see the errors above)" >&2
    done
    stop_system
  done
done

# $sys-$target.json: the median of each field over the rounds (errors summed).
for sys in $SYSTEMS; do
  for target in $TARGETS; do
    files=("$OUT/$sys-$target"-r*.json)
    [ -f "${files[0]}" ] || continue
    jq -s 'def med(f): (map(f) | sort) as $v | $v[(($v | length) - 1) / 2 | floor];
      {rounds: length, req_per_s_all: map(.req_per_s),
       server_us_per_req_all: map(.cpu.server_cpu_s_per_10k_req * 100),
       req_per_s: med(.req_per_s), pushes_per_s: med(.pushes_per_s), delivered_pct: med(.delivered_pct),
       round_trip: {p50_ms: med(.round_trip.p50_ms), p99_ms: med(.round_trip.p99_ms), max_ms: med(.round_trip.max_ms)},
       cpu: {server_cpu_pct: med(.cpu.server_cpu_pct), server_cpu_s_per_10k_req: med(.cpu.server_cpu_s_per_10k_req),
             robot_cpu_s_per_10k_req: med(.cpu.robot_cpu_s_per_10k_req), robot_cpu_pct: med(.cpu.robot_cpu_pct),
             other_cpu_pct: med(.cpu.other_cpu_pct)},
       error_count: (map(.error_count) | add)}' "${files[@]}" >"$OUT/$sys-$target.json"
  done
done

# The table.
row() { # row SYSTEM TARGET
  local f="$OUT/$1-$2.json"
  if [ ! -f "$f" ]; then echo "$1|$2|-|-|-|-|-|-|-|-|-|-|-"; return; fi
  jq -r --arg s "$1" --arg t "$2" 'def r1: . * 10 | round / 10;
    [$s, $t, (.req_per_s|round), (.round_trip.p50_ms|r1), (.round_trip.p99_ms|r1), (.round_trip.max_ms|r1),
    (.pushes_per_s|round), (.delivered_pct*100|round/100), (.cpu.server_cpu_pct|round),
    (.cpu.server_cpu_s_per_10k_req*100|r1), (.cpu.robot_cpu_s_per_10k_req*100|r1), (.cpu.robot_cpu_pct|round),
    (.cpu.other_cpu_pct|round), .error_count]
    | map(tostring) | join("|")' "$f"
}
# ratio TARGET OTHER: shaddock / OTHER for req/s, p99, server and robot CPU
# per request (ratios of the medians), and the median of the rounds' own
# server CPU ratios ("paired"): a round runs the systems back to back, so a
# slow phase of the VM, which can last a round and slows every process
# alike, mostly cancels out of a round's ratio (docs/performance-round2.md,
# "Measuring").
ratio() {
  local a="$OUT/shaddock-$1.json" b="$OUT/$2-$1.json"
  if [ ! -f "$a" ] || [ ! -f "$b" ]; then echo "shaddock / $2|$1|-|-|-|-|-"; return; fi
  jq -r -n --arg t "$1" --arg o "$2" --slurpfile a "$a" --slurpfile b "$b" '
    def r(x; y): if y == 0 then "-" else ((x / y) * 100 | round / 100 | tostring) + "x" end;
    def paired: [$a[0].server_us_per_req_all, $b[0].server_us_per_req_all] as [$x, $y]
      | if ($x | length) < 2 or ($x | length) != ($y | length) then "-"
        else [range($x | length) | select($y[.] > 0) | $x[.] / $y[.]] | sort
          | if length == 0 then "-" else (.[(length - 1) / 2 | floor] * 100 | round / 100 | tostring) + "x" end end;
    ["shaddock / \($o)", $t, r($a[0].req_per_s; $b[0].req_per_s), r($a[0].round_trip.p99_ms; $b[0].round_trip.p99_ms),
     r($a[0].cpu.server_cpu_s_per_10k_req; $b[0].cpu.server_cpu_s_per_10k_req), paired,
     r($a[0].cpu.robot_cpu_s_per_10k_req; $b[0].cpu.robot_cpu_s_per_10k_req)] | join("|")'
}
echo
loop="closed loop"; [ -z "$RATE" ] || loop="open loop at $RATE req/s"
sched="autogroups as set"; [ -z "$SCHED_AUTOGROUP_SAVED" ] || sched="autogroups off"
echo "chat benchmark: $USERS users, $ROOMS rooms, $DURATION $loop, $TRANSPORT, $(nproc) CPUs shared by servers and robot ($sched); medians of $ROUNDS round(s); results in $OUT"
[ -z "$SKIPPED" ] || echo "skipped (did not build or start):$SKIPPED"
{
  echo "system|target|req/s|p50 ms|p99 ms|max ms|pushes/s|delivered %|server CPU %|server CPU µs/req|robot CPU µs/req|robot CPU %|other CPU %|errors"
  for sys in shaddock-base shaddock pomelo-nodelay pomelo-stock; do
    for target in $TARGETS; do
      if [[ " $SYSTEMS " == *" $sys "* ]]; then row "$sys" "$target"; fi
    done
  done
} | column -t -s'|'
if [ "$ROUNDS" -gt 1 ]; then
  echo
  echo "each round (req/s, server CPU µs/req):"
  for sys in $SYSTEMS; do
    for target in $TARGETS; do
      [ -f "$OUT/$sys-$target.json" ] && jq -r --arg s "$sys" --arg t "$target" \
        '"  \($s) \($t): " + ([.req_per_s_all, .server_us_per_req_all] | transpose | map("\(.[0] | round) / \(.[1] | round)") | join(", "))' "$OUT/$sys-$target.json"
    done
  done
fi
if [[ " $SYSTEMS " == *" shaddock "* ]]; then
  echo
  {
    echo "ratio|target|req/s|p99|server CPU/req|paired|robot CPU/req"
    for other in shaddock-base pomelo-nodelay pomelo-stock; do
      for target in $TARGETS; do
        if [[ " $SYSTEMS " == *" $other "* ]]; then ratio "$target" "$other"; fi
      done
    done
  } | column -t -s'|'
fi
