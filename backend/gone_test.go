package backend

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/proto/clusterpb"
	"github.com/shaddock/shaddock/rpc"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// drops records what OnDrop reported.
type drops struct {
	mu  sync.Mutex
	got []string
}

func (d *drops) hook(ctx context.Context, ch *Channel, dropped []Target) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range dropped {
		d.got = append(d.got, ch.Name()+":"+t.UID)
	}
	slices.Sort(d.got)
}

func (d *drops) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.got)
}

// Entering again moves a member to its new session: pushes go there, and
// the old session leaving does not remove it.
func TestReenterMovesTheMember(t *testing.T) {
	f := newFake()
	b := New(Config{Cluster: f})
	defer b.Close()
	ch := b.Channels().GetOrCreate("r")
	old := member("a*r", "conn-1", 7)
	if !ch.Add(old) {
		t.Fatal("first add not new")
	}
	now := Target{UID: "a*r", FrontendID: "conn-2", FrontendEpoch: 3, SessionID: 2}
	if ch.Add(now) {
		t.Fatal("re-enter reported as a new member")
	}
	if m, _ := ch.Member("a*r"); m != now {
		t.Fatalf("member %+v, want %+v", m, now)
	}
	ch.Push(context.Background(), "onChat", []byte(`{}`))
	f.mu.Lock()
	p := f.pushes["conn-2"]
	f.mu.Unlock()
	if len(p) != 1 || fmt.Sprint(p[0].SessionIds) != "[2]" || p[0].Epoch != 3 || len(f.pushes["conn-1"]) != 0 {
		t.Fatalf("pushes %v", f.pushes)
	}
	if ch.Remove(old) {
		t.Fatal("the old session's leave removed the re-entered member")
	}
	if !ch.Remove(now) || ch.Len() != 0 {
		t.Fatal("the member's own session could not leave")
	}
}

// Members whose session a push found gone are dropped, and the game told.
func TestPushFoundNoSessionDropsTheMember(t *testing.T) {
	f := newFake()
	b := New(Config{Cluster: f})
	defer b.Close()
	d := &drops{}
	b.Channels().OnDrop(d.hook)
	r1, r2 := b.Channels().GetOrCreate("r1"), b.Channels().GetOrCreate("r2")
	r1.Add(member("a", "conn-1", 1))
	r1.Add(member("b", "conn-1", 2))
	r2.Add(member("a", "conn-1", 1))
	b.Gone(rpc.Instance{ID: "conn-1", Epoch: 1}, []int64{1}, nil)
	waitFor(t, "the drop", func() bool { return len(d.list()) == 2 })
	if got := d.list(); !slices.Equal(got, []string{"r1:a", "r2:a"}) {
		t.Fatalf("dropped %v", got)
	}
	if r1.Members()[0] != "b" || r2.Len() != 0 {
		t.Fatalf("left %v %v", r1.Members(), r2.Members())
	}
	// Another instance's session 2 is not this one's.
	b.Gone(rpc.Instance{ID: "conn-1", Epoch: 2}, []int64{2}, nil)
	time.Sleep(20 * time.Millisecond)
	if r1.Len() != 1 {
		t.Fatal("a report about another instance dropped a member")
	}
	h1, _ := b.Holds("r1")
	h2, _ := b.Holds("r2")
	h3, _ := b.Holds("none")
	if h1 != 1 || h2 != 0 || h3 != 0 {
		t.Fatalf("holds %d %d %d", h1, h2, h3)
	}
}

