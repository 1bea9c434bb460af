package launch

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Starts queued while the host's starters are busy leave in one session,
// each with its own outcome: a missing binary, a missing directory fail
// only their own spec, and environment names that are the start script's
// own variables reach the server unharmed (IFS, which shells do not take
// from the environment, must not harm the start either).
func TestSSHStartBatch(t *testing.T) {
	t.Parallel()
	const host = "127.0.0.31"
	th := startHosts(t, 31, 1, nil)
	cfg, msgs := th.configMsgs(t)
	l := newTestSSH(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h, err := l.host(host)
	if err != nil {
		t.Fatal(err)
	}

	// Both starters busy, as while a cluster starts: what comes now
	// queues.
	h.mu.Lock()
	h.starters = sshStartSessions
	h.mu.Unlock()
	const n = 10
	specs := make([]Spec, n)
	for i := range specs {
		specs[i] = sleeperSpec(t, host, fmt.Sprintf("batch-%d", i), "-env", "PATH,log,setsid,i,w,date,SHADDOCK_EPOCH")
		specs[i].Environ = []string{EpochEnv + "=" + fmt.Sprint(i)}
	}
	specs[3].Binary = "/nonexistent/game"
	specs[5].Dir = "/nonexistent/base"
	specs[7].Environ = append(specs[7].Environ, "PATH=/nonexistent", "log=/x", "setsid=no", "i=99", "w=1", "IFS=:", "date=2")
	handles := make([]Handle, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range specs {
		wg.Go(func() { handles[i], errs[i] = l.Start(ctx, specs[i]) })
	}
	eventually(t, 10*time.Second, "every Start queued", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.startQ) == n
	})
	// A starter frees up: everything queued leaves together.
	h.mu.Lock()
	h.starters = 1
	if !l.spawn(h.starter) {
		t.Fatal("launcher closed")
	}
	h.mu.Unlock()
	wg.Wait()
	if c := msgs.count("ssh start session"); c != 1 {
		t.Errorf("%d start sessions for %d queued starts, want 1", c, n)
	}
	for i, err := range errs {
		switch i {
		case 3:
			if err == nil || err.Error() != "start batch-3 on 127.0.0.31: binary /nonexistent/game is missing or not an executable file" {
				t.Errorf("spec 3 (no binary): %v", err)
			}
		case 5:
			if err == nil || err.Error() != "start batch-5 on 127.0.0.31: cannot enter the working directory /nonexistent/base" {
				t.Errorf("spec 5 (no directory): %v", err)
			}
		default:
			if err != nil {
				t.Errorf("spec %d: %v", i, err)
				continue
			}
			hd := handles[i]
			if hd.ID != specs[i].ID || hd.PID <= 0 || hd.StartTicks == 0 || hd.BootID == "" || hd.Log != specs[i].Log {
				t.Errorf("spec %d: handle %+v", i, hd)
			}
			want := fmt.Sprintf("sleeper batch-%d pid=%d cwd=%s ", i, hd.PID, specs[i].Dir)
			eventually(t, 10*time.Second, "the server's output in its log", func() bool {
				return strings.Contains(readLog(specs[i].Log), want) && strings.Contains(readLog(specs[i].Log), "sleeper stderr")
			})
			if !strings.HasPrefix(readLog(specs[i].Log), fmt.Sprintf("=== %s", hd.Started.UTC().Format("2006-01-02T"))) {
				t.Errorf("spec %d: log does not start with the header:\n%s", i, readLog(specs[i].Log))
			}
			if !strings.Contains(readLog(specs[i].Log), fmt.Sprintf("env SHADDOCK_EPOCH=%d\n", i)) {
				t.Errorf("spec %d got another's environment:\n%s", i, readLog(specs[i].Log))
			}
		}
	}
	if log := readLog(specs[7].Log); !strings.Contains(log, "env PATH=/nonexistent\nenv log=/x\nenv setsid=no\nenv i=99\nenv w=1\nenv date=2\n") {
		t.Errorf("environment that shadows the script's variables:\n%s", log)
	}
	if log := readLog(specs[6].Log); !strings.Contains(log, "env log unset\n") {
		t.Errorf("spec 6 got spec 7's environment:\n%s", log)
	}

	// With a starter free, a Start leaves at once, alone.
	spec := sleeperSpec(t, host, "alone")
	hd, err := l.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	handles = append(handles, hd)
	if c := msgs.count("ssh start session"); c != 2 {
		t.Errorf("%d start sessions, want 2", c)
	}
	// The reserved name never reaches the host.
	spec = sleeperSpec(t, host, "reserved")
	spec.Environ = []string{startEnvVar + "=1"}
	if _, err := l.Start(ctx, spec); err == nil || !strings.Contains(err.Error(), `environment variable name "shaddock_kv" is reserved`) {
		t.Errorf("reserved name: %v", err)
	}

	for _, hd := range handles {
		if hd.PID > 0 {
			wg.Go(func() {
				if err := l.Kill(ctx, hd); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
}

// A Start given up after its batch has left, whose server starts all the
// same, does not leave that server running. A server whose wrapper fails
// before the server runs (here: an environment the shell cannot export,
// which Start would have refused) fails alone, with the end of its log.
func TestSSHStartAbandoned(t *testing.T) {
	t.Parallel()
	const host = "127.0.0.32"
	th := startHosts(t, 32, 1, nil)
	cfg, msgs := th.configMsgs(t)
	l := newTestSSH(t, cfg)
	h, err := l.host(host)
	if err != nil {
		t.Fatal(err)
	}
	killed := msgs.on("server started for a Start that had returned; killing it")
	specs := []Spec{sleeperSpec(t, host, "kept"), sleeperSpec(t, host, "given-up"), sleeperSpec(t, host, "bad-env")}
	specs[2].Environ = []string{"A=1", "BAD-NAME=1", "B=2"}
	reqs := make([]*sshStartReq, len(specs))
	h.mu.Lock()
	for i, spec := range specs {
		reqs[i] = &sshStartReq{spec: spec, call: startCall(spec), env: startEnv(spec), res: make(chan sshStartRes, 1)}
		h.startQ = append(h.startQ, reqs[i])
	}
	h.mu.Unlock()
	batch := h.takeStarts(false)
	if len(batch) != 3 {
		t.Fatalf("took %d", len(batch))
	}
	// Its caller gives up between the batch's leaving and its report.
	if !h.abandon(reqs[1]) {
		t.Fatal("abandon: already delivered")
	}
	h.startBatch(batch)
	res := <-reqs[0].res
	if res.err != nil {
		t.Fatal(res.err)
	}
	bad := <-reqs[2].res
	if bad.err == nil || !strings.HasPrefix(bad.err.Error(), "the server did not start; the end of "+specs[2].Log+":\n=== ") ||
		!strings.Contains(bad.err.Error(), "\ncannot set environment variable BAD-NAME\n") ||
		!strings.HasSuffix(bad.err.Error(), " bad-env did not start: status 124") {
		t.Errorf("bad environment: %v", bad.err)
	}
	select {
	case <-killed:
	case <-time.After(10 * time.Second):
		t.Fatal("the server started for nobody was not killed")
	}
	eventually(t, 10*time.Second, "the abandoned server's end in its log", func() bool {
		return strings.Contains(readLog(specs[1].Log), "exited: status 137")
	})
	if strings.Contains(readLog(specs[0].Log), "exited:") {
		t.Errorf("the kept server ended:\n%s", readLog(specs[0].Log))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Kill(ctx, res.h); err != nil {
		t.Fatal(err)
	}
}

// The report of a start session: lines come in pieces and in any order;
// each request gets its outcome once, the unknown lines only in an error.
func TestStartReport(t *testing.T) {
	t.Parallel()
	reqs := make([]*sshStartReq, 4)
	for i := range reqs {
		spec := Spec{ID: fmt.Sprintf("s%d", i), Host: "h", Binary: "/bin/game", Log: filepath.Join("/l", fmt.Sprint(i))}
		reqs[i] = &sshStartReq{spec: spec, res: make(chan sshStartRes, 1)}
	}
	reqs[3].state.Store(startAbandoned)
	p := &startReport{reqs: reqs, errs: make([][]string, len(reqs)), done: make([]bool, len(reqs))}
	for _, chunk := range []string{"Welcome!\nbo", "ot b-1\nerr 1 the server did not start; the end of /l/1:\nerr 1 ", "=== header\nok 0 12",
		"3 456\nok 9 1 2\nok 3 77 88\n", "fail 1\nok 1 5 6\n", "ok 0 1 1\n"} {
		if n, err := p.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
	}
	orphans := p.finish(errors.New("session ended"))
	if r := <-reqs[0].res; r.err != nil || r.h.PID != 123 || r.h.StartTicks != 456 || r.h.BootID != "b-1" || r.h.ID != "s0" || r.h.Binary != "/bin/game" {
		t.Errorf("spec 0: %+v", r)
	}
	if r := <-reqs[1].res; r.err == nil || r.err.Error() != "the server did not start; the end of /l/1:\n=== header" {
		t.Errorf("spec 1: %+v", r)
	}
	if r := <-reqs[2].res; r.err == nil || r.err.Error() != "session ended" {
		t.Errorf("spec 2: %+v", r)
	}
	if len(orphans) != 1 || orphans[0].PID != 77 || orphans[0].ID != "s3" {
		t.Errorf("orphans %+v", orphans)
	}
	for i, r := range reqs {
		select {
		case res := <-r.res:
			t.Errorf("spec %d: a second outcome %+v", i, res)
		default:
		}
	}

	// No report at all: the output says why.
	r := &sshStartReq{spec: Spec{ID: "x"}, res: make(chan sshStartRes, 1)}
	p = &startReport{reqs: []*sshStartReq{r}, errs: make([][]string, 1), done: make([]bool, 1)}
	p.Write([]byte("sh: 1: syntax error\n"))
	p.finish(nil)
	if res := <-r.res; res.err == nil || !strings.Contains(res.err.Error(), `did not report on this server (output "sh: 1: syntax error\n")`) {
		t.Errorf("no report: %v", res.err)
	}
}
