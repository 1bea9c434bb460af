#!/usr/bin/env bash
# Measures the WebSocket candidates for the shaddock connector; see
# docs/websocket.md. Everything listens on 127.0.0.1 and every load loop is
# bounded in count and time. Takes about 10 minutes with the defaults.
#
# Environment knobs (defaults in brackets):
#   REPS [2]          repetitions of the main matrix (interleaved across candidates)
#   IDLE_N [15000]    idle connections per idle run
#   SETTLE [10s]      idle hold before measuring
#   DUR [10s]         duration of each echo run
#   CANDIDATES        main matrix (see below)
#   IDLE [1]          0 skips the idle runs of the main matrix (echo only)
#   EXTRAS [1]        0 skips the single-run idle-only variants
#   EXTRA_SETTLE [5s] idle hold for those variants
#   OUT [results]     output directory (raw RESULT lines, server logs, summary)
set -euo pipefail
cd "$(dirname "$0")"

REPS=${REPS:-2}
IDLE_N=${IDLE_N:-15000}
SETTLE=${SETTLE:-10s}
DUR=${DUR:-10s}
IDLE=${IDLE:-1}
EXTRAS=${EXTRAS:-1}
EXTRA_SETTLE=${EXTRA_SETTLE:-5s}
OUT=${OUT:-results}

# label:impl:server flags (flags use , for spaces)
CANDIDATES=${CANDIDATES:-"gorilla:gorilla: gobwas:gobwas: gws:gws: coder:coder: tcp:tcp: netpoll:netpoll:"}
# Idle-only variants, one run each:
#  - the read loop left on the handshake goroutine (gorilla/net/http default shape),
#  - gobwas with writev,
#  - 8 KiB of per-message stack work (a stand-in for real decode/routing)
#    with and without parking each idle wait on a fresh goroutine,
#  - the libraries' default buffering instead of 512-byte buffers.
EXTRA_CANDIDATES=${EXTRA_CANDIDATES:-"gorilla-inhandler:gorilla:-respawn=false gobwas-writev:gobwas:-writev gobwas+work8k:gobwas:-stackwork=8192 gobwas-idlespawn+work8k:gobwas:-stackwork=8192,-idlespawn netpoll+work8k:netpoll:-stackwork=8192 gorilla-defaultbuf:gorilla:-rbuf=0 gws-defaultbuf:gws:-rbuf=0 netpoll-defaultbuf:netpoll:-rbuf=0"}

mkdir -p bin "$OUT"
go build -o bin/wsbench-server ./server
go build -o bin/wsbench-client ./client
go build -o bin/wsbench-report ./report
RAW="$OUT/raw.txt"
: >"$RAW"
rm -f "$OUT"/server-*.log

port=19000
SPID=
cleanup() { if [[ -n $SPID ]]; then kill "$SPID" 2>/dev/null || true; fi; }
trap cleanup EXIT

# start_server LABEL IMPL FLAGS: starts a server on a fresh port pair and
# waits until its stats listener accepts.
start_server() {
	port=$((port + 2))
	local flags=${3//,/ }
	# shellcheck disable=SC2086
	./bin/wsbench-server -impl="$2" -addr="127.0.0.1:$port" $flags >>"$OUT/server-$1.log" 2>&1 &
	SPID=$!
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$((port + 1))") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "server $1 did not start" >&2
	exit 1
}

stop_server() {
	kill "$SPID"
	wait "$SPID" 2>/dev/null || true
	SPID=
}

# client LABEL IMPL ARGS...: runs one bounded client measurement.
client() {
	local label=$1 impl=$2 proto=ws
	shift 2
	[[ $impl == tcp ]] && proto=tcp
	timeout 300 ./bin/wsbench-client -impl="$label" -proto="$proto" -addr="127.0.0.1:$port" -pid="$SPID" "$@" |
		tee -a "$RAW" || echo "client $label $* failed" >&2
}

echo "== main matrix: $REPS x ($CANDIDATES)"
for rep in $(seq "$REPS"); do
	for cand in $CANDIDATES; do
		IFS=: read -r label impl flags <<<"$cand"
		echo "-- rep $rep $label"
		start_server "$label" "$impl" "$flags"
		if [[ $IDLE == 1 ]]; then
			client "$label" "$impl" -mode=idle -n="$IDLE_N" -settle="$SETTLE"
			sleep 1 # let the server finish tearing the idle connections down
		fi
		client "$label" "$impl" -mode=echo -c=100 -d="$DUR"
		client "$label" "$impl" -mode=echo -c=1000 -d="$DUR"
		stop_server
	done
done

if [[ $EXTRAS == 1 ]]; then
	echo "== idle-only variants"
	for cand in $EXTRA_CANDIDATES; do
		IFS=: read -r label impl flags <<<"$cand"
		echo "-- $label"
		start_server "$label" "$impl" "$flags"
		client "$label" "$impl" -mode=idle -n="$IDLE_N" -settle="$EXTRA_SETTLE"
		stop_server
	done
fi

echo
./bin/wsbench-report <"$RAW" | tee "$OUT/summary.md"
