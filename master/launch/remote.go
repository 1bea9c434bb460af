package launch

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The shell scripts the SSH launcher runs on a host. A host needs only
// POSIX sh (/bin/sh), coreutils, util-linux setsid (with -f) and Linux
// /proc; the login shell must accept `exec /bin/sh -c '...'` (sh, bash,
// dash, zsh, ksh do). Scripts and their arguments travel as one command
// line, each argument single-quoted by remoteQuote; anything secret goes
// over the session's stdin instead, as a command line is world-readable
// in /proc/PID/cmdline.
//
// A script reports a failure the caller should show as it is by printing
// one line on stderr and exiting with remoteFail.

// remoteFail is the exit status of a script that printed its reason.
const remoteFail = 3

// remoteLib is shared by the scripts that look at a process: boot is this
// boot's id; alive PID TICKS BOOT BINARY ID succeeds if PID is still the
// process meant: same boot (when known), not a zombie, and same start time
// (field 22 of /proc/PID/stat, counted after the last ')' since the command
// name may hold spaces and parentheses) or, when the start time is not
// known (0), a command line holding BINARY and --id ID (as MatchCmdline);
// status LOG PID TICKS prints the exit status the wrapper logged for that
// process, if it did.
const remoteLib = `set -f
read -r boot </proc/sys/kernel/random/boot_id || exit 1
fail() { printf '%s\n' "$*" >&2; exit 3; } # 3: remoteFail
statf() { st_state=$1; shift 19; st_start=$1; }
alive() {
  [ -z "$3" ] || [ "$3" = "$boot" ] || return 1
  s=; { read -r s <"/proc/$1/stat"; } 2>/dev/null
  [ -n "$s" ] || return 1
  statf ${s##*)}
  case $st_state in Z|X|x) return 1;; esac
  [ "$2" = 0 ] || { [ "$st_start" = "$2" ]; return; }
  tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | {
    b= i= p=
    [ -n "$4" ] || b=1
    while IFS= read -r a; do
      [ "$a" = "$4" ] && b=1
      if [ -z "$i" ]; then
        case $p in -id|--id) i=x; [ "$a" = "$5" ] && i=1;; esac
        case $a in -id=*|--id=*) i=x; [ "${a#*=}" = "$5" ] && i=1;; esac
      fi
      p=$a
    done
    [ -n "$b" ] && [ "$i" = 1 ]
  }
}
status() {
  t=; [ "$3" = 0 ] || t=" (start ticks $3)"
  l=$(tail -c 1048576 -- "$1" 2>/dev/null | grep -F -- " pid $2 exited: status " | grep -F -- "$t" | tail -n 1)
  l=${l##* exited: status }; l=${l%% *}
  case $l in ''|*[!0-9]*) ;; *) printf '%s' "$l";; esac
}
`

// remoteStart starts a server. Arguments: WRAPPER ID HOST LOG DIR HEADER
// BINARY ARGS...; stdin: the environment, KEY=VALUE lines ended by an empty
// line. The values are exported into this shell, never put on a command
// line; commands are resolved before, so that the server's PATH does not
// decide which setsid runs. It prints "ok PID TICKS" and "boot ID".
//
// The server runs under setsid -f, so it is in a session of its own and
// the SSH session ends at once: every descriptor of the sshd session is
// redirected away (stdin from /dev/null, output to the log), else sshd
// would wait for it. It is not started as an asynchronous list (&), which
// would leave SIGINT and SIGQUIT ignored in it.
const remoteStart = remoteLib + `w=$1 id=$2 host=$3 log=$4 dir=$5 hdr=$6; shift 6
[ -f "$1" ] && [ -x "$1" ] || fail "binary $1 is missing or not an executable file"
cd "$dir" 2>/dev/null || fail "cannot enter the working directory $dir"
ld=${log%/*}; [ -n "$ld" ] || ld=/
# The log and its directory are the master's, as with the local launcher:
# 0700 and 0600; the server keeps the session's umask.
(umask 077; mkdir -p -- "$ld" && : >>"$log") || fail "cannot create the log $log"
setsid=$(command -v setsid) || fail "setsid (util-linux) not found"
date=$(command -v date) || fail "date not found"
now=$("$date" -u +%Y-%m-%dT%H:%M:%SZ)
while IFS= read -r kv && [ -n "$kv" ]; do export "$kv" || fail "cannot set environment variable ${kv%%=*}"; done
printf '=== %s master: starting %s on %s: %s\n' "$now" "$id" "$host" "$hdr" >>"$log" || fail "cannot write the log $log"
r=$("$setsid" -f /bin/sh -c "$w" sh "$date" "$id" "$@" 3>&1 >>"$log" 2>&1 </dev/null | { IFS= read -r l; printf '%s' "$l"; })
case $r in
"ok "*) printf '%s\nboot %s\n' "$r" "$boot" ;;
*) { echo "the server did not start; the end of $log:"; tail -n 5 -- "$log"; } >&2; exit 3 ;;
esac
`

