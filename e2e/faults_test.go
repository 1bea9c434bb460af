package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shaddock/shaddock/rpc"
	"github.com/shaddock/shaddock/tools/client"
)

// Figures of TestNothingLostUnderFaults (the measurement: 100 users
// in 10 rooms, 2 sends a second each to their room).
const (
	faultUsers    = 100
	faultRooms    = 10
	faultSendGap  = 500 * time.Millisecond
	faultRequest  = 15 * time.Second // a client's patience: over the servers' 10 s request deadline
	faultGrace    = 3 * time.Second  // a due push not delivered: its session must end within this
	faultRestart  = 10 * time.Second // a killed server must be running again within this
	faultRecovery = 5 * time.Second  // a re-entered client must get pushes again within this
	faultPhase    = 10 * time.Second // load after each fault
)

// TestNothingLostUnderFaults is the acceptance: under load (every
// server with autoRestart), kill -9 a chat server, kill -9 a connector,
// kill -9 the master and start a new one, SIGSTOP a chat server for 8 s
// then SIGCONT it. A client that checks every push keeps the ledger: a push
// is due to every member that had entered the room before the send was
// made and was still there when it was answered; it must be delivered, or
// that member's session must end within 3 s. In every phase no push is
// silently lost, no request goes unanswered, every killed server runs again
// within 10 s, and every client that was disconnected reconnects, re-enters
// and gets pushes again within 5 s.
func TestNothingLostUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("long: several faults under load")
	}
	cl := StartChatClusterWith(t, ClusterOptions{AutoRestart: true, DrainTimeout: "3s"})
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	l := &ledger{t: t, cl: cl, byRoom: map[string][]*fsession{}, phase: "baseline"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range faultUsers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.user(ctx, stop, fmt.Sprintf("f%03d", i), fmt.Sprintf("room-%d", i%faultRooms), i%2 == 0)
		}()
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

	pidOf := func(id string) int {
		for _, s := range cl.List().Servers {
			if s.Info.Id == id {
				return int(s.Info.Pid)
			}
		}
		t.Fatalf("%s not listed", id)
		return 0
	}
	// waitRunning waits for id to run again as a new process, and returns
	// how long that took from since.
	waitRunning := func(id string, oldPid int, since time.Time) time.Duration {
		deadline := since.Add(faultRestart + 5*time.Second)
		for time.Now().Before(deadline) {
			for _, s := range cl.List().Servers {
				if s.Info.Id == id && s.State == rpc.StateRunning && int(s.Info.Pid) != oldPid && s.Info.Pid != 0 {
					return time.Since(since)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s not running again %v after it was killed", id, time.Since(since))
		return 0
	}
	restarts := map[string]time.Duration{}
	kill9 := func(id string) {
		pid := pidOf(id)
		l.setPhase("kill -9 " + id)
		at := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		restarts[l.phaseName()] = waitRunning(id, pid, at)
		time.Sleep(faultPhase)
		l.waitAllEntered(ctx, 20*time.Second)
	}

	// A chat server joins: the rooms stay where they are (nobody is
	// kicked); rooms placed from now on may land on it.
	l.setPhase("master add chat-server-3")
	at := time.Now()
	if out, err := cl.Master(60*time.Second, "add", "id=chat-server-3", "type=chat", "host=127.0.0.1",
		fmt.Sprintf("port=%d", freePort(t)), "autoRestart=true"); err != nil {
		t.Fatalf("master add: %v\n%s", err, out)
	}
	restarts[l.phaseName()] = waitRunning("chat-server-3", 0, at)
	time.Sleep(faultPhase)
	l.waitAllEntered(ctx, 20*time.Second)

	kill9("chat-server-1") // its rooms are placed again, over chat-server-2 and -3
	kill9("connector-server-1")

	// The master: killed, then a new one started.
	l.setPhase("kill -9 master + master start")
	b, err := os.ReadFile(filepath.Join(cl.Dir, "run", "development.master.pid"))
	if err != nil {
		t.Fatal(err)
	}
	masterPid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	before := cl.Pids()
	at = time.Now()
	if err := syscall.Kill(masterPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for alive(masterPid) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second) // the cluster serves on without it
	if out, err := cl.Master(90*time.Second, "start", "--daemon"); err != nil {
		t.Fatalf("master start after kill -9: %v\n%s", err, out)
	}
	restarts[l.phaseName()] = time.Since(at)
	if after := cl.Pids(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("servers not re-adopted by the new master: %v, before %v", after, before)
	}
	time.Sleep(faultPhase)
	l.waitAllEntered(ctx, 20*time.Second)

	// A chat server frozen for 8 s, then thawed.
	l.setPhase("SIGSTOP chat-server-2 8s")
	pid := pidOf("chat-server-2")
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	defer thaw()
	time.Sleep(8 * time.Second)
	thaw()
	at = time.Now()
	waitState := func(id string) time.Duration {
		for time.Since(at) < faultRestart+5*time.Second {
			for _, s := range cl.List().Servers {
				if s.Info.Id == id && s.State == rpc.StateRunning {
					return time.Since(at)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s not running %v after SIGCONT", id, time.Since(at))
		return 0
	}
	restarts[l.phaseName()] = waitState("chat-server-2")
	time.Sleep(faultPhase)
	l.waitAllEntered(ctx, 20*time.Second)

	// A chat server leaves: drained (no new rooms), then stopped after the
	// drain timeout (3 s here); the users of its rooms are kicked with a
	// reason and re-enter elsewhere.
	l.setPhase("master remove chat-server-3")
	if out, err := cl.Master(60*time.Second, "remove", "--id", "chat-server-3"); err != nil {
		t.Fatalf("master remove: %v\n%s", err, out)
	}
	time.Sleep(faultPhase)
	l.waitAllEntered(ctx, 20*time.Second)

	stopLoad()
	time.Sleep(faultGrace) // pushes in flight arrive
	l.report(restarts)
	l.closeAll()
	t.Logf("what the servers did about it:\n%s", frameworkLines(cl))
}

// frameworkLines returns the servers' log lines about sessions and state
// the framework ended, kicked or dropped.
func frameworkLines(cl *Cluster) string {
	var out []string
	files, _ := filepath.Glob(filepath.Join(cl.Dir, "logs", "*.log"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(data), "\n") {
			for _, m := range []string{"kicking the sessions placed", "dropped channel members", "push not delivered",
				"push stream broke", "could not be kicked", "kicked sessions after retrying", "key held by several servers"} {
				if strings.Contains(line, m) {
					out = append(out, filepath.Base(f)+": "+line)
					break
				}
			}
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// closeAll closes every client still connected.
func (l *ledger) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ss := range l.byRoom {
		for _, s := range ss {
			s.c.Close()
		}
	}
}

// ledger is the checking client's book: every session, every send and
// every push received.
type ledger struct {
	t  *testing.T
	cl *Cluster

	mu     sync.Mutex
	users  int             // users the test runs (waitAllEntered); faultUsers when 0
	calm   map[string]bool // phases meant to disconnect nobody, besides "master add…"
	phase  string
	byRoom map[string][]*fsession // every session that entered, per room
	sends  []*fsend
	// requests that got no answer while their session stayed connected
	unanswered []string
	answers    map[string]map[string]int // phase → outcome → count
	reasons    map[string]map[string]int // phase → why sessions ended → count
}

// fsession is one connection of a user, from its enter on.
type fsession struct {
	user, room string
	phase      string // when it entered
	c          *client.Client
	connector  string    // host:port of the connector it entered on
	entered    time.Time // enter answered
	lostAt     time.Time // for a re-entry: when the previous session ended
	users      []string  // the room as the enter answer gave it

	mu        sync.Mutex
	ended     time.Time // zero while connected
	why       string    // kick reason or error
	got       map[string]bool
	firstPush time.Time // first onChat after entering
}

func (s *fsession) onPush(route string, body []byte) {
	if route != "onChat" {
		return
	}
	var p struct {
		Msg string `json:"msg"`
	}
	if json.Unmarshal(body, &p) != nil {
		return
	}
	s.mu.Lock()
	if s.firstPush.IsZero() {
		s.firstPush = time.Now()
	}
	s.got[p.Msg] = true
	s.mu.Unlock()
}

func (s *fsession) end(why string) {
	s.mu.Lock()
	if s.ended.IsZero() {
		s.ended, s.why = time.Now(), why
	}
	s.mu.Unlock()
}

func (s *fsession) endedAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// fsend is one answered send to a room and whom its push was due to.
type fsend struct {
	msg, phase     string
	from           *fsession
	sent, answered time.Time
	due            []*fsession
}

func (l *ledger) setPhase(p string) {
	l.mu.Lock()
	l.phase = p
	l.mu.Unlock()
}

func (l *ledger) phaseName() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.phase
}

func (l *ledger) count(outcome string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.answers == nil {
		l.answers = map[string]map[string]int{}
	}
	if l.answers[l.phase] == nil {
		l.answers[l.phase] = map[string]int{}
	}
	l.answers[l.phase][outcome]++
}

// user is one user's life: log in, enter, send every 500 ms until its
// session ends, then again, until stop.
func (l *ledger) user(ctx context.Context, stop <-chan struct{}, name, room string, ws bool) {
	var lostAt time.Time
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		s, err := l.enter(ctx, name, room, ws, lostAt)
		if err != nil {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		// Spread the sends over the interval.
		tick := time.NewTimer(time.Duration(rand.Int64N(int64(faultSendGap))))
		for n := 0; ; n++ {
			select {
			case <-stop:
				// Stay connected: pushes still due arrive before the test
				// closes the clients (closeAll).
				tick.Stop()
				return
			case <-s.c.Done():
			case <-tick.C:
				l.send(ctx, s, fmt.Sprintf("%s-%d", name, n))
				tick.Reset(faultSendGap)
				continue
			}
			break
		}
		tick.Stop()
		s.end(sessionEnd(s.c.Err()))
		lostAt = s.endedAt()
		l.mu.Lock()
		if l.reasons == nil {
			l.reasons = map[string]map[string]int{}
		}
		if l.reasons[l.phase] == nil {
			l.reasons[l.phase] = map[string]int{}
		}
		l.reasons[l.phase][s.why]++
		l.mu.Unlock()
	}
}

func sessionEnd(err error) string {
	var k *client.KickedError
	if errors.As(err, &k) {
		return "kicked: " + k.Reason
	}
	if err == nil {
		return "closed"
	}
	return "connection lost"
}

// enter logs a user in through the gate and enters its room.
func (l *ledger) enter(ctx context.Context, name, room string, ws bool, lostAt time.Time) (*fsession, error) {
	rctx, cancel := context.WithTimeout(ctx, faultRequest)
	defer cancel()
	e, err := connectorFor(rctx, l.cl.GateAddr, name, ws)
	if err != nil {
		return nil, err
	}
	s := &fsession{user: name, room: room, got: map[string]bool{}, lostAt: lostAt, connector: fmt.Sprintf("%s:%d", e.Host, e.Port)}
	c, err := client.Dial(rctx, s.connector, client.Options{Transport: transport(ws), OnPush: s.onPush})
	if err != nil {
		return nil, err
	}
	s.c = c
	var r enterReply
	if err := c.RequestJSON(rctx, "connector.entryHandler.enter", map[string]string{"username": name, "rid": room}, &r); err != nil || len(r.Users) == 0 {
		c.Close()
		if err == nil {
			err = fmt.Errorf("enter answered %+v", r)
		}
		return nil, err
	}
	l.mu.Lock()
	s.entered, s.phase, s.users = time.Now(), l.phase, r.Users
	l.byRoom[room] = append(l.byRoom[room], s)
	l.mu.Unlock()
	return s, nil
}

// send sends one message to the room and books the pushes it makes due.
func (l *ledger) send(ctx context.Context, s *fsession, msg string) {
	sent := time.Now()
	rctx, cancel := context.WithTimeout(ctx, faultRequest)
	defer cancel()
	out, err := s.c.Request(rctx, "chat.chatHandler.send",
		[]byte(fmt.Sprintf(`{"rid":%q,"content":%q,"from":%q,"target":"*"}`, s.room, msg, s.user)))
	answered := time.Now()
	switch {
	case err == nil:
		var r struct {
			Route string `json:"route"`
			Code  int    `json:"code"`
		}
		json.Unmarshal(out, &r)
		if r.Route != "chat.chatHandler.send" {
			l.count(fmt.Sprintf("answered %d", r.Code))
			return
		}
		l.count("answered ok")
	case errors.Is(err, context.DeadlineExceeded) && s.endedAt().IsZero():
		select {
		case <-s.c.Done():
			l.count("session ended before the answer")
			return
		default:
		}
		l.mu.Lock()
		l.unanswered = append(l.unanswered, fmt.Sprintf("%s: %s sent at %s, no answer in %v", l.phase, msg, sent.Format("15:04:05.000"), faultRequest))
		l.mu.Unlock()
		l.count("unanswered")
		return
	default:
		l.count("session ended before the answer")
		return
	}
	// Due: every member of the room that had entered before the send was
	// made and was still connected when it was answered.
	l.mu.Lock()
	defer l.mu.Unlock()
	fs := &fsend{msg: msg, phase: l.phase, from: s, sent: sent, answered: answered, due: dueAmong(l.byRoom[s.room], sent, answered)}
	l.sends = append(l.sends, fs)
}

// dueAmong returns the members a send's push is due to: those that had
// entered before the send was made and were still connected when it was
// answered.
func dueAmong(members []*fsession, sent, answered time.Time) []*fsession {
	var due []*fsession
	for _, m := range members {
		if m.entered.Before(sent) {
			if e := m.endedAt(); e.IsZero() || e.After(answered) {
				due = append(due, m)
			}
		}
	}
	return due
}

// Outcomes of a due push.
const (
	pushDelivered = iota
	pushClosed    // not delivered, but its session ended within the grace
	pushLost
)

// outcome says what became of fs's push to m, and when m's session ended
// (zero if it did not).
func (fs *fsend) outcome(m *fsession, grace time.Duration) (int, time.Time) {
	m.mu.Lock()
	got, ended := m.got[fs.msg], m.ended
	m.mu.Unlock()
	switch {
	case got:
		return pushDelivered, ended
	case !ended.IsZero() && ended.Sub(fs.answered) <= grace:
		return pushClosed, ended
	}
	return pushLost, ended
}

// waitAllEntered waits until every user has a connected, entered session.
func (l *ledger) waitAllEntered(ctx context.Context, timeout time.Duration) {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		live := map[string]bool{}
		l.mu.Lock()
		want := l.users
		if want == 0 {
			want = faultUsers
		}
		for _, ss := range l.byRoom {
			for _, s := range ss {
				if s.endedAt().IsZero() {
					live[s.user] = true
				}
			}
		}
		l.mu.Unlock()
		if len(live) == want {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			l.t.Fatalf("%s: only %d of %d users connected and entered after %v", l.phaseName(), len(live), want, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// report checks the book and logs the figures of each phase.
func (l *ledger) report(restarts map[string]time.Duration) {
	t := l.t
	l.mu.Lock()
	defer l.mu.Unlock()
	type stats struct {
		sends, due, delivered, closed, lost int
		lostExamples                        []string
		recoveries, firstPushes             []time.Duration
	}
	byPhase := map[string]*stats{}
	var order []string
	get := func(p string) *stats {
		if byPhase[p] == nil {
			byPhase[p] = &stats{}
			order = append(order, p)
		}
		return byPhase[p]
	}
	for _, fs := range l.sends {
		st := get(fs.phase)
		st.sends++
		for _, m := range fs.due {
			st.due++
			o, ended := fs.outcome(m, faultGrace)
			switch o {
			case pushDelivered:
				st.delivered++
			case pushClosed:
				st.closed++
			default:
				st.lost++
				if len(st.lostExamples) < 5 {
					how := "still connected"
					if !ended.IsZero() {
						how = fmt.Sprintf("session ended %v after the answer (%s)", ended.Sub(fs.answered).Round(time.Millisecond), m.why)
					}
					st.lostExamples = append(st.lostExamples, fmt.Sprintf("%s (sent %s, answered %s; sender entered %s seeing %v) to %s (%s, entered %s seeing %v): %s",
						fs.msg, fs.sent.Format("15:04:05.000"), fs.answered.Format("15:04:05.000"), fs.from.entered.Format("15:04:05.000"), fs.from.users,
						m.user, m.room, m.entered.Format("15:04:05.000"), m.users, how))
				}
			}
		}
	}
	var slow []string
	for _, ss := range l.byRoom {
		for _, s := range ss {
			if s.lostAt.IsZero() {
				continue
			}
			st := get(s.phase)
			st.recoveries = append(st.recoveries, s.entered.Sub(s.lostAt))
			s.mu.Lock()
			first := s.firstPush
			s.mu.Unlock()
			if first.IsZero() || first.Sub(s.entered) > faultRecovery {
				slow = append(slow, fmt.Sprintf("%s re-entered %s in %q and got its first push %v later", s.user, s.room, s.phase, first.Sub(s.entered)))
				continue
			}
			st.firstPushes = append(st.firstPushes, first.Sub(s.entered))
		}
	}
	maxOf := func(ds []time.Duration) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		return slices.Max(ds).Round(time.Millisecond)
	}
	var b strings.Builder
	w := 34 // the phase column
	for _, p := range order {
		w = max(w, len(p))
	}
	fmt.Fprintf(&b, "%-*s %6s %7s %9s %7s %5s %9s %12s %14s %10s  %s\n", w, "phase", "sends", "due", "delivered", "closed", "lost",
		"re-entries", "max re-enter", "max 1st push", "restart", "sessions ended / requests")
	failed := false
	for _, p := range order {
		st := byPhase[p]
		restart := "-"
		if d, ok := restarts[p]; ok {
			restart = d.Round(time.Millisecond).String()
		}
		fmt.Fprintf(&b, "%-*s %6d %7d %9d %7d %5d %9d %12v %14v %10s  %v / %v\n", w, p, st.sends, st.due, st.delivered, st.closed, st.lost,
			len(st.recoveries), maxOf(st.recoveries), maxOf(st.firstPushes), restart, l.reasons[p], l.answers[p])
		if st.lost > 0 {
			failed = true
			fmt.Fprintf(&b, "    lost, for example:\n      %s\n", strings.Join(st.lostExamples, "\n      "))
		}
	}
	t.Logf("checked every push:\n%s", b.String())
	if failed {
		t.Errorf("pushes silently lost (see above)")
	}
	if len(l.unanswered) > 0 {
		t.Errorf("%d requests unanswered on connected sessions; first: %v", len(l.unanswered), l.unanswered[:min(5, len(l.unanswered))])
	}
	if len(slow) > 0 {
		t.Errorf("%d re-entered clients got no push within %v: %v", len(slow), faultRecovery, slow[:min(5, len(slow))])
	}
	for p, d := range restarts {
		if d > faultRestart && !strings.Contains(p, "master") {
			t.Errorf("%s: running again after %v, want within %v", p, d, faultRestart)
		}
	}
	for _, p := range order[1:] {
		switch {
		case strings.HasPrefix(p, "master add") || l.calm[p]:
			if n := len(byPhase[p].recoveries); n != 0 {
				t.Errorf("%s: %d clients were disconnected; this phase must disconnect nobody (adding a server moves no room; a refused reload changes nothing)", p, n)
			}
		case strings.HasPrefix(p, "kill -9 master"):
		case len(byPhase[p].recoveries) == 0:
			t.Errorf("%s: no client was disconnected; the fault did not bite", p)
		}
	}
}
