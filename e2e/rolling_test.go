package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/lb"
	"github.com/shaddock/shaddock/rpc"
	"github.com/shaddock/shaddock/tools/client"
)

// Figures of TestRollingUpdateBehindHAProxy (issue 8's acceptance).
const (
	rollShort     = 24                     // clients playing short rounds, one after another
	rollLong      = 4                      // clients staying longer than drainTimeout
	rollRooms     = 4                      // rooms, in each group
	rollRound     = 3 * time.Second        // a short round: enter, chat, leave
	rollSendGap   = 200 * time.Millisecond // a short round chats this often
	rollLongGap   = 500 * time.Millisecond // a long session chats this often
	rollDrain     = 10 * time.Second       // drainTimeout
	rollBack      = 2 * time.Second        // a kicked long session is back within this
	rollRequest   = 15 * time.Second       // a client's patience
	rollGrace     = 3 * time.Second        // an undelivered due push: its session ends within this
	rollUpdateCmd = 4 * time.Minute        // bound on one `master update`
)

// rollTOML is the chat demo in two groups behind HAProxy: a gate, a
// connector and a chat server in each.
var rollTOML = template.Must(template.New("servers").Parse(`
[development]
binary = "game"
base = "."

[development.master]
id = "master-server-1"
host = "127.0.0.1"
port = {{.Master}}

[development.lb]
driver = "haproxy"
haproxySocket = "unix:{{.Socket}}"
haproxyBackend = "shaddock_gates"

[development.rolling]
drainTimeout = "10s"
startTimeout = "15s"
{{range .Groups}}
[[development.gate]]
id = "gate-{{.G}}"
host = "127.0.0.1"
port = {{.GatePort}}
clientPort = {{.GateClient}}
frontend = true
group = "{{.G}}"

[[development.connector]]
id = "connector-{{.G}}"
host = "127.0.0.1"
port = {{.ConnPort}}
clientPort = {{.ConnClient}}
frontend = true
group = "{{.G}}"

[[development.chat]]
id = "chat-{{.G}}"
host = "127.0.0.1"
port = {{.ChatPort}}
group = "{{.G}}"
{{end}}`))

type rollGroup struct {
	G                                                    string
	GatePort, GateClient, ConnPort, ConnClient, ChatPort int
}