// remoteWrapper is the parent of a server (arguments: DATE ID BINARY
// ARGS...): it waits for it and appends its exit status to the log, which
// is where the watcher finds it. Its child reports its own pid and start
// time before it execs the server, so the reported pid is the server's: on
// fd 3 to the start script, on fd 4 to this wrapper (read once the server
// has ended, as a command substitution waits for its end of file). The
// server keeps neither descriptor.
const remoteWrapper = `date=$1 id=$2; shift 2
exec 5>&1
r=$(/bin/sh -c 'f() { shift 19; t=$1; }
read -r s </proc/$$/stat || exit 125
set -f; f ${s##*)}
printf "ok %s %s\n" $$ "$t" >&3; printf "%s %s\n" $$ "$t" >&4
exec 3>&- 4>&-
exec "$@"' sh "$@" 4>&1 >&5 2>&5 5>&-; echo " $?")
exec 3>&-
set -f; set -- $r
now=$("$date" -u +%Y-%m-%dT%H:%M:%SZ)
if [ $# = 3 ]; then
  printf '=== %s %s pid %s exited: status %s (start ticks %s)\n' "$now" "$id" "$1" "$3" "$2"
else
  printf '=== %s %s did not start: status %s\n' "$now" "$id" "$*"
fi
`

// remoteCheck: arguments PID TICKS BOOT BINARY ID LOG; prints "running" or
// "gone STATUS" (STATUS empty when unknown).
const remoteCheck = remoteLib + `if alive "$1" "$2" "$3" "$4" "$5"; then echo running; else printf 'gone %s\n' "$(status "$6" "$1" "$2")"; fi
`

// remoteStop: arguments PID TICKS BOOT BINARY ID SIG STEPS. With SIG
// TERM it sends SIGTERM and waits up to STEPS × 50 ms; then (or at once
// with SIG KILL) SIGKILL until the process is gone. The identity is
// checked before every signal, so a pid reused meanwhile is never
// signalled. It prints "kill" before a SIGKILL that follows a SIGTERM,
// "gone" once the process is, and a dot while it waits, so that it dies of
// SIGPIPE when the master has gone.
const remoteStop = remoteLib + `pid=$1; shift
alive "$pid" "$@" || { echo gone; exit 0; }
sig=$5 steps=$6 i=0
if [ "$sig" = TERM ]; then
  kill -TERM "$pid" 2>/dev/null
  while alive "$pid" "$@" && [ $i -lt "$steps" ]; do sleep 0.05; i=$((i+1)); echo .; done
  alive "$pid" "$@" && echo kill
fi
while alive "$pid" "$@"; do kill -KILL "$pid" 2>/dev/null; sleep 0.05; echo .; done
echo gone
`

// remoteSum: argument DST; prints "sum HEX" or "none".
const remoteSum = `s=$(sha256sum -- "$1" 2>/dev/null) && printf 'sum %s\n' "${s%% *}" || echo none
`

// remoteInstall: arguments DST SUM MODE; stdin: the file. It writes a
// temporary file beside DST, checks its SHA-256, sets its mode and renames
// it onto DST.
const remoteInstall = `dst=$1 sum=$2 mode=$3
fail() { printf '%s\n' "$*" >&2; exit 3; }
dd=${dst%/*}; [ -n "$dd" ] || dd=/
mkdir -p -- "$dd" || fail "cannot create the directory $dd"
tmp=$(mktemp -- "$dst.upload.XXXXXX") || fail "cannot create a temporary file beside $dst"
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 1' HUP INT TERM PIPE
cat >"$tmp" || fail "cannot write $tmp"
s=$(sha256sum -- "$tmp") || fail "cannot read back $tmp"
[ "${s%% *}" = "$sum" ] || fail "upload arrived with SHA-256 ${s%% *}, want $sum"
chmod "$mode" -- "$tmp" || fail "cannot chmod $tmp"
mv -f -- "$tmp" "$dst" || fail "cannot rename $tmp onto $dst"
echo copied
`

