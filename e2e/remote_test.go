package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/shaddock/shaddock/master"
	"github.com/shaddock/shaddock/proto/masterpb"
	"github.com/shaddock/shaddock/tools/client"
)

// The remote tests run the chat example on SSH test hosts (netHosts): the
// master in this namespace at 10.99.0.1, servers in th1..th3, started over
// SSH by the master, reached by clients from here.

var remoteTOML = template.Must(template.New("remote").Parse(`
[remote]
binary = "{{.Binary}}"
base = "{{.Base}}"

[remote.master]
id = "master-server-1"
host = "10.99.0.1"
port = {{.Master}}

[remote.ssh]
user = "root"
identityFile = "{{.Identity}}"
knownHosts = "{{.KnownHosts}}"
uploadBinary = {{.Upload}}
{{.Servers}}`))

// remoteServers: gate and a connector on th1, a connector on th2, the chat
// servers on th3.
const remoteServers = `
[[remote.gate]]
id = "gate-server-1"
host = "10.99.0.11"
port = 3100
clientPort = 3014
frontend = true

[[remote.connector]]
id = "connector-server-1"
host = "10.99.0.11"
port = 3150
clientPort = 3050
frontend = true
autoRestart = true

[[remote.connector]]
id = "connector-server-2"
host = "10.99.0.12"
port = 3150
clientPort = 3050
frontend = true
autoRestart = true

[[remote.chat]]
id = "chat-server-1"
host = "10.99.0.13"
port = 6050
autoRestart = true

[[remote.chat]]
id = "chat-server-2"
host = "10.99.0.13"
port = 6051
autoRestart = true
`

// remoteOpts shape a remote cluster's config.
type remoteOpts struct {
	servers    string // [[remote.TYPE]] tables
	knownHosts string // default: the hosts' known_hosts
	base       string // default: the cluster's directory
	binary     string // default: the chat binary, absolute
	upload     bool
}

// newRemoteCluster writes the config of a remote cluster (not started).
func newRemoteCluster(t *testing.T, h *netHosts, o remoteOpts) *Cluster {
	t.Helper()
	dir := t.TempDir()
	if o.knownHosts == "" {
		o.knownHosts = h.knownHosts()
	}
	if o.base == "" {
		o.base = dir
	}
	if o.binary == "" {
		o.binary = binPath("chat")
	}
	v := struct {
		Binary, Base, Identity, KnownHosts, Servers string
		Master                                      int
		Upload                                      bool
	}{o.binary, o.base, h.identity(), o.knownHosts, o.servers, freePort(t), o.upload}
	var buf bytes.Buffer
	if err := remoteTOML.Execute(&buf, v); err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, Dir: dir, Config: filepath.Join(dir, "servers.toml"), Env: "remote", GateAddr: "10.99.0.11:3014"}
	if err := os.WriteFile(c.Config, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.stopAndCheck()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "logs", "master-remote.log"))
			t.Logf("master log:\n%s", tailLines(string(b), 80))
		}
	})
	return c
}

// statuses returns List by id.
func statuses(rep *masterpb.ListReply) map[string]*masterpb.ServerStatus {
	out := map[string]*masterpb.ServerStatus{}
	for _, s := range rep.GetServers() {
		out[s.GetInfo().GetId()] = s
	}
	return out
}

// hostIndex maps a server's host address to its test host number.
func hostIndex(addr string) int {
	var i int
	fmt.Sscanf(addr, "10.99.0.1%d", &i)
	return i
}

