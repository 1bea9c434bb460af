package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shaddock/shaddock/tools/client"
)

// The chatofpomelo routes (DESIGN.md §6, shared/peers/pomelo-chat/README.md).
const (
	routeQueryEntry = "gate.gateHandler.queryEntry"
	routeEnter      = "connector.entryHandler.enter"
	routeSend       = "chat.chatHandler.send"
)

// chatConfig is one run of the chat workload.
type chatConfig struct {
	Gate             string
	Transport        string
	Users, Rooms     int
	Warmup, Duration time.Duration
	// Rate is the total requests per second of an open-loop run; 0 runs a
	// closed loop (each user sends, waits for the reply, sends again).
	Rate float64
	// Target is "all" (content to the whole room) or "peer" (to the next
	// user of the same room).
	Target           string
	LoginConcurrency int
	LoginTimeout     time.Duration // bound on the whole login phase
	Timeout          time.Duration // how long a send may still be answered after the window
	Drain            time.Duration // how long to wait for missing pushes after the last reply
	Pids             []*watchedPid // processes whose CPU is accounted
	Progress         io.Writer     // progress lines; nil for none
}

// maxInflightPerUser bounds one user's outstanding sends in an open loop;
// past it the user waits, and the latency (from the intended send time)
// shows it.
const maxInflightPerUser = 64

// chatMember is one user of the plan: u<i> in room r<i % rooms>.
type chatMember struct {
	Name, Rid string
	Room      int
	// Target is the send's target: "*" for the whole room, else the next
	// user of the room (by index, wrapping), so each send pushes exactly
	// once; TargetIdx is that user's index (-1 for "*").
	Target    string
	TargetIdx int
}

// planChat places the users in rooms and picks their targets.
func planChat(users, rooms int, target string) []chatMember {
	plan := make([]chatMember, users)
	for i := range plan {
		m := chatMember{Name: "u" + strconv.Itoa(i), Room: i % rooms, Target: "*", TargetIdx: -1}
		m.Rid = "r" + strconv.Itoa(m.Room)
		if target == "peer" {
			j := i + rooms
			if j >= users {
				j = m.Room // the first user of the room
			}
			m.TargetIdx = j
			m.Target = "u" + strconv.Itoa(j)
		}
		plan[i] = m
	}
	return plan
}

// expectedPushes returns, for every user, how many onChat pushes one of its
// sends produces, given which users are in their rooms (in[i]): for "*"
// every member of the room, the sender included (chatofpomelo pushes to the
// whole channel); for a peer one push if the peer is in the room, else none.
// A user not in a room sends nothing; its entry is 0.
func expectedPushes(plan []chatMember, in []bool) []int64 {
	roomSize := map[int]int64{}
	for i, m := range plan {
		if in[i] {
			roomSize[m.Room]++
		}
	}
	out := make([]int64, len(plan))
	for i, m := range plan {
		switch {
		case !in[i]:
		case m.TargetIdx < 0:
			out[i] = roomSize[m.Room]
		case in[m.TargetIdx]:
			out[i] = 1
		}
	}
	return out
}

// expectedOnAdd is the onAdd pushes a full login produces: each newcomer is
// announced to the members already in its room, n(n-1)/2 per room. A
// difference is reported as a warning, not an error: Pomelo 2.2.7 sends a few
// extra ones in the first run after it starts (its channel push hands the
// member arrays to an RPC client still connecting, and the newcomer is added
// to them before they are serialised, so it gets its own onAdd), and a
// cluster that does not serialise add per room loses some.
func expectedOnAdd(plan []chatMember, in []bool) int64 {
	roomSize := map[int]int64{}
	for i, m := range plan {
		if in[i] {
			roomSize[m.Room]++
		}
	}
	var n int64
	for _, s := range roomSize {
		n += s * (s - 1) / 2
	}
	return n
}

