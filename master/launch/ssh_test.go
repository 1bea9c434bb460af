package launch

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var _ interface {
	Launcher
	Installer
} = (*SSH)(nil)

// Not parallel: at its end, no goroutine of an SSH launcher may be left.
func TestSSHStartStopRecover(t *testing.T) {
	const host = "127.0.0.21"
	th := startHosts(t, 21, 1, nil)
	l := newTestSSH(t, th.config(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	secret := "secret-" + rand.Text()
	odd := ` it's "odd" $HOME \ ;|& `
	spec := sleeperSpec(t, host, "chat-1", "-env", SecretEnv+","+EpochEnv+",ODD", "-term-exit", "7", "arg with 'quotes' and $dollar")
	spec.Environ = []string{SecretEnv + "=" + secret, EpochEnv + "=42", "ODD=" + odd}

	scan := watchCmdlines(secret)
	t0 := time.Now()
	h, err := l.Start(ctx, spec)
	took := time.Since(t0)
	// Keep sampling while the server runs on a little: the secret must
	// not show up on any command line, not even briefly.
	eventually(t, 5*time.Second, "the server's output in its log", func() bool {
		return strings.Contains(readLog(spec.Log), "env ODD=")
	})
	if cl := scan.end(); cl != "" {
		t.Errorf("the secret is on a command line: %s", cl)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("start over SSH (dial+login+start) took %s; handle %+v", took, h)
	boot, _ := readBootID()
	if h.Driver != DriverSSH || h.Host != host || h.ID != "chat-1" || h.PID <= 0 || h.StartTicks == 0 ||
		h.BootID != boot || h.Binary != sleeperBin || h.Log != spec.Log || h.Started.IsZero() {
		t.Errorf("handle %+v", h)
	}

	log := readLog(spec.Log)
	header := regexp.MustCompile(`^=== \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ master: starting chat-1 on 127\.0\.0\.21: ` +
		regexp.QuoteMeta(sleeperBin+" --id chat-1 -env ") + `.* 'arg with '\\''quotes'\\'' and \$dollar'\n`)
	for _, want := range []string{
		fmt.Sprintf("sleeper chat-1 pid=%d cwd=%s ", h.PID, spec.Dir),
		`"arg with 'quotes' and $dollar"]`,
		"env " + SecretEnv + "=" + secret + "\n",
		"env " + EpochEnv + "=42\n",
		"env ODD=" + odd + "\n",
		"sleeper stderr\n",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if !header.MatchString(log) {
		t.Errorf("log does not start with the header:\n%s", log)
	}

	if fi, err := os.Stat(spec.Log); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log file mode: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Dir(spec.Log)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("log directory mode: %v %v", fi.Mode(), err)
	}

	// The server outlives the launcher; another one re-attaches.
	pending := l.Wait(h)
	l.Close()
	if _, ok := <-pending; ok {
		t.Error("Close: Wait's channel got a value")
	}
	l.Close() // idempotent
	if err := l.Recover(ctx, h); !errors.Is(err, errSSHClosed) {
		t.Errorf("Recover after Close: %v", err)
	}
	if ch := l.Wait(h); !isClosed(ch) {
		t.Error("Wait after Close: channel not closed")
	}
	l2 := newTestSSH(t, th.config(t))
	if err := l2.Recover(ctx, h); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	ch := l2.Wait(h)
	ch2 := l2.Wait(h)
	t0 = time.Now()
	if err := l2.Stop(ctx, h, 10*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("stop (SIGTERM, exits at once) took %s", time.Since(t0))
	for _, c := range []<-chan Exit{ch, ch2} {
		if e := sshRecvExit(t, c, 5*time.Second); e.Code != 7 || e.Status != "exit status 7" || !e.Failed() {
			t.Errorf("exit %+v, want exit status 7", e)
		}
		if _, ok := <-c; ok {
			t.Error("Wait's channel not closed after the exit")
		}
	}
	log = readLog(spec.Log)
	if !regexp.MustCompile(`sleeper got SIGTERM\n=== \S+ chat-1 pid ` + strconv.Itoa(h.PID) +
		` exited: status 7 \(start ticks ` + strconv.FormatUint(h.StartTicks, 10) + `\)\n$`).MatchString(log) {
		t.Errorf("log does not end with the exit line:\n%s", log)
	}
	err = l2.Recover(ctx, h)
	if !errors.Is(err, ErrGone) || !strings.Contains(err.Error(), "exit status 7") {
		t.Errorf("Recover of an ended process: %v", err)
	}
	if err := l2.Stop(ctx, h, time.Second); err != nil {
		t.Errorf("Stop of an ended process: %v", err)
	}
	if err := l2.Kill(ctx, h); err != nil {
		t.Errorf("Kill of an ended process: %v", err)
	}
	if e := sshRecvExit(t, l2.Wait(h), 5*time.Second); e.Status != "exit status 7" {
		t.Errorf("Wait after the end: %+v", e)
	}

	// A server that ignores SIGTERM is killed after the grace period.
	spec = sleeperSpec(t, host, "stubborn", "-ignore-term")
	h, err = l2.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the server's output in its log", func() bool {
		return strings.Contains(readLog(spec.Log), "sleeper stderr")
	})
	ch = l2.Wait(h)
	t0 = time.Now()
	if err := l2.Stop(ctx, h, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("Stop with 300ms grace took %s", d)
	}
	if e := sshRecvExit(t, ch, 5*time.Second); e.Code != -1 || e.Status != "signal: killed" {
		t.Errorf("exit %+v, want signal: killed", e)
	}

	// Every goroutine ends with Close; x/crypto's own end with the
	// connections, a moment later.
	l2.Close()
	stacks := func() string {
		b := make([]byte, 1<<20)
		return string(b[:runtime.Stack(b, true)])
	}
	if st := stacks(); strings.Contains(st, "launch.(*sshHost)") || strings.Contains(st, "launch.(*SSH)") {
		t.Errorf("goroutines left after Close:\n%s", st)
	}
	eventually(t, 5*time.Second, "x/crypto/ssh goroutines to end", func() bool {
		return !strings.Contains(stacks(), "golang.org/x/crypto/ssh.")
	})
}

func isClosed(ch <-chan Exit) bool {
	select {
	case _, ok := <-ch:
		return !ok
	default:
		return false
	}
}

func TestSSHExitStatus(t *testing.T) {
	t.Parallel()
	const host = "127.0.0.22"
	th := startHosts(t, 22, 1, nil)
	cfg, msgs := th.configMsgs(t)
	l := newTestSSH(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Exits by itself with status 3.
	spec := sleeperSpec(t, host, "exit-3", "-sleep", "1s", "-exit", "3")
	h, err := l.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	ch := l.Wait(h)
	e := sshRecvExit(t, ch, 10*time.Second)
	if e.Code != 3 || e.Status != "exit status 3" {
		t.Errorf("exit %+v, want exit status 3", e)
	}
	// The log says when it ended: "sleeper done" is its last line
	// before the wrapper's.
	if m := regexp.MustCompile(`(?m)^=== (\S+) exit-3 pid \d+ exited: status 3`).FindStringSubmatch(readLog(spec.Log)); m == nil {
		t.Errorf("no exit line in the log:\n%s", readLog(spec.Log))
	} else if ended, err := time.Parse(time.RFC3339, m[1]); err == nil {
		// Whole seconds only in the log: a generous bound.
		if lat := e.At.Sub(ended); lat > 3*time.Second {
			t.Errorf("exit noticed %s after it happened", lat)
		}
	}

	// What cannot start fails Start, saying why.
	notExec := filepath.Join(t.TempDir(), "notexec")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	for _, c := range []struct {
		edit func(*Spec)
		want string
	}{
		{func(s *Spec) { s.Binary = "/nonexistent/game" }, "start bad on 127.0.0.22: binary /nonexistent/game is missing or not an executable file"},
		{func(s *Spec) { s.Binary = notExec }, "start bad on 127.0.0.22: binary " + notExec + " is missing or not an executable file"},
		{func(s *Spec) { s.Binary = filepath.Dir(notExec) }, "is missing or not an executable file"},
		{func(s *Spec) { s.Dir = "/nonexistent/base" }, "start bad on 127.0.0.22: cannot enter the working directory /nonexistent/base"},
		{func(s *Spec) { s.Log = "/proc/version/x.log" }, "cannot create the log /proc/version/x.log"},
		{func(s *Spec) { s.Environ = []string{"BAD-NAME=1"} }, `environment variable name "BAD-NAME" is not a shell name`},
		{func(s *Spec) { s.Environ = []string{"A=1\n2"} }, "holds a newline"},
		{func(s *Spec) { s.Binary = "bin/game" }, `binary "bin/game" is not an absolute path`},
	} {
		spec := sleeperSpec(t, host, "bad")
		c.edit(&spec)
		if _, err := l.Start(ctx, spec); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Start: %v, want %q", err, c.want)
		}
	}

	// Killed from outside, once the watcher runs.
	spec = sleeperSpec(t, host, "victim")
	h, err = l.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	running := msgs.on("ssh watcher running")
	ch = l.Wait(h)
	select {
	case <-running:
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher did not start")
	}
	t0 := time.Now()
	th.run(t, host, "kill -KILL "+strconv.Itoa(h.PID))
	e = sshRecvExit(t, ch, 10*time.Second)
	lat := time.Since(t0)
	t.Logf("SIGKILL noticed after %s", lat)
	if e.Code != -1 || e.Status != "signal: killed" {
		t.Errorf("exit %+v, want signal: killed", e)
	}
	if lat > 3*time.Second {
		t.Errorf("SIGKILL noticed after %s, want about a second", lat)
	}
}

func TestSSHNeverSignalsAReusedPid(t *testing.T) {
	t.Parallel()
	const host = "127.0.0.29"
	th := startHosts(t, 29, 1, nil)
	l := newTestSSH(t, th.config(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	spec := sleeperSpec(t, host, "chat-9")
	h, err := l.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	// The same pid, another process: what a stale handle looks like
	// after the pid was reused.
	reused := h
	reused.StartTicks++
	if err := l.Stop(ctx, reused, time.Second); err != nil {
		t.Errorf("Stop of a reused pid: %v", err)
	}
	if err := l.Kill(ctx, reused); err != nil {
		t.Errorf("Kill of a reused pid: %v", err)
	}
	if err := l.Recover(ctx, reused); !errors.Is(err, ErrGone) {
		t.Errorf("Recover of a reused pid: %v", err)
	}
	if e := sshRecvExit(t, l.Wait(reused), 10*time.Second); e.Code != -1 || e.Status != "ended (exit status unknown)" {
		t.Errorf("Wait of a reused pid: %+v", e)
	}
	otherBoot := h
	otherBoot.BootID = "00000000-0000-0000-0000-000000000000"
	if err := l.Kill(ctx, otherBoot); err != nil {
		t.Errorf("Kill of a pid from another boot: %v", err)
	}
	// Handles without a start time (from a registration) are checked by
	// their command line: the binary and --id.
	adopted := h
	adopted.StartTicks, adopted.BootID = 0, ""
	wrongID := adopted
	wrongID.ID = "chat-99"
	if err := l.Kill(ctx, wrongID); err != nil {
		t.Errorf("Kill of another server's pid: %v", err)
	}
	wrongBin := adopted
	wrongBin.Binary = "/bin/other"
	if err := l.Kill(ctx, wrongBin); err != nil {
		t.Errorf("Kill of another binary's pid: %v", err)
	}
	if err := l.Recover(ctx, h); err != nil {
		t.Fatalf("the process did not survive: %v", err)
	}
	if err := l.Recover(ctx, adopted); err != nil {
		t.Errorf("Recover by command line: %v", err)
	}
	ch := l.Wait(adopted)
	if err := l.Kill(ctx, adopted); err != nil {
		t.Errorf("Kill by command line: %v", err)
	}
	if e := sshRecvExit(t, ch, 10*time.Second); e.Status != "signal: killed" {
		t.Errorf("exit %+v, want signal: killed", e)
	}
	if err := l.Recover(ctx, h); !errors.Is(err, ErrGone) {
		t.Errorf("Recover after Kill: %v", err)
	}
	if !strings.Contains(readLog(spec.Log), "exited: status 137") {
		t.Errorf("log:\n%s", readLog(spec.Log))
	}
}

func TestSSHLogin(t *testing.T) {
	t.Parallel()
	// Three hosts with two host keys each (ed25519, and ecdsa, which
	// x/crypto prefers by default); known_hosts holds only the ed25519
	// key, and not at all for .23, and a wrong one for .24.
	th := startHosts(t, 23, 3, func(dir string) {
		key := filepath.Join(dir, "hostkey_ecdsa")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", key).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		f, err := os.OpenFile(filepath.Join(dir, "sshd_config"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "HostKey %s\n", key)
		f.Close()
	})
	other := filepath.Join(th.dir, "otherkey")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	otherPub, err := os.ReadFile(other + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	kh, err := os.ReadFile(th.knownHosts())
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for line := range strings.Lines(string(kh)) {
		switch {
		case strings.HasPrefix(line, "[127.0.0.23]"):
		case strings.HasPrefix(line, "[127.0.0.24]"):
			lines = append(lines, "[127.0.0.24]:2222 "+strings.Join(strings.Fields(string(otherPub))[:2], " ")+"\n")
		default:
			lines = append(lines, line)
		}
	}
	mismatchLine := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "[127.0.0.24]") }) + 1
	if err := os.WriteFile(th.knownHosts(), []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}

	l := newTestSSH(t, th.config(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kfile := th.knownHosts()

	_, err = l.Start(ctx, sleeperSpec(t, "127.0.0.23", "unknown-1"))
	var he *HostError
	if !errors.As(err, &he) || he.Host != "127.0.0.23" {
		t.Fatalf("unknown host key: %v, want a *HostError", err)
	}
	for _, want := range []string{"start unknown-1 on 127.0.0.23: ssh 127.0.0.23:2222: host key is unknown: " + kfile +
		" has no entry for host 127.0.0.23 port 2222 (it offers ecdsa-sha2-nistp256 key SHA256:",
		"add it with: ssh-keyscan -p 2222 127.0.0.23 >> " + kfile} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("unknown host key: error %q lacks %q", err, want)
		}
	}
	t.Logf("unknown: %v", err)

	_, err = l.Start(ctx, sleeperSpec(t, "127.0.0.24", "changed-1"))
	if !errors.As(err, &he) || he.Host != "127.0.0.24" {
		t.Fatalf("changed host key: %v, want a *HostError", err)
	}
	if !strings.HasPrefix(he.Error(), "host key mismatch for 127.0.0.24 port 2222: it offers ssh-ed25519 key SHA256:") ||
		!strings.Contains(he.Error(), fmt.Sprintf("not the key in %s:%d;", kfile, mismatchLine)) {
		t.Errorf("changed host key: error %q", he)
	}
	t.Logf("changed: %v", err)

	for _, host := range []string{"127.0.0.23", "127.0.0.24"} {
		if err := l.HostErr(host); !errors.As(err, &he) {
			t.Errorf("HostErr(%s) = %v", host, err)
		}
		if log := th.sshdLog(t, host); strings.Contains(log, "Accepted") {
			t.Errorf("%s: logged in despite its host key:\n%s", host, log)
		}
	}
	if err := l.HostErr("127.0.0.25"); err != nil {
		t.Errorf("HostErr of a host never tried: %v", err)
	}

	// known_hosts has only .25's ed25519 key: the handshake must not let
	// the host pick its ecdsa key.
	h, err := l.Start(ctx, sleeperSpec(t, "127.0.0.25", "good-1"))
	if err != nil {
		t.Fatalf("host with two key types, one known: %v", err)
	}
	if err := l.HostErr("127.0.0.25"); err != nil {
		t.Errorf("HostErr of a connected host: %v", err)
	}

	// Login through ssh-agent only.
	sock := filepath.Join(th.dir, "agent.sock")
	agentCmd := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agentCmd.Start(); err != nil {
		t.Fatalf("ssh-agent: %v", err)
	}
	t.Cleanup(func() {
		agentCmd.Process.Kill()
		agentCmd.Wait()
	})
	eventually(t, 5*time.Second, "ssh-agent's socket", func() bool { _, err := os.Stat(sock); return err == nil })
	add := exec.Command("ssh-add", filepath.Join(th.dir, "client"))
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
	cfg := th.config(t)
	cfg.IdentityFile, cfg.AgentSocket = "", sock
	la := newTestSSH(t, cfg)
	if err := la.Recover(ctx, h); err != nil {
		t.Errorf("agent login: %v", err)
	}
	if err := la.Kill(ctx, h); err != nil {
		t.Errorf("agent login: %v", err)
	}

	// An encrypted key needs the agent: no prompt, ever.
	enc := filepath.Join(th.dir, "encrypted")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "passphrase", "-f", enc).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	cfg = th.config(t)
	cfg.IdentityFile = enc
	if _, err := NewSSH(cfg); err == nil || !strings.Contains(err.Error(), "is encrypted and there is no ssh-agent: load it into ssh-agent") {
		t.Errorf("encrypted key without agent: %v", err)
	}
	// A key the host does not accept.
	cfg.IdentityFile = other
	lo := newTestSSH(t, cfg)
	if err := lo.Recover(ctx, h); !errors.As(err, &he) || !strings.Contains(err.Error(), "ssh 127.0.0.25:2222: authenticate as root: the server accepted none of the key in "+other) {
		t.Errorf("key not authorized: %v", err)
	}
}

func TestSSHFrozenHost(t *testing.T) {
	t.Parallel()
	const host = "127.0.0.26"
	th := startHosts(t, 26, 1, nil)
	cfg, msgs := th.configMsgs(t)
	// Short, but long enough that a busy machine does not miss them.
	cfg.KeepAlive, cfg.DialTimeout = time.Second, 2*time.Second
	l := newTestSSH(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	spec := sleeperSpec(t, host, "frozen-1")
	h, err := l.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	running := msgs.on("ssh watcher running")
	ch := l.Wait(h)
	select {
	case <-running:
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher did not start")
	}
	outside := th.outsidePID(t, host, h.PID)

	// Frozen: every process of the host stopped, sshd included. The
	// kernel still accepts TCP connections; nothing answers on them.
	lost := msgs.on("ssh connection lost")
	t0 := time.Now()
	th.script(t, "freeze", host)
	t.Logf("freezing took %s", time.Since(t0))
	t0 = time.Now()
	thawed := false
	t.Cleanup(func() {
		if !thawed {
			th.script(t, "thaw", host)
		}
	})
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection to a frozen host was not declared dead")
	}
	detect := time.Since(t0)
	t.Logf("frozen host: connection declared dead after %s (keepalive %s)", detect, cfg.KeepAlive)
	if detect > 2*cfg.KeepAlive+time.Second {
		t.Errorf("declared dead after %s, want within about 2×%s", detect, cfg.KeepAlive)
	}
	var he *HostError
	if err := l.HostErr(host); !errors.As(err, &he) || !strings.Contains(err.Error(), "no reply to keepalive within 1s") {
		t.Errorf("HostErr = %v", err)
	}

	// Starts on the frozen host fail within about the dial timeout, all
	// with the one dial they share.
	cfg2, msgs2 := th.configMsgs(t)
	cfg2.KeepAlive, cfg2.DialTimeout = cfg.KeepAlive, cfg.DialTimeout
	l2 := newTestSSH(t, cfg2)
	errs := make([]error, 5)
	tooks := make([]time.Duration, 5)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			t0 := time.Now()
			_, errs[i] = l2.Start(ctx, sleeperSpec(t, host, fmt.Sprintf("frozen-%d", i)))
			tooks[i] = time.Since(t0)
		})
	}
	wg.Wait()
	t.Logf("starts on a frozen host failed after %v: %v", tooks, errs[0])
	for i, err := range errs {
		if !errors.As(err, &he) || !strings.Contains(err.Error(), "ssh 127.0.0.26:2222: handshake: i/o timeout after 2s") {
			t.Errorf("start on a frozen host: %v", err)
		}
		if tooks[i] < cfg.DialTimeout-100*time.Millisecond || tooks[i] > cfg.DialTimeout+3*time.Second {
			t.Errorf("start on a frozen host failed after %s, want about %s", tooks[i], cfg.DialTimeout)
		}
	}
	if n := msgs2.count("ssh connect failed"); n != 1 {
		t.Errorf("%d dials for %d concurrent starts, want 1", n, len(errs))
	}
	if err := l2.Recover(ctx, h); !errors.As(err, &he) {
		t.Errorf("Recover on a frozen host: %v, want a *HostError", err)
	}
	// Callers within the backoff get the same error at once.
	t0 = time.Now()
	if _, err2 := l2.Start(ctx, sleeperSpec(t, host, "frozen-3")); err2 == nil || time.Since(t0) > cfg.DialTimeout/2 ||
		!strings.Contains(err2.Error(), "handshake: i/o timeout") {
		t.Errorf("second start on a frozen host: %v after %s", err2, time.Since(t0))
	}

	// The server dies while its host cannot be reached: nothing is
	// reported until the host answers again.
	if err := syscallKill(outside); err != nil {
		t.Fatal(err)
	}
	// The watcher tries again, and fails, and still says nothing.
	redial := msgs.on("ssh connect failed")
	select {
	case <-redial:
	case <-time.After(20 * time.Second):
		t.Fatal("the watcher did not redial")
	}
	select {
	case e := <-ch:
		t.Fatalf("Wait fired while the host was unreachable: %+v", e)
	default:
	}
	th.script(t, "thaw", host)
	thawed = true
	t0 = time.Now()
	e := sshRecvExit(t, ch, 20*time.Second)
	t.Logf("after thaw, the end was reported in %s: %+v", time.Since(t0), e)
	if e.Code != -1 || (e.Status != "signal: killed" && e.Status != "ended (exit status unknown)") {
		t.Errorf("exit %+v", e)
	}
	if err := l.HostErr(host); err != nil {
		t.Errorf("HostErr after reconnecting: %v", err)
	}
}

