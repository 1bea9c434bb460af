package launch

// Test SSH hosts: real OpenSSH sshd processes on 127.0.0.21–33 port 2222
// (.30 for the benchmarks, the others a test each), started with
// .ci/sshhosts.sh (each in a pid namespace of its own, on the same file
// system), and the sleeper test program they run.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sleeperBin is the sleeper test program (testdata/sleeper), built once by
// TestMain.
var sleeperBin string

func TestMain(m *testing.M) {
	// The tests choose their agent themselves; a developer's must not
	// log them in.
	os.Unsetenv("SSH_AUTH_SOCK")
	dir, err := os.MkdirTemp("", "launchtest")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sleeperBin = filepath.Join(dir, "sleeper")
	if out, err := exec.Command("go", "build", "-o", sleeperBin, "./testdata/sleeper").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build testdata/sleeper: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testHosts is a set of loopback SSH hosts for one test, and their state
// directory (keys, known_hosts, sshd logs).
type testHosts struct {
	dir string
}

// startHosts starts n hosts 127.0.0.first.. and stops them when the test
// ends. before, if not nil, runs after setup and before the hosts start
// (to change sshd_config).
func startHosts(t testing.TB, first, n int, before func(dir string)) *testHosts {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the SSH launcher tests need root: they start sshd on 127.0.0.21-34:2222 and log in as root")
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		t.Fatalf("the SSH launcher tests need OpenSSH's sshd (apt-get install openssh-server): %v", err)
	}
	th := &testHosts{dir: t.TempDir()}
	th.script(t, "setup")
	if before != nil {
		before(th.dir)
	}
	t.Cleanup(func() {
		// The launchers are closed by now: let their watcher sessions
		// end, and remove their directories, before the hosts die.
		deadline := time.Now().Add(5 * time.Second)
		for i := range n {
			addr := fmt.Sprintf("127.0.0.%d", first+i)
			for len(th.nsProcesses(t, addr, "shaddock-watch")) > 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
		}
		th.script(t, "loop-down")
	})
	th.script(t, "loop-up", strconv.Itoa(n), strconv.Itoa(first))
	return th
}

// nsProcesses lists the pids of host addr's processes whose command line
// holds word.
func (th *testHosts) nsProcesses(t testing.TB, addr, word string) []string {
	u, err := os.ReadFile(filepath.Join(th.dir, addr+".pid"))
	if err != nil {
		return nil
	}
	ns, err := os.Readlink("/proc/" + strings.TrimSpace(string(u)) + "/ns/pid_for_children")
	if err != nil {
		return nil
	}
	var pids []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if l, err := os.Readlink("/proc/" + d.Name() + "/ns/pid"); err != nil || l != ns {
			continue
		}
		if b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline"); err == nil && bytes.Contains(b, []byte(word)) {
			pids = append(pids, d.Name())
		}
	}
	return pids
}