// chatUser is one simulated player. Its sender goroutine owns rt (closed
// loop; in an open loop mu guards it); its client's reader goroutine owns
// pushLat under pmu (held only against the final merge). Counters are atomic
// because the progress line reads them.
type chatUser struct {
	chatMember
	idx  int
	win  *window
	c    *client.Client
	addr string // the connector the gate chose
	in   bool   // entered the room
	fail bool   // a send failed: the user stopped
	// loginTime is the whole login (gate and connector).
	loginTime time.Duration

	body []byte
	mu   sync.Mutex
	rt   Hist

	requests atomic.Int64 // replies received inside the window
	replies  atomic.Int64 // every successful reply (push accounting)

	_         [64]byte // keep the reader's counters off the sender's cache line
	onChat    atomic.Int64
	onChatWin atomic.Int64
	onAdd     atomic.Int64
	onLeave   atomic.Int64
	other     atomic.Int64
	pmu       sync.Mutex
	pushLat   Hist
	// known is the room as this user sees it: the enter reply's users and
	// every onAdd since (guarded by pmu).
	known   map[string]bool
	dupAdds int // onAdd pushes naming a user already known
}

// chatPush is the body of an onChat ({msg, from, target}) or onAdd/onLeave
// ({user}) push. The robot decodes every push in full, as a real client
// does (Pomelo's jsclient JSON.parses each one), so that its CPU per request
// is a client's: a server that makes clients pay more per push (a frame
// per package, say) shows in it.
type chatPush struct {
	Route  string `json:"route"`
	Msg    string `json:"msg"`
	From   string `json:"from"`
	Target string `json:"target"`
	User   string `json:"user"`
}

// parseUser decodes an onAdd push and returns its user.
func parseUser(body []byte) (string, bool) {
	var m chatPush
	if json.Unmarshal(body, &m) != nil || m.User == "" {
		return "", false
	}
	return m.User, true
}

// learn adds names to the user's view of its room.
func (u *chatUser) learn(names ...string) {
	u.pmu.Lock()
	if u.known == nil {
		u.known = map[string]bool{}
	}
	for _, n := range names {
		u.known[n] = true
	}
	u.pmu.Unlock()
}

// parseSentAt decodes an onChat push and returns the send time its
// message carries ("t=<unixnano>", see appendSend).
func parseSentAt(body []byte) (int64, bool) {
	var m chatPush
	if json.Unmarshal(body, &m) != nil {
		return 0, false
	}
	digits, ok := strings.CutPrefix(m.Msg, "t=")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	return v, err == nil
}

// onPush runs on the client's reader goroutine: count, and time the
// pushes of the window.
func (u *chatUser) onPush(route string, body []byte) {
	switch route {
	case "onChat":
		u.onChat.Add(1)
		now := time.Now()
		t, ok := parseSentAt(body) // decoded even outside the window: a client decodes them all
		if !u.win.measuring(now) {
			return
		}
		u.onChatWin.Add(1)
		if ok {
			u.pmu.Lock()
			u.pushLat.Record(time.Duration(now.UnixNano() - t))
			u.pmu.Unlock()
		}
	case "onAdd":
		u.onAdd.Add(1)
		if name, ok := parseUser(body); ok {
			u.pmu.Lock()
			if u.known[name] {
				u.dupAdds++
			}
			u.pmu.Unlock()
			u.learn(name)
		}
	case "onLeave":
		u.onLeave.Add(1)
		parseUser(body)
	default:
		u.other.Add(1)
	}
}

// appendSend encodes the send request with the send time in the content.
func (u *chatUser) appendSend(dst []byte, t time.Time) []byte {
	dst = append(dst, `{"rid":"`...)
	dst = append(dst, u.Rid...)
	dst = append(dst, `","content":"t=`...)
	dst = strconv.AppendInt(dst, t.UnixNano(), 10)
	dst = append(dst, `","from":"`...)
	dst = append(dst, u.Name...)
	dst = append(dst, `","target":"`...)
	dst = append(dst, u.Target...)
	return append(dst, `"}`...)
}

