package launch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// shSpec is a Spec that runs a shell script locally.
func shSpec(t *testing.T, id, script string, env ...string) Spec {
	t.Helper()
	dir := t.TempDir()
	return Spec{ID: id, Host: "127.0.0.1", Dir: dir, Binary: "/bin/sh", Args: []string{"-c", script, "--id", id},
		Environ: env, Log: filepath.Join(dir, "logs", id+".log")}
}

// recvExit waits for a process's end on ch.
func recvExit(t *testing.T, ch <-chan Exit, within time.Duration) Exit {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("Wait's channel closed without an exit")
		}
		return e
	case <-time.After(within):
		t.Fatalf("no exit within %s", within)
	}
	return Exit{}
}

func newLocal(t *testing.T) *Local {
	l := NewLocal(nil)
	t.Cleanup(func() { l.Close() })
	return l
}

func TestLocalStartWaitStatusAndLog(t *testing.T) {
	l := newLocal(t)
	spec := shSpec(t, "s1", `echo "hello from $SHADDOCK_TEST"; pwd; exit 3`, "SHADDOCK_TEST=env-ok")
	h, err := l.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if h.PID <= 0 || h.Driver != DriverLocal || h.StartTicks == 0 || h.BootID == "" || h.ID != "s1" {
		t.Fatalf("handle %+v: want a pid, the local driver and the process's identity", h)
	}
	e := recvExit(t, l.Wait(h), 10*time.Second)
	if e.Code != 3 || e.Status != "exit status 3" || !e.Failed() {
		t.Fatalf("exit %+v, want exit status 3", e)
	}
	b, err := os.ReadFile(spec.Log)
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	for _, want := range []string{"master: starting s1 on 127.0.0.1: /bin/sh -c", "hello from env-ok\n", spec.Dir + "\n",
		fmt.Sprintf("s1 pid %d exited: exit status 3", h.PID)} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	// A Wait after the end was delivered still gets an end.
	if e := recvExit(t, l.Wait(h), 5*time.Second); e.Status == "" {
		t.Errorf("late Wait: %+v", e)
	}
	if err := l.Recover(context.Background(), h); !errors.Is(err, ErrGone) {
		t.Errorf("Recover of an ended process: %v, want ErrGone", err)
	}
}

func TestLocalStopKillAndDetach(t *testing.T) {
	l := newLocal(t)
	// The shell ignores nothing: SIGTERM ends it.
	h, err := l.Start(context.Background(), shSpec(t, "s2", "sleep 60 & wait"))
	if err != nil {
		t.Fatal(err)
	}
	if sid, err := unix.Getsid(h.PID); err != nil || sid != h.PID {
		t.Errorf("getsid(%d) = %d, %v: want a session of its own", h.PID, sid, err)
	}
	if err := l.Recover(context.Background(), h); err != nil {
		t.Fatalf("Recover of a running process: %v", err)
	}
	ch1, ch2 := l.Wait(h), l.Wait(h)
	start := time.Now()
	if err := l.Stop(context.Background(), h, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("Stop took %s for a process that ends on SIGTERM", time.Since(start))
	}
	for _, ch := range []<-chan Exit{ch1, ch2} {
		if e := recvExit(t, ch, 5*time.Second); e.Status != "signal: terminated" {
			t.Errorf("exit %+v, want signal: terminated", e)
		}
	}

	// A process that ignores SIGTERM is killed after the grace period.
	h, err = l.Start(context.Background(), shSpec(t, "s3", `trap "" TERM; while :; do sleep 0.05; done`))
	if err != nil {
		t.Fatal(err)
	}
	ch := l.Wait(h)
	time.Sleep(100 * time.Millisecond) // let the shell install its trap
	start = time.Now()
	if err := l.Stop(context.Background(), h, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("Stop returned after %s, before the grace period", d)
	}
	if e := recvExit(t, ch, 5*time.Second); e.Status != "signal: killed" {
		t.Errorf("exit %+v, want signal: killed", e)
	}
	// Stopping or killing an ended process is not an error.
	if err := l.Kill(context.Background(), h); err != nil {
		t.Errorf("Kill of an ended process: %v", err)
	}
}

