package launch

import (
	"fmt"
	"strconv"
	"strings"
)

// The shell scripts the SSH launcher runs on a host. A host needs only
// POSIX sh (/bin/sh), coreutils, sed, util-linux setsid (with -f) and
// Linux /proc; the login shell must accept `exec /bin/sh -c '...'` (sh,
// bash, dash, zsh, ksh do). Scripts and their arguments travel as one
// command line, each argument single-quoted by remoteQuote; anything
// secret goes over the session's stdin instead, as a command line is
// world-readable in /proc/PID/cmdline.
//
// A script reports a failure the caller should show as it is by printing
// one line on stderr and exiting with remoteFail.

// remoteFail is the exit status of a script that printed its reason.
const remoteFail = 3

// remoteLib is shared by the scripts that look at a process: boot is this
// boot's id; alive PID TICKS BOOT BINARY ID succeeds if PID is still the
// process meant: same boot (when known), not a zombie, and same start time
// (field 22 of /proc/PID/stat, counted after the last ')' since the command
// name may hold spaces and parentheses; left in st_start) or, when the
// start time is not known (0), a command line holding BINARY and --id ID
// (as MatchCmdline); status LOG PID TICKS prints the exit status the
// wrapper logged for that process, if it did.
//
// alive forks only for a handle without a start time; reading the stat
// line is builtins only, but dash reads it a byte per system call (about
// half a millisecond), which is why the watcher does not do it every tick.
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
  t=' (start ticks [0-9]*)'; [ "$3" = 0 ] || t=" (start ticks $3)"
  l=$(tail -c 1048576 -- "$1" 2>/dev/null | sed -n "s/^.* pid $2 exited: status \([0-9][0-9]*\)$t\$/\1/p")
  printf '%s' "${l##*[!0-9]}"
}
`

// remoteStart starts a batch of servers in one session: a Start costs the
// host a function call instead of an SSH session, a login shell and the
// forks of a script of its own. Arguments: WRAPPER NOW (the header's time,
// from the master: no date to fork). The master appends the batch (see
// startBatchScript):
//
//	printf 'boot %s\n' "$boot"
//	{
//	s ID HOST LOG DIR HEADER BINARY ARGS...   (a line per server, words quoted)
//	} | c COUNT
//
// Stdin: each server's environment in turn, KEY=VALUE lines ended by an
// empty line. s reads it into a variable and hands it to the wrapper as a
// here-document (a pipe), so it is on no command line and in no
// environment but the server's: the wrapper's child exports it just
// before it execs the server, after everything it does with variables,
// and so neither the scripts' variables can override the server's
// environment nor the other way round (shaddock_kv, the one name used
// after the exports, is reserved).
//
// s launches a server and goes on to the next without waiting for it: the
// servers of a batch start side by side. Their reports come on one pipe,
// which c copies to stdout until every server has its end: "ok I PID
// TICKS" for the Ith server (from 0), or "err I MESSAGE" lines then "fail
// I". A server that cannot start fails alone; its environment is read
// past. The report of a launched server comes from its wrapper, and from
// nowhere else: the wrappers keep the pipe open while their servers run,
// so c counts ends, it does not wait for the pipe's end.
//
// The server runs under setsid -f, so it is in a session of its own and
// the SSH session ends at once: every descriptor of the sshd session is
// redirected away (stdin from /dev/null, output to the log), else sshd
// would wait for it. It is not started as an asynchronous list (&), which
// would leave SIGINT and SIGQUIT ignored in it. setsid and date are looked
// up with builtins. Forks per server: one (that execs setsid, which forks
// the wrapper), and mkdir only for a log directory that does not exist
// yet.
const remoteStart = remoteLib + `w=$1 now=$2
lookup() {
  p=; o=$IFS; IFS=:
  for d in $PATH; do case $d in /*) [ -f "$d/$1" ] && [ -x "$d/$1" ] && { p=$d/$1; break; };; esac; done
  IFS=$o; [ -n "$p" ]
}
lookup setsid || fail "setsid (util-linux) not found"; setsid=$p
lookup date || fail "date not found"; date=$p
um=$(umask)
i=-1
# readenv: server $i's environment, from stdin into kvs.
readenv() { kvs=; while IFS= read -r shaddock_kv && [ -n "$shaddock_kv" ]; do kvs="$kvs$shaddock_kv
"; done; }
# bad MESSAGE: server $i failed.
bad() { readenv; printf 'err %s %s\nfail %s\n' "$i" "$*" "$i"; }
# The log and its directory are the master's, as with the local launcher:
# 0700 and 0600; the server keeps the session's umask. printf, not ':', as
# a redirection that fails on a special builtin ends the shell.
mklog() {
  umask 077
  { [ -d "$ld" ] || mkdir -p -- "$ld"; } && printf '' >>"$log"
  r=$?; umask "$um"; return $r
}
s() {
  i=$((i+1)) id=$1 host=$2 log=$3 dir=$4 hdr=$5; shift 5
  ld=${log%/*}; [ -n "$ld" ] || ld=/
  if ! { [ -f "$1" ] && [ -x "$1" ]; }; then bad "binary $1 is missing or not an executable file"
  elif ! cd "$dir" 2>/dev/null; then bad "cannot enter the working directory $dir"
  elif ! mklog 2>/dev/null; then bad "cannot create the log $log"
  elif ! printf '=== %s master: starting %s on %s: %s\n' "$now" "$id" "$host" "$hdr" 2>/dev/null >>"$log"; then
    bad "cannot write the log $log"
  else
    readenv
    "$setsid" -f /bin/sh -c "$w" sh "$i" "$id" "$log" "$date" "$@" 3>&1 >>"$log" 2>&1 <<EOF || {
$kvs
EOF
      printf 'err %s the server did not start; the end of %s:\n' "$i" "$log"
      tail -n 5 -- "$log" | cut -c 1-500 | sed "s/^/err $i /"
      printf 'fail %s\n' "$i"
    }
  fi
}
c() {
  n=0
  while [ $n -lt "$1" ] && IFS= read -r l; do
    printf '%s\n' "$l" || exit 1
    case $l in "ok "*|"fail "*) n=$((n+1));; esac
  done
}
`

// remoteWrapper is the parent of a server (arguments: I ID LOG DATE BINARY
// ARGS...; stdin: the server's environment, KEY=VALUE lines ended by an
// empty line): it waits for it and appends its exit status to the log,
// which is where the watcher finds it. Its child, a command substitution's
// subshell, exports the environment, reports its own pid and start time
// (read from /proc/self, which is its own as read is a builtin) and execs
// the server, so the reported pid is the server's: as "ok I PID TICKS" on
// fd 3 to the start script, and on the substitution's pipe to this
// wrapper, whose end of file comes with the exec as the server's output
// goes to the log; the substitution's status is then the server's. Until
// the exec nothing is assigned but shaddock_kv (positional parameters
// instead), so that the server gets the environment it was given, and
// nothing is split into fields, as IFS may be in it (f takes the stat
// line apart with patterns: field 22, the start time, is 19 fields after
// the state, which follows the last ')'). The server keeps neither
// descriptor. When the child ends before it reported, the wrapper reports
// the failure on fd 3 itself: a launched server's end always comes. Forks:
// the child (no shell exec'd between) and, once the server has ended,
// date.
const remoteWrapper = `f() {
  set -- "$1" "${2%% *}" "${2##*) }" 0
  while [ "$4" -lt 19 ]; do set -- "$1" "$2" "${3#* }" "$(($4+1))"; done
  printf 'ok %s %s %s\n' "$1" "$2" "${3%% *}" >&3; printf '%s %s' "$2" "${3%% *}"
}
r=$(while IFS= read -r shaddock_kv && [ -n "$shaddock_kv" ]; do
    command export "$shaddock_kv" || { echo "cannot set environment variable ${shaddock_kv%%=*}" >&2; exit 124; }
  done
  read -r shaddock_kv </proc/self/stat || exit 125
  f "$1" "$shaddock_kv"
  shift 4; exec 3>&- "$@" >&2 </dev/null)
st=$? i=$1 id=$2 log=$3 date=$4
set -f; set -- $r
now=$("$date" -u +%Y-%m-%dT%H:%M:%SZ)
if [ $# = 2 ]; then
  exec 3>&-
  printf '=== %s %s pid %s exited: status %s (start ticks %s)\n' "$now" "$id" "$1" "$st" "$2"
else
  printf '=== %s %s did not start: status %s\n' "$now" "$id" "$st"
  { printf 'err %s the server did not start; the end of %s:\n' "$i" "$log"
    tail -n 5 -- "$log" | cut -c 1-500 | sed "s/^/err $i /"
    printf 'fail %s\n' "$i"; } >&3
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

// remoteWatch (shaddock-watch: the tests find it by that word) watches a
// set of processes for the master, which drives it over stdin:
//
//	w N PID TICKS BOOT   then three lines BINARY, ID, LOG: watch process N
//	                     (the launcher's number for it; BOOT "-" if unknown)
//	t                    look now: "gone N STATUS" for each watched process
//	                     that has ended (STATUS "?" when unknown), then "."
//
// Between ticks it blocks in read: a host with nothing happening pays
// nothing but the tick, and while the master cannot reach it nothing is
// looked at or reported. A tick costs a kill -0 per process, a builtin;
// only a failing kill -0, the first look at a process and a sweep every
// SWEEP ticks (its argument) check its identity in full: the stat line's
// start time, or once the command line when the handle has no start time
// (it then keeps the start time it found). Between two sweeps a process
// that ended can hide from kill -0 only as a zombie (its wrapper reaps it
// at once) or behind a pid reused within one tick. A process reported gone
// is dropped from the set. When a process ends, its wrapper logs the
// status a moment later: it looks for that line on the next two ticks too
// before it reports "?", also for a process that was already gone at its
// first look (a watch set up while the process was being stopped). It ends when stdin ends, or of
// SIGPIPE when the master has gone. It forks only to read the exit status
// of an ended process (and the command line of a process without a start
// time).
//
// The set is one variable of N:PID:TICKS:STATE words (STATE n new, a
// alive, 2 and 1 the ticks left to wait for an exit status); BINARY, ID,
// LOG and BOOT are in b_N, i_N, l_N and h_N.
const remoteWatch = remoteLib + `exec 2>/dev/null
sweep=$1 ws= k=0
while IFS= read -r c; do
  case $c in
  "w "*)
    set -- $c
    IFS= read -r bn && IFS= read -r id && IFS= read -r lg || exit 0
    case $2$3$4 in ''|*[!0-9]*) continue;; esac
    hb=$5; [ "$hb" != - ] || hb=
    eval "b_$2=\$bn i_$2=\$id l_$2=\$lg h_$2=\$hb"
    ws="$ws $2:$3:$4:n" ;;
  t)
    k=$((k+1)) full=; [ $k -lt "$sweep" ] || { k=0 full=1; }
    nw=
    for e in $ws; do
      n=${e%%:*} r=${e#*:}; p=${r%%:*} r=${r#*:}; tk=${r%%:*} st=${r#*:}
      if [ "$st" = a ] && [ -z "$full" ] && kill -0 "$p"; then nw="$nw $e"; continue; fi
      if [ "$st" = a ] || [ "$st" = n ]; then
        eval "hb=\$h_$n bn=\$b_$n id=\$i_$n"
        if alive "$p" "$tk" "$hb" "$bn" "$id"; then
          [ "$tk" != 0 ] || tk=$st_start
          nw="$nw $n:$p:$tk:a"; continue
        fi
      fi
      eval "lg=\$l_$n"
      x=$(status "$lg" "$p" "$tk")
      if [ -z "$x" ]; then
        case $st in
        a|n) nw="$nw $n:$p:$tk:2"; continue;;
        2) nw="$nw $n:$p:$tk:1"; continue;;
        esac
      fi
      printf 'gone %s %s\n' "$n" "${x:-?}" || exit 1
      unset b_$n i_$n l_$n h_$n
    done
    ws=$nw
    echo . || exit 1 ;;
  esac
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

// startCall is spec's line in a remoteStart batch: "s ID HOST LOG DIR
// HEADER BINARY ARGS...", every word quoted.
func startCall(spec Spec) string {
	var b strings.Builder
	b.WriteString("s")
	for _, w := range append([]string{spec.ID, spec.Host, spec.Log, spec.Dir,
		displayCommand(spec.Binary, spec.Args), spec.Binary}, spec.Args...) {
		b.WriteByte(' ')
		b.WriteString(remoteQuote(w))
	}
	b.WriteByte('\n')
	return b.String()
}

// startBatchScript is remoteStart with the calls of a batch.
func startBatchScript(calls []string) string {
	var b strings.Builder
	b.WriteString(remoteStart)
	b.WriteString("printf 'boot %s\\n' \"$boot\"\n{\n")
	for _, c := range calls {
		b.WriteString(c)
	}
	fmt.Fprintf(&b, "} | c %d\n", len(calls))
	return b.String()
}

// startEnv is spec's environment as remoteStart reads it from stdin.
func startEnv(spec Spec) string {
	var b strings.Builder
	for _, kv := range spec.Environ {
		b.WriteString(kv + "\n")
	}
	b.WriteString("\n")
	return b.String()
}

// startLine is one line of remoteStart's report.
type startLine struct {
	kind  string // "boot", "ok", "err", "fail", or "" for a line it does not know (a login shell's chatter)
	i     int    // the server's number in the batch (ok, err, fail)
	pid   int
	ticks uint64
	text  string // the boot id, or a line of the error message
}

// parseStartLine reads one line of remoteStart's report. An "ok" line
// whose pid or start time does not parse is a "fail" with that reason.
func parseStartLine(line string) startLine {
	line = strings.TrimRight(line, "\r\n")
	kind, rest, _ := strings.Cut(line, " ")
	switch kind {
	case "boot":
		if rest == "" || strings.ContainsAny(rest, " \t") {
			return startLine{}
		}
		return startLine{kind: kind, text: rest}
	case "ok", "err", "fail":
		is, rest, _ := strings.Cut(rest, " ")
		i, err := strconv.Atoi(is)
		if err != nil || i < 0 {
			return startLine{}
		}
		switch kind {
		case "err":
			return startLine{kind: kind, i: i, text: rest}
		case "fail":
			return startLine{kind: kind, i: i}
		}
		f := strings.Fields(rest)
		var pid int
		var ticks uint64
		var err1, err2 error
		if len(f) == 2 {
			pid, err1 = strconv.Atoi(f[0])
			ticks, err2 = strconv.ParseUint(f[1], 10, 64)
		}
		if len(f) != 2 || err1 != nil || err2 != nil || pid <= 0 {
			return startLine{kind: "fail", i: i, text: fmt.Sprintf("bad report %q", line)}
		}
		return startLine{kind: kind, i: i, pid: pid, ticks: ticks}
	}
	return startLine{}
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