// roomViews counts the users whose view of their room (enter's users list
// plus the onAdd pushes) lacks members that entered it, and the missing
// entries. chatofpomelo's add pushes onAdd to the room and then joins the
// newcomer, and Pomelo runs both on one thread, so every member learns of
// every other exactly once: a gap means two entries raced.
//
// It also returns the names users saw that are not members of their room
// (another client in the same room: the cluster is not the robot's alone)
// and the onAdd pushes that named an already known user.
func roomViews(users []*chatUser) (incomplete, missing int, strangers []string, dupAdds int) {
	rooms := map[int][]string{}
	member := map[int]map[string]bool{}
	for _, u := range users {
		if u.in {
			rooms[u.Room] = append(rooms[u.Room], u.Name)
			if member[u.Room] == nil {
				member[u.Room] = map[string]bool{}
			}
			member[u.Room][u.Name] = true
		}
	}
	seen := map[string]bool{}
	for _, u := range users {
		if !u.in {
			continue
		}
		u.pmu.Lock()
		n := 0
		for _, name := range rooms[u.Room] {
			if !u.known[name] {
				n++
			}
		}
		for name := range u.known {
			if !member[u.Room][name] && !seen[name] {
				seen[name] = true
				strangers = append(strangers, u.Rid+"/"+name)
			}
		}
		dupAdds += u.dupAdds
		u.pmu.Unlock()
		if n > 0 {
			incomplete++
			missing += n
		}
	}
	sort.Strings(strangers)
	return incomplete, missing, strangers, dupAdds
}

// queryEntryReply is the gate's answer.
type queryEntryReply struct {
	Code int    `json:"code"`
	Host string `json:"host"`
	Port int    `json:"port"`
}

// enterReply is the connector's answer.
type enterReply struct {
	Code  int      `json:"code"`
	Error bool     `json:"error"`
	Users []string `json:"users"`
}

// loginError is a failed login step, already classified.
type loginError struct {
	kind string
	err  error
}

func (e *loginError) Error() string { return e.err.Error() }

// login asks the gate for a connector and enters the room there.
//
// Each handshake receives the full dictionary: Options.Dict (offering a
// cached one) is not used because against Pomelo 2.2.7 it leaves the client
// without a dictionary (Pomelo omits both dict and dictVersion from its answer
// when the offered version matches, and the client library then does not
// fall back on the offered one).
func (u *chatUser) login(ctx context.Context, cfg *chatConfig) *loginError {
	g, err := client.Dial(ctx, cfg.Gate, client.Options{Transport: cfg.Transport})
	if err != nil {
		return &loginError{classify("gate dial", err), err}
	}
	var qe queryEntryReply
	err = g.RequestJSON(ctx, routeQueryEntry, map[string]string{"uid": u.Name}, &qe)
	_ = g.Close()
	if err != nil {
		return &loginError{classify("queryEntry", err), err}
	}
	if qe.Code != 200 || qe.Port == 0 {
		return &loginError{fmt.Sprintf("queryEntry: code %d", qe.Code), fmt.Errorf("queryEntry %s: %+v", u.Name, qe)}
	}
	u.addr = net.JoinHostPort(qe.Host, strconv.Itoa(qe.Port))

	c, err := client.Dial(ctx, u.addr, client.Options{Transport: cfg.Transport, OnPush: u.onPush})
	if err != nil {
		return &loginError{classify("connector dial", err), err}
	}
	en, lerr := enterRoom(ctx, c, u.Name, u.Rid, u.addr)
	if lerr != nil {
		_ = c.Close()
		return lerr
	}
	if !slices.Contains(en.Users, u.Name) {
		_ = c.Close()
		return &loginError{"enter: users list lacks the newcomer", fmt.Errorf("enter %s in %s: users %v", u.Name, u.Rid, en.Users)}
	}
	u.learn(en.Users...)
	u.c = c
	return nil
}

// enterRoom sends chatofpomelo's enter for name in rid on the connector
// at addr and checks the reply's code.
func enterRoom(ctx context.Context, c *client.Client, name, rid, addr string) (enterReply, *loginError) {
	var en enterReply
	if err := c.RequestJSON(ctx, routeEnter, map[string]string{"username": name, "rid": rid}, &en); err != nil {
		return en, &loginError{classify("enter", err), err}
	}
	if en.Code != 0 && en.Code != 200 || en.Error {
		return en, &loginError{fmt.Sprintf("enter: code %d", en.Code), fmt.Errorf("enter %s in %s on %s: %+v", name, rid, addr, en)}
	}
	return en, nil
}

// replyCode finds a "code" in a reply without decoding it; 0 when there is
// none (chatofpomelo's send reply is {"route":...}).
func replyCode(b []byte) int {
	i := bytes.Index(b, []byte(`"code":`))
	if i < 0 {
		return 0
	}
	j := i + len(`"code":`)
	for j < len(b) && b[j] == ' ' {
		j++
	}
	n := 0
	for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
		n = n*10 + int(b[j]-'0')
	}
	return n
}

