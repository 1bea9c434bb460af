package master

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shaddock/shaddock/proto/masterpb"
	"github.com/shaddock/shaddock/tools/client"
)

// topology: one connector (frontend), two chat backends, chat-server-1 with
// autoRestart.
const topology = `[[test.connector]]
id = "connector-server-1"
host = "127.0.0.1"
port = %d
clientPort = %d
frontend = true

[[test.chat]]
id = "chat-server-1"
host = "127.0.0.1"
port = %d
autoRestart = true

[[test.chat]]
id = "chat-server-2"
host = "127.0.0.1"
port = %d
`

// pidSet remembers every server pid a test has seen.
type pidSet struct {
	mu   sync.Mutex
	pids map[int]string
}

func (s *pidSet) add(ss map[string]*masterpb.ServerStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pids == nil {
		s.pids = map[int]string{}
	}
	for id, st := range ss {
		if pid := int(st.GetInfo().GetPid()); pid > 0 {
			s.pids[pid] = id
		}
	}
}

// running reports the pids that still run game (zombies do not count).
func (s *pidSet) running(game string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for pid, id := range s.pids {
		if args, err := cmdline(pid); err == nil && alive(pid) && strings.Contains(strings.Join(args, " "), game) {
			out = append(out, fmt.Sprintf("%s pid %d", id, pid))
		}
	}
	return out
}

// killLeftovers SIGKILLs, at the end of a failed test, the server processes
// it started (checked by command line, never by name).
func (s *pidSet) killLeftovers(t *testing.T, game string) {
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for pid, id := range s.pids {
			if isServerProcess(pid, game, id) {
				t.Logf("killing leftover %s pid %d", id, pid)
				signalPid(pid, syscall.SIGKILL)
			}
		}
	})
}

func progressLog(lines *[]string) func(*masterpb.Progress) {
	return func(p *masterpb.Progress) {
		prefix := ""
		if p.GetError() {
			prefix = "error: "
		}
		*lines = append(*lines, prefix+p.GetMessage())
	}
}

