package launch

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A server that ended but stays a zombie (its wrapper, stopped, cannot
// reap it) still passes the watcher's cheap check every tick, kill -0; the
// full check of its sweep finds it.
func TestSSHWatchSweep(t *testing.T) {
	t.Parallel()
	const host = "127.0.0.33"
	th := startHosts(t, 33, 1, nil)
	cfg, msgs := th.configMsgs(t)
	l := newTestSSH(t, cfg)
	l.watchSweep = 6 // 3 s
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	spec := sleeperSpec(t, host, "zombie")
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
	pid := th.outsidePID(t, host, h.PID)
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	wrapper, _ := strconv.Atoi(f[1]) // ppid, as seen from here
	if err := syscall.Kill(wrapper, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(wrapper, syscall.SIGCONT) })
	// Stopped before the server dies, else it may reap it first.
	eventually(t, 5*time.Second, "the wrapper stopped", func() bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(wrapper) + "/stat")
		return err == nil && strings.Contains(string(b), ") T ")
	})
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	eventually(t, 5*time.Second, "the server a zombie", func() bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		return err == nil && strings.Contains(string(b), ") Z ")
	})
	e := sshRecvExit(t, ch, 10*time.Second)
	t.Logf("zombie noticed after %s (sweep every %d ticks of %s): %+v", time.Since(t0), l.watchSweep, sshWatchTick, e)
	if e.Code != -1 || e.Status != "ended (exit status unknown)" {
		t.Errorf("exit %+v, want ended (exit status unknown): the wrapper, stopped, has not logged it", e)
	}
	syscall.Kill(wrapper, syscall.SIGCONT)
	eventually(t, 5*time.Second, "the wrapper to log the end", func() bool {
		return strings.Contains(readLog(spec.Log), "exited: status 137")
	})
}
