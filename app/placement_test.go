package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/rpc"
)

// kickSession is a session that records its kick.
type kickSession struct {
	fakeSession
	id int64

	mu     sync.Mutex
	reason string
}

func newKickSession(id int64, rid string) *kickSession {
	return &kickSession{fakeSession: fakeSession{settings: map[string]string{"rid": rid}}, id: id}
}

func (s *kickSession) ID() int64 { return s.id }

func (s *kickSession) Kick(ctx context.Context, reason string) error {
	s.mu.Lock()
	s.reason = reason
	s.mu.Unlock()
	return nil
}

func (s *kickSession) kicked() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

func waitKick(t *testing.T, s *kickSession, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.kicked() != want {
		if time.Now().After(deadline) {
			t.Fatalf("session %d: kicked with %q, want %q", s.id, s.kicked(), want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Sessions are kicked with a reason as soon as the server their key is
// placed on ends; a draining one keeps them.
func TestSessionsPlacedOnAnEndedServerAreKicked(t *testing.T) {
	mem := rpc.NewMembership()
	up := func(id string, epoch uint64, st rpc.State) {
		mem.Upsert(rpc.Member{ID: id, Type: "chat", Epoch: epoch, State: st})
	}
	up("chat-1", 1, rpc.StateRunning)
	up("chat-2", 1, rpc.StateRunning)
	up("chat-3", 1, rpc.StateRunning)
	p := newPlacements(mem, slog.Default())
	defer p.close()
	s1, s2, s3, s4 := newKickSession(1, "r1"), newKickSession(2, "r1"), newKickSession(3, "r2"), newKickSession(4, "r3")
	p.pin(s1, "chat", "r1", rpc.Instance{ID: "chat-1", Epoch: 1})
	p.pin(s2, "chat", "r1", rpc.Instance{ID: "chat-1", Epoch: 1})
	p.pin(s3, "chat", "r2", rpc.Instance{ID: "chat-2", Epoch: 1})
	p.pin(s4, "chat", "r3", rpc.Instance{ID: "chat-3", Epoch: 1})
	if inst, ok := p.cached("chat", "r1"); !ok || inst.ID != "chat-1" {
		t.Fatalf("cached r1: %v %v", inst, ok)
	}

	up("chat-2", 1, rpc.StateDraining) // serves what it holds
	up("chat-1", 1, rpc.StateLost)
	waitKick(t, s1, ReasonServerRestarted)
	waitKick(t, s2, ReasonServerRestarted)
	if _, ok := p.cached("chat", "r1"); ok {
		t.Fatal("a key still placed on a lost server")
	}
	up("chat-3", 2, rpc.StateStarting) // restarted: a new epoch
	waitKick(t, s4, ReasonServerRestarted)
	if s3.kicked() != "" {
		t.Fatalf("a session on a draining server was kicked: %q", s3.kicked())
	}
	up("chat-2", 1, rpc.StateStopping) // its drain timed out
	waitKick(t, s3, ReasonServerStopped)

	// Closed sessions are forgotten; the key's count goes with them.
	for _, s := range []*kickSession{s1, s2, s3, s4} {
		p.forget(s.ID())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.bySession)+len(p.byInst)+len(p.byKey) != 0 {
		t.Fatalf("left over: %v %v %v", p.bySession, p.byInst, p.byKey)
	}
}

// A frontend routes a session of a stateful type to where its key is:
// the holder if any, else Pomelo's crc32 placement; then to its pin.
func TestFrontendPlacesSessionKeys(t *testing.T) {
	held := map[string]map[string]int64{"chat-1": {}, "chat-2": {}}
	var heldMu sync.Mutex
	members := startChatNodes(t, []string{"chat-1", "chat-2"}, func(id, key string) int64 {
		heldMu.Lock()
		defer heldMu.Unlock()
		return held[id][key]
	})
	members = append(members, rpc.Member{ID: "connector-1", Type: "connector", Frontend: true, State: rpc.StateRunning, Host: "127.0.0.1", Port: 1})
	mem := rpc.NewMembership()
	mem.Replace(members)
	node, err := rpc.NewNode(rpc.Config{Self: members[2], Secret: "s", Membership: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	mux := handler.NewMux()
	mux.Handle("chat.chatHandler.send", func(ctx context.Context, r handler.Request) ([]byte, error) { return nil, nil })
	mux.Seal()
	st := map[string]stateful{"chat": {setting: "rid"}}
	f := newFrontend("connector", node, mux, nil, st, slog.Default())
	defer f.close()
	ctx := context.Background()
	ids := []string{"chat-1", "chat-2"}

	// A key that is new: Pomelo's placement.
	fresh := newKickSession(1, "lobby")
	inst, err := f.target(ctx, fresh, "chat", handler.Request{Session: fresh})
	if err != nil || inst.ID != ids[rpc.PickIndex("lobby", 2)] {
		t.Fatalf("fresh key on %v (%v), want %s", inst, err, ids[rpc.PickIndex("lobby", 2)])
	}
	// A key that another server holds goes there, not where crc32 says.
	key := "r0"
	for i := 0; rpc.PickIndex(key, 2) != 0; i++ {
		key = "r" + string(rune('a'+i))
	}
	heldMu.Lock()
	held["chat-2"][key] = 4
	heldMu.Unlock()
	s := newKickSession(2, key)
	if inst, err := f.target(ctx, s, "chat", handler.Request{Session: s}); err != nil || inst != (rpc.Instance{ID: "chat-2", Epoch: 2}) {
		t.Fatalf("held key on %v (%v), want chat-2#2", inst, err)
	}
	// Another session with that key is placed from the frontend's own
	// record, without asking (chat-2 no longer says it holds it).
	heldMu.Lock()
	held["chat-2"][key] = 0
	heldMu.Unlock()
	s2 := newKickSession(3, key)
	if inst, err := f.target(ctx, s2, "chat", handler.Request{Session: s2}); err != nil || inst.ID != "chat-2" {
		t.Fatalf("second session on %v (%v)", inst, err)
	}
	// The connector's AsyncHandler forwards the messages of pinned sessions
	// without a goroutine waiting, and leaves the others to serve, which
	// places them (and may ask the cluster).
	send := handler.Request{Route: "chat.chatHandler.send"}
	unpinned := newKickSession(5, "elsewhere")
	send.Session = unpinned
	if f.start(ctx, send, func([]byte, error) { t.Error("done called for a declined message") }) {
		t.Fatal("start took the message of an unpinned session")
	}
	answered := make(chan error, 2)
	send.Session = s2
	if !f.start(ctx, send, func(_ []byte, err error) { answered <- err }) {
		t.Fatal("start declined the message of a pinned session")
	}
	select {
	case err := <-answered: // chat-2 serves no forwards here: an error, once
		var herr *handler.Error
		if !errors.As(err, &herr) || herr.Code != handler.CodeNotFound {
			t.Fatalf("forward to a server without handlers: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the forwarded message was never answered")
	}
	// No key: 400. A server that cannot be reached: 503, no new placement.
	none := &kickSession{fakeSession: fakeSession{settings: map[string]string{}}, id: 4}
	var herr *handler.Error
	if _, err := f.target(ctx, none, "chat", handler.Request{Session: none}); !errors.As(err, &herr) || herr.Code != handler.CodeBadRequest {
		t.Fatalf("no key: %v", err)
	}
	mem.SetDown("chat-2", true)
	if _, err := f.target(ctx, s, "chat", handler.Request{Session: s}); !errors.As(err, &herr) || herr.Code != handler.CodeUnavailable {
		t.Fatalf("pinned server down: %v", err)
	}
	send.Session = s
	var downErr error
	if !f.start(ctx, send, func(_ []byte, err error) { downErr = err }) || !errors.As(downErr, &herr) || herr.Code != handler.CodeUnavailable {
		t.Fatalf("start for a pinned server that is down: %v, want a 503 before it returns", downErr)
	}
	// It ends: its sessions are kicked.
	mem.Upsert(rpc.Member{ID: "chat-2", Type: "chat", State: rpc.StateLost, Epoch: 2, Host: "127.0.0.1", Port: members[1].Port})
	waitKick(t, s, ReasonServerRestarted)
	waitKick(t, s2, ReasonServerRestarted)
}

// startChatNodes serves chat servers with the given ids (epochs 1, 2, ...),
// each holding what holds says, until the test ends; it returns their
// members.
func startChatNodes(tb testing.TB, ids []string, holds func(id, key string) int64) []rpc.Member {
	var members []rpc.Member
	lns := map[string]net.Listener{}
	for i, id := range ids {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		lns[id] = ln
		members = append(members, rpc.Member{ID: id, Type: "chat", State: rpc.StateRunning, Epoch: uint64(i + 1),
			Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port})
	}
	for i, id := range ids {
		mem := rpc.NewMembership()
		mem.Replace(members)
		n, err := rpc.NewNode(rpc.Config{Self: members[i], Secret: "s", Membership: mem})
		if err != nil {
			tb.Fatal(err)
		}
		served := make(chan struct{})
		go func() {
			defer close(served)
			n.Serve(lns[id], rpc.Handlers{Holds: func(key string) (int64, error) { return holds(id, key), nil }})
		}()
		tb.Cleanup(func() { n.Close(); <-served })
	}
	return members
}
