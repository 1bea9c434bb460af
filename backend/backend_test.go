package backend

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/internal/packedmap"
	"github.com/shaddock/shaddock/proto/clusterpb"
	"github.com/shaddock/shaddock/rpc"
)

// fakeCluster records what a backend sends to frontends (a unit-test stand-in
// for rpc.Node; the e2e tests run the real one).
type fakeCluster struct {
	mem *rpc.Membership

	mu      sync.Mutex
	pushes  map[string][]*clusterpb.PushRequest // by frontend
	online  map[string]bool                     // uids with a session
	binds   []string
	kicked  []int64
	later   []string // KickEventually calls: "inst: sessions uids"
	checks  []string // Check calls
	gone    map[int64]bool
	hold    chan struct{} // when set, Check waits for it to close
	bindErr clusterpb.BindStatus
}

func newFake(online ...string) *fakeCluster {
	f := &fakeCluster{mem: rpc.NewMembership(), pushes: map[string][]*clusterpb.PushRequest{}, online: map[string]bool{}, gone: map[int64]bool{}}
	for _, u := range online {
		f.online[u] = true
	}
	return f
}

func (f *fakeCluster) PushMany(ctx context.Context, reqs map[string]*clusterpb.PushRequest, wait bool) (map[string]*clusterpb.PushReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]*clusterpb.PushReply{}
	for fe, r := range reqs {
		f.pushes[fe] = append(f.pushes[fe], r)
		if !wait {
			continue // one-way, as rpc.Node sends them: no replies
		}
		rep := &clusterpb.PushReply{}
		for _, u := range r.Uids {
			if !f.online[u] {
				rep.MissingUids = append(rep.MissingUids, u)
			}
		}
		for _, id := range r.SessionIds {
			if f.gone[id] {
				rep.MissingSessionIds = append(rep.MissingSessionIds, id)
			}
		}
		out[fe] = rep
	}
	return out, nil
}

func (f *fakeCluster) Bind(ctx context.Context, fe rpc.Instance, sid int64, uid string) (clusterpb.BindStatus, error) {
	f.binds = append(f.binds, uid)
	return f.bindErr, nil
}

func (f *fakeCluster) Kick(ctx context.Context, fe string, req *clusterpb.KickRequest) (int, error) {
	f.kicked = append(f.kicked, req.SessionIds...)
	return len(req.SessionIds), nil
}

func (f *fakeCluster) KickEventually(fe rpc.Instance, sids []int64, uids []string, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	slices.Sort(sids)
	f.later = append(f.later, fmt.Sprintf("%s: %v %v", fe, sids, uids))
}

