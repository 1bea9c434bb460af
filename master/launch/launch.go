// Package launch starts, watches and stops server processes on the hosts of
// a cluster: the master's task drivers, in the shape of Nomad's
// (start, recover from a persisted handle, wait on a channel, stop with a
// grace period, kill).
//
// Two launchers implement [Launcher]: [Local] execs processes on this
// machine, [SSH] starts them on other hosts over SSH
// (golang.org/x/crypto/ssh, known_hosts enforced). Both start a server
// detached from the master, in its own session, with its output appended to
// a log file on its host, so that servers outlive the master and a new
// master re-attaches to them from their handles.
//
// It is for: one process at a time, on one host, and the files a process
// needs there (the binary, the config). It is not for: deciding what should
// run (package master's reconcile loop does), registration, or anything on
// the data path.
package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"
)

// Spec is one server process to start.
type Spec struct {
	ID     string   // server id, for errors and the log header
	Host   string   // host as servers.toml names it
	Dir    string   // absolute working directory on the host (the environment's base)
	Binary string   // absolute path of the game binary on the host
	Args   []string // arguments after the binary
	// Environ is extra KEY=VALUE environment (the server's env table, the
	// cluster secret, the instance epoch). It is handed over out of band,
	// never on a command line another user could read; no value may hold a
	// newline.
	Environ []string
	Log     string // absolute path of its log file on the host; stdout and stderr are appended
}

// Handle identifies a process a launcher started. It is plain data: the
// master keeps it in its state file and gives it back to Recover, Wait,
// Stop and Kill, possibly in a later master process; only the launcher
// that made it (Driver) interprets it.
type Handle struct {
	Driver  string    `json:"driver"` // "local" or "ssh"
	Host    string    `json:"host"`
	ID      string    `json:"id"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// The process's identity on its host, so that a reused pid is never
	// signalled: the kernel's boot id and the process's start time in
	// clock ticks since boot (/proc/PID/stat, field 22). Zero when the
	// handle was built from a registration alone (see Adopt).
	BootID     string `json:"boot_id,omitempty"`
	StartTicks uint64 `json:"start_ticks,omitempty"`
	Binary     string `json:"binary,omitempty"` // what it runs, absolute on its host
	Log        string `json:"log,omitempty"`    // its log file on its host
}

// String is "id pid 1234 on host".
func (h Handle) String() string { return fmt.Sprintf("%s pid %d on %s", h.ID, h.PID, h.Host) }

// Exit is how a process ended.
type Exit struct {
	// Code is the exit status, or -1 when it was killed by a signal or
	// the status is unknown.
	Code int
	// Status says how it ended: "exit status 1", "signal: killed",
	// "ended (exit status unknown)".
	Status string
	At     time.Time // when the launcher noticed
}

// Failed reports whether the process ended other than with status 0.
func (e Exit) Failed() bool { return e.Code != 0 }

// Launcher starts and controls processes on hosts.
//
// Every method is safe for concurrent use and bounded: a call never waits
// on an unreachable host longer than its context (or, for calls without
// one, the launcher's own connect deadline).
type Launcher interface {
	// Start starts spec's process, detached, and returns its handle once
	// it runs (its pid is known). The error says why it could not: the
	// host cannot be reached or its key is not trusted, the binary is
	// missing, the exec failed.
	Start(ctx context.Context, spec Spec) (Handle, error)
	// Recover re-attaches to a process from its handle: nil if it still
	// runs (Wait then works for it), an error wrapping ErrGone if it has
	// ended, another error if that cannot be known now (host unreachable).
	Recover(ctx context.Context, h Handle) error
	// Wait returns a channel that receives the process's end once and is
	// then closed. While the end cannot be known (its host is unreachable)
	// nothing is sent: the launcher keeps watching, and reports the end
	// when it sees it. Each call returns a new channel; all receive it.
	// After Close, channels of processes still running are closed without
	// a value.
	Wait(h Handle) <-chan Exit
	// Stop sends SIGTERM, waits up to grace, then sends SIGKILL, and
	// returns once the process has ended (nil), or ctx ended. A process
	// that has already ended is not an error. Signals go only to the
	// process the handle names, checked by its identity first.
	Stop(ctx context.Context, h Handle, grace time.Duration) error
	// Kill sends SIGKILL and returns once the process has ended, as Stop.
	Kill(ctx context.Context, h Handle) error
	// Logs writes the last n lines of the file path on host to w (all of
	// it when n <= 0) and, if follow, what is appended to it afterwards,
	// until ctx ends.
	Logs(ctx context.Context, host, path string, n int, follow bool, w io.Writer) error
	// Close stops watching and releases connections. Processes keep
	// running.
	Close() error
}

// Installer is implemented by launchers whose hosts need files copied to
// them.
type Installer interface {
	// Install makes dst on host a copy of the local file src with mode,
	// unless dst there already has src's SHA-256; it writes a temporary
	// file beside dst and renames it into place, so a process starting
	// meanwhile sees the old file or the new one, never half of one.
	// sum is src's SHA-256 in hex (the caller computes it once for every
	// host). It reports whether it copied.
	Install(ctx context.Context, host, src, sum, dst string, mode os.FileMode) (copied bool, err error)
}

// ErrGone is wrapped by Recover's error when the process has ended.
var ErrGone = errors.New("process has ended")

// HostError is a failure to reach or trust a host; every server on that
// host fails the same way until it is fixed.
type HostError struct {
	Host string
	Err  error
}

func (e *HostError) Error() string { return e.Err.Error() }
func (e *HostError) Unwrap() error { return e.Err }

// Env var names the master sets for the servers it starts.
const (
	SecretEnv = "SHADDOCK_CLUSTER_SECRET" // cluster secret (app.SecretEnv reads it)
	EpochEnv  = "SHADDOCK_EPOCH"          // the instance's epoch (app reads it)
	BuildEnv  = "SHADDOCK_BUILD"          // the binary's build id, when the master hashed that very file
)

// checkEnviron rejects environment entries that cannot be handed over.
func checkEnviron(env []string) error {
	for _, kv := range env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("environment entry %q is not KEY=VALUE", kv)
		}
		if strings.ContainsAny(kv, "\n\x00") {
			return fmt.Errorf("environment variable %s holds a newline or NUL", k)
		}
	}
	return nil
}

// ExitFromStatus turns a shell's $? for a child into an Exit: 128+N means
// killed by signal N.
func ExitFromStatus(code int, at time.Time) Exit {
	if code > 128 && code < 128+65 {
		return Exit{Code: -1, Status: "signal: " + signalName(code-128), At: at}
	}
	return Exit{Code: code, Status: fmt.Sprintf("exit status %d", code), At: at}
}

// signalName is a signal's name as Go prints it ("killed", "terminated").
func signalName(n int) string { return syscall.Signal(n).String() }