// sendFailed handles a send's outcome; it reports whether the user must
// stop (its connection is unusable).
func sendFailed(ctx context.Context, errs *errorLog, resp []byte, err error) (failed, stop bool) {
	if err != nil {
		if ctx.Err() == nil || ctx.Err() == context.DeadlineExceeded {
			errs.add(classify("send", err), err)
		}
		return true, true
	}
	if code := replyCode(resp); code != 0 && code != 200 {
		errs.add(fmt.Sprintf("send: code %d", code), fmt.Errorf("reply %s", resp))
		return true, false
	}
	return false, false
}

// runClosed sends, waits for the reply and sends again until the window ends.
func (u *chatUser) runClosed(ctx context.Context, errs *errorLog) {
	end := time.Unix(0, u.win.end.Load())
	for ctx.Err() == nil {
		t0 := time.Now()
		if !t0.Before(end) {
			return
		}
		u.body = u.appendSend(u.body[:0], t0)
		resp, err := u.c.Request(ctx, routeSend, u.body)
		t1 := time.Now()
		failed, stop := sendFailed(ctx, errs, resp, err)
		if stop {
			u.fail = true
			return
		}
		if failed {
			continue
		}
		u.replies.Add(1)
		if u.win.measuring(t1) {
			u.rt.Record(t1.Sub(t0))
			u.requests.Add(1)
		}
	}
}

// runOpen sends at fixed intended times (phase spreads the users over one
// interval) without waiting for replies; latency counts from the intended
// time, so a stalled server cannot hide its queueing (coordinated omission).
func (u *chatUser) runOpen(ctx context.Context, errs *errorLog, loadStart time.Time, interval, phase time.Duration) {
	end := time.Unix(0, u.win.end.Load())
	sem := make(chan struct{}, maxInflightPerUser)
	var wg sync.WaitGroup
	var stopped atomic.Bool
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
schedule:
	for k := 0; ctx.Err() == nil && !stopped.Load(); k++ {
		at := loadStart.Add(phase + time.Duration(k)*interval)
		if !at.Before(end) {
			break
		}
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break schedule
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break schedule
		}
		wg.Go(func() {
			defer func() { <-sem }()
			body := u.appendSend(make([]byte, 0, 96), at)
			resp, err := u.c.Request(ctx, routeSend, body)
			t1 := time.Now()
			failed, stop := sendFailed(ctx, errs, resp, err)
			if stop {
				stopped.Store(true)
				return
			}
			if failed {
				return
			}
			u.replies.Add(1)
			if u.win.measuring(t1) {
				u.mu.Lock()
				u.rt.Record(t1.Sub(at))
				u.mu.Unlock()
				u.requests.Add(1)
			}
		})
	}
	wg.Wait()
	u.fail = stopped.Load()
}

// ChatResult is the outcome of a chat run (the -json output).
type ChatResult struct {
	Workload  string  `json:"workload"`
	Gate      string  `json:"gate"`
	Transport string  `json:"transport"`
	Users     int     `json:"users"`
	Rooms     int     `json:"rooms"`
	Target    string  `json:"target"`
	Loop      string  `json:"loop"` // "closed" or "open"
	Rate      float64 `json:"rate,omitempty"`
	WarmupS   float64 `json:"warmup_s"`
	DurationS float64 `json:"duration_s"` // the measured window

	LoggedIn     int            `json:"logged_in"`
	LoginS       float64        `json:"login_s"`
	LoginsPerSec float64        `json:"logins_per_s"`
	Login        Latency        `json:"login_latency"`
	Connectors   map[string]int `json:"connectors"`

	Requests  int64   `json:"requests"`
	ReqPerSec float64 `json:"req_per_s"`
	RoundTrip Latency `json:"round_trip"`

	OnChat         int64   `json:"onchat_in_window"`
	PushesPerSec   float64 `json:"pushes_per_s"`
	PushLatency    Latency `json:"push_latency"`
	OnChatTotal    int64   `json:"onchat_total"`
	OnChatExpected int64   `json:"onchat_expected"`
	DeliveredPct   float64 `json:"delivered_pct"`
	OnAdd          int64   `json:"onadd"`
	OnAddExpected  int64   `json:"onadd_expected"`
	OnLeave        int64   `json:"onleave"`
	// RoomViewIncomplete users lack RoomViewMissing members in their view
	// of the room (enter's users + onAdd): a consistency warning, not an
	// error of the measure.
	RoomViewIncomplete int      `json:"room_view_incomplete"`
	RoomViewMissing    int      `json:"room_view_missing"`
	Warnings           []string `json:"warnings,omitempty"`
	OtherPushes        int64    `json:"other_pushes"`

	CloseS      float64     `json:"close_s"`
	CPU         *CPUReport  `json:"cpu,omitempty"`
	ErrorCount  int64       `json:"error_count"`
	Errors      []ErrorKind `json:"errors"`
	Interrupted bool        `json:"interrupted,omitempty"`
}

