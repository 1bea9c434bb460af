package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shaddock/shaddock/rpc"
	"github.com/shaddock/shaddock/tools/client"
)

// chatUser is one chatofpomelo client: it asks the gate for a connector,
// enters a room there and records every push it gets.
type chatUser struct {
	name, rid string
	connector string
	c         *client.Client
	users     []string // answer to enter

	mu     sync.Mutex
	pushes []userPush
}

type userPush struct {
	Route  string
	Msg    string `json:"msg"`
	From   string `json:"from"`
	Target string `json:"target"`
	User   string `json:"user"`
}

func (u *chatUser) onPush(route string, body []byte) {
	var p userPush
	if err := json.Unmarshal(body, &p); err != nil {
		p.Msg = "undecodable: " + string(body)
	}
	p.Route = route
	u.mu.Lock()
	u.pushes = append(u.pushes, p)
	u.mu.Unlock()
}

func (u *chatUser) received(filter func(userPush) bool) []userPush {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []userPush
	for _, p := range u.pushes {
		if filter(p) {
			out = append(out, p)
		}
	}
	return out
}

type entry struct {
	Code int    `json:"code"`
	Host string `json:"host"`
	Port int    `json:"port"`
}

// queryEntry asks the gate which connector serves uid.
func queryEntry(t testing.TB, ctx context.Context, gate, uid string, ws bool) entry {
	t.Helper()
	g, err := client.Dial(ctx, gate, client.Options{Transport: transport(ws)})
	if err != nil {
		t.Fatalf("dial gate: %v", err)
	}
	defer g.Close()
	var e entry
	if err := g.RequestJSON(ctx, "gate.gateHandler.queryEntry", map[string]string{"uid": uid}, &e); err != nil {
		t.Fatalf("queryEntry %s: %v", uid, err)
	}
	return e
}

