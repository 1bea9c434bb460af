package master

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/master/launch"
	"github.com/shaddock/shaddock/proto/masterpb"
)

var binDir string // TestMain's temporary directory for built commands

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shaddock-master-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildErr  error
)

// bins builds the test game and the master CLI once, without -race (they
// are the processes under supervision, not the code under test's memory).
func bins(t *testing.T) (game, cli string) {
	t.Helper()
	buildOnce.Do(func() {
		for _, b := range []struct{ out, pkg string }{{"testgame", "./internal/testgame"}, {"master", "../cmd/master"}} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, b.out), b.pkg)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "testgame"), filepath.Join(binDir, "master")
}

// freePort returns a port that was free a moment ago on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// cluster is a test topology: a config file in a temporary directory.
type cluster struct {
	dir, path string
	env       *config.Env
	paths     Paths
}

// newCluster writes servers.toml (environment "test") with the master on a
// free port and the given server entries ("[[test.chat]]" tables, with %d
// for each free port they need, filled from ports).
func newCluster(t *testing.T, binary, servers string) *cluster {
	t.Helper()
	dir := t.TempDir()
	n := strings.Count(servers, "%d")
	ports := make([]any, n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	text := fmt.Sprintf("[test]\nbinary = %q\n\n[test.master]\nid = \"master-server-1\"\nhost = \"127.0.0.1\"\nport = %d\n\n",
		binary, freePort(t)) + fmt.Sprintf(servers, ports...)
	path := filepath.Join(dir, "servers.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err := config.Load(path, "test")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{dir: dir, path: path, env: env, paths: DefaultPaths(path)}
	// Whatever a test leaves running, even one that failed half-way: its
	// master and its servers (found by their command line, which names
	// this cluster's directory).
	killCluster(t, binary, c)
	return c
}

// logBuffer collects a master's log, printed if the test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runMaster runs a Master for c in this process. stop cancels Run's
// context (the servers keep running) and returns Run's error; done is
// closed when Run has returned, and runErr is then its error.
func runMaster(t *testing.T, c *cluster) (m *Master, stop func() error, done <-chan struct{}, runErr func() error) {
	t.Helper()
	logs := &logBuffer{}
	m, err := New(Config{Env: c.env, ConfigPath: c.path, RunDir: c.paths.RunDir, LogDir: c.paths.LogDir,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	var err2 error
	go func() { err2 = m.Run(ctx); close(ch) }()
	runErr = func() error { <-ch; return err2 }
	stop = func() error {
		cancel()
		select {
		case <-ch:
			return err2
		case <-time.After(20 * time.Second):
			return fmt.Errorf("Run did not return 20 s after its context ended")
		}
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("master log:\n%s", logs)
		}
	})
	return m, stop, ch, runErr
}

// dial connects a client to c's master, waiting for it to be up.
func dial(t *testing.T, c *cluster) *Client {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cl, err := DialEnv(context.Background(), c.env, c.paths)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = cl.List(ctx)
			cancel()
			if err == nil {
				t.Cleanup(func() { cl.Close() })
				return cl
			}
			cl.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("master not reachable: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitList polls List until ok accepts the reply.
func waitList(t *testing.T, cl *Client, timeout time.Duration, what string, ok func(map[string]*masterpb.ServerStatus) bool) map[string]*masterpb.ServerStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last map[string]*masterpb.ServerStatus
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		rep, err := cl.List(ctx)
		cancel()
		if err == nil {
			last = byID(rep)
			if ok(last) {
				return last
			}
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			if rep != nil {
				WriteTable(&b, rep)
			}
			t.Fatalf("waiting for %s: timed out (last error %v)\n%s", what, err, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func byID(rep *masterpb.ListReply) map[string]*masterpb.ServerStatus {
	out := map[string]*masterpb.ServerStatus{}
	for _, s := range rep.GetServers() {
		out[s.GetInfo().GetId()] = s
	}
	return out
}

func allRunning(ss map[string]*masterpb.ServerStatus) bool {
	for _, s := range ss {
		if s.GetState() != masterpb.ServerState_RUNNING {
			return false
		}
	}
	return len(ss) > 0
}

// cmdline returns a process's arguments (Linux).
func cmdline(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil, fmt.Errorf("pid %d has no command line", pid)
	}
	return strings.Split(string(b), "\x00"), nil
}

// isServerProcess reports whether pid runs binary as server id.
func isServerProcess(pid int, binary, id string) bool {
	args, err := cmdline(pid)
	return err == nil && alive(pid) && launch.MatchCmdline(args, binary, id)
}