// remoteWatch watches a set of processes: stdin carries the set, a count
// of lines then that many lines, seven per process (N PID TICKS BOOT
// BINARY ID LOG, N being the launcher's number for it), each time it
// changes. Every half second it prints "gone N STATUS" for each process of
// the set that has ended (STATUS "?" when unknown; again each round until
// the set no longer holds it) and "." as a heartbeat. When a process it
// has seen running ends, its wrapper logs the status a moment later: it
// waits up to a second for that line. It ends when stdin ends, or when a
// write fails because the master has gone, removing its directory
// (shaddock-watch.* in $TMPDIR).
const remoteWatch = remoteLib + `d=$(mktemp -d "${TMPDIR:-/tmp}/shaddock-watch.XXXXXX") || exit 1
trap 'kill $lp 2>/dev/null; rm -rf -- "$d"' EXIT
trap 'exit 1' HUP INT TERM PIPE
loop() {
  while :; do
    if [ -f "$d/set" ]; then
      while IFS= read -r n && IFS= read -r pid && IFS= read -r ticks && IFS= read -r hb && IFS= read -r bin && IFS= read -r id && IFS= read -r log; do
        if alive "$pid" "$ticks" "$hb" "$bin" "$id"; then
          [ -e "$d/a$n" ] || : >"$d/a$n"
          continue
        fi
        st=$(status "$log" "$pid" "$ticks")
        if [ -z "$st" ] && [ -e "$d/a$n" ]; then
          for i in 1 2 3 4 5 6 7 8 9 10; do sleep 0.1; st=$(status "$log" "$pid" "$ticks"); [ -n "$st" ] && break; done
          rm -f -- "$d/a$n"
        fi
        printf 'gone %s %s\n' "$n" "${st:-?}"
      done <"$d/set"
    fi
    echo . || exit 1
    sleep 0.5
  done
}
loop &
lp=$!
while IFS= read -r k; do
  : >"$d/new"; i=0
  while [ $i -lt "$k" ]; do IFS= read -r l || exit 0; printf '%s\n' "$l" >>"$d/new"; i=$((i+1)); done
  mv -f -- "$d/new" "$d/set"
done
`

// remoteCommand is the command line that runs script with args under
// /bin/sh, whatever the login shell.
func remoteCommand(script string, args ...string) string {
	var b strings.Builder
	b.WriteString("exec /bin/sh -c ")
	b.WriteString(remoteQuote(script))
	b.WriteString(" sh")
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(remoteQuote(a))
	}
	return b.String()
}

// remoteQuote quotes s as one word for a POSIX shell: inside single
// quotes nothing is special but the single quote itself, which closes the
// quotes, is written escaped by a backslash, and opens them again.
func remoteQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// displayCommand is a command line for the log header, quoted only where
// a word needs it.
func displayCommand(binary string, args []string) string {
	words := make([]string, 0, 1+len(args))
	for _, a := range append([]string{binary}, args...) {
		if a == "" || strings.ContainsFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
		}) {
			a = remoteQuote(a)
		}
		words = append(words, a)
	}
	return strings.Join(words, " ")
}

// startReport is what remoteStart printed.
type startReport struct {
	pid   int
	ticks uint64
	boot  string
}

// parseStartReport reads remoteStart's output; lines it does not know
// (a login shell's chatter) are skipped.
func parseStartReport(out string) (startReport, error) {
	var r startReport
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "ok":
			pid, err1 := strconv.Atoi(f[1])
			ticks, err2 := strconv.ParseUint(f[2], 10, 64)
			if err := errors.Join(err1, err2); err != nil || pid <= 0 {
				return r, fmt.Errorf("bad report %q", strings.TrimSpace(line))
			}
			r.pid, r.ticks = pid, ticks
		case len(f) == 2 && f[0] == "boot":
			r.boot = f[1]
		}
	}
	if r.pid == 0 {
		return r, errors.New("the server did not report its pid (see its log)")
	}
	if r.boot == "" {
		return r, errors.New("no boot id in the report")
	}
	return r, nil
}

// validShellName reports whether k can be a shell variable's name, the
// only names the start script can export.
func validShellName(k string) bool {
	for i, r := range k {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return k != ""
}