func TestLocalNeverSignalsAReusedPid(t *testing.T) {
	l := newLocal(t)
	h, err := l.Start(context.Background(), shSpec(t, "s4", "sleep 60 & wait"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(h.PID, syscall.SIGKILL) })
	stale := h
	stale.StartTicks-- // the handle of an earlier process that had this pid
	if err := l.Recover(context.Background(), stale); !errors.Is(err, ErrGone) {
		t.Errorf("Recover(stale) = %v, want ErrGone", err)
	}
	if err := l.Kill(context.Background(), stale); err != nil {
		t.Errorf("Kill(stale) = %v, want nil (nothing to kill)", err)
	}
	// Without an identity the command line decides: another id is not it.
	other := Handle{Driver: DriverLocal, ID: "someone-else", PID: h.PID, Binary: "/bin/sh"}
	if err := l.Kill(context.Background(), other); err != nil {
		t.Errorf("Kill(other id) = %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if !alive(h.PID) {
		t.Fatal("a handle that does not name the process killed it")
	}
	byCmdline := Handle{Driver: DriverLocal, ID: "s4", PID: h.PID, Binary: "/bin/sh"}
	if err := l.Recover(context.Background(), byCmdline); err != nil {
		t.Errorf("Recover by command line: %v", err)
	}
	if err := l.Kill(context.Background(), byCmdline); err != nil || alive(h.PID) {
		t.Errorf("Kill by command line: %v, alive %v", err, alive(h.PID))
	}
}

func TestLocalCloseLeavesProcessesRunning(t *testing.T) {
	l := NewLocal(nil)
	h, err := l.Start(context.Background(), shSpec(t, "s5", "sleep 60 & wait"))
	if err != nil {
		t.Fatal(err)
	}
	ch := l.Wait(h)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case e, ok := <-ch:
		if ok {
			t.Fatalf("Wait delivered %+v after Close, want a closed channel", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait's channel still open after Close")
	}
	l.Close() // idempotent
	if !alive(h.PID) {
		t.Fatal("Close ended the process")
	}
	// A new launcher (as after a master restart) takes it over.
	l2 := newLocal(t)
	if err := l2.Recover(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	ch = l2.Wait(h)
	if err := l2.Stop(context.Background(), h, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	recvExit(t, ch, 5*time.Second)
}

func TestLocalStartErrors(t *testing.T) {
	l := newLocal(t)
	spec := shSpec(t, "s6", "true")
	spec.Binary = filepath.Join(spec.Dir, "bin", "no-such-game")
	_, err := l.Start(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "no-such-game") {
		t.Fatalf("Start of a missing binary: %v", err)
	}
	if b, _ := os.ReadFile(spec.Log); !strings.Contains(string(b), "start failed") {
		t.Errorf("the log does not say the start failed:\n%s", b)
	}
	spec = shSpec(t, "s7", "true", "BAD=a\nb")
	if _, err := l.Start(context.Background(), spec); err == nil {
		t.Error("a newline in the environment was accepted")
	}
}

func TestLocalLogs(t *testing.T) {
	l := newLocal(t)
	path := filepath.Join(t.TempDir(), "x.log")
	var all strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&all, "line %d\n", i)
	}
	if err := os.WriteFile(path, []byte(all.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 3, 4999, 5000, 7000} {
		var b bytes.Buffer
		if err := l.Logs(context.Background(), "127.0.0.1", path, n, false, &b); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		want := min(n, 5000)
		if len(lines) != want || lines[len(lines)-1] != "line 4999" || lines[0] != fmt.Sprintf("line %d", 5000-want) {
			t.Errorf("n=%d: got %d lines, first %q last %q", n, len(lines), lines[0], lines[len(lines)-1])
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- l.Logs(ctx, "127.0.0.1", path, 1, true, w) }()
	waitFor(t, func() bool { return w.String() == "line 4999\n" })
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "appended later")
	f.Close()
	waitFor(t, func() bool { return strings.Contains(w.String(), "appended later") })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := w.String(); got != "line 4999\nappended later\n" {
		t.Errorf("follow wrote %q", got)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestParseStat(t *testing.T) {
	st, ticks, err := parseStat([]byte("42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615\n"))
	if err != nil || st != 'S' || ticks != 987654 {
		t.Fatalf("parseStat = %c %d %v, want S 987654", st, ticks, err)
	}
	if _, _, err := parseStat([]byte("42 (x) S 1")); err == nil {
		t.Error("a short stat line parsed")
	}
}

func TestMatchCmdline(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"/opt/bin/chat", "--env", "p", "--id", "chat-1"}, true},
		{[]string{"/opt/bin/chat", "--id=chat-1"}, true},
		{[]string{"/opt/bin/chat", "-id", "chat-1"}, true},
		{[]string{"/opt/bin/chat", "--id", "chat-10"}, false},
		{[]string{"/other/chat", "--id", "chat-1"}, false},
		{[]string{"/opt/bin/chat"}, false},
	} {
		if got := MatchCmdline(c.args, "/opt/bin/chat", "chat-1"); got != c.want {
			t.Errorf("MatchCmdline(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}
