package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/master"
	"github.com/shaddock/shaddock/proto/masterpb"
	"github.com/shaddock/shaddock/rpc"
	"github.com/shaddock/shaddock/tools/client"
)

// Figures of TestReloadUnderLoad.
const (
	reloadUsers    = 60 // users entered before the topology changes
	reloadRooms    = 6  // their rooms
	reloadNewUsers = 30 // users who log in once three connectors run
	reloadNewRooms = 3  // rooms only they enter (they also join the old ones)
	reloadDrain    = 3 * time.Second
	reloadRunning  = 10 * time.Second            // an added server runs within this of the reload
	reloadGone     = reloadDrain + 5*time.Second // a removed server is gone within this of the reload
	reloadGateStop = time.Second                 // the gate stops offering a removed connector within this of its drain
	reloadProbes   = 300                         // uids the gate is asked for
	reloadPhase    = 8 * time.Second             // load after each change
	probeGap       = 5 * time.Millisecond        // between a probe's queryEntry requests
)

// TestReloadUnderLoad is the reload acceptance, under the load of
// the checking client of TestNothingLostUnderFaults (every push due is
// delivered or its session ends within 3 s; every request is answered):
//
//   - servers.toml gains connector-server-3 and chat-server-3, `master
//     reload`: both run within 10 s, nobody is disconnected (adding servers
//     moves no room), the gate dispatches over three connectors as Pomelo
//     does (crc32(uid) % 3 over the connectors sorted by id); new logins
//     land on the new connector and find the old rooms with all their
//     members;
//   - connector-server-3 is edited out, `master reload`: the gate stops
//     offering it at once; its clients (only they) are kicked with a reason
//     after drainTimeout (3 s) and re-enter through the gate on the others;
//     it is unlisted and its process gone soon after;
//   - a broken edit (a duplicate id): reload exits non-zero with the
//     file:line of the error, and the cluster is unchanged; reloading the
//     restored file changes nothing.
func TestReloadUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("long: topology changes under load")
	}
	cl := StartChatClusterWith(t, ClusterOptions{AutoRestart: true, DrainTimeout: reloadDrain.String()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	const (
		addPhase    = "reload: add connector-server-3 + chat-server-3"
		loginPhase  = "new logins over three connectors"
		removePhase = "reload: remove connector-server-3"
		brokenPhase = "reload: broken edit (duplicate id)"
	)
	l := &ledger{t: t, cl: cl, byRoom: map[string][]*fsession{}, phase: "baseline", users: reloadUsers,
		calm: map[string]bool{addPhase: true, loginPhase: true, brokenPhase: true}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	startUser := func(name, room string, ws bool) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.user(ctx, stop, name, room, ws)
		}()
	}
	for i := range reloadUsers {
		startUser(fmt.Sprintf("u%03d", i), fmt.Sprintf("room-%d", i%reloadRooms), i%2 == 0)
	}
	stopped := false
	stopLoad := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer l.closeAll()
	defer stopLoad()
	l.waitAllEntered(ctx, 30*time.Second)
	time.Sleep(5 * time.Second)

	orig, err := os.ReadFile(cl.Config)
	if err != nil {
		t.Fatal(err)
	}
	c3Client := freePort(t)
	c3Addr := fmt.Sprintf("127.0.0.1:%d", c3Client)
	connector3 := fmt.Sprintf(`
[[development.connector]]
id = "connector-server-3"
host = "127.0.0.1"
port = %d
clientPort = %d
frontend = true
autoRestart = true
`, freePort(t), c3Client)
	chat3 := fmt.Sprintf(`
[[development.chat]]
id = "chat-server-3"
host = "127.0.0.1"
port = %d
autoRestart = true
`, freePort(t))
	// The cluster's cleanup (master stop) reads servers.toml: whatever
	// happens, it finds the last valid one.
	lastGood := orig
	t.Cleanup(func() { os.WriteFile(cl.Config, lastGood, 0o644) })
	writeConfig := func(parts ...string) {
		t.Helper()
		if err := os.WriteFile(cl.Config, []byte(strings.Join(parts, "")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	restarts := map[string]time.Duration{}

	// Add connector-server-3 and chat-server-3.
	l.setPhase(addPhase)
	begin := time.Now()
	writeConfig(string(orig), connector3, chat3)
	reload := runMasterTimed(cl, 60*time.Second, "reload")
	runningAfter := map[string]time.Duration{}
	var r masterRun
	reloaded := false
	for len(runningAfter) < 2 {
		if !reloaded {
			select {
			case r = <-reload:
				reloaded = true
				if r.err != nil {
					t.Fatalf("master reload (add): %v\n%s", r.err, r.text())
				}
			default:
			}
		}
		if time.Since(begin) > reloadRunning+5*time.Second {
			t.Fatalf("added servers not running %v after the reload (running: %v)", time.Since(begin), runningAfter)
		}
		for _, s := range cl.List().Servers {
			id := s.Info.Id
			if (id == "connector-server-3" || id == "chat-server-3") && s.State == rpc.StateRunning && s.Info.Pid != 0 {
				if _, ok := runningAfter[id]; !ok {
					runningAfter[id] = time.Since(begin)
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !reloaded {
		r = <-reload
	}
	lastGood = []byte(string(orig) + connector3 + chat3)
	if r.err != nil {
		t.Fatalf("master reload (add): %v\n%s", r.err, r.text())
	}
	t.Logf("reload (add) took %v; output:\n%s", r.took.Round(time.Millisecond), r.text())
	for id, d := range runningAfter {
		t.Logf("%s running %v after the reload began", id, d.Round(time.Millisecond))
		if d > reloadRunning {
			t.Errorf("%s running only %v after the reload, want within %v", id, d, reloadRunning)
		}
	}
	restarts[addPhase] = max(runningAfter["connector-server-3"], runningAfter["chat-server-3"])

	// The gate dispatches over the three connectors: Pomelo's
	// crc32(uid) % n over the connectors sorted by id.
	connectors := append(slices.Clone(cl.Connectors), c3Addr) // connector-server-1, -2, -3
	var probes []string
	for i := range reloadProbes {
		probes = append(probes, fmt.Sprintf("probe-%03d", i))
	}
	answers, err := askGate(ctx, cl.GateAddr, probes)
	if err != nil {
		t.Fatalf("queryEntry: %v", err)
	}
	perConnector := map[string]int{}
	var wrong []string
	for i, uid := range probes {
		perConnector[answers[i]]++
		if want := connectors[rpc.PickIndex(uid, len(connectors))]; answers[i] != want {
			wrong = append(wrong, fmt.Sprintf("%s → %s, want %s", uid, answers[i], want))
		}
	}
	t.Logf("gate dispatch of %d uids: connector-server-1 %d, -2 %d, -3 %d", len(probes),
		perConnector[connectors[0]], perConnector[connectors[1]], perConnector[connectors[2]])
	if len(wrong) > 0 {
		t.Errorf("%d of %d uids not dispatched by crc32 %% 3 over the connectors sorted by id; first: %v", len(wrong), len(probes), wrong[:min(5, len(wrong))])
	}
	for i, c := range connectors {
		if perConnector[c] == 0 {
			t.Errorf("the gate never offered connector-server-%d (%s)", i+1, c)
		}
	}
	time.Sleep(reloadPhase)
	l.waitAllEntered(ctx, 20*time.Second)
	if ended := l.endedBetween(begin, time.Now()); len(ended) > 0 {
		t.Errorf("%s: %d sessions ended; adding servers must disconnect nobody: %v", addPhase, len(ended), ended[:min(5, len(ended))])
	}

	// New logins spread over the three connectors and enter the old rooms
	// (and new ones); they find every old member there.
	l.setPhase(loginPhase)
	begin = time.Now()
	oldMembers := map[string][]string{}
	for i := range reloadUsers {
		room := fmt.Sprintf("room-%d", i%reloadRooms)
		oldMembers[room] = append(oldMembers[room], fmt.Sprintf("u%03d", i))
	}
	l.mu.Lock()
	l.users += reloadNewUsers
	l.mu.Unlock()
	for i := range reloadNewUsers {
		startUser(fmt.Sprintf("n%03d", i), fmt.Sprintf("room-%d", i%(reloadRooms+reloadNewRooms)), i%2 == 0)
	}
	l.waitAllEntered(ctx, 30*time.Second)
	on3 := map[string]bool{}
	for _, s := range l.sessions() {
		if !strings.HasPrefix(s.user, "n") {
			continue
		}
		if s.connector == c3Addr {
			on3[s.user] = true
		}
		for _, u := range oldMembers[s.room] {
			if !slices.Contains(s.users, u) {
				t.Errorf("%s entered %s on %s and found %v: %s, there since before the reload, is missing", s.user, s.room, s.connector, s.users, u)
			}
		}
	}
	t.Logf("%d of %d new logins on connector-server-3", len(on3), reloadNewUsers)
	if len(on3) == 0 {
		t.Fatalf("no new login landed on connector-server-3")
	}
	time.Sleep(reloadPhase)
	l.waitAllEntered(ctx, 20*time.Second)
	if ended := l.endedBetween(begin, time.Now()); len(ended) > 0 {
		t.Errorf("%s: %d sessions ended: %v", loginPhase, len(ended), ended[:min(5, len(ended))])
	}

	// Remove connector-server-3: the gate stops offering it at once; its
	// clients are kicked after drainTimeout and come back on the others.
	var pid3 int
	for _, s := range cl.List().Servers {
		if s.Info.Id == "connector-server-3" {
			pid3 = int(s.Info.Pid)
		}
	}
	if pid3 == 0 {
		t.Fatal("connector-server-3 has no pid")
	}
	var to3 []string // uids the gate gave connector-server-3
	for i, uid := range probes {
		if answers[i] == c3Addr {
			to3 = append(to3, uid)
		}
	}
	l.setPhase(removePhase)
	phaseBegin := time.Now()
	probeStop := make(chan struct{})
	probed := make(chan []gateAnswer, 1)
	go func() { probed <- probeGate(ctx, cl.GateAddr, to3, probeStop) }()
	time.Sleep(300 * time.Millisecond) // the probe sees connector-server-3 first
	begin = time.Now()
	writeConfig(string(orig), chat3)
	reload = runMasterTimed(cl, 60*time.Second, "reload")
	var unlisted, exited time.Duration
	for unlisted == 0 || exited == 0 {
		if time.Since(begin) > reloadGone+5*time.Second {
			t.Fatalf("connector-server-3 still there %v after the reload (unlisted after %v, process gone after %v)", time.Since(begin), unlisted, exited)
		}
		listed := false
		for _, s := range cl.List().Servers {
			listed = listed || s.Info.Id == "connector-server-3"
		}
		if !listed && unlisted == 0 {
			unlisted = time.Since(begin)
		}
		if !alive(pid3) && exited == 0 {
			exited = time.Since(begin)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r = <-reload
	returned := time.Now()
	lastGood = []byte(string(orig) + chat3)
	if r.err != nil {
		t.Fatalf("master reload (remove): %v\n%s", r.err, r.text())
	}
	t.Logf("reload (remove) took %v; output:\n%s", r.took.Round(time.Millisecond), r.text())
	time.Sleep(time.Second)
	close(probeStop)
	gas := <-probed
	drainAt, ok := r.lineAt("connector-server-3: draining")
	if !ok {
		t.Fatalf("the reload did not say it drains connector-server-3:\n%s", r.text())
	}
	var last3 gateAnswer // the last answer that offered connector-server-3
	n3, after := 0, 0
	for _, a := range gas {
		if a.err != nil {
			t.Errorf("queryEntry during the removal: %v", a.err)
			continue
		}
		if a.addr == c3Addr {
			n3++
			last3 = a
			if a.sent.After(drainAt.Add(reloadGateStop)) {
				t.Errorf("queryEntry sent %v after the drain began answered connector-server-3", a.sent.Sub(drainAt).Round(time.Millisecond))
			}
		}
		if a.sent.After(returned) {
			after++
			if a.addr == c3Addr {
				t.Errorf("queryEntry sent after the reload returned answered connector-server-3")
			}
		}
	}
	t.Logf("gate during the removal: %d answers (%d sent after the reload returned), %d of them connector-server-3; drain began %v after the reload, last connector-server-3 answer %v after the reload (%v after the drain began)",
		len(gas), after, n3, drainAt.Sub(begin).Round(time.Millisecond), last3.answered.Sub(begin).Round(time.Millisecond), last3.answered.Sub(drainAt).Round(time.Millisecond))
	if n3 == 0 {
		t.Errorf("the probe never saw connector-server-3 offered before the removal: it measured nothing")
	}
	if after == 0 {
		t.Errorf("no queryEntry after the reload returned")
	}
	t.Logf("connector-server-3 (pid %d): unlisted %v after the reload, process gone %v after it", pid3, unlisted.Round(time.Millisecond), exited.Round(time.Millisecond))
	for what, d := range map[string]time.Duration{"unlisted": unlisted, "process gone": exited} {
		if d < reloadDrain || d > reloadGone {
			t.Errorf("connector-server-3 %s %v after the reload; want after drainTimeout (%v, it had sessions) and within %v", what, d, reloadDrain, reloadGone)
		}
	}
	time.Sleep(reloadPhase)
	l.waitAllEntered(ctx, 20*time.Second)
	// Only connector-server-3's sessions ended, kicked with a reason after
	// drainTimeout; their users came back on the other connectors.
	ss := l.sessions()
	kicked, whys := 0, map[string]int{}
	var kickedAfter []time.Duration
	for _, s := range ss {
		at, why := s.endInfo()
		if s.connector == c3Addr {
			if at.IsZero() {
				t.Errorf("%s still on connector-server-3 after its removal", s.user)
				continue
			}
			kicked++
			whys[why]++
			kickedAfter = append(kickedAfter, at.Sub(begin))
			if !strings.HasPrefix(why, "kicked: ") {
				t.Errorf("%s's session on connector-server-3 ended without a kick: %s", s.user, why)
			}
			if at.Sub(begin) < reloadDrain {
				t.Errorf("%s kicked off connector-server-3 %v after the reload, before drainTimeout (%v)", s.user, at.Sub(begin), reloadDrain)
			}
			var next *fsession
			for _, o := range ss {
				if o.user == s.user && o.entered.After(at) && (next == nil || o.entered.Before(next.entered)) {
					next = o
				}
			}
			switch {
			case next == nil:
				t.Errorf("%s did not re-enter after its kick", s.user)
			case next.connector == c3Addr:
				t.Errorf("%s re-entered on the removed connector-server-3", s.user)
			}
			continue
		}
		if !at.IsZero() && at.After(phaseBegin) {
			t.Errorf("%s's session on %s ended during the removal of connector-server-3: %s", s.user, s.connector, why)
		}
	}
	slices.Sort(kickedAfter)
	if kicked == 0 {
		t.Errorf("nobody was on connector-server-3")
	} else {
		t.Logf("%d sessions kicked off connector-server-3 between %v and %v after the reload: %v", kicked,
			kickedAfter[0].Round(time.Millisecond), kickedAfter[len(kickedAfter)-1].Round(time.Millisecond), whys)
	}

	// A broken edit: a duplicate id. Nothing changes.
	l.setPhase(brokenPhase)
	begin = time.Now()
	env, err := config.Load(cl.Config, cl.env())
	if err != nil {
		t.Fatal(err)
	}
	before := listSnapshot(t, env, cl.Config)
	good := string(orig) + chat3
	dup := fmt.Sprintf("\n[[development.chat]]\nid = \"chat-server-1\"\nhost = \"127.0.0.1\"\nport = %d\n", freePort(t))
	dupLine := strings.Count(good, "\n") + 3 // the line of its id
	writeConfig(good, dup)
	out, err := cl.Master(60*time.Second, "reload")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Errorf("reload of a file with a duplicate id: %v, want a non-zero exit\n%s", err, out)
	}
	if want := fmt.Sprintf("servers.toml:%d:", dupLine); !strings.Contains(out, want) || !strings.Contains(out, "duplicate id") {
		t.Errorf("reload of a file with a duplicate id said %q, want %q and the error", out, want)
	}
	t.Logf("broken reload exited with %v: %s", err, strings.TrimSpace(out))
	// The CLI checks the file before it calls the master; the master
	// refuses it too, when asked directly.
	if err := reloadDirect(env, cl.Config); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("servers.toml:%d:", dupLine)) {
		t.Errorf("the master asked to reload a file with a duplicate id: %v, want the error with its file:line", err)
	} else {
		t.Logf("the master, asked directly: %v", err)
	}
	time.Sleep(reloadPhase / 2)
	if after := listSnapshot(t, env, cl.Config); after != before {
		t.Errorf("the broken reload changed the cluster:\nbefore %s\nafter  %s", before, after)
	}
	writeConfig(good)
	out, err = cl.Master(60*time.Second, "reload")
	if err != nil || !strings.Contains(out, "nothing to change") {
		t.Errorf("reload of the restored file: %v\n%s", err, out)
	}
	time.Sleep(reloadPhase / 2)
	if after := listSnapshot(t, env, cl.Config); after != before {
		t.Errorf("the reload of the restored file changed the cluster:\nbefore %s\nafter  %s", before, after)
	}
	t.Logf("cluster before and after: %s", before)
	l.waitAllEntered(ctx, 20*time.Second)
	if ended := l.endedBetween(begin, time.Now()); len(ended) > 0 {
		t.Errorf("%s: %d sessions ended: %v", brokenPhase, len(ended), ended[:min(5, len(ended))])
	}

	stopLoad()
	time.Sleep(faultGrace) // pushes in flight arrive
	l.report(restarts)
	l.closeAll()
	t.Logf("what the servers did about it:\n%s", frameworkLines(cl))
}

// sessions returns every session the ledger has seen.
func (l *ledger) sessions() []*fsession {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*fsession
	for _, ss := range l.byRoom {
		out = append(out, ss...)
	}
	return out
}

// endedBetween describes the sessions that ended in [from, to].
func (l *ledger) endedBetween(from, to time.Time) []string {
	var out []string
	for _, s := range l.sessions() {
		if at, why := s.endInfo(); !at.IsZero() && !at.Before(from) && !at.After(to) {
			out = append(out, fmt.Sprintf("%s on %s at %s: %s", s.user, s.connector, at.Format("15:04:05.000"), why))
		}
	}
	sort.Strings(out)
	return out
}

func (s *fsession) endInfo() (time.Time, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended, s.why
}

// listSnapshot describes the servers the master of env lists: id, pid and
// state. It does not read servers.toml, which may be broken.
func listSnapshot(t *testing.T, env *config.Env, cfg string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := master.DialEnv(ctx, env, master.DefaultPaths(cfg))
	if err != nil {
		t.Fatalf("dial master: %v", err)
	}
	defer c.Close()
	rep, err := c.List(ctx)
	if err != nil {
		t.Fatalf("master list: %v", err)
	}
	var out []string
	for _, s := range rep.Servers {
		out = append(out, fmt.Sprintf("%s pid %d %s", s.Info.Id, s.Info.Pid, s.State))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// reloadDirect asks the master of env to reload, through its admin API.
func reloadDirect(env *config.Env, cfg string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := master.DialEnv(ctx, env, master.DefaultPaths(cfg))
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Reload(ctx, func(*masterpb.Progress) {})
}

// askGate asks the gate for each uid's connector, over one connection, and
// returns the host:port it answered for each.
func askGate(ctx context.Context, gate string, uids []string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	g, err := client.Dial(ctx, gate, client.Options{Transport: client.TransportTCP})
	if err != nil {
		return nil, err
	}
	defer g.Close()
	out := make([]string, len(uids))
	for i, uid := range uids {
		var e entry
		if err := g.RequestJSON(ctx, "gate.gateHandler.queryEntry", map[string]string{"uid": uid}, &e); err != nil {
			return nil, fmt.Errorf("%s: %w", uid, err)
		}
		if e.Code != 200 {
			return nil, fmt.Errorf("%s: code %d", uid, e.Code)
		}
		out[i] = net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
	}
	return out, nil
}

// gateAnswer is one queryEntry of probeGate.
type gateAnswer struct {
	sent, answered time.Time
	addr           string
	err            error
}

// probeGate asks the gate about uids, round and round, until stop.
func probeGate(ctx context.Context, gate string, uids []string, stop <-chan struct{}) []gateAnswer {
	var out []gateAnswer
	var g *client.Client
	defer func() {
		if g != nil {
			g.Close()
		}
	}()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return out
		default:
		}
		a := gateAnswer{sent: time.Now()}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if g == nil {
			g, a.err = client.Dial(rctx, gate, client.Options{Transport: client.TransportTCP})
		}
		if a.err == nil {
			var e entry
			a.err = g.RequestJSON(rctx, "gate.gateHandler.queryEntry", map[string]string{"uid": uids[i%len(uids)]}, &e)
			if a.err == nil && e.Code != 200 {
				a.err = fmt.Errorf("code %d", e.Code)
			}
			a.addr = net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
			if a.err != nil {
				g.Close()
				g = nil
			}
		}
		cancel()
		a.answered = time.Now()
		out = append(out, a)
		if a.err != nil {
			time.Sleep(100 * time.Millisecond)
		} else {
			time.Sleep(probeGap) // under the gate's request rate limit
		}
	}
}

// masterRun is a master command's outcome, each output line with the time
// it was written.
type masterRun struct {
	lines []timedLine
	took  time.Duration
	err   error
}

type timedLine struct {
	at   time.Time
	text string
}

func (r masterRun) text() string {
	var b strings.Builder
	for _, l := range r.lines {
		fmt.Fprintf(&b, "  %s %s\n", l.at.Format("15:04:05.000"), l.text)
	}
	return b.String()
}

// lineAt returns when the first line containing s was written.
func (r masterRun) lineAt(s string) (time.Time, bool) {
	for _, l := range r.lines {
		if strings.Contains(l.text, s) {
			return l.at, true
		}
	}
	return time.Time{}, false
}

// lineClock timestamps each line written to it.
type lineClock struct {
	mu    sync.Mutex
	buf   []byte
	lines []timedLine
}

func (w *lineClock) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.lines = append(w.lines, timedLine{now, string(w.buf[:i])})
		w.buf = w.buf[i+1:]
	}
}

// runMasterTimed runs the master CLI against the cluster's config in the
// background, as Cluster.Master does, and sends its outcome.
func runMasterTimed(c *Cluster, timeout time.Duration, args ...string) <-chan masterRun {
	ch := make(chan masterRun, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, binPath("master"), append([]string{args[0], "--env=" + c.env(), "--config", c.Config}, args[1:]...)...)
		cmd.Dir = c.Dir
		cmd.WaitDelay = 5 * time.Second
		w := &lineClock{}
		cmd.Stdout, cmd.Stderr = w, w
		begin := time.Now()
		err := cmd.Run()
		w.mu.Lock()
		lines := w.lines
		if len(w.buf) > 0 {
			lines = append(lines, timedLine{time.Now(), string(w.buf)})
		}
		w.mu.Unlock()
		ch <- masterRun{lines: lines, took: time.Since(begin), err: err}
	}()
	return ch
}