func TestClusterLifecycle(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	game, _ := bins(t)
	t.Logf("built in %v", time.Since(t0))
	c := newCluster(t, game, topology)
	var seen pidSet
	seen.killLeftovers(t, game)
	_, _, done, runErr := runMaster(t, c)
	cl := dial(t, c)

	// Everything comes up, with pids, builds and client ports.
	ss := waitList(t, cl, 30*time.Second, "every server running", allRunning)
	seen.add(ss)
	if len(ss) != 3 {
		t.Fatalf("List has %d servers, want 3", len(ss))
	}
	sum := sha256.New()
	if f, err := os.Open(game); err == nil {
		io.Copy(sum, f)
		f.Close()
	}
	build := hex.EncodeToString(sum.Sum(nil))[:12]
	for id, s := range ss {
		i := s.GetInfo()
		if i.GetPid() <= 0 || !alive(int(i.GetPid())) || i.GetBuild() != build || s.GetUptimeMs() < 0 {
			t.Errorf("%s: pid %d build %q uptime %d: want a live pid and build %s (the binary's SHA-256)", id, i.GetPid(), i.GetBuild(), s.GetUptimeMs(), build)
		}
	}
	conn := ss["connector-server-1"].GetInfo()
	if !conn.GetFrontend() || conn.GetClientPort() == 0 {
		t.Errorf("connector: frontend %v client port %d", conn.GetFrontend(), conn.GetClientPort())
	}

	// A client through the connector reaches a chat backend; the connector
	// reports its connection in its heartbeats.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var kicked atomic.Value
	cli, err := client.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", conn.GetClientPort()), client.Options{OnKick: func(r string) { kicked.Store(r) }})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	var enter struct {
		Code   int    `json:"code"`
		Server string `json:"server"`
	}
	if err := cli.RequestJSON(ctx, "connector.entryHandler.enter", map[string]string{"uid": "alice"}, &enter); err != nil || enter.Code != 200 {
		t.Fatalf("enter: %+v, %v", enter, err)
	}
	var echo struct{ Msg, Server string }
	if err := cli.RequestJSON(ctx, "chat.chatHandler.echo", map[string]string{"msg": "hi"}, &echo); err != nil || echo.Msg != "hi" || !strings.HasPrefix(echo.Server, "chat-server-") {
		t.Fatalf("echo through the connector: %+v, %v", echo, err)
	}
	waitList(t, cl, 5*time.Second, "one connection on the connector", func(ss map[string]*masterpb.ServerStatus) bool {
		return ss["connector-server-1"].GetConnections() == 1
	})

	// A crash of an autoRestart server: lost, then back with a new pid.
	old := int(ss["chat-server-1"].GetInfo().GetPid())
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ss = waitList(t, cl, 15*time.Second, "chat-server-1 restarted", func(ss map[string]*masterpb.ServerStatus) bool {
		s := ss["chat-server-1"]
		return s.GetState() == masterpb.ServerState_RUNNING && int(s.GetInfo().GetPid()) != old && s.GetRestarts() == 1
	})
	seen.add(ss)
	if alive(old) {
		t.Errorf("old chat-server-1 pid %d still alive", old)
	}

	// Admin Kill is a forced stop: the server stays down until started.
	var lines []string
	if err := cl.Kill(ctx, &masterpb.Selector{Ids: []string{"chat-server-2"}}, progressLog(&lines)); err != nil {
		t.Fatalf("kill: %v (%q)", err, lines)
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "chat-server-2 killed") {
		t.Errorf("kill progress %q", lines)
	}
	killed := int(ss["chat-server-2"].GetInfo().GetPid())
	if alive(killed) {
		t.Errorf("chat-server-2 pid %d alive after Kill returned", killed)
	}
	time.Sleep(1500 * time.Millisecond) // longer than the first restart backoff
	waitList(t, cl, time.Second, "chat-server-2 stopped", func(ss map[string]*masterpb.ServerStatus) bool {
		s := ss["chat-server-2"]
		return s.GetState() == masterpb.ServerState_STOPPED && s.GetInfo().GetPid() == 0
	})
	lines = nil
	if err := cl.Start(ctx, &masterpb.Selector{Types: []string{"chat"}}, progressLog(&lines)); err != nil {
		t.Fatalf("start: %v (%q)", err, lines)
	}
	ss = waitList(t, cl, time.Second, "every server running again", allRunning)
	seen.add(ss)
	if pid := int(ss["chat-server-2"].GetInfo().GetPid()); pid == killed {
		t.Errorf("chat-server-2 has its old pid %d after Start", pid)
	}
	if want := "chat-server-1 is already running"; !strings.Contains(strings.Join(lines, "\n"), want) {
		t.Errorf("start progress %q: want %q", lines, want)
	}

	// Stop everything and the master: frontends first, every process gone,
	// and Run returns nil.
	lines = nil
	start := time.Now()
	if err := cl.Stop(ctx, &masterpb.StopRequest{Reason: "maintenance", Master: true}, progressLog(&lines)); err != nil {
		t.Fatalf("stop: %v (%q)", err, lines)
	}
	t.Logf("stop took %v:\n%s", time.Since(start), strings.Join(lines, "\n"))
	idx := func(sub string) int {
		for i, l := range lines {
			if strings.Contains(l, sub) {
				return i
			}
		}
		t.Errorf("no progress line with %q in %q", sub, lines)
		return -1
	}
	if f, b := idx("connector-server-1 stopped"), idx("stopping 2 backend"); f > b {
		t.Errorf("a backend was asked to stop before the frontend had exited: %q", lines)
	}
	if idx("master exiting") != len(lines)-1 {
		t.Errorf("last progress line is %q, want master exiting", lines[len(lines)-1])
	}
	select {
	case <-done:
		if err := runErr(); err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Stop{master}")
	}
	if left := seen.running(game); len(left) > 0 {
		t.Errorf("processes left after stop: %v", left)
	}
	if r, _ := kicked.Load().(string); r != "maintenance" {
		t.Errorf("client kicked with %q, want the stop reason", r)
	}
	// The connector's session-close hook reached a backend while it stopped.
	var left bool
	for _, id := range []string{"chat-server-1", "chat-server-2"} {
		b, _ := os.ReadFile(c.paths.ServerLog(id))
		left = left || strings.Contains(string(b), "session left") && strings.Contains(string(b), "uid=alice")
	}
	if !left {
		t.Error("no chat server logged alice's session-close remote: backends stopped before the frontend?")
	}
	st, err := readState(c.paths.StateFile("test"))
	if err != nil || len(st.Servers) != 0 {
		t.Errorf("state after stop: %+v, %v; want no servers", st, err)
	}
	if _, err := os.Stat(c.paths.TokenFile("test")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("admin token left behind: %v", err)
	}
	if _, err := c.paths.MasterPID("test"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("MasterPID after stop: %v, want ErrNotRunning", err)
	}
}