func TestSSHOneConnection(t *testing.T) {
	t.Parallel()
	const host = "127.0.0.28"
	// sshd's default MaxSessions (10), which the launcher must respect.
	th := startHosts(t, 28, 1, maxSessions(t, ""))
	l := newTestSSH(t, th.config(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	defer follow(t, ctx, l, host, 3)()

	const n = 12 // more than the session slots
	handles := make([]Handle, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range n {
		wg.Go(func() {
			handles[i], errs[i] = l.Start(ctx, sleeperSpec(t, host, fmt.Sprintf("conc-%d", i)))
		})
	}
	wg.Wait()
	t.Logf("%d concurrent starts on one host took %s", n, time.Since(t0))
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(th.sshdLog(t, host), "Accepted publickey"); c != 1 {
		t.Errorf("%d logins, want 1:\n%s", c, th.sshdLog(t, host))
	}
	chans := make([]<-chan Exit, n)
	for i, h := range handles {
		chans[i] = l.Wait(h)
	}
	for i, h := range handles {
		wg.Go(func() { errs[i] = l.Kill(ctx, h) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, ch := range chans {
		if e := sshRecvExit(t, ch, 10*time.Second); e.Status != "signal: killed" {
			t.Errorf("exit %+v", e)
		}
	}
	if c := strings.Count(th.sshdLog(t, host), "Accepted publickey"); c != 1 {
		t.Errorf("%d logins, want 1", c)
	}
}

// sshd frees a session a moment after its channel closes, so a slot the
// launcher has just released may still be taken on the host. With as many
// slots as sshd's MaxSessions, every short command must still succeed.
func TestSSHRidesOutSessionsSSHDFreesLate(t *testing.T) {
	t.Parallel()
	const host = "127.0.0.34"
	th := startHosts(t, 34, 1, maxSessions(t, fmt.Sprintf("MaxSessions %d\n", sshSessions)))
	l := newTestSSH(t, th.config(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	h, err := l.Start(ctx, sleeperSpec(t, host, "late-1")) // the watcher holds a session
	if err != nil {
		t.Fatal(err)
	}
	defer follow(t, ctx, l, host, sshLogSessions)()

	const n = 60 // short commands, each a session, more at once than there are slots
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = l.Recover(ctx, h) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(th.sshdLog(t, host), "Accepted publickey"); c != 1 {
		t.Errorf("%d logins, want 1", c)
	}
	if err := l.Kill(ctx, h); err != nil {
		t.Fatal(err)
	}
}

// maxSessions is a startHosts hook that puts line (a MaxSessions line, or
// "" for sshd's default) in place of the test hosts' MaxSessions 64.
func maxSessions(t *testing.T, line string) func(dir string) {
	return func(dir string) {
		conf := filepath.Join(dir, "sshd_config")
		b, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(conf, []byte(strings.ReplaceAll(string(b), "MaxSessions 64\n", line)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// follow starts n followers of a log file on host (Logs -f: each holds a
// session for as long as it follows); the func returned stops them.
func follow(t *testing.T, ctx context.Context, l *SSH, host string, n int) (stop func()) {
	logf := filepath.Join(t.TempDir(), "x.log")
	if err := os.WriteFile(logf, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fctx, fcancel := context.WithCancel(ctx)
	var followers sync.WaitGroup
	for range n {
		followers.Go(func() {
			if err := l.Logs(fctx, host, logf, 1, true, io.Discard); err != nil {
				t.Errorf("Logs -f: %v", err)
			}
		})
	}
	return func() {
		fcancel()
		followers.Wait()
	}
}

func TestSSHInstallAndLogs(t *testing.T) {
	t.Parallel()
	const host = "127.0.0.27"
	th := startHosts(t, 27, 1, nil)
	l := newTestSSH(t, th.config(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	src := filepath.Join(t.TempDir(), "game")
	content := []byte(rand.Text() + "\n")
	content = bytes.Repeat(content, (1<<20)/len(content))
	if err := os.WriteFile(src, content, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	dir := filepath.Join(t.TempDir(), "base", "bin")
	dst := filepath.Join(dir, "game")
	t0 := time.Now()
	copied, err := l.Install(ctx, host, src, hex.EncodeToString(sum[:]), dst, 0o755)
	if err != nil || !copied {
		t.Fatalf("first install: copied %v, %v", copied, err)
	}
	t.Logf("install of 1 MiB took %s", time.Since(t0))
	checkInstalled(t, dst, content, 0o755)
	copied, err = l.Install(ctx, host, src, hex.EncodeToString(sum[:]), dst, 0o755)
	if err != nil || copied {
		t.Fatalf("second install: copied %v, %v", copied, err)
	}

	// A new build, installed by several callers at once: one upload.
	content = bytes.Repeat([]byte(rand.Text()+"\n"), (16<<20)/27)
	if err := os.WriteFile(src, content, 0o600); err != nil {
		t.Fatal(err)
	}
	sum = sha256.Sum256(content)
	key := sshInstallKey{host, dst, hex.EncodeToString(sum[:])}
	results := make([]bool, 4)
	errs := make([]error, 4)
	var wg sync.WaitGroup
	wg.Go(func() { results[0], errs[0] = l.Install(ctx, host, src, key.sum, dst, 0o750) })
	eventually(t, 5*time.Second, "the upload under way", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.installs[key] != nil
	})
	for i := 1; i < 4; i++ {
		wg.Go(func() { results[i], errs[i] = l.Install(ctx, host, src, key.sum, dst, 0o750) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(results, []bool{true, true, true, true}) {
		t.Errorf("copied %v, want all true (one shared upload)", results)
	}
	checkInstalled(t, dst, content, 0o750)

	_, err = l.Install(ctx, host, filepath.Join(t.TempDir(), "missing"), strings.Repeat("0", 64), dst, 0o755)
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("install of a missing file: %v", err)
	}
	checkInstalled(t, dst, content, 0o750)

	// Logs: the last lines, all of it, then what is appended.
	logf := filepath.Join(t.TempDir(), "logs", "chat-1.log")
	os.MkdirAll(filepath.Dir(logf), 0o755)
	var all strings.Builder
	for i := 1; i <= 10; i++ {
		fmt.Fprintf(&all, "line %d\n", i)
	}
	if err := os.WriteFile(logf, []byte(all.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := l.Logs(ctx, host, logf, 3, false, &out); err != nil || out.String() != "line 8\nline 9\nline 10\n" {
		t.Errorf("Logs -n 3: %q, %v", out.String(), err)
	}
	out.Reset()
	if err := l.Logs(ctx, host, logf, 0, false, &out); err != nil || out.String() != all.String() {
		t.Errorf("Logs all: %q, %v", out.String(), err)
	}
	err = l.Logs(ctx, host, logf+".missing", 3, false, &out)
	if err == nil || !strings.Contains(err.Error(), "logs "+logf+".missing on 127.0.0.27: ") || !strings.Contains(err.Error(), "No such file") {
		t.Errorf("Logs of a missing file: %v", err)
	}

	fctx, fcancel := context.WithCancel(ctx)
	fw := &sshSyncBuffer{}
	done := make(chan error, 1)
	go func() { done <- l.Logs(fctx, host, logf, 2, true, fw) }()
	eventually(t, 5*time.Second, "the last 2 lines", func() bool { return fw.String() == "line 9\nline 10\n" })
	f, err := os.OpenFile(logf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "appended")
	f.Close()
	eventually(t, 5*time.Second, "the appended line", func() bool { return fw.String() == "line 9\nline 10\nappended\n" })
	fcancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Logs -f ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Logs -f did not end with its context")
	}
	eventually(t, 5*time.Second, "tail -f to end on the host", func() bool { return len(processes("tail", logf)) == 0 })
}

// checkInstalled checks an installed file and that no temporary file is
// left beside it.
func checkInstalled(t *testing.T, dst string, content []byte, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(b, content) {
		t.Errorf("installed content differs (%d bytes, want %d): %v", len(b), len(content), err)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != mode {
		t.Errorf("installed mode %v, want %v (%v)", fi.Mode().Perm(), mode, err)
	}
	ents, _ := os.ReadDir(filepath.Dir(dst))
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("files beside the installed one: %v", names)
	}
}

// sshSyncBuffer is a buffer safe for a writer and a reader at once.
type sshSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *sshSyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *sshSyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

func TestRemoteQuote(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", "it's", "''", `a\b`, "$HOME `id` $(id)", "new\nline", " lead and trail ", `"'"'`, "*", "-n"} {
		cmd := exec.Command("/bin/sh", "-c", "exec /bin/sh -c "+remoteQuote(`printf %s "$1"`)+" sh "+remoteQuote(s))
		out, err := cmd.Output()
		if err != nil || string(out) != s {
			t.Errorf("remoteQuote(%q): the shell got %q (%v)", s, out, err)
		}
	}
	if got := displayCommand("/srv/bin/chat", []string{"--id", "chat-1", "a b", "it's", ""}); got != `/srv/bin/chat --id chat-1 'a b' 'it'\''s' ''` {
		t.Errorf("displayCommand: %s", got)
	}
}

func TestParseStartLine(t *testing.T) {
	t.Parallel()
	for line, want := range map[string]startLine{
		"boot 5e6f-aa\n":                 {kind: "boot", text: "5e6f-aa"},
		"ok 3 1234 98765\n":              {kind: "ok", i: 3, pid: 1234, ticks: 98765},
		"err 0 binary /x is missing\r\n": {kind: "err", i: 0, text: "binary /x is missing"},
		"err 2 ":                         {kind: "err", i: 2},
		"fail 4\n":                       {kind: "fail", i: 4},
		"ok 1 0 5":                       {kind: "fail", i: 1, text: `bad report "ok 1 0 5"`},
		"ok 1 x 5":                       {kind: "fail", i: 1, text: `bad report "ok 1 x 5"`},
		"ok 1 12":                        {kind: "fail", i: 1, text: `bad report "ok 1 12"`},
		"welcome to the host":            {},
		"ok x 1 2":                       {},
		"ok -1 1 2":                      {},
		"boot":                           {},
		"boot a b":                       {},
		"":                               {},
	} {
		if got := parseStartLine(line); got != want {
			t.Errorf("parseStartLine(%q) = %+v, want %+v", line, got, want)
		}
	}
	for k, ok := range map[string]bool{"A": true, "_x9": true, "SHADDOCK_EPOCH": true, "": false, "9A": false, "A-B": false, "A B": false, "Ä": false} {
		if validShellName(k) != ok {
			t.Errorf("validShellName(%q) = %v", k, !ok)
		}
	}
}