func (f *fakeCluster) Check(ctx context.Context, fe rpc.Instance, sids []int64, uids []string) (*clusterpb.CheckReply, error) {
	f.mu.Lock()
	hold := f.hold
	f.mu.Unlock()
	if hold != nil {
		<-hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	slices.Sort(sids)
	f.checks = append(f.checks, fmt.Sprintf("%s: %v", fe, sids))
	rep := &clusterpb.CheckReply{}
	for _, id := range sids {
		if f.gone[id] {
			rep.GoneSessionIds = append(rep.GoneSessionIds, id)
		}
	}
	return rep, nil
}

func (f *fakeCluster) Membership() *rpc.Membership { return f.mem }

// member is a channel member: uid u on frontend fe (epoch 1), session sid.
func member(u, fe string, sid int64) Target {
	return Target{UID: u, FrontendID: fe, FrontendEpoch: 1, SessionID: sid}
}

func TestChannelPushOneMessagePerFrontendEncodedOnce(t *testing.T) {
	f := newFake("a*r", "b*r", "c*r")
	b := New(Config{ID: "chat-1", Cluster: f})
	ch := b.Channels().GetOrCreate("r")
	ch.Add(Target{UID: "a*r", FrontendID: "conn-1"})
	ch.Add(Target{UID: "b*r", FrontendID: "conn-2"})
	ch.Add(Target{UID: "c*r", FrontendID: "conn-1"})
	if ch.Add(Target{UID: "a*r", FrontendID: "conn-1"}) {
		t.Fatal("duplicate member added")
	}
	if err := ch.Push(context.Background(), "onChat", map[string]string{"msg": "hi"}); err != nil {
		t.Fatal(err)
	}
	if len(f.pushes["conn-1"]) != 1 || len(f.pushes["conn-2"]) != 1 {
		t.Fatalf("pushes per frontend: %v", f.pushes)
	}
	p1, p2 := f.pushes["conn-1"][0], f.pushes["conn-2"][0]
	if !slices.Equal(p1.Uids, []string{"a*r", "c*r"}) || !slices.Equal(p2.Uids, []string{"b*r"}) {
		t.Fatalf("uids: %v %v", p1.Uids, p2.Uids)
	}
	if string(p1.Body) != `{"msg":"hi"}` || &p1.Body[0] != &p2.Body[0] {
		t.Fatal("body not encoded once and shared")
	}
	// PushTo: only members, only the named ones.
	if err := ch.PushTo(context.Background(), "onChat", []byte(`{}`), "b*r", "stranger"); err != nil {
		t.Fatal(err)
	}
	if len(f.pushes["conn-1"]) != 1 || len(f.pushes["conn-2"]) != 2 {
		t.Fatalf("PushTo reached: %v", f.pushes)
	}
	// Leave keeps join order of the rest.
	ch.Leave("a*r")
	if got := ch.Members(); !slices.Equal(got, []string{"b*r", "c*r"}) {
		t.Fatalf("members %v", got)
	}
	if m, ok := ch.Member("c*r"); !ok || m.FrontendID != "conn-1" {
		t.Fatalf("Member: %+v %v", m, ok)
	}
}

func TestPushToUIDsReportsMissingSessions(t *testing.T) {
	f := newFake("a*r")
	b := New(Config{Cluster: f})
	err := b.Sessions().PushToUIDs(context.Background(), "onChat", []byte(`{}`),
		[]Target{{UID: "a*r", FrontendID: "conn-1"}, {UID: "gone*r", FrontendID: "conn-2"}})
	if !errors.Is(err, handler.ErrSessionGone) || !strings.Contains(err.Error(), "gone*r") {
		t.Fatalf("err = %v", err)
	}
	// A channel push does not wait for the frontends: it reports nothing
	// about members that left (Pomelo's pushMessage does not either).
	ch := b.Channels().GetOrCreate("r")
	ch.Add(Target{UID: "gone*r", FrontendID: "conn-1"})
	if err := ch.Push(context.Background(), "onChat", []byte(`{}`)); err != nil {
		t.Fatalf("channel push: %v", err)
	}
}

func TestForwardReturnsSettingsAndErrors(t *testing.T) {
	f := newFake()
	mux := handler.NewMux()
	mux.Handle("chat.h.set", func(ctx context.Context, r handler.Request) ([]byte, error) {
		if v, _ := r.Session.Get("rid"); v != "r1" {
			return nil, handler.Errorf(400, "snapshot lost rid")
		}
		r.Session.Set("score", "10")
		if v, _ := r.Session.Get("score"); v != "10" {
			return nil, handler.Errorf(400, "own change not visible")
		}
		// What a remote called for this session would get: both.
		want := map[string]string{"rid": "r1", "score": "10"}
		if got := packedmap.Map(r.Session.(interface{ PackedSettings() []byte }).PackedSettings()); !maps.Equal(got, want) {
			return nil, handler.Errorf(400, "packed settings %v", got)
		}
		if got := r.Session.(interface{ SettingsView() map[string]string }).SettingsView(); !maps.Equal(got, want) {
			return nil, handler.Errorf(400, "settings view %v", got)
		}
		return []byte(`"ok"`), r.Session.Bind(ctx, "u1")
	})
	mux.Handle("chat.h.boom", func(ctx context.Context, r handler.Request) ([]byte, error) { panic("x") })
	mux.Handle("chat.h.plain", func(ctx context.Context, r handler.Request) ([]byte, error) {
		return nil, errors.New("db down")
	})
	b := New(Config{Handlers: mux, Cluster: f})
	snap := &clusterpb.Session{FrontendId: "conn-1", Id: 3, Settings: packedmap.Pack(map[string]string{"rid": "r1"})}
	rep := b.Forward(context.Background(), &clusterpb.ForwardRequest{Route: "chat.h.set", Session: snap})
	if rep.Error != nil || string(rep.Body) != `"ok"` || rep.Settings["score"] != "10" || len(rep.Settings) != 1 {
		t.Fatalf("reply %+v", rep)
	}
	if !slices.Equal(f.binds, []string{"u1"}) {
		t.Fatalf("binds %v", f.binds)
	}
	f.bindErr = clusterpb.BindStatus_BIND_UID_TAKEN
	rep = b.Forward(context.Background(), &clusterpb.ForwardRequest{Route: "chat.h.set", Session: snap})
	if rep.Error == nil || rep.Error.Code != handler.CodeInternal {
		t.Fatalf("taken uid reply %+v", rep)
	}
	for _, route := range []string{"chat.h.boom", "chat.h.plain"} {
		rep = b.Forward(context.Background(), &clusterpb.ForwardRequest{Route: route, Session: snap})
		if rep.Error.GetCode() != 500 || rep.Error.GetMsg() != "internal server error" {
			t.Fatalf("%s: %+v", route, rep.Error)
		}
	}
	if rep := b.Forward(context.Background(), &clusterpb.ForwardRequest{Route: "chat.h.none"}); rep.Error.GetCode() != 404 {
		t.Fatalf("unknown route %+v", rep.Error)
	}
}

func TestBackendSessionBindStatusesAreSentinels(t *testing.T) {
	for st, want := range map[clusterpb.BindStatus]error{
		clusterpb.BindStatus_BIND_UID_TAKEN:     handler.ErrUIDBound,
		clusterpb.BindStatus_BIND_ALREADY_BOUND: handler.ErrAlreadyBound,
		clusterpb.BindStatus_BIND_SESSION_GONE:  handler.ErrSessionGone,
	} {
		f := newFake()
		f.bindErr = st
		s := newSession(&clusterpb.Session{FrontendId: "c", Id: 1}, f)
		if err := s.Bind(context.Background(), "u"); !errors.Is(err, want) {
			t.Errorf("%v: err = %v, want %v", st, err, want)
		}
		if s.UID() != "" {
			t.Errorf("%v: uid set after a failed bind", st)
		}
	}
}

// The rpc node asks the backend which forwards it may serve on the
// receiving goroutine: the routes registered as non-blocking.
func TestNonBlockingFollowsTheMux(t *testing.T) {
	mux := handler.NewMux()
	h := func(ctx context.Context, r handler.Request) ([]byte, error) { return nil, nil }
	mux.Handle("chat.h.waits", h)
	mux.HandleNonBlocking("chat.h.quick", h)
	b := New(Config{Handlers: mux, Cluster: newFake()})
	for route, want := range map[string]bool{"chat.h.waits": false, "chat.h.quick": true, "chat.h.none": false} {
		if got := b.NonBlocking(&clusterpb.ForwardRequest{Route: route}); got != want {
			t.Errorf("%s: NonBlocking %v, want %v", route, got, want)
		}
	}
}