// When a frontend instance ends, its members are dropped at once; a lost
// one (perhaps only cut off) also gets its sessions kicked when reachable.
func TestEndedFrontendsMembersAreDropped(t *testing.T) {
	f := newFake()
	f.mem.Replace([]rpc.Member{
		{ID: "conn-1", Type: "connector", Frontend: true, Epoch: 1, State: rpc.StateRunning},
		{ID: "conn-2", Type: "connector", Frontend: true, Epoch: 1, State: rpc.StateRunning},
	})
	b := New(Config{Cluster: f})
	defer b.Close()
	d := &drops{}
	b.Channels().OnDrop(d.hook)
	ch := b.Channels().GetOrCreate("r")
	ch.Add(member("a", "conn-1", 1))
	ch.Add(member("b", "conn-2", 1))
	ch.Add(member("c", "conn-2", 2))

	// conn-2 restarted: epoch 2 is starting; epoch 1's sessions died.
	f.mem.Upsert(rpc.Member{ID: "conn-2", Type: "connector", Frontend: true, Epoch: 2, State: rpc.StateStarting})
	waitFor(t, "the drop", func() bool { return len(d.list()) == 2 })
	if got := ch.Members(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("members %v", got)
	}
	f.mu.Lock()
	later := slices.Clone(f.later)
	f.mu.Unlock()
	if len(later) != 0 {
		t.Fatalf("kicks requested for a replaced instance: %v", later)
	}
	// conn-1 is lost: dropped, and kicked when it can be reached.
	f.mem.Upsert(rpc.Member{ID: "conn-1", Type: "connector", Frontend: true, Epoch: 1, State: rpc.StateLost})
	waitFor(t, "the drop", func() bool { return ch.Len() == 0 })
	waitFor(t, "the kick request", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.later) == 1
	})
	if f.later[0] != "conn-1#1: [1] []" {
		t.Fatalf("kick requested: %v", f.later)
	}
	// A member of an instance this view does not know yet (its upsert is
	// late) is kept.
	ch.Add(Target{UID: "d", FrontendID: "conn-2", FrontendEpoch: 3, SessionID: 1})
	f.mem.SetDown("conn-2", true)
	time.Sleep(20 * time.Millisecond)
	if ch.Len() != 1 {
		t.Fatal("a member of a newer instance was dropped")
	}
}

// After it reconnects to the registry (a new snapshot) the backend checks
// every member's session with its frontend and drops the gone ones: it may
// have been declared lost meanwhile, and the sessions placed on it kicked.
func TestNewSnapshotChecksEverySession(t *testing.T) {
	f := newFake()
	members := []rpc.Member{{ID: "conn-1", Type: "connector", Frontend: true, Epoch: 1, State: rpc.StateRunning}}
	f.mem.Replace(members)
	b := New(Config{Cluster: f})
	defer b.Close()
	ch := b.Channels().GetOrCreate("r")
	for i := int64(1); i <= 4; i++ {
		ch.Add(member(fmt.Sprint("u", i), "conn-1", i))
	}
	f.mu.Lock()
	f.gone[2], f.gone[4] = true, true
	f.mu.Unlock()
	f.mem.Upsert(members[0]) // a change, not a snapshot: nothing checked
	time.Sleep(20 * time.Millisecond)
	f.mu.Lock()
	checks := len(f.checks)
	f.mu.Unlock()
	if checks != 0 {
		t.Fatal("sessions checked without a new snapshot")
	}
	f.mu.Lock()
	f.hold = make(chan struct{}) // the frontend takes its time to answer
	f.mu.Unlock()
	f.mem.Replace(members)
	// Meanwhile the rooms held may be left over: placement is told to wait.
	waitFor(t, "the check to start", func() bool {
		_, err := b.Holds("r")
		return err != nil
	})
	close(f.hold)
	// The check ends after it dropped the gone members: wait for its end,
	// not for the drop.
	waitFor(t, "the check", func() bool {
		_, err := b.Holds("r")
		return err == nil
	})
	if n, err := b.Holds("r"); err != nil || n != 2 {
		t.Fatalf("holds after the check: %d %v", n, err)
	}
	if got := ch.Members(); !slices.Equal(got, []string{"u1", "u3"}) {
		t.Fatalf("members %v", got)
	}
	if f.checks[0] != "conn-1#1: [1 2 3 4]" {
		t.Fatalf("checked %v", f.checks)
	}
}

// A remote called for a session gets it, with its frontend instance.
func TestRemoteCalledForASessionGetsIt(t *testing.T) {
	f := newFake()
	remotes := handler.NewMux()
	remotes.Handle("chat.r.add", handler.Typed(func(ctx context.Context, s handler.Session, req *struct{}) (*Target, error) {
		t := TargetOf(s)
		return &t, nil
	}))
	b := New(Config{Remotes: remotes, Cluster: f})
	defer b.Close()
	rep := b.Call(context.Background(), &clusterpb.CallRequest{Route: "chat.r.add", Body: []byte(`{}`),
		Session: &clusterpb.Session{FrontendId: "conn-1", FrontendEpoch: 4, Id: 9, Uid: "u"}})
	if rep.Error != nil || string(rep.Body) != `{"UID":"u","FrontendID":"conn-1","FrontendEpoch":4,"SessionID":9}` {
		t.Fatalf("reply %s %v", rep.Body, rep.Error)
	}
}