// runCLI runs the master CLI and returns its output.
func runCLI(t *testing.T, cli string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(cli, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestMasterKill9ReadoptsServers(t *testing.T) {
	t.Parallel()
	game, cli := bins(t)
	c := newCluster(t, game, topology)
	var seen pidSet
	seen.killLeftovers(t, game)
	t.Cleanup(func() { // the daemon master, if the test failed half-way
		if pid, err := c.paths.MasterPID("test"); err == nil && pid > 0 {
			signalPid(pid, syscall.SIGKILL)
		}
	})
	flags := []string{"--env=test", "--config", c.path}

	out, err := runCLI(t, cli, append([]string{"start", "--daemon", "--timeout=30s"}, flags...)...)
	if err != nil || !strings.Contains(out, "env test is up: all 3 servers running on 1 host") {
		t.Fatalf("master start --daemon: %v\n%s", err, out)
	}
	t.Logf("start --daemon:\n%s", out)
	out, err = runCLI(t, cli, append([]string{"list"}, flags...)...)
	if err != nil || strings.Count(out, " running ") != 3 {
		t.Fatalf("master list: %v\n%s", err, out)
	}
	cl := dial(t, c)
	before := waitList(t, cl, 5*time.Second, "every server running", allRunning)
	seen.add(before)
	cl.Close()

	// A client keeps talking through the connector to a backend for the
	// whole master restart: nothing may fail.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cc, err := client.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", before["connector-server-1"].GetInfo().GetClientPort()), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var enter struct{ Code int }
	if err := cc.RequestJSON(ctx, "connector.entryHandler.enter", map[string]string{"uid": "bob"}, &enter); err != nil || enter.Code != 200 {
		t.Fatalf("enter: %+v %v", enter, err)
	}
	stopTalk := make(chan struct{})
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	talked := make(chan struct{})
	go func() {
		defer close(talked)
		for {
			select {
			case <-stopTalk:
				return
			case <-time.After(20 * time.Millisecond):
			}
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			var echo struct{ Msg string }
			err := cc.RequestJSON(rctx, "chat.chatHandler.echo", map[string]string{"msg": "x"}, &echo)
			rcancel()
			sent.Add(1)
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
		}
	}()

	pid, err := c.paths.MasterPID("test")
	if err != nil || pid <= 0 {
		t.Fatalf("master pid: %d, %v", pid, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	if err := WaitMasterExit(wctx, c.paths, "test", pid); err != nil {
		t.Fatal(err)
	}
	wcancel()
	if out, err := runCLI(t, cli, append([]string{"list"}, flags...)...); err == nil || !strings.Contains(out, "not running") {
		t.Errorf("list with the master down: %v\n%s", err, out)
	}
	time.Sleep(500 * time.Millisecond) // the cluster serves on without its master

	out, err = runCLI(t, cli, append([]string{"start", "--daemon", "--timeout=30s"}, flags...)...)
	if err != nil || !strings.Contains(out, "env test is up") {
		t.Fatalf("second master start --daemon: %v\n%s", err, out)
	}
	cl = dial(t, c)
	after := waitList(t, cl, 5*time.Second, "every server running", allRunning)
	seen.add(after)
	for id, s := range before {
		if got, want := after[id].GetInfo().GetPid(), s.GetInfo().GetPid(); got != want {
			t.Errorf("%s: pid %d after the master restart, want the same pid %d", id, got, want)
		}
		if after[id].GetRestarts() != 0 {
			t.Errorf("%s restarted", id)
		}
	}
	time.Sleep(time.Second)
	close(stopTalk)
	<-talked
	if n := failed.Load(); n > 0 || sent.Load() < 20 {
		t.Errorf("%d of %d requests failed across the master restart (first: %v)", n, sent.Load(), firstErr.Load())
	}
	t.Logf("%d requests across the master restart, %d failed", sent.Load(), failed.Load())
	masterLog, _ := os.ReadFile(c.paths.MasterLog("test"))
	if !strings.Contains(string(masterLog), "membership settled: every running server re-registered") {
		t.Errorf("the second master did not settle on re-registration:\n%s", masterLog)
	}

	// Stop adopted servers (not children of this master) and the master.
	pid, _ = c.paths.MasterPID("test")
	out, err = runCLI(t, cli, append([]string{"stop", "--timeout=60s"}, flags...)...)
	if err != nil || !strings.Contains(out, "every server and the master have exited") {
		t.Fatalf("master stop: %v\n%s", err, out)
	}
	t.Logf("stop:\n%s", out)
	if left := seen.running(game); len(left) > 0 {
		t.Errorf("processes left after stop: %v", left)
	}
	if alive(pid) {
		t.Errorf("master pid %d alive after stop", pid)
	}
	if out, err := runCLI(t, cli, append([]string{"list"}, flags...)...); err == nil || !strings.Contains(out, "not running") {
		t.Errorf("list after stop: %v\n%s", err, out)
	}
}