// TestRollingUpdateBehindHAProxy is issue 8's acceptance with a real
// HAProxy (TCP mode, configured from `master lb haproxy`) in front of the
// two groups' gates, and clients playing short rounds through it the whole
// time (LB → gate → connector; enter; chat to the room every 200 ms for
// 3 s; leave; again), plus a few sessions longer than drainTimeout (10 s).
// Three updates run one after another:
//   - to a new build: exits 0; every server then runs it and both gates are
//     ready in HAProxy's "show servers state";
//   - to a build that exits at start: non-zero, naming the server; every
//     server is still on the previous build; both gates ready;
//   - to a third build, the master killed (-9) while group b drains, then
//     started again: the new master finishes the update; gates ready.
//
// Throughout: no request fails or goes unanswered, no push is missing (a
// push is due to every member of the room in the sender's group that had
// entered before the send and was still there when it was answered; it
// must arrive, or that member's session must end within 3 s), no short
// round is kicked; a long session is kicked at most once per group update,
// with the reason, and is back on the other group within 2 s.
func TestRollingUpdateBehindHAProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("long: three rolling updates under load")
	}
	haproxy := haproxyPath(t)
	dir := shortTempDir(t)
	game := filepath.Join(dir, "game")
	if err := copyExecutable(binPath("chat"), game, nil); err != nil {
		t.Fatal(err)
	}
	groups := []rollGroup{}
	portGroup := map[int]string{} // connector client port → group
	for _, g := range []string{"a", "b"} {
		rg := rollGroup{G: g, GatePort: freePort(t), GateClient: freePort(t), ConnPort: freePort(t), ConnClient: freePort(t), ChatPort: freePort(t)}
		groups = append(groups, rg)
		portGroup[rg.ConnClient] = g
	}
	socket := filepath.Join(dir, "haproxy.sock")
	var buf bytes.Buffer
	if err := rollTOML.Execute(&buf, map[string]any{"Master": freePort(t), "Socket": socket, "Groups": groups}); err != nil {
		t.Fatal(err)
	}
	cl := &Cluster{t: t, Dir: dir, Config: filepath.Join(dir, "servers.toml")}
	if err := os.WriteFile(cl.Config, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	// HAProxy, configured by `master lb haproxy`; only the bind address is
	// ours (loopback, a free port).
	frag, err := cl.Master(30*time.Second, "lb", "haproxy")
	if err != nil {
		t.Fatalf("master lb haproxy: %v\n%s", err, frag)
	}
	lbAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	bind := regexp.MustCompile(`(?m)^(\s*)bind \S+$`)
	if !bind.MatchString(frag) {
		t.Fatalf("no bind line in the fragment:\n%s", frag)
	}
	haproxyCfg := bind.ReplaceAllString(frag, "${1}bind "+lbAddr)
	startHAProxyProc(t, haproxy, dir, haproxyCfg)

	t.Cleanup(cl.stopAndCheck)
	if out, err := cl.Master(90*time.Second, "start", "--daemon"); err != nil {
		t.Fatalf("master start: %v\n%s\n%s", err, out, cl.Logs())
	}
	env, err := config.Load(cl.Config, "development")
	if err != nil {
		t.Fatal(err)
	}
	bal, err := lb.New(env.LB, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	gates := lb.Gates(env, "")
	waitGatesReady := func(what string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			st, err := bal.Status(ctx, "", gates)
			cancel()
			if err == nil && st["gate-a"] == lb.Ready && st["gate-b"] == lb.Ready {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: gates not both ready at HAProxy after %v: %v %v\n%s", what, within, st, err, showServersState(t, socket))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitGatesReady("after start", 15*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b := &rollBook{t: t, lb: lbAddr, portGroup: portGroup, byKey: map[string][]*fsession{}, phase: "baseline"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range rollShort {
		wg.Go(func() { b.shortRounds(ctx, stop, i) })
	}
	for i := range rollLong {
		wg.Go(func() { b.longSession(ctx, stop, i) })
	}
	stopped := false
	stopLoad := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer b.closeAll()
	defer stopLoad()
	time.Sleep(4 * time.Second)

	build := func(name string) (path, sum string) {
		path = filepath.Join(dir, name)
		// A new build of the same game: the binary with a different
		// trailer (ELF ignores bytes past its sections), so another SHA-256.
		if err := copyExecutable(binPath("chat"), path, []byte("\nshaddock e2e build "+name+"\n")); err != nil {
			t.Fatal(err)
		}
		return path, sha256File(t, path)
	}
	checkBuilds := func(what, sum string) {
		t.Helper()
		for _, s := range cl.List().Servers {
			if s.State != rpc.StateRunning || s.Info.Build != sum[:12] {
				t.Errorf("%s: %s is %v on build %q, want running on %s", what, s.Info.Id, s.State, s.Info.Build, sum[:12])
			}
		}
		waitGatesReady(what, 5*time.Second)
		t.Logf("%s: every server on build %s; HAProxy:\n%s", what, sum[:12], showServersState(t, socket))
	}

	// 1. A new build.
	v2, sum2 := build("game-v2")
	b.setPhase("update to v2")
	at := time.Now()
	out, err := cl.Master(rollUpdateCmd, "update", "--binary", v2)
	took := time.Since(at)
	if err != nil {
		t.Fatalf("master update --binary %s: %v\n%s", v2, err, out)
	}
	t.Logf("master update to v2 took %v:\n%s", took.Round(100*time.Millisecond), out)
	checkBuilds("after the update to v2", sum2)
	for _, g := range []string{"b", "a"} {
		if !regexp.MustCompile(`group ` + g + ` runs build ` + sum2[:12] + ` \(`).MatchString(out) {
			t.Errorf("no 'group %s runs build' line in the update's output", g)
		}
	}
	time.Sleep(3 * time.Second)

	// 2. A broken build: exits at start.
	broken := filepath.Join(dir, "game-broken")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho 'fatal: this build cannot start' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	b.setPhase("update to a broken build")
	at = time.Now()
	out, err = cl.Master(rollUpdateCmd, "update", "--binary", broken)
	took = time.Since(at)
	if err == nil {
		t.Fatalf("master update to a broken build exited 0:\n%s", out)
	}
	t.Logf("master update to a broken build: %v after %v:\n%s", err, took.Round(100*time.Millisecond), out)
	if !regexp.MustCompile(`(gate|connector|chat)-b`).MatchString(lastLines(out, 3)) {
		t.Errorf("the failed update does not name the server that failed:\n%s", out)
	}
	checkBuilds("after the broken update", sum2)
	time.Sleep(3 * time.Second)

	// 3. The master killed while group b drains, then started again.
	v3, sum3 := build("game-v3")
	b.setPhase("update to v3, master killed")
	at = time.Now()
	upd := exec.Command(binPath("master"), "update", "--env=development", "--config", cl.Config, "--binary", v3)
	upd.Dir = dir
	var updOut LogBuffer
	upd.Stdout, upd.Stderr = &updOut, &updOut
	if err := upd.Start(); err != nil {
		t.Fatal(err)
	}
	updDone, exited := make(chan error, 1), make(chan struct{})
	go func() { err := upd.Wait(); close(exited); updDone <- err }()
	if _, err := updOut.Wait(60*time.Second, exited, "group b: draining"); err != nil {
		upd.Process.Kill()
		t.Fatalf("master update: group b not draining: %v\n%s", err, updOut.String())
	}
	time.Sleep(2 * time.Second) // in the middle of the drain
	masterPid := readPid(t, filepath.Join(dir, "run", "development.master.pid"))
	if err := syscall.Kill(masterPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	for alive(masterPid) {
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-updDone:
		t.Logf("master update, its master killed -9 %v after it began: exit %v; its output:\n%s", killedAt.Sub(at).Round(100*time.Millisecond), err, updOut.String())
	case <-time.After(30 * time.Second):
		upd.Process.Kill()
		t.Fatal("master update still running 30s after its master was killed")
	}
	if listed := masterList(t, cl); !strings.Contains(listed, "update") {
		t.Logf("master list with the master down:\n%s", listed)
	}
	time.Sleep(time.Second)
	if out, err := cl.Master(90*time.Second, "start", "--daemon"); err != nil {
		t.Fatalf("master start after kill -9 during an update: %v\n%s", err, out)
	}
	deadline := time.Now().Add(2 * time.Minute)
	var note string
	for {
		note = cl.List().Update
		if strings.Contains(note, ": done: ") || strings.Contains(note, ": failed at ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new master did not finish the update in 2m: %q", note)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("update finished by the new master %v after the kill: %s", time.Since(killedAt).Round(100*time.Millisecond), note)
	if !strings.Contains(note, "done: every group runs build "+sum3[:12]) {
		t.Errorf("the resumed update: %q, want done on %s", note, sum3[:12])
	}
	checkBuilds("after the resumed update", sum3)
	t.Logf("master list:\n%s", masterList(t, cl))
	time.Sleep(3 * time.Second)

	stopLoad()
	time.Sleep(rollGrace) // pushes in flight arrive
	b.report()
	b.closeAll()
	t.Logf("what the servers did about it:\n%s", frameworkLines(cl))
}

// rollBook is the checking clients' book: sessions, sends, pushes, and
// every failure.
type rollBook struct {
	t         *testing.T
	lb        string         // HAProxy's address
	portGroup map[int]string // connector client port → group

	mu       sync.Mutex
	phase    string
	byKey    map[string][]*fsession // group/room → every session that entered it
	sends    []*fsend
	failures []string
	rounds   map[string]int           // phase → short rounds played
	slowest  map[string]time.Duration // phase → longest a short client waited to start a round
	kicks    []rollKick
	sendsOK  map[string]int // phase → answered sends
}

// rollKick is a long session's kick and its way back.
type rollKick struct {
	phase, user, from, to, reason string
	back                          time.Duration
}

func (b *rollBook) setPhase(p string) {
	b.mu.Lock()
	b.phase = p
	b.mu.Unlock()
}

func (b *rollBook) fail(format string, args ...any) {
	b.mu.Lock()
	b.failures = append(b.failures, time.Now().Format("15:04:05.000 ")+b.phase+": "+fmt.Sprintf(format, args...))
	b.mu.Unlock()
}

// enter goes through HAProxy to a gate, then to the connector it names,
// and enters room; it returns the session and its group.
func (b *rollBook) enter(ctx context.Context, name, room string, ws bool) (*fsession, string, error) {
	rctx, cancel := context.WithTimeout(ctx, rollRequest)
	defer cancel()
	e, err := connectorFor(rctx, b.lb, name, ws)
	if err != nil {
		return nil, "", fmt.Errorf("through the balancer: %w", err)
	}
	group, ok := b.portGroup[e.Port]
	if !ok {
		return nil, "", fmt.Errorf("queryEntry answered %+v: no such connector", e)
	}
	s := &fsession{user: name, room: group + "/" + room, got: map[string]bool{}}
	c, err := client.Dial(rctx, fmt.Sprintf("%s:%d", e.Host, e.Port), client.Options{Transport: transport(ws), OnPush: s.onPush})
	if err != nil {
		return nil, "", fmt.Errorf("dial connector-%s: %w", group, err)
	}
	s.c = c
	var r enterReply
	if err := c.RequestJSON(rctx, "connector.entryHandler.enter", map[string]string{"username": name, "rid": room}, &r); err != nil || len(r.Users) == 0 {
		c.Close()
		return nil, "", fmt.Errorf("enter on connector-%s: %v %+v", group, err, r)
	}
	b.mu.Lock()
	s.entered, s.phase, s.users = time.Now(), b.phase, r.Users
	b.byKey[s.room] = append(b.byKey[s.room], s)
	b.mu.Unlock()
	return s, group, nil
}

// send sends one message to s's room and books the pushes it makes due.
func (b *rollBook) send(ctx context.Context, s *fsession, msg string) error {
	sent := time.Now()
	rctx, cancel := context.WithTimeout(ctx, rollRequest)
	defer cancel()
	room := s.room[strings.IndexByte(s.room, '/')+1:]
	out, err := s.c.Request(rctx, "chat.chatHandler.send",
		[]byte(fmt.Sprintf(`{"rid":%q,"content":%q,"from":%q,"target":"*"}`, room, msg, s.user)))
	answered := time.Now()
	if err != nil {
		return err
	}
	var r struct {
		Route string `json:"route"`
		Code  int    `json:"code"`
	}
	json.Unmarshal(out, &r)
	if r.Route != "chat.chatHandler.send" {
		return fmt.Errorf("send answered %s", out)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sendsOK == nil {
		b.sendsOK = map[string]int{}
	}
	b.sendsOK[b.phase]++
	b.sends = append(b.sends, &fsend{msg: msg, phase: b.phase, from: s, sent: sent, answered: answered,
		due: dueAmong(b.byKey[s.room], sent, answered)})
	return nil
}

// shortRounds plays rounds until stop: enter through the balancer, chat
// every 200 ms for 3 s, leave. Any error, and any kick, is a failure.
func (b *rollBook) shortRounds(ctx context.Context, stop <-chan struct{}, i int) {
	room := fmt.Sprintf("room-%d", i%rollRooms)
	ws := i%2 == 0
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		name := fmt.Sprintf("s%02d-%d", i, n)
		began := time.Now()
		s, group, err := b.enter(ctx, name, room, ws)
		if err != nil {
			b.fail("%s could not start a round: %v", name, err)
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		b.mu.Lock()
		if b.rounds == nil {
			b.rounds, b.slowest = map[string]int{}, map[string]time.Duration{}
		}
		b.rounds[b.phase]++
		b.slowest[b.phase] = max(b.slowest[b.phase], s.entered.Sub(began))
		b.mu.Unlock()
		end := time.Now().Add(rollRound)
		tick := time.NewTicker(rollSendGap)
		for k := 0; time.Now().Before(end); k++ {
			select {
			case <-tick.C:
			case <-s.c.Done():
				b.fail("short round %s on group %s ended by the server: %v", name, group, s.c.Err())
			case <-stop:
			}
			if s.c.Err() != nil || isClosed(stop) {
				break
			}
			if err := b.send(ctx, s, fmt.Sprintf("%s-%d", name, k)); err != nil {
				if s.c.Err() == nil {
					b.fail("short round %s on group %s: send: %v", name, group, err)
				}
				break
			}
		}
		tick.Stop()
		if isClosed(stop) {
			return // stay connected: pushes due arrive before closeAll
		}
		s.end("left")
		s.c.Close()
	}
}

// longSession stays entered until stop, chatting every 500 ms; when it is
// kicked, it checks the reason and comes back through the balancer, which
// must put it on the other group within 2 s.
func (b *rollBook) longSession(ctx context.Context, stop <-chan struct{}, i int) {
	room := fmt.Sprintf("room-%d", i%rollRooms)
	ws := i%2 == 1
	var kicked *rollKick
	var kickedAt time.Time
	for n := 0; ; n++ {
		name := fmt.Sprintf("long%d-%d", i, n)
		s, group, err := b.enter(ctx, name, room, ws)
		if err != nil {
			b.fail("long session %s could not enter: %v", name, err)
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		if kicked != nil {
			kicked.to, kicked.back = group, s.entered.Sub(kickedAt)
			b.mu.Lock()
			b.kicks = append(b.kicks, *kicked)
			b.mu.Unlock()
			kicked = nil
		}
		tick := time.NewTicker(rollLongGap)
		for k := 0; ; k++ {
			select {
			case <-tick.C:
				if err := b.send(ctx, s, fmt.Sprintf("%s-%d", name, k)); err != nil && s.c.Err() == nil {
					b.fail("long session %s on group %s: send: %v", name, group, err)
				}
				continue
			case <-stop:
				tick.Stop()
				return
			case <-s.c.Done():
			}
			break
		}
		tick.Stop()
		kickedAt = time.Now()
		err = s.c.Err()
		s.end(sessionEnd(err))
		var k *client.KickedError
		if !errors.As(err, &k) {
			b.fail("long session %s on group %s ended without a kick: %v", name, group, err)
		}
		reason := ""
		if k != nil {
			reason = k.Reason
		}
		b.mu.Lock()
		kicked = &rollKick{phase: b.phase, user: fmt.Sprintf("long%d", i), from: group, reason: reason}
		b.mu.Unlock()
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (b *rollBook) closeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ss := range b.byKey {
		for _, s := range ss {
			s.c.Close()
		}
	}
}

// report checks the book and logs the figures of each phase.
func (b *rollBook) report() {
	t := b.t
	b.mu.Lock()
	defer b.mu.Unlock()
	type stats struct{ due, delivered, closed, lost int }
	phases := []string{}
	byPhase := map[string]*stats{}
	var lost []string
	for _, fs := range b.sends {
		st := byPhase[fs.phase]
		if st == nil {
			st = &stats{}
			byPhase[fs.phase] = st
			phases = append(phases, fs.phase)
		}
		for _, m := range fs.due {
			st.due++
			o, ended := fs.outcome(m, rollGrace)
			switch o {
			case pushDelivered:
				st.delivered++
			case pushClosed:
				st.closed++
			default:
				st.lost++
				if len(lost) < 10 {
					lost = append(lost, fmt.Sprintf("%s: %s (sent %s, answered %s) to %s in %s (entered %s, ended %v)", fs.phase, fs.msg,
						fs.sent.Format("15:04:05.000"), fs.answered.Format("15:04:05.000"), m.user, m.room, m.entered.Format("15:04:05.000"), ended))
				}
			}
		}
	}
	var w strings.Builder
	fmt.Fprintf(&w, "%-30s %7s %7s %8s %9s %7s %5s %14s %6s\n", "phase", "rounds", "sends", "due", "delivered", "closed", "lost", "slowest start", "kicks")
	for _, p := range phases {
		st := byPhase[p]
		kicks := 0
		for _, k := range b.kicks {
			if k.phase == p {
				kicks++
			}
		}
		fmt.Fprintf(&w, "%-30s %7d %7d %8d %9d %7d %5d %14v %6d\n", p, b.rounds[p], b.sendsOK[p], st.due, st.delivered, st.closed, st.lost,
			b.slowest[p].Round(time.Millisecond), kicks)
		if st.lost > 0 {
			t.Errorf("%s: %d pushes missing", p, st.lost)
		}
	}
	t.Logf("checked every push (per group and room):\n%s", w.String())
	if len(lost) > 0 {
		t.Errorf("missing pushes, for example:\n  %s", strings.Join(lost, "\n  "))
	}
	if len(b.failures) > 0 {
		t.Errorf("%d failures (requests failed, short rounds kicked, long sessions ended without a kick); first:\n  %s",
			len(b.failures), strings.Join(b.failures[:min(10, len(b.failures))], "\n  "))
	}
	perPhaseUser := map[string]int{}
	var longest time.Duration
	for _, k := range b.kicks {
		t.Logf("kick: %s: %s kicked on group %s (%q), back on group %s in %v", k.phase, k.user, k.from, k.reason, k.to, k.back.Round(time.Millisecond))
		longest = max(longest, k.back)
		perPhaseUser[k.phase+" "+k.user]++
		if k.reason == "" {
			t.Errorf("%s: %s kicked without a reason", k.phase, k.user)
		}
		if k.to == k.from {
			t.Errorf("%s: %s kicked from group %s came back to the same group", k.phase, k.user, k.from)
		}
		if k.back > rollBack {
			t.Errorf("%s: %s back %v after its kick, want within %v", k.phase, k.user, k.back.Round(time.Millisecond), rollBack)
		}
	}
	for pu, n := range perPhaseUser {
		if n > 2 {
			t.Errorf("%s kicked %d times in one update, want at most once per group", pu, n)
		}
	}
	if len(b.kicks) == 0 {
		t.Errorf("no long session was kicked: the updates did not drain anything")
	}
	t.Logf("%d kicks of long sessions, the longest way back %v", len(b.kicks), longest.Round(time.Millisecond))
}

// haproxyPath returns Debian's haproxy; the test runs the real one.
func haproxyPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy"
	}
	t.Fatal("haproxy is not installed (Debian: apt-get install haproxy); this test runs the real one")
	return ""
}

// shortTempDir is a temporary directory whose paths fit in a unix socket
// address.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "roll")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startHAProxyProc runs haproxy in the foreground with cfg; it is killed,
// by its pid, when the test ends.
func startHAProxyProc(t *testing.T, bin, dir, cfg string) {
	t.Helper()
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var out LogBuffer
	cmd := exec.Command(bin, "-f", path, "-db")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("haproxy.cfg:\n%s\nhaproxy output:\n%s", cfg, out.String())
		}
	})
	select {
	case <-exited:
		t.Fatalf("haproxy exited at start: %v\n%s\n%s", cmd.ProcessState, cfg, out.String())
	case <-time.After(300 * time.Millisecond):
	}
}

// showServersState asks HAProxy's runtime API directly, for the log.
func showServersState(t *testing.T, socket string) string {
	t.Helper()
	c, err := net.DialTimeout("unix", socket, 2*time.Second)
	if err != nil {
		return fmt.Sprintf("(runtime API: %v)", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "show servers state shaddock_gates\n"); err != nil {
		return fmt.Sprintf("(runtime API: %v)", err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		return fmt.Sprintf("%s(runtime API: %v)", out, err)
	}
	return string(out)
}

// copyExecutable copies src to dst (mode 0755), with trailer appended.
func copyExecutable(src, dst string, trailer []byte) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, append(data, trailer...), 0o755)
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func masterList(t *testing.T, cl *Cluster) string {
	out, _ := cl.Master(15*time.Second, "list")
	return out
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