// TestRemoteCluster is the SSH acceptance: the master starts the chat demo
// on three hosts over SSH; clients chat over both transports; a remote
// server is restarted, killed under load (and auto-restarted), its host cut
// off and restored; `master stop` leaves nothing running anywhere.
func TestRemoteCluster(t *testing.T) {
	h := startNetHosts(t, 3, "")
	c := newRemoteCluster(t, h, remoteOpts{servers: remoteServers})

	// Start: returns once every server has registered, a line for each.
	start := time.Now()
	out, err := c.Master(90*time.Second, "start", "--daemon")
	took := time.Since(start)
	t.Logf("master start --daemon took %s:\n%s", took.Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("master start: %v", err)
	}
	for _, want := range []string{"gate-server-1 running on 10.99.0.11", "connector-server-2 running on 10.99.0.12",
		"chat-server-1 running on 10.99.0.13", "env remote is up: all 5 servers running on 3 hosts"} {
		if !strings.Contains(out, want) {
			t.Errorf("start output lacks %q", want)
		}
	}
	// Every server runs on its host: its pid is in that host's namespace.
	before := statuses(c.List())
	for id, s := range before {
		i := s.GetInfo()
		if s.GetState() != masterpb.ServerState_RUNNING || i.GetPid() <= 0 || h.hostOf(int(i.GetPid())) != hostIndex(i.GetHost()) {
			t.Errorf("%s: state %v pid %d in th%d; want running in th%d", id, s.GetState(), i.GetPid(), h.hostOf(int(i.GetPid())), hostIndex(i.GetHost()))
		}
	}
	list, err := c.Master(10*time.Second, "list")
	if err != nil || strings.Count(list, " running ") != 5 || !strings.Contains(list, "10.99.0.13:6051") {
		t.Errorf("master list: %v\n%s", err, list)
	}
	t.Logf("master list:\n%s", list)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// Chat from here over both transports, through both remote connectors.
	var users []*chatUser
	connectors := map[string]bool{}
	// Rooms 0 and 1 go to chat-server-1, rooms 4 and 5 to chat-server-2
	// (crc32 % 2, as Pomelo places them).
	for i := range 12 {
		u, r := login(t, ctx, c, fmt.Sprintf("r%02d", i), fmt.Sprintf("room-%d", []int{0, 4, 1, 5}[i%4]), i%2 == 0)
		if r.Code != 0 || len(r.Users) == 0 {
			t.Fatalf("enter %d: %+v", i, r)
		}
		users = append(users, u)
		connectors[u.connector] = true
	}
	if !connectors["10.99.0.11:3050"] || !connectors["10.99.0.12:3050"] {
		t.Fatalf("users landed on connectors %v; want both hosts' connectors", connectors)
	}
	for _, u := range users {
		if err := u.send(ctx, "hello from "+u.name, "*"); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	eventually(t, "every room message delivered", func() error {
		for _, u := range users {
			if got := len(u.received(func(p userPush) bool { return p.Route == "onChat" })); got != 3 {
				return fmt.Errorf("%s has %d onChat pushes, want 3 (its room's)", u.name, got)
			}
		}
		return nil
	})

	// Restart one remote server: a new pid on the same host, the others
	// untouched.
	out, err = c.Master(60*time.Second, "restart", "--id", "chat-server-1")
	t.Logf("restart:\n%s", out)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	after := statuses(c.List())
	for id, s := range after {
		old, now := before[id].GetInfo().GetPid(), s.GetInfo().GetPid()
		if id == "chat-server-1" {
			if now == old || h.hostOf(int(now)) != 3 || s.GetInfo().GetEpoch() != 2 || alive(int(old)) {
				t.Errorf("chat-server-1 after restart: pid %d (was %d) in th%d, epoch %d", now, old, h.hostOf(int(now)), s.GetInfo().GetEpoch())
			}
		} else if now != old {
			t.Errorf("%s: pid %d → %d, touched by another server's restart", id, old, now)
		}
	}

	t.Run("kill -9 under load", func(t *testing.T) { remoteKill(t, ctx, c, h, users) })
	t.Run("link cut", func(t *testing.T) { remoteCut(t, ctx, c, h) })

	// Stop: nothing of the framework left on any host.
	start = time.Now()
	out, err = c.Master(60*time.Second, "stop")
	if err != nil {
		t.Fatalf("master stop: %v\n%s", err, out)
	}
	stopped := time.Since(start)
	left := h.waitNoProcs(t, 20*time.Second)
	t.Logf("master stop returned after %s; hosts empty after %s", stopped.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if len(left) > 0 {
		t.Errorf("processes left on the hosts 20 s after master stop: %v", left)
	}
}

// remoteKill: kill -9 of a remote chat server while users chat. Requests
// routed to it fail fast with an error response, none waits for its
// deadline; the users of its rooms are kicked with a reason and come back
// (gate, connector, enter) at once; autoRestart brings it back over SSH
// within 5 s; every user is answered again afterwards.
func remoteKill(t *testing.T, ctx context.Context, c *Cluster, h *netHosts, users []*chatUser) {
	// Fresh sessions: the restart before this kicked the users of its rooms.
	for _, u := range users {
		u.c.Close()
	}
	type tally struct {
		ok, errAnswers, kicked, unanswered, reentered int
		slowest, slowestBack                          time.Duration
		firstErr                                      error
		okAfter                                       map[string]bool // users answered after the server was back
	}
	var (
		mu     sync.Mutex
		tl     = tally{okAfter: map[string]bool{}}
		backAt atomic.Pointer[time.Time]
		stop   atomic.Bool
		wg     sync.WaitGroup
	)
	enter := func(name, rid string, ws bool) (*client.Client, error) {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		e, err := connectorFor(rctx, c.GateAddr, name, ws)
		if err != nil {
			return nil, err
		}
		cc, err := client.Dial(rctx, fmt.Sprintf("%s:%d", e.Host, e.Port), client.Options{Transport: transport(ws)})
		if err != nil {
			return nil, err
		}
		var r enterReply
		if err := cc.RequestJSON(rctx, "connector.entryHandler.enter", map[string]string{"username": name, "rid": rid}, &r); err != nil || len(r.Users) == 0 {
			cc.Close()
			return nil, fmt.Errorf("enter: %v %+v", err, r)
		}
		return cc, nil
	}
	for i, u := range users {
		ws := i%2 == 0
		cc, err := enter(u.name, u.rid, ws)
		if err != nil {
			t.Fatalf("%s enters again: %v", u.name, err)
		}
		wg.Go(func() {
			defer func() { cc.Close() }()
			for n := 0; !stop.Load() && n < 100000; n++ {
				rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
				begin := time.Now()
				var r struct {
					Route string `json:"route"`
					Code  int    `json:"code"`
					Msg   string `json:"msg"`
				}
				err := cc.RequestJSON(rctx, "chat.chatHandler.send", map[string]string{"rid": u.rid, "content": fmt.Sprintf("%s-%d", u.name, n), "from": u.name, "target": "*"}, &r)
				rcancel()
				took := time.Since(begin)
				var k *client.KickedError
				mu.Lock()
				tl.slowest = max(tl.slowest, took)
				switch {
				case err == nil && r.Route == "chat.chatHandler.send":
					tl.ok++
					if at := backAt.Load(); at != nil && begin.After(*at) {
						tl.okAfter[u.name] = true
					}
				case err == nil:
					tl.errAnswers++
					if tl.firstErr == nil {
						tl.firstErr = fmt.Errorf("answered %+v", r)
					}
				case errors.As(err, &k) || errors.Is(err, client.ErrClosed):
					tl.kicked++
				case errors.Is(err, context.DeadlineExceeded):
					tl.unanswered++
				default:
					tl.errAnswers++
					if tl.firstErr == nil {
						tl.firstErr = err
					}
				}
				mu.Unlock()
				select {
				case <-cc.Done():
					// Kicked (its room's server ended): back through the gate.
					lost := time.Now()
					cc.Close()
					for !stop.Load() {
						if cc, err = enter(u.name, u.rid, ws); err == nil {
							break
						}
						time.Sleep(100 * time.Millisecond)
					}
					if err != nil {
						return
					}
					mu.Lock()
					tl.reentered++
					tl.slowestBack = max(tl.slowestBack, time.Since(lost))
					mu.Unlock()
				default:
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	time.Sleep(time.Second)
	var pid int32
	for _, s := range c.List().GetServers() {
		if s.GetInfo().GetId() == "chat-server-2" {
			pid = s.GetInfo().GetPid()
		}
	}
	if pid <= 0 || h.hostOf(int(pid)) != 3 {
		t.Fatalf("chat-server-2 pid %d not on th3", pid)
	}
	killedAt := time.Now()
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var back time.Duration
	for {
		s := statuses(c.List())["chat-server-2"]
		if s.GetState() == masterpb.ServerState_RUNNING && s.GetInfo().GetPid() != pid && s.GetInfo().GetPid() > 0 {
			back = time.Since(killedAt)
			now := time.Now()
			backAt.Store(&now)
			if h.hostOf(int(s.GetInfo().GetPid())) != 3 || s.GetRestarts() != 1 {
				t.Errorf("chat-server-2 back as pid %d in th%d with %d restarts", s.GetInfo().GetPid(), h.hostOf(int(s.GetInfo().GetPid())), s.GetRestarts())
			}
			break
		}
		if time.Since(killedAt) > 15*time.Second {
			t.Fatalf("chat-server-2 not running again 15 s after kill -9: %v %q", s.GetState(), s.GetReason())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	stop.Store(true)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	total := tl.ok + tl.errAnswers + tl.kicked + tl.unanswered
	t.Logf("kill -9 of chat-server-2 (pid %d): running again after %s; %d requests: %d ok, %d error answers (first: %v), %d cut by a kick, %d unanswered; slowest answer %s; %d sessions kicked and back in at most %s",
		pid, back.Round(time.Millisecond), total, tl.ok, tl.errAnswers, tl.firstErr, tl.kicked, tl.unanswered, tl.slowest.Round(time.Millisecond),
		tl.reentered, tl.slowestBack.Round(time.Millisecond))
	if back > 5*time.Second {
		t.Errorf("chat-server-2 came back after %s, want within 5 s", back)
	}
	if tl.slowest > 2*time.Second || tl.unanswered > 0 {
		t.Errorf("slowest answer %s, %d unanswered: requests to a dead server must fail fast, not wait for their deadline", tl.slowest, tl.unanswered)
	}
	if tl.reentered == 0 {
		t.Error("nobody was kicked: no room was on the killed server")
	}
	if tl.slowestBack > 5*time.Second {
		t.Errorf("a kicked user took %s to enter again", tl.slowestBack)
	}
	if len(tl.okAfter) != len(users) {
		t.Errorf("only %d of %d users answered once the server was back", len(tl.okAfter), len(users))
	}
	if total < 100 {
		t.Errorf("only %d requests: no load", total)
	}
}

// remoteCut: th2's link cut. Its connector is shown lost with the reason
// within 10 s, `master list` answers within 2 s all along, the gate stops
// handing out that connector; restored, it runs again: the same process,
// one copy.
func remoteCut(t *testing.T, ctx context.Context, c *Cluster, h *netHosts) {
	before := statuses(c.List())["connector-server-2"]
	pid := before.GetInfo().GetPid()
	cl, err := master.Dial(ctx, "remote", c.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	h.script(t, "", "cut", "th2")
	cutAt := time.Now()
	restored := false
	defer func() {
		if !restored {
			h.script(t, "", "restore", "th2")
		}
	}()

	var slowestList time.Duration
	var lostAfter time.Duration
	var reason string
	for lostAfter == 0 {
		lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
		begin := time.Now()
		rep, err := cl.List(lctx)
		lcancel()
		slowestList = max(slowestList, time.Since(begin))
		if err != nil {
			t.Fatalf("master list during the cut: %v", err)
		}
		if s := statuses(rep)["connector-server-2"]; s.GetState() == masterpb.ServerState_LOST {
			lostAfter, reason = time.Since(cutAt), s.GetReason()
		}
		if time.Since(cutAt) > 15*time.Second {
			t.Fatalf("connector-server-2 not lost 15 s after its host was cut off")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("th2 cut: connector-server-2 lost after %s (%q); slowest master list %s", lostAfter.Round(time.Millisecond), reason, slowestList.Round(time.Millisecond))
	if lostAfter > 10*time.Second || !strings.Contains(reason, "no heartbeat") {
		t.Errorf("lost after %s with reason %q; want within 10 s, with the reason", lostAfter, reason)
	}
	// The gate hands out th1's connector only.
	for i := range 40 {
		e := queryEntry(t, ctx, c.GateAddr, fmt.Sprintf("cut-%d", i), i%2 == 0)
		if e.Code != 200 || e.Host != "10.99.0.11" {
			t.Fatalf("queryEntry during the cut: %+v; want th1's connector", e)
		}
	}
	// More lists while the host stays cut.
	for range 10 {
		begin := time.Now()
		lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := cl.List(lctx)
		lcancel()
		slowestList = max(slowestList, time.Since(begin))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if slowestList > 2*time.Second {
		t.Errorf("a master list took %s during the cut; want every one within 2 s", slowestList)
	}

	h.script(t, "", "restore", "th2")
	restored = true
	restoredAt := time.Now()
	var s *masterpb.ServerStatus
	for {
		s = statuses(c.List())["connector-server-2"]
		if s.GetState() == masterpb.ServerState_RUNNING {
			break
		}
		if time.Since(restoredAt) > 40*time.Second {
			t.Fatalf("connector-server-2 not running 40 s after its host came back: %v %q", s.GetState(), s.GetReason())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("th2 restored: connector-server-2 running again after %s", time.Since(restoredAt).Round(time.Millisecond))
	if s.GetInfo().GetPid() != pid || s.GetRestarts() != before.GetRestarts() {
		t.Errorf("after the cut: pid %d (was %d), %d restarts: want the same process", s.GetInfo().GetPid(), pid, s.GetRestarts())
	}
	var servers []string
	for p, line := range h.procs(t, 2) {
		if strings.HasPrefix(line, binPath("chat")) {
			servers = append(servers, fmt.Sprintf("%d: %s", p, line))
		}
	}
	sort.Strings(servers)
	if len(servers) != 1 {
		t.Errorf("th2 runs %d server processes, want one:\n%s", len(servers), strings.Join(servers, "\n"))
	}
	// And the gate offers it again.
	eventually(t, "the gate offers th2's connector again", func() error {
		for i := range 40 {
			if e := queryEntry(t, ctx, c.GateAddr, fmt.Sprintf("back-%d", i), false); e.Host == "10.99.0.12" {
				return nil
			}
		}
		return fmt.Errorf("40 uids, none sent to 10.99.0.12")
	})
}

// TestRemoteHostKeys: a host whose key is not in known_hosts, and one whose
// key differs from it, are refused with a message naming the host and
// known_hosts; no login completes there; the other host starts
// (--keep-going keeps it).
func TestRemoteHostKeys(t *testing.T) {
	h := startNetHosts(t, 3, "")
	dir := t.TempDir()
	other := filepath.Join(dir, "otherkey")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	otherPub, err := os.ReadFile(other + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	known, err := os.ReadFile(h.knownHosts())
	if err != nil {
		t.Fatal(err)
	}
	// th1 as it is; th2 unknown; th3 with another key.
	var kh strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(string(known)), "\n") {
		switch {
		case strings.HasPrefix(line, "10.99.0.12 "):
		case strings.HasPrefix(line, "10.99.0.13 "):
			f := strings.Fields(string(otherPub))
			fmt.Fprintf(&kh, "10.99.0.13 %s %s\n", f[0], f[1])
		default:
			kh.WriteString(line + "\n")
		}
	}
	khPath := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(khPath, []byte(kh.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newRemoteCluster(t, h, remoteOpts{servers: remoteServers, knownHosts: khPath})
	out, err := c.Master(90*time.Second, "start", "--daemon", "--keep-going")
	t.Logf("master start --daemon --keep-going:\n%s", out)
	if err == nil {
		t.Fatal("start succeeded with untrusted hosts")
	}
	for _, want := range []string{
		"connector-server-2 failed on 10.99.0.12: ",
		"chat-server-1 failed on 10.99.0.13: ",
		"host key mismatch for 10.99.0.13",
		"3 of 5 servers did not start",
		"gate-server-1 running on 10.99.0.11",
		"connector-server-1 running on 10.99.0.11",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	ss := statuses(c.List())
	for _, id := range []string{"connector-server-2", "chat-server-1", "chat-server-2"} {
		s := ss[id]
		r := s.GetReason()
		if s.GetState() != masterpb.ServerState_FAILED || !strings.Contains(r, khPath) || !strings.Contains(r, s.GetInfo().GetHost()) {
			t.Errorf("%s: %v %q; want failed, naming its host and %s", id, s.GetState(), r, khPath)
		}
	}
	if r := ss["connector-server-2"].GetReason(); !strings.Contains(r, "ssh-keyscan") {
		t.Errorf("unknown key: %q does not say how to add it", r)
	}
	for _, id := range []string{"gate-server-1", "connector-server-1"} {
		if ss[id].GetState() != masterpb.ServerState_RUNNING {
			t.Errorf("%s on the trusted host: %v", id, ss[id].GetState())
		}
	}
	for i := 2; i <= 3; i++ {
		if log := h.sshdLog(t, i); strings.Contains(log, "Accepted") {
			t.Errorf("th%d: a login completed on an untrusted host:\n%s", i, log)
		}
	}
	if !strings.Contains(h.sshdLog(t, 1), "Accepted publickey") {
		t.Error("th1: no login in its sshd log")
	}
}

// baseWithGame makes a base directory (under a test's own root) holding
// the chat game as bin/chat, for hosts whose base is private: the master
// uploads from there. It returns the root, the base and the game's bytes.
func baseWithGame(t *testing.T) (root, base string, game []byte) {
	t.Helper()
	root = t.TempDir()
	base = filepath.Join(root, "base")
	if err := os.MkdirAll(filepath.Join(base, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	game, err := os.ReadFile(binPath("chat"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "bin", "chat"), game, 0o755); err != nil {
		t.Fatal(err)
	}
	return root, base, game
}

// TestRemoteUpload: hosts whose base directory is private (an empty tmpfs
// each): the first start uploads the binary once per host, the second
// finds it there by its checksum and skips it; logs are read over SSH.
func TestRemoteUpload(t *testing.T) {
	_, base, _ := baseWithGame(t)
	h := startNetHosts(t, 3, base)
	c := newRemoteCluster(t, h, remoteOpts{servers: remoteServers, base: base, binary: "bin/chat", upload: true})
	for round := 1; round <= 2; round++ {
		start := time.Now()
		out, err := c.Master(120*time.Second, "start", "--daemon")
		t.Logf("start %d took %s:\n%s", round, time.Since(start).Round(time.Millisecond), out)
		if err != nil {
			t.Fatalf("start %d: %v", round, err)
		}
		for i := 1; i <= 3; i++ {
			up := strings.Count(out, h.addr(i)+": uploaded bin/chat (")
			skip := strings.Count(out, h.addr(i)+": bin/chat is up to date (sha256 ")
			if round == 1 && (up != 1 || skip != 0) || round == 2 && (up != 0 || skip != 1) {
				t.Errorf("start %d, %s: %d uploads, %d skips", round, h.addr(i), up, skip)
			}
		}
		if round == 1 {
			// The servers run the uploaded copy: the host's base is its own.
			logs, err := c.Master(30*time.Second, "logs", "--id", "chat-server-2", "-n", "50")
			if err != nil || !strings.Contains(logs, "master: starting chat-server-2 on 10.99.0.13: "+filepath.Join(base, "bin", "chat")) {
				t.Errorf("master logs over SSH: %v\n%s", err, logs)
			}
			if _, err := os.Stat(filepath.Join(base, "logs", "chat-server-2.log")); err == nil {
				t.Error("the remote log is in this machine's base: the host's base is not private")
			}
		}
		if out, err := c.Master(60*time.Second, "stop"); err != nil {
			t.Fatalf("stop %d: %v\n%s", round, err, out)
		}
	}
}

// TestRemoteScale: 60 servers (clusterCount) over three hosts start and
// register; the time is logged (Pomelo starts one ssh command line per
// server, one after another).
func TestRemoteScale(t *testing.T) {
	h := startNetHosts(t, 3, "")
	servers := `
[[remote.gate]]
id = "gate-server-1"
host = "10.99.0.11"
port = 3100
clientPort = 3014
frontend = true

[[remote.connector]]
id = "connector-a"
host = "10.99.0.11"
port = "3150++"
clientPort = "3050++"
frontend = true
clusterCount = 19

[[remote.connector]]
id = "connector-b"
host = "10.99.0.12"
port = "3150++"
clientPort = "3050++"
frontend = true
clusterCount = 20

[[remote.chat]]
host = "10.99.0.13"
port = "6050++"
clusterCount = 20
`
	c := newRemoteCluster(t, h, remoteOpts{servers: servers})
	start := time.Now()
	out, err := c.Master(120*time.Second, "start", "--daemon")
	took := time.Since(start)
	if err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	t.Logf("60 servers on 3 hosts: master start --daemon returned after %s; last lines:\n%s", took.Round(time.Millisecond), tailLines(out, 3))
	if !strings.Contains(out, "env remote is up: all 60 servers running on 3 hosts") {
		t.Errorf("output:\n%s", out)
	}
	t.Logf("from the master's log: %s", startPhases(t, c))
	if took > 20*time.Second {
		t.Errorf("60 servers took %s to start and register", took)
	}
	running := 0
	for _, s := range c.List().GetServers() {
		if s.GetState() == masterpb.ServerState_RUNNING && h.hostOf(int(s.GetInfo().GetPid())) == hostIndex(s.GetInfo().GetHost()) {
			running++
		}
	}
	if running != 60 {
		t.Errorf("%d of 60 servers running on their hosts", running)
	}
	start = time.Now()
	if out, err := c.Master(90*time.Second, "stop"); err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	t.Logf("master stop of 60 servers: %s", time.Since(start).Round(time.Millisecond))
	if left := h.waitNoProcs(t, 20*time.Second); len(left) > 0 {
		t.Errorf("%d processes left on the hosts after stop", len(left))
	}
}

// startPhases says, from the master's log, when the first and the last
// server was started (launched over SSH) and when the last one registered.
func startPhases(t *testing.T, c *Cluster) string {
	b, err := os.ReadFile(filepath.Join(c.Dir, "logs", "master-remote.log"))
	if err != nil {
		return err.Error()
	}
	var t0, firstStart, lastStart, lastRunning time.Time
	for _, line := range strings.Split(string(b), "\n") {
		ts, ok := strings.CutPrefix(line, "time=")
		if !ok || len(ts) < 29 {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, strings.Fields(ts)[0])
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(line, `msg="master listening"`):
			t0 = at
		case strings.Contains(line, `msg="server started"`):
			if firstStart.IsZero() {
				firstStart = at
			}
			lastStart = at
		case strings.Contains(line, `msg="server running"`):
			lastRunning = at
		}
	}
	return fmt.Sprintf("first server launched %s after the master listened, last %s, last registered %s",
		firstStart.Sub(t0).Round(time.Millisecond), lastStart.Sub(t0).Round(time.Millisecond), lastRunning.Sub(t0).Round(time.Millisecond))
}

// TestRemoteUnreachableHosts: a host that refuses SSH and an address where
// no host answers are reported at once, each with its own error, and the
// start stops what it started on the good host.
func TestRemoteUnreachableHosts(t *testing.T) {
	h := startNetHostsSSHD(t, 4, 3, "") // th4 runs no sshd
	servers := `
[[remote.gate]]
id = "gate-server-1"
host = "10.99.0.11"
port = 3100
clientPort = 3014
frontend = true

[[remote.connector]]
id = "connector-server-1"
host = "10.99.0.11"
port = 3150
clientPort = 3050
frontend = true

[[remote.chat]]
id = "chat-server-1"
host = "10.99.0.14"
port = 6050

[[remote.chat]]
id = "chat-server-2"
host = "10.99.0.19"
port = 6050
`
	c := newRemoteCluster(t, h, remoteOpts{servers: servers})
	start := time.Now()
	out, err := c.Master(90*time.Second, "start", "--daemon")
	took := time.Since(start)
	t.Logf("start took %s:\n%s", took.Round(time.Millisecond), out)
	if err == nil {
		t.Fatal("start succeeded with unreachable hosts")
	}
	for _, want := range []string{
		"error: chat-server-1 failed on 10.99.0.14: ssh 10.99.0.14:22: connect",
		"connection refused",
		"error: chat-server-2 failed on 10.99.0.19: ssh 10.99.0.19:22: connect",
		"2 of 4 servers did not start: chat-server-1, chat-server-2",
		"stopped what it started",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if took > 15*time.Second {
		t.Errorf("the unreachable hosts were reported after %s", took)
	}
	if left := h.waitNoProcs(t, 5*time.Second); len(left) > 0 {
		t.Errorf("left running after the failed start: %v", left)
	}
}

// TestRemoteRollingUpdate: `master update` on remote hosts whose base is
// private: group b (on th2), then group a (on th1), each uploaded the new
// build beside the binary and started from it; once both run it, it takes
// the binary's place on every host, so a later restart runs it too.
func TestRemoteRollingUpdate(t *testing.T) {
	root, base, game := baseWithGame(t)
	h := startNetHosts(t, 2, base)
	servers := `
[remote.rolling]
drainTimeout = "5s"

[[remote.connector]]
id = "connector-a"
host = "10.99.0.11"
port = 3150
clientPort = 3050
frontend = true
group = "a"

[[remote.chat]]
id = "chat-a"
host = "10.99.0.11"
port = 6050
group = "a"

[[remote.connector]]
id = "connector-b"
host = "10.99.0.12"
port = 3150
clientPort = 3050
frontend = true
group = "b"

[[remote.chat]]
id = "chat-b"
host = "10.99.0.12"
port = 6050
group = "b"
`
	c := newRemoteCluster(t, h, remoteOpts{servers: servers, base: base, binary: "bin/chat", upload: true})
	if out, err := c.Master(120*time.Second, "start", "--daemon"); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	v2 := filepath.Join(root, "chat-v2")
	if err := os.WriteFile(v2, append(game, "\nshaddock e2e build v2\n"...), 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256File(t, v2)[:12]
	start := time.Now()
	out, err := c.Master(3*time.Minute, "update", "--binary", v2)
	t.Logf("master update on two remote hosts took %s:\n%s", time.Since(start).Round(100*time.Millisecond), out)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	next := filepath.Join(base, "bin", "chat.next")
	for _, want := range []string{
		"10.99.0.12: uploaded build " + sum, "10.99.0.11: uploaded build " + sum,
		"group b runs build " + sum, "group a runs build " + sum,
		"installed build " + sum + " as " + filepath.Join(base, "bin", "chat") + " (previous kept as ",
		"done: every group runs build " + sum,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("update output lacks %q", want)
		}
	}
	if strings.Index(out, "10.99.0.12: uploaded") > strings.Index(out, "10.99.0.11: uploaded") {
		t.Error("group a's host got the new build before group b ran it")
	}
	for id, s := range statuses(c.List()) {
		if s.State != masterpb.ServerState_RUNNING || s.Info.Build != sum {
			t.Errorf("%s: %v on build %s, want running on %s", id, s.State, s.Info.Build, sum)
		}
	}
	logs, err := c.Master(30*time.Second, "logs", "--id", "chat-b", "-n", "40")
	if err != nil || !strings.Contains(logs, "master: starting chat-b on 10.99.0.12: "+next+" ") {
		t.Errorf("chat-b was not started from %s on its host: %v\n%s", next, err, logs)
	}
	// A restart now runs the binary, which is the new build on that host.
	if out, err := c.Master(60*time.Second, "restart", "--id", "chat-a"); err != nil {
		t.Fatalf("restart chat-a: %v\n%s", err, out)
	}
	logs, err = c.Master(30*time.Second, "logs", "--id", "chat-a", "-n", "40")
	if err != nil || !strings.Contains(tailLines(logs, 8), "master: starting chat-a on 10.99.0.11: "+filepath.Join(base, "bin", "chat")+" ") {
		t.Errorf("chat-a not restarted from the binary: %v\n%s", err, logs)
	}
	if s := statuses(c.List())["chat-a"]; s.State != masterpb.ServerState_RUNNING || s.Info.Build != sum {
		t.Errorf("chat-a after its restart: %v on build %s, want %s", s.State, s.Info.Build, sum)
	}
}
