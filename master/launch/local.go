package launch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DriverLocal is the Driver of handles made by [Local].
const DriverLocal = "local"

// Local starts processes on this machine: exec, in a session of their own
// (setsid), so that neither a Ctrl-C at the master's terminal nor the
// master's death reaches them. It watches each process without polling
// where the system allows (a pidfd on Linux) and reaps its children.
type Local struct {
	log *slog.Logger

	mu      sync.Mutex
	closed  bool
	watches map[procKey]*watch
	wg      sync.WaitGroup // one watcher goroutine per watched process
	done    chan struct{}  // closed by Close
}

// procKey identifies a process across pid reuse.
type procKey struct {
	pid   int
	ticks uint64
}

// watch is one process being waited for, and who waits.
type watch struct {
	subs []chan Exit
}

// NewLocal returns a local launcher; logger may be nil.
func NewLocal(logger *slog.Logger) *Local {
	if logger == nil {
		logger = slog.Default()
	}
	return &Local{log: logger, watches: map[procKey]*watch{}, done: make(chan struct{})}
}

// Start execs spec's binary with its output appended to spec.Log.
func (l *Local) Start(ctx context.Context, spec Spec) (Handle, error) {
	if err := checkEnviron(spec.Environ); err != nil {
		return Handle{}, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	if err := os.MkdirAll(filepath.Dir(spec.Log), 0o700); err != nil {
		return Handle{}, fmt.Errorf("start %s: create log directory: %w", spec.ID, err)
	}
	f, err := os.OpenFile(spec.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return Handle{}, fmt.Errorf("start %s: open log: %w", spec.ID, err)
	}
	defer f.Close()
	fmt.Fprintf(f, "=== %s master: starting %s on %s: %s %s\n", time.Now().UTC().Format(time.RFC3339),
		spec.ID, spec.Host, spec.Binary, strings.Join(spec.Args, " "))
	cmd := exec.Command(spec.Binary, spec.Args...)
	cmd.Dir = spec.Dir
	cmd.Env = append(os.Environ(), spec.Environ...)
	cmd.Stdout, cmd.Stderr = f, f // stdin: /dev/null
	cmd.SysProcAttr = detachAttr()
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(f, "=== start failed: %v\n", err)
		return Handle{}, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	pid := cmd.Process.Pid
	h := Handle{Driver: DriverLocal, Host: spec.Host, ID: spec.ID, PID: pid, Started: time.Now(),
		Binary: spec.Binary, Log: spec.Log}
	// The child is watched and reaped by pid (see Wait), so that the
	// master can exit while it runs on: release os/exec's hold on it.
	h.BootID, h.StartTicks, _ = identity(pid)
	cmd.Process.Release()
	return h, nil
}

// Recover reports whether the handle's process still runs.
func (l *Local) Recover(_ context.Context, h Handle) error {
	if !l.isProcess(h) {
		return fmt.Errorf("%s: %w", h, ErrGone)
	}
	return nil
}

// isProcess reports whether h's pid is still h's process: same boot and
// start time when the handle has them, else a command line that runs its
// binary as its id.
func (l *Local) isProcess(h Handle) bool {
	if !alive(h.PID) {
		return false
	}
	if h.StartTicks != 0 {
		boot, ticks, err := identity(h.PID)
		return err == nil && ticks == h.StartTicks && (h.BootID == "" || boot == h.BootID)
	}
	args, err := cmdline(h.PID)
	return err == nil && MatchCmdline(args, h.Binary, h.ID)
}

// Wait returns a channel that receives the process's end.
func (l *Local) Wait(h Handle) <-chan Exit {
	ch := make(chan Exit, 1)
	key := procKey{h.PID, h.StartTicks}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		close(ch)
		return ch
	}
	w := l.watches[key]
	if w == nil {
		w = &watch{}
		l.watches[key] = w
		l.wg.Add(1)
		go l.watchProc(h, key)
	}
	w.subs = append(w.subs, ch)
	return ch
}

// watchProc waits for one process to end and tells its subscribers.
func (l *Local) watchProc(h Handle, key procKey) {
	defer l.wg.Done()
	exit, ok := l.waitExit(h)
	if ok {
		l.noteExit(h, exit) // before anyone reads the log for the reason
	}
	// Forget the process: a later Wait for it finds it gone at once.
	l.mu.Lock()
	subs := l.watches[key].subs
	delete(l.watches, key)
	l.mu.Unlock()
	for _, ch := range subs {
		if ok {
			ch <- exit
		}
		close(ch)
	}
}

// waitExit blocks until h's process ends (true) or the launcher closes
// (false).
func (l *Local) waitExit(h Handle) (Exit, bool) {
	if !l.isProcess(h) {
		return l.reaped(h), true
	}
	if waitPidfd(h.PID, l.done) {
		return l.reaped(h), true
	}
	// No pidfd (old kernel, not Linux) or it failed: poll.
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return Exit{}, false
		case <-t.C:
		}
		if ended, status, err := reap(h.PID); err == nil && ended {
			return status, true
		}
		if !l.isProcess(h) {
			return l.reaped(h), true
		}
	}
}

// reaped collects the ended process if it is this process's child (its
// exit status), or reports an unknown status if it is not.
func (l *Local) reaped(h Handle) Exit {
	for range 50 {
		ended, exit, err := reap(h.PID)
		switch {
		case err != nil: // not our child: adopted from an earlier master
			return Exit{Code: -1, Status: "ended (exit status unknown)", At: time.Now()}
		case ended:
			return exit
		}
		// Readable pidfd but not yet reapable: the exit is in progress.
		time.Sleep(2 * time.Millisecond)
	}
	return Exit{Code: -1, Status: "ended (exit status unknown)", At: time.Now()}
}

