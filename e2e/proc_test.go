package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
const stopGrace = 10 * time.Second

// Proc is a command started by a test, with its output captured line by line.
type Proc struct {
	Name string
	Log  *LogBuffer // stderr and stdout, line by line

	cmd      *exec.Cmd
	done     chan struct{} // closed once the process is reaped
	waitErr  error         // set before done is closed
	stopOnce sync.Once
}

// StartProc starts the command built under name (see binaries) with args.
// The process is stopped when the test ends, and its output is logged if
// the test failed.
func StartProc(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	return startPath(t, name, binPath(name), args...)
}

// startPath is StartProc for a command outside binaries (a system
// package's, such as prometheus), by path.
func startPath(t testing.TB, name, path string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(path, args...)
	p := &Proc{Name: name, Log: &LogBuffer{}, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Log, p.Log
	cmd.SysProcAttr = sysProcAttr()
	// The output is copied through pipes: a grandchild holding them open
	// must not keep Wait from returning.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s (pid %d) output:\n%s", p.Name, p.Pid(), p.Log)
		}
	})
	return p
}

// Pid returns the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended (and been reaped).
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, waits up to stopGrace, then sends SIGKILL; it returns
// once the process is reaped, with its exit error (nil for status 0). It
// signals only this process, by pid, and is safe to call more than once.
func (p *Proc) Stop() error {
	p.stopOnce.Do(func() {
		if p.Exited() {
			return
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	<-p.done
	return p.waitErr
}

// WaitLog waits until a line containing every one of subs has been written,
// and returns it; it fails the test after timeout or if the process exits
// first. Call it from the test's goroutine.
func (p *Proc) WaitLog(t testing.TB, timeout time.Duration, subs ...string) LogLine {
	t.Helper()
	line, err := p.Log.Wait(timeout, p.done, subs...)
	if err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
	return line
}

// RSS returns the process's resident set size (VmRSS) in bytes.
func (p *Proc) RSS() (int64, error) {
	return readRSS(p.Pid())
}

func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("pid %d: VmRSS %q: %w", pid, rest, err)
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("pid %d: no VmRSS in /proc status", pid)
}

// LogLine is one line of a process's output and when it was read.
type LogLine struct {
	At   time.Time
	Text string
}

// LogBuffer collects a process's output as lines. It is safe for
// concurrent use.
type LogBuffer struct {
	mu      sync.Mutex
	partial []byte
	lines   []LogLine
	changed chan struct{} // closed and replaced when a line is added
}

// Write implements io.Writer for exec.Cmd.
func (b *LogBuffer) Write(p []byte) (int, error) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.partial = append(b.partial, p...)
	added := false
	for {
		i := bytes.IndexByte(b.partial, '\n')
		if i < 0 {
			break
		}
		b.lines = append(b.lines, LogLine{At: now, Text: string(b.partial[:i])})
		b.partial = b.partial[i+1:]
		added = true
	}
	if added && b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return len(p), nil
}

// Lines returns the complete lines so far.
func (b *LogBuffer) Lines() []LogLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]LogLine(nil), b.lines...)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var sb strings.Builder
	for _, l := range b.lines {
		sb.WriteString(l.Text)
		sb.WriteByte('\n')
	}
	sb.Write(b.partial)
	return sb.String()
}

// Find returns the first line containing every one of subs.
func (b *LogBuffer) Find(subs ...string) (LogLine, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, l, ok := b.find(0, subs)
	return l, ok
}

func (b *LogBuffer) find(from int, subs []string) (int, LogLine, bool) {
next:
	for i := from; i < len(b.lines); i++ {
		for _, s := range subs {
			if !strings.Contains(b.lines[i].Text, s) {
				continue next
			}
		}
		return i, b.lines[i], true
	}
	return len(b.lines), LogLine{}, false
}

// Wait returns the first line containing every one of subs, waiting up to
// timeout for it; it gives up early when stop is closed (process exit) and
// nothing more can come.
func (b *LogBuffer) Wait(timeout time.Duration, stop <-chan struct{}, subs ...string) (LogLine, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	from := 0
	for {
		b.mu.Lock()
		i, l, ok := b.find(from, subs)
		from = i
		if ok {
			b.mu.Unlock()
			return l, nil
		}
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
		case <-stop:
			// The output is complete once the process is reaped: look once
			// more.
			b.mu.Lock()
			_, l, ok := b.find(from, subs)
			b.mu.Unlock()
			if ok {
				return l, nil
			}
			return LogLine{}, fmt.Errorf("exited without logging a line with %q", subs)
		case <-deadline.C:
			return LogLine{}, fmt.Errorf("no line with %q after %v", subs, timeout)
		}
	}
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago, for a child process to listen on.
func freeAddr(t testing.TB) string {
	t.Helper()
	// The kernel may hand a port it just gave out again once its listener
	// is closed; a config with the same port twice is then refused
	// (TestHelloExample did once), so no port is given out twice.
	givenPorts.mu.Lock()
	defer givenPorts.mu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		addr := l.Addr().String()
		l.Close()
		if !givenPorts.set[addr] {
			givenPorts.set[addr] = true
			return addr
		}
	}
	t.Fatal("find a free port: the kernel keeps handing out ports already given")
	return ""
}

// givenPorts are the ports freeAddr has handed out in this test binary.
var givenPorts = struct {
	mu  sync.Mutex
	set map[string]bool
}{set: map[string]bool{}}

// waitPort waits until addr accepts TCP connections, failing the test after
// timeout or as soon as p exits.
func waitPort(t testing.TB, p *Proc, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if p != nil && p.Exited() {
			t.Fatalf("%s exited before listening on %s: %v\n%s", p.Name, addr, p.waitErr, p.Log)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening after %v: %v", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StartEcho starts the echo connector on a free port with extra flags and
// returns it once it accepts connections.
func StartEcho(t testing.TB, flags ...string) (p *Proc, addr string) {
	t.Helper()
	addr = freeAddr(t)
	p = StartProc(t, "echo", append([]string{"-addr", addr}, flags...)...)
	// The listening line comes after the listen: no dial to someone else's
	// process that grabbed the port in between.
	if _, err := p.Log.Wait(30*time.Second, p.done, "echo connector listening", "addr="+addr); err != nil {
		t.Fatalf("echo: %v\n%s", err, p.Log)
	}
	waitPort(t, p, addr, 30*time.Second)
	return p, addr
}

// isExit reports whether err is a clean exit.
func isExit(err error, code int) bool {
	if err == nil {
		return code == 0
	}
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.ExitCode() == code
}