// runChat runs the chat workload: every user logs in, then sends for
// warm-up + duration, then waits for the last pushes and closes.
func runChat(ctx context.Context, cfg chatConfig) (*ChatResult, error) {
	if cfg.Users <= 0 || cfg.Rooms <= 0 || cfg.Duration <= 0 {
		return nil, fmt.Errorf("chat: need users, rooms and duration > 0")
	}
	if cfg.Target != "all" && cfg.Target != "peer" {
		return nil, fmt.Errorf("chat: -target %q (want all or peer)", cfg.Target)
	}
	if cfg.LoginConcurrency <= 0 {
		cfg.LoginConcurrency = 50
	}
	res := &ChatResult{
		Workload: "chat", Gate: cfg.Gate, Transport: transportName(cfg.Transport),
		Users: cfg.Users, Rooms: cfg.Rooms, Target: cfg.Target, Loop: "closed",
		WarmupS: cfg.Warmup.Seconds(), Connectors: map[string]int{},
	}
	if cfg.Rate > 0 {
		res.Loop, res.Rate = "open", cfg.Rate
	}
	errs := newErrorLog()
	win := &window{}
	plan := planChat(cfg.Users, cfg.Rooms, cfg.Target)
	users := make([]*chatUser, len(plan))
	for i := range plan {
		users[i] = &chatUser{chatMember: plan[i], idx: i, win: win, body: make([]byte, 0, 128)}
	}
	sum := func(f func(u *chatUser) int64) int64 {
		var n int64
		for _, u := range users {
			n += f(u)
		}
		return n
	}

	// Login phase.
	var loggedIn atomic.Int64
	var prog *progress
	runStart := time.Now()
	if cfg.Progress != nil {
		var lastReplies int64
		prog = startProgress(cfg.Progress, runStart, func(_, since time.Duration) string {
			r := sum(func(u *chatUser) int64 { return u.replies.Load() })
			line := fmt.Sprintf("logins %d/%d  requests %d  req/s %.0f  onChat %d  errors %d",
				loggedIn.Load(), cfg.Users, r, rate(float64(r-lastReplies), since),
				sum(func(u *chatUser) int64 { return u.onChat.Load() }), errs.total.Load())
			lastReplies = r
			return line
		})
		defer prog.stop()
	}
	lctx, lcancel := context.WithTimeout(ctx, cfg.LoginTimeout)
	sem := make(chan struct{}, cfg.LoginConcurrency)
	var loginWG, runWG sync.WaitGroup
	startLoad := make(chan struct{})
	var loadStart time.Time // written before startLoad is closed
	var runCtx context.Context
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.Users) / cfg.Rate)
	}
	for _, u := range users {
		loginWG.Add(1)
		runWG.Go(func() {
			select {
			case sem <- struct{}{}:
				t0 := time.Now()
				if lerr := u.login(lctx, &cfg); lerr != nil {
					if ctx.Err() == nil {
						errs.add(lerr.kind, lerr)
					}
				} else {
					u.loginTime = time.Since(t0)
					u.in = true
					loggedIn.Add(1)
				}
				<-sem
			case <-lctx.Done():
				errs.add("login: not started in time", lctx.Err())
			}
			loginWG.Done()
			if !u.in {
				return
			}
			select {
			case <-startLoad:
			case <-ctx.Done():
				return
			}
			if cfg.Rate > 0 {
				phase := time.Duration(int64(interval) * int64(u.idx) / int64(cfg.Users))
				u.runOpen(runCtx, errs, loadStart, interval, phase)
			} else {
				u.runClosed(runCtx, errs)
			}
		})
	}
	loginWG.Wait()
	lcancel()
	loginElapsed := time.Since(runStart)
	in := make([]bool, len(users))
	var loginHist Hist
	for i, u := range users {
		in[i] = u.in
		if u.in {
			loginHist.Record(u.loginTime)
			res.Connectors[u.addr]++
		}
	}
	res.LoggedIn = int(loggedIn.Load())
	res.LoginS = loginElapsed.Seconds()
	res.LoginsPerSec = rate(float64(res.LoggedIn), loginElapsed)
	res.Login = summarize(&loginHist)
	perSend := expectedPushes(plan, in)
	res.OnAddExpected = expectedOnAdd(plan, in)

	// Load phase: warm-up, then the measured window.
	loadStart = time.Now()
	win.set(loadStart.Add(cfg.Warmup), loadStart.Add(cfg.Warmup+cfg.Duration))
	end := loadStart.Add(cfg.Warmup + cfg.Duration)
	var rcancel context.CancelFunc
	runCtx, rcancel = context.WithDeadline(ctx, end.Add(cfg.Timeout))
	defer rcancel()
	close(startLoad)
	meter := &cpuMeter{pids: cfg.Pids}
	if sleepUntil(ctx, loadStart.Add(cfg.Warmup)) {
		meter.begin()
		sleepUntil(ctx, end)
	} else {
		meter.begin()
	}
	if ctx.Err() != nil { // interrupted: the window ends now
		res.Interrupted = true
		now := time.Now().UnixNano()
		if now < win.end.Load() {
			win.end.Store(max(now, win.start.Load()))
		}
	}
	cpu := meter.end()
	runWG.Wait()
	rcancel()
	res.DurationS = win.duration().Seconds()

	// Wait for the pushes still on their way.
	expected := int64(0)
	for i, u := range users {
		expected += perSend[i] * u.replies.Load()
	}
	drainEnd := time.Now().Add(cfg.Drain)
	for time.Now().Before(drainEnd) && ctx.Err() == nil {
		if sum(func(u *chatUser) int64 { return u.onChat.Load() }) >= expected &&
			sum(func(u *chatUser) int64 { return u.onAdd.Load() }) >= res.OnAddExpected {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Connections that ended on their own are errors too.
	for _, u := range users {
		if u.in && !u.fail {
			if err := u.c.Err(); err != nil {
				errs.add(classify("connection", err), err)
			}
		}
	}
	var strangers []string
	var dupAdds int
	res.RoomViewIncomplete, res.RoomViewMissing, strangers, dupAdds = roomViews(users)
	// Snapshot before closing: closing makes onLeave pushes.
	res.OnChatTotal = sum(func(u *chatUser) int64 { return u.onChat.Load() })
	res.OnChatExpected = expected
	res.OnAdd = sum(func(u *chatUser) int64 { return u.onAdd.Load() })
	res.OnChat = sum(func(u *chatUser) int64 { return u.onChatWin.Load() })
	if expected > 0 {
		res.DeliveredPct = 100 * float64(res.OnChatTotal) / float64(expected)
	}
	if missing := expected - res.OnChatTotal; missing > 0 {
		errs.addN("onChat: pushes missing", missing, fmt.Errorf("%d of %d expected onChat pushes did not arrive within %v", missing, expected, cfg.Drain))
	} else if missing < 0 {
		errs.addN("onChat: unexpected pushes", -missing, fmt.Errorf("%d onChat pushes beyond the %d expected", -missing, expected))
	}

	if res.OnAdd != res.OnAddExpected {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d onAdd pushes for %d expected (n(n-1)/2 per room of n)", res.OnAdd, res.OnAddExpected))
	}
	if len(strangers) > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("users not of this run were in the rooms (is another client using the cluster?): %s",
			strings.Join(strangers[:min(len(strangers), 10)], " ")))
	}
	if dupAdds > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d onAdd pushes named a user already in the room", dupAdds))
	}
	if res.RoomViewIncomplete > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d users have an incomplete view of their room: %d members missing from enter's users list and the onAdd pushes (concurrent entries raced)",
			res.RoomViewIncomplete, res.RoomViewMissing))
	}

	closeStart := time.Now()
	closeAll(users, func(u *chatUser) *client.Client { return u.c }, cfg.LoginConcurrency)
	res.CloseS = time.Since(closeStart).Seconds()
	if prog != nil {
		prog.stop()
	}

	var rt, pl Hist
	for _, u := range users {
		rt.Merge(&u.rt)
		u.pmu.Lock()
		pl.Merge(&u.pushLat)
		u.pmu.Unlock()
		res.OnLeave += u.onLeave.Load()
		res.OtherPushes += u.other.Load()
	}
	res.Requests = sum(func(u *chatUser) int64 { return u.requests.Load() })
	res.ReqPerSec = rate(float64(res.Requests), win.duration())
	res.RoundTrip = summarize(&rt)
	res.PushesPerSec = rate(float64(res.OnChat), win.duration())
	res.PushLatency = summarize(&pl)
	res.CPU = cpu.perRequests(res.Requests)
	res.Errors = errs.list()
	res.ErrorCount = errs.total.Load()
	return res, nil
}