// noteExit appends the end to the server's log, where the server's own
// last words are.
func (l *Local) noteExit(h Handle, e Exit) {
	if h.Log == "" {
		return
	}
	f, err := os.OpenFile(h.Log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "=== %s %s pid %d exited: %s\n", e.At.UTC().Format(time.RFC3339), h.ID, h.PID, e.Status)
}

// Stop sends SIGTERM, and SIGKILL after grace, until the process ends.
func (l *Local) Stop(ctx context.Context, h Handle, grace time.Duration) error {
	h, ok := l.pin(h)
	if !ok {
		return nil
	}
	if err := l.signal(h, syscall.SIGTERM); err != nil {
		return err
	}
	gone, err := l.waitGone(ctx, h, grace)
	if gone || err != nil {
		return err
	}
	l.log.Warn("server did not stop in time; killing it", "server", h.ID, "pid", h.PID, "grace", grace)
	return l.Kill(ctx, h)
}

// Kill sends SIGKILL and waits until the process has ended.
func (l *Local) Kill(ctx context.Context, h Handle) error {
	h, ok := l.pin(h)
	if !ok {
		return nil
	}
	if err := l.signal(h, syscall.SIGKILL); err != nil {
		return err
	}
	gone, err := l.waitGone(ctx, h, killWait)
	if err == nil && !gone {
		err = fmt.Errorf("kill %s: still running %s after SIGKILL", h, killWait)
	}
	return err
}

// killWait bounds the wait for a process after SIGKILL.
const killWait = 5 * time.Second

// pin returns h with its process's start time filled in, if h's process
// still runs: from then on it is recognised by that, not by a command line
// that vanishes while it exits.
func (l *Local) pin(h Handle) (Handle, bool) {
	if !l.isProcess(h) {
		return h, false
	}
	if h.StartTicks == 0 {
		boot, ticks, err := identity(h.PID)
		if err == nil {
			h.BootID, h.StartTicks = boot, ticks
		}
	}
	return h, true
}

// signal sends sig to h's process if it is still that process.
func (l *Local) signal(h Handle, sig syscall.Signal) error {
	if !l.isProcess(h) {
		return nil
	}
	if err := syscall.Kill(h.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s: %w", h, err)
	}
	return nil
}

// waitGone waits up to d for h's process to end.
func (l *Local) waitGone(ctx context.Context, h Handle, d time.Duration) (bool, error) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if !l.isProcess(h) {
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("wait for %s to end: %w", h, ctx.Err())
		case <-deadline.C:
			return false, nil
		case <-t.C:
		}
	}
}

// Logs writes the end of a local file, and follows it if asked.
func (l *Local) Logs(ctx context.Context, _ string, path string, n int, follow bool, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	defer f.Close()
	off, err := tailOffset(f, n)
	if err != nil {
		return fmt.Errorf("logs %s: %w", path, err)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("logs %s: %w", path, err)
	}
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("logs %s: %w", path, err)
	}
	if !follow {
		return nil
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		pos, _ := f.Seek(0, io.SeekCurrent)
		if fi, err := os.Stat(path); err == nil && fi.Size() < pos {
			f.Seek(0, io.SeekStart) // truncated: start over, as tail -F does
		}
		if _, err := io.Copy(w, f); err != nil {
			return fmt.Errorf("logs %s: %w", path, err)
		}
	}
}

// tailOffset returns where the last n lines of f begin (0 for n <= 0).
func tailOffset(f *os.File, n int) (int64, error) {
	if n <= 0 {
		return 0, nil
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	end := size
	// A final newline ends the last line; it does not start another.
	lines := -1
	for end > 0 {
		start := max(0, end-chunk)
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] == '\n' {
				lines++
				if lines == n {
					return start + int64(i) + 1, nil
				}
			}
		}
		end = start
	}
	return 0, nil
}

// Close stops watching; the processes keep running.
func (l *Local) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	l.mu.Unlock()
	l.wg.Wait()
	return nil
}

// MatchCmdline reports whether a process's arguments run binary as server
// id: the binary path among them and "--id ID" (or --id=ID, -id ID).
func MatchCmdline(args []string, binary, id string) bool {
	if binary != "" && !slices.Contains(args, binary) {
		return false
	}
	for i, a := range args {
		for _, p := range []string{"-id", "--id"} {
			if a == p && i+1 < len(args) {
				return args[i+1] == id
			}
			if v, ok := strings.CutPrefix(a, p+"="); ok {
				return v == id
			}
		}
	}
	return false
}

// parseStat returns the start time (field 22) of a /proc/PID/stat line and
// its state (field 3). comm (field 2) may hold spaces and parentheses, so
// fields are counted after the last ')'.
func parseStat(b []byte) (state byte, ticks uint64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("no ')' in stat")
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("stat has %d fields after comm, want 20 or more", len(fields))
	}
	var t uint64
	if _, err := fmt.Sscan(fields[19], &t); err != nil {
		return 0, 0, fmt.Errorf("stat start time %q: %w", fields[19], err)
	}
	return fields[0][0], t, nil
}

// readBootID returns the kernel's boot id.
func readBootID() (string, error) {
	f, err := os.Open("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", err
	}
	defer f.Close()
	s, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimSpace(s), nil
}