// script runs .ci/sshhosts.sh with args.
func (th *testHosts) script(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"../../.ci/sshhosts.sh"}, args...)...)
	// SSHHOSTS_NORC: root's ~/.bashrc here runs pyenv init, which costs
	// every session 0.25 s idle and seconds under load.
	cmd.Env = append(os.Environ(), "SSHHOSTS_DIR="+th.dir, "SSHHOSTS_NORC=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sshhosts.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (th *testHosts) knownHosts() string { return filepath.Join(th.dir, "known_hosts") }

// config is a launcher config for these hosts.
func (th *testHosts) config(t testing.TB) SSHConfig {
	cfg, _ := th.configMsgs(t)
	return cfg
}

// configMsgs is config, and a handle on what the launcher logs.
func (th *testHosts) configMsgs(t testing.TB) (SSHConfig, *msgWatcher) {
	msgs := newMsgWatcher(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return SSHConfig{
		User:         "root",
		Port:         2222,
		IdentityFile: filepath.Join(th.dir, "client"),
		KnownHosts:   th.knownHosts(),
		Logger:       slog.New(msgs),
	}, msgs
}

// newTestSSH returns a launcher closed when the test ends.
func newTestSSH(t testing.TB, cfg SSHConfig) *SSH {
	t.Helper()
	l, err := NewSSH(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// sshdLog is host addr's sshd log.
func (th *testHosts) sshdLog(t *testing.T, addr string) string {
	b, err := os.ReadFile(filepath.Join(th.dir, addr+".log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// run runs cmd on host addr over a connection of its own, and returns its
// output.
func (th *testHosts) run(t *testing.T, addr, cmd string) string {
	t.Helper()
	key, err := os.ReadFile(filepath.Join(th.dir, "client"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	check, err := knownhosts.New(th.knownHosts())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", addr+":2222", &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: check, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("test ssh %s: %v", addr, err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	if err != nil {
		t.Fatalf("test ssh %s %q: %v\n%s", addr, cmd, err, out)
	}
	return string(out)
}

// outsidePID maps pid in host addr's pid namespace to its pid here, so
// that the test can signal it while the host is frozen.
func (th *testHosts) outsidePID(t *testing.T, addr string, pid int) int {
	t.Helper()
	u, err := os.ReadFile(filepath.Join(th.dir, addr+".pid"))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := os.Readlink("/proc/" + strings.TrimSpace(string(u)) + "/ns/pid_for_children")
	if err != nil {
		t.Fatal(err)
	}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if l, err := os.Readlink("/proc/" + d.Name() + "/ns/pid"); err != nil || l != ns {
			continue
		}
		status, _ := os.ReadFile("/proc/" + d.Name() + "/status")
		for line := range strings.Lines(string(status)) {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "NSpid:" && f[len(f)-1] == strconv.Itoa(pid) {
				n, _ := strconv.Atoi(d.Name())
				return n
			}
		}
	}
	t.Fatalf("no pid %d in host %s", pid, addr)
	return 0
}

// cmdlineWatch samples the command line of every process on this machine
// (the test hosts' included) until stopped, and reports one holding s.
type cmdlineWatch struct {
	stop chan struct{}
	done chan string
}

func watchCmdlines(s string) *cmdlineWatch {
	w := &cmdlineWatch{stop: make(chan struct{}), done: make(chan string, 1)}
	go func() {
		for {
			select {
			case <-w.stop:
				w.done <- ""
				return
			default:
			}
			dirs, _ := os.ReadDir("/proc")
			for _, d := range dirs {
				b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
				if err == nil && bytes.Contains(b, []byte(s)) {
					w.done <- d.Name() + ": " + strings.ReplaceAll(string(b), "\x00", " ")
					return
				}
			}
		}
	}()
	return w
}

// end stops sampling and returns a command line that held the string, if
// one did.
func (w *cmdlineWatch) end() string {
	close(w.stop)
	return <-w.done
}

// processes lists this machine's processes whose command line holds all
// of words.
func processes(words ...string) []string {
	var found []string
	dirs, _ := os.ReadDir("/proc")
next:
	for _, d := range dirs {
		b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		for _, w := range words {
			if !bytes.Contains(b, []byte(w)) {
				continue next
			}
		}
		found = append(found, d.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
	}
	return found
}

// eventually polls cond until it holds or within has passed.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sshRecvExit receives a process's end within d.
func sshRecvExit(t *testing.T, ch <-chan Exit, d time.Duration) Exit {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("Wait's channel closed without an exit")
		}
		return e
	case <-time.After(d):
		t.Fatalf("no exit within %s", d)
		return Exit{}
	}
}

// sleeperSpec is a spec that runs the sleeper as id on host, logging into
// a temporary directory.
func sleeperSpec(t testing.TB, host, id string, args ...string) Spec {
	dir := t.TempDir()
	return Spec{ID: id, Host: host, Dir: dir, Binary: sleeperBin, Args: append([]string{"--id", id}, args...),
		Log: filepath.Join(dir, "logs", id+".log")}
}

// readLog reads a log file, "" if it is not there yet.
func readLog(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// tWriter writes log lines to the test's log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// msgWatcher is a slog handler that also tells who waits when a message
// is logged.
type msgWatcher struct {
	slog.Handler
	mu     *sync.Mutex
	waits  map[string]chan struct{}
	counts map[string]int
}

func newMsgWatcher(h slog.Handler) *msgWatcher {
	return &msgWatcher{Handler: h, mu: &sync.Mutex{}, waits: map[string]chan struct{}{}, counts: map[string]int{}}
}

// count is how many times msg was logged.
func (m *msgWatcher) count(msg string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[msg]
}

// on returns a channel closed when msg is first logged from now on.
func (m *msgWatcher) on(msg string) <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := make(chan struct{})
	m.waits[msg] = ch
	return ch
}

func (m *msgWatcher) Handle(ctx context.Context, r slog.Record) error {
	m.mu.Lock()
	m.counts[r.Message]++
	if ch, ok := m.waits[r.Message]; ok {
		close(ch)
		delete(m.waits, r.Message)
	}
	m.mu.Unlock()
	return m.Handler.Handle(ctx, r)
}

func (m *msgWatcher) WithAttrs(as []slog.Attr) slog.Handler {
	return &msgWatcher{Handler: m.Handler.WithAttrs(as), mu: m.mu, waits: m.waits, counts: m.counts}
}

func (m *msgWatcher) WithGroup(name string) slog.Handler {
	return &msgWatcher{Handler: m.Handler.WithGroup(name), mu: m.mu, waits: m.waits, counts: m.counts}
}
