package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// netHosts are SSH test hosts for the remote tests: network namespaces
// th1..thN with addresses 10.99.0.11.. behind a bridge whose address,
// 10.99.0.1, is this machine's (the master's), each running a real OpenSSH
// sshd on port 22, started with .ci/sshhosts.sh. They share this machine's
// file system and pid numbering, unless started with private directories.
type netHosts struct {
	dir string // keys, known_hosts, sshd_config, sshd logs
	n   int
}

// startNetHosts starts n hosts and removes them when the test ends,
// killing whatever still runs in them. private, if not empty, is a
// directory each host sees as an empty tmpfs of its own.
func startNetHosts(t *testing.T, n int, private string) *netHosts {
	t.Helper()
	return startNetHostsSSHD(t, n, n, private)
}

// startNetHostsSSHD is startNetHosts with sshd in the first sshdN hosts
// only: the others answer connections with a refusal.
func startNetHostsSSHD(t *testing.T, n, sshdN int, private string) *netHosts {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the remote tests need root: they create network namespaces and start sshd (.ci/run runs them as root)")
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		t.Fatalf("the remote tests need OpenSSH's sshd (apt-get install -y openssh-server): %v", err)
	}
	h := &netHosts{dir: t.TempDir(), n: n}
	h.script(t, "", "setup")
	h.script(t, "", "ns-down") // what an interrupted earlier run left
	t.Cleanup(func() {
		if t.Failed() {
			for i := 1; i <= n; i++ {
				if b, err := os.ReadFile(filepath.Join(h.dir, fmt.Sprintf("th%d.log", i))); err == nil {
					t.Logf("th%d sshd log:\n%s", i, tailLines(string(b), 20))
				}
			}
		}
		h.script(t, "", "ns-down")
	})
	h.script(t, private, "ns-up", strconv.Itoa(n), strconv.Itoa(sshdN))
	return h
}

// script runs .ci/sshhosts.sh.
func (h *netHosts) script(t *testing.T, private string, args ...string) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(repoRoot, ".ci", "sshhosts.sh")}, args...)...)
	// SSHHOSTS_NORC: sessions skip root's ~/.bashrc, which on some
	// machines runs slow shell set-up for every session.
	cmd.Env = append(os.Environ(), "SSHHOSTS_DIR="+h.dir, "SSHHOSTS_NORC=1", "SSHHOSTS_PRIVATE="+private)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sshhosts.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// addr is host i's address (i from 1).
func (h *netHosts) addr(i int) string { return fmt.Sprintf("10.99.0.1%d", i) }

func (h *netHosts) knownHosts() string { return filepath.Join(h.dir, "known_hosts") }
func (h *netHosts) identity() string   { return filepath.Join(h.dir, "client") }

// sshdLog is host i's sshd log.
func (h *netHosts) sshdLog(t *testing.T, i int) string {
	b, err := os.ReadFile(filepath.Join(h.dir, fmt.Sprintf("th%d.log", i)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// procs returns host i's processes other than its sshd listener and sshd
// session processes (pid → command line): what the framework runs there.
func (h *netHosts) procs(t *testing.T, i int) map[int]string {
	out, err := exec.Command("ip", "netns", "pids", fmt.Sprintf("th%d", i)).Output()
	if err != nil {
		t.Fatalf("ip netns pids th%d: %v", i, err)
	}
	procs := map[int]string{}
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(b) == 0 || !alive(pid) {
			continue // gone meanwhile, or a zombie
		}
		line := string(bytes.ReplaceAll(bytes.TrimRight(b, "\x00"), []byte{0}, []byte{' '}))
		if strings.HasPrefix(line, "/usr/sbin/sshd") || strings.HasPrefix(line, "sshd:") {
			continue
		}
		procs[pid] = line
	}
	return procs
}

// hostOf returns the host (1..n) whose network namespace pid is in, or 0.
func (h *netHosts) hostOf(pid int) int {
	out, err := exec.Command("ip", "netns", "identify", strconv.Itoa(pid)).Output()
	if err != nil {
		return 0
	}
	var i int
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "th%d", &i); err != nil {
		return 0
	}
	return i
}

// waitNoProcs waits up to d until no host runs anything but sshd, and
// returns what is left.
func (h *netHosts) waitNoProcs(t *testing.T, d time.Duration) map[int]string {
	deadline := time.Now().Add(d)
	for {
		left := map[int]string{}
		for i := 1; i <= h.n; i++ {
			for pid, line := range h.procs(t, i) {
				left[pid] = fmt.Sprintf("th%d: %s", i, line)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