// connectorFor asks the gate at addr which connector serves uid, for
// goroutines that cannot fail the test: an answer other than 200 is an
// error.
func connectorFor(ctx context.Context, addr, uid string, ws bool) (entry, error) {
	g, err := client.Dial(ctx, addr, client.Options{Transport: transport(ws)})
	if err != nil {
		return entry{}, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer g.Close()
	var e entry
	if err := g.RequestJSON(ctx, "gate.gateHandler.queryEntry", map[string]string{"uid": uid}, &e); err != nil {
		return e, fmt.Errorf("queryEntry %s: %w", uid, err)
	}
	if e.Code != 200 {
		return e, fmt.Errorf("queryEntry %s: %+v", uid, e)
	}
	return e, nil
}

func transport(ws bool) string {
	if ws {
		return client.TransportWS
	}
	return client.TransportTCP
}

type enterReply struct {
	Code  int      `json:"code"`
	Error bool     `json:"error"`
	Users []string `json:"users"`
}

// login runs the chatofpomelo login: gate, then enter on the connector.
func login(t testing.TB, ctx context.Context, cl *Cluster, name, rid string, ws bool) (*chatUser, enterReply) {
	t.Helper()
	e := queryEntry(t, ctx, cl.GateAddr, name, ws)
	if e.Code != 200 {
		t.Fatalf("queryEntry %s: code %d", name, e.Code)
	}
	u := &chatUser{name: name, rid: rid, connector: fmt.Sprintf("%s:%d", e.Host, e.Port)}
	c, err := client.Dial(ctx, u.connector, client.Options{Transport: transport(ws), OnPush: u.onPush})
	if err != nil {
		t.Fatalf("dial connector %s: %v", u.connector, err)
	}
	t.Cleanup(func() { c.Close() })
	u.c = c
	var r enterReply
	if err := c.RequestJSON(ctx, "connector.entryHandler.enter", map[string]string{"username": name, "rid": rid}, &r); err != nil {
		t.Fatalf("enter %s: %v", name, err)
	}
	u.users = r.Users
	return u, r
}

func (u *chatUser) send(ctx context.Context, content, target string) error {
	var r struct {
		Route string `json:"route"`
		Code  int    `json:"code"`
	}
	err := u.c.RequestJSON(ctx, "chat.chatHandler.send",
		map[string]string{"rid": u.rid, "content": content, "from": u.name, "target": target}, &r)
	if err == nil && r.Route != "chat.chatHandler.send" {
		err = fmt.Errorf("send answered %+v", r)
	}
	return err
}

// eventually polls cond for up to 10 s.
func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestChatThroughMaster is the chat demo's acceptance: the cluster started
// by the master as separate processes, 50 users in 5 rooms over both
// connectors and both transports.
func TestChatThroughMaster(t *testing.T) {
	cl := StartChatCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	rep := cl.List()
	if len(rep.Servers) != 5 {
		t.Fatalf("master lists %d servers, want 5", len(rep.Servers))
	}
	for _, s := range rep.Servers {
		if s.State != rpc.StateRunning || s.Info.Pid == 0 {
			t.Fatalf("%s: state %v pid %d", s.Info.Id, s.State, s.Info.Pid)
		}
	}
	out, err := cl.Master(10*time.Second, "list")
	if err != nil || !strings.Contains(out, "connector-server-2") || !strings.Contains(out, "running") {
		t.Fatalf("master list: %v\n%s", err, out)
	}

	// The gate hands out connectors[abs(int32(crc32(uid))) % 2], sorted by id.
	for i := 0; i < 20; i++ {
		uid := fmt.Sprintf("someone-%d", i)
		e := queryEntry(t, ctx, cl.GateAddr, uid, i%2 == 0)
		if want := cl.Connectors[rpc.PickIndex(uid, 2)]; fmt.Sprintf("%s:%d", e.Host, e.Port) != want {
			t.Fatalf("queryEntry %s → %s:%d, want %s", uid, e.Host, e.Port, want)
		}
	}
	if e := queryEntry(t, ctx, cl.GateAddr, "", false); e.Code != 500 {
		t.Fatalf("queryEntry without uid: %+v", e)
	}

	// 50 users, 5 rooms, logged in one by one: each sees the room so far and
	// every member already there gets exactly one onAdd for the newcomer.
	const users, rooms = 50, 5
	var all []*chatUser
	byRoom := map[string][]*chatUser{}
	connectorsUsed := map[string]int{}
	for i := 0; i < users; i++ {
		rid := fmt.Sprintf("room-%d", i%rooms)
		u, r := login(t, ctx, cl, fmt.Sprintf("user%02d", i), rid, i%3 != 0)
		want := []string{u.name}
		for _, m := range byRoom[rid] {
			want = append(want, m.name)
		}
		got := slices.Clone(r.Users)
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Fatalf("%s entered %s and saw %v, want %v", u.name, rid, r.Users, want)
		}
		byRoom[rid] = append(byRoom[rid], u)
		all = append(all, u)
		connectorsUsed[u.connector]++
	}
	if len(connectorsUsed) != 2 {
		t.Fatalf("users spread over %v, want both connectors", connectorsUsed)
	}
	for rid, members := range byRoom {
		for i, m := range members {
			want := len(members) - 1 - i // one onAdd per later arrival
			eventually(t, "onAdd pushes", func() error {
				got := m.received(func(p userPush) bool { return p.Route == "onAdd" })
				if len(got) != want {
					return fmt.Errorf("%s in %s got %d onAdd, want %d", m.name, rid, len(got), want)
				}
				return nil
			})
		}
	}

	// Every user broadcasts to its room: every member (sender included, as in
	// chatofpomelo) gets each room message exactly once, and nothing from
	// other rooms.
	for _, u := range all {
		if err := u.send(ctx, "hello from "+u.name, "*"); err != nil {
			t.Fatalf("%s send: %v", u.name, err)
		}
	}
	for rid, members := range byRoom {
		for _, m := range members {
			eventually(t, "room broadcasts", func() error {
				got := m.received(func(p userPush) bool { return p.Route == "onChat" && p.Target == "*" })
				if len(got) < len(members) {
					return fmt.Errorf("%s in %s got %d broadcasts, want %d", m.name, rid, len(got), len(members))
				}
				return nil
			})
		}
	}
	time.Sleep(300 * time.Millisecond) // a duplicate would have arrived by now
	for rid, members := range byRoom {
		for _, m := range members {
			seen := map[string]int{}
			for _, p := range m.received(func(p userPush) bool { return p.Route == "onChat" && p.Target == "*" }) {
				seen[p.Msg]++
				if !strings.HasSuffix(p.Msg, p.From) {
					t.Fatalf("%s: message %q claims to be from %s", m.name, p.Msg, p.From)
				}
			}
			for _, sender := range members {
				if n := seen["hello from "+sender.name]; n != 1 {
					t.Fatalf("%s in %s got %d copies of %s's broadcast", m.name, rid, n, sender.name)
				}
			}
			if len(seen) != len(members) {
				t.Fatalf("%s in %s got broadcasts from outside the room: %v", m.name, rid, seen)
			}
		}
	}

	// A private message reaches its target only, across connectors if the
	// room spans them.
	room := byRoom["room-1"]
	from, to := room[0], room[1]
	for _, cand := range room[1:] {
		if cand.connector != from.connector {
			to = cand
			break
		}
	}
	if err := from.send(ctx, "psst", to.name); err != nil {
		t.Fatal(err)
	}
	eventually(t, "private message", func() error {
		if got := to.received(func(p userPush) bool { return p.Msg == "psst" }); len(got) != 1 || got[0].From != from.name || got[0].Target != to.name {
			return fmt.Errorf("%s got %+v", to.name, got)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	for _, u := range all {
		if u != to && len(u.received(func(p userPush) bool { return p.Msg == "psst" })) != 0 {
			t.Fatalf("%s got a private message meant for %s", u.name, to.name)
		}
	}

	// A duplicate login (same name, same room) gets {code:500, error:true}.
	dupe := byRoom["room-2"][3]
	_, r := login(t, ctx, cl, dupe.name, dupe.rid, true)
	if r.Code != 500 || !r.Error {
		t.Fatalf("duplicate login answered %+v", r)
	}

	// Leaving pushes onLeave to the rest of the room, once each.
	leaver := byRoom["room-3"][0]
	leaver.c.Close()
	for _, m := range byRoom["room-3"][1:] {
		eventually(t, "onLeave", func() error {
			got := m.received(func(p userPush) bool { return p.Route == "onLeave" && p.User == leaver.name })
			if len(got) != 1 {
				return fmt.Errorf("%s got %d onLeave for %s", m.name, len(got), leaver.name)
			}
			return nil
		})
	}
	for _, m := range byRoom["room-4"] {
		if got := m.received(func(p userPush) bool { return p.Route == "onLeave" }); len(got) != 0 {
			t.Fatalf("%s in room-4 got %v", m.name, got)
		}
	}

	// The master lists the sessions it heard about in heartbeats.
	eventually(t, "connection counts", func() error {
		conns := 0
		for _, s := range cl.List().Servers {
			if strings.HasPrefix(s.Info.Id, "connector") {
				conns += int(s.Connections)
			}
		}
		if conns != users { // 50 entered + 1 duplicate still connected - 1 leaver
			return fmt.Errorf("connectors report %d sessions, want %d", conns, users)
		}
		return nil
	})

	// master stop: clients are kicked with a reason, every process exits.
	pids := cl.knownPids()
	kicked := make(chan string, 1)
	probe, err := client.Dial(ctx, cl.Connectors[0], client.Options{OnKick: func(r string) {
		select {
		case kicked <- r:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	if out, err := cl.Master(60*time.Second, "stop"); err != nil {
		t.Fatalf("master stop: %v\n%s", err, out)
	}
	select {
	case r := <-kicked:
		if r == "" {
			t.Fatal("kicked without a reason")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a connected client was not kicked on master stop")
	}
	if len(pids) != 6 {
		t.Fatalf("expected 6 processes (master + 5 servers), knew %v", pids)
	}
	for name, pid := range pids {
		if alive(pid) {
			t.Fatalf("%s (pid %d) still running after master stop", name, pid)
		}
	}
}

// TestConcurrentEntersSeeEachOther: users entering one room at the same
// time must each end up knowing every member, from the enter reply plus the
// onAdd pushes (chatofpomelo's client builds its user list that way).
func TestConcurrentEntersSeeEachOther(t *testing.T) {
	cl := StartChatCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const users, rooms = 60, 2
	all := make([]*chatUser, users)
	errs := make(chan error, users)
	var wg sync.WaitGroup
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name, rid := fmt.Sprintf("c%02d", i), fmt.Sprintf("room-%d", i%rooms)
			g, err := client.Dial(ctx, cl.GateAddr, client.Options{})
			if err != nil {
				errs <- err
				return
			}
			var e entry
			err = g.RequestJSON(ctx, "gate.gateHandler.queryEntry", map[string]string{"uid": name}, &e)
			g.Close()
			if err != nil || e.Code != 200 {
				errs <- fmt.Errorf("queryEntry %s: %v %+v", name, err, e)
				return
			}
			u := &chatUser{name: name, rid: rid, connector: fmt.Sprintf("%s:%d", e.Host, e.Port)}
			if u.c, err = client.Dial(ctx, u.connector, client.Options{Transport: client.TransportWS, OnPush: u.onPush}); err != nil {
				errs <- err
				return
			}
			var r enterReply
			if err := u.c.RequestJSON(ctx, "connector.entryHandler.enter", map[string]string{"username": name, "rid": rid}, &r); err != nil || len(r.Users) == 0 {
				errs <- fmt.Errorf("enter %s: %v %+v", name, err, r)
				return
			}
			u.users = r.Users
			all[i] = u
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, u := range all {
		t.Cleanup(func() { u.c.Close() })
	}
	for _, u := range all {
		want := map[string]bool{}
		for _, o := range all {
			if o.rid == u.rid {
				want[o.name] = true
			}
		}
		eventually(t, "every member known", func() error {
			seen := map[string]bool{}
			for _, n := range u.users {
				seen[n] = true
			}
			for _, p := range u.received(func(p userPush) bool { return p.Route == "onAdd" }) {
				seen[p.User] = true
			}
			if !maps.Equal(seen, want) {
				return fmt.Errorf("%s knows %d of the %d members of %s", u.name, len(seen), len(want), u.rid)
			}
			return nil
		})
	}
}