// sleepUntil waits until t or ctx's end; it reports whether t was reached.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// closeAll closes every client (nil ones skipped), concurrency at a time.
func closeAll[T any](items []T, get func(T) *client.Client, concurrency int) {
	if concurrency <= 0 {
		concurrency = 100
	}
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for _, it := range items {
		c := get(it)
		if c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			_ = c.Close()
			<-sem
		})
	}
	wg.Wait()
}

func transportName(t string) string {
	if t == client.TransportWS {
		return "websocket"
	}
	return "tcp"
}

// writeChatSummary prints the human-readable report.
func writeChatSummary(w io.Writer, r *ChatResult) {
	loop := "closed loop"
	if r.Loop == "open" {
		loop = fmt.Sprintf("open loop at %.0f req/s (latency from the intended send time)", r.Rate)
	}
	fmt.Fprintf(w, "robot chat: %d users in %d rooms via gate %s (%s), target %s, %s, warm-up %.0fs, measured %.1fs\n",
		r.Users, r.Rooms, r.Gate, r.Transport, r.Target, loop, r.WarmupS, r.DurationS)
	if r.Interrupted {
		fmt.Fprintf(w, "  INTERRUPTED: the window was cut short\n")
	}
	fmt.Fprintf(w, "  logins         %d/%d in %.2f s = %.0f logins/s; login p50 %s ms, p99 %s ms\n",
		r.LoggedIn, r.Users, r.LoginS, r.LoginsPerSec, fmtMs(r.Login.P50Ms), fmtMs(r.Login.P99Ms))
	var conns []string
	for a, n := range r.Connectors {
		conns = append(conns, fmt.Sprintf("%s ×%d", a, n))
	}
	sort.Strings(conns)
	fmt.Fprintf(w, "  connectors     %s\n", strings.Join(conns, ", "))
	fmt.Fprintf(w, "  requests       %s = %.0f req/s\n", fmtCount(r.Requests), r.ReqPerSec)
	fmt.Fprintf(w, "  round trip     %s\n", r.RoundTrip)
	fmt.Fprintf(w, "  onChat         %s in the window = %.0f pushes/s; delivered %s of %s expected = %.2f%% (warm-up included)\n",
		fmtCount(r.OnChat), r.PushesPerSec, fmtCount(r.OnChatTotal), fmtCount(r.OnChatExpected), r.DeliveredPct)
	fmt.Fprintf(w, "  push latency   %s\n", r.PushLatency)
	fmt.Fprintf(w, "  onAdd          %s (expected %s); onLeave %s (while closing); other pushes %s\n",
		fmtCount(r.OnAdd), fmtCount(r.OnAddExpected), fmtCount(r.OnLeave), fmtCount(r.OtherPushes))
	fmt.Fprintf(w, "  closing        %d clients in %.2f s\n", r.LoggedIn, r.CloseS)
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "  WARNING        %s\n", warn)
	}
	writeCPU(w, r.CPU)
	writeErrors(w, r.Errors)
}
