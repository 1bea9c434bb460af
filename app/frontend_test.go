package app

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"testing"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/internal/packedmap"
	"github.com/shaddock/shaddock/rpc"
)

// fakeSession is enough of a session for routing decisions.
type fakeSession struct {
	handler.Session
	settings map[string]string
}

func (s fakeSession) Get(k string) (string, bool) { v, ok := s.settings[k]; return v, ok }
func (s fakeSession) UID() string                 { return "" }
func (s fakeSession) ID() int64                   { return 1 }
func (s fakeSession) FrontendID() string          { return "connector-1" }

// Clients get the right code for routes this connector cannot serve, and
// no internal text.
func TestFrontendRouteErrors(t *testing.T) {
	mux := handler.NewMux()
	ok := func(ctx context.Context, r handler.Request) ([]byte, error) { return []byte("{}"), nil }
	for _, r := range []string{"connector.entryHandler.enter", "gate.gateHandler.queryEntry", "chat.chatHandler.send", "area.h.m"} {
		mux.Handle(r, ok)
	}
	mux.Seal()
	// A live chat server, so that it stays eligible: routing to it is
	// decided by the route function.
	members := append(startChatNodes(t, []string{"chat-1"}, func(string, string) int64 { return 0 }),
		rpc.Member{ID: "connector-1", Type: "connector", Frontend: true, State: rpc.StateRunning, Host: "127.0.0.1", Port: 1},
		rpc.Member{ID: "gate-1", Type: "gate", Frontend: true, State: rpc.StateRunning, Host: "127.0.0.1", Port: 2})
	mem := rpc.NewMembership()
	mem.Replace(members)
	node, err := rpc.NewNode(rpc.Config{Self: members[1], Secret: "s", Membership: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	f := newFrontend("connector", node, mux, map[string]rpc.RouteFunc{"chat": rpc.RouteBySetting("rid")}, nil, slog.Default())
	defer f.close()
	for _, tc := range []struct {
		route string
		code  int
	}{
		{"chat.nosuchHandler.x", handler.CodeNotFound},        // no such route anywhere
		{"gate.gateHandler.queryEntry", handler.CodeNotFound}, // another frontend's route
		{"chat.chatHandler.send", handler.CodeBadRequest},     // the route function's own answer: no rid
		{"area.h.m", handler.CodeUnavailable},                 // no area server
	} {
		_, err := f.serve(context.Background(), handler.Request{Route: tc.route, Session: fakeSession{}})
		var herr *handler.Error
		if !errors.As(err, &herr) || herr.Code != tc.code {
			t.Fatalf("%s: %v, want code %d", tc.route, err, tc.code)
		}
		if body := string(handler.ErrorBody(err)); strings.Contains(body, "rpc error") || strings.Contains(body, "gate-1") {
			t.Fatalf("%s: client body %s", tc.route, body)
		}
	}
}

// viewSession is a session of neither kind the framework packs itself: its
// settings are packed from its view.
type viewSession struct{ fakeSession }

func (s viewSession) SettingsView() map[string]string { return s.settings }

// The snapshot sent with a forwarded message carries the settings packed,
// from a session that packs them (connector, backend) or from its view.
func TestSessionSnapshotSettings(t *testing.T) {
	want := map[string]string{"rid": "room-1", "team": "blue"}
	for _, s := range []handler.Session{
		viewSession{fakeSession{settings: want}},
		packingSession{fakeSession{settings: want}},
	} {
		snap := sessionSnapshot(s)
		if got := packedmap.Map(snap.Settings); !maps.Equal(got, want) || snap.FrontendId != "connector-1" || snap.Id != 1 {
			t.Fatalf("%T: snapshot %+v, settings %v", s, snap, got)
		}
	}
	if snap := sessionSnapshot(fakeSession{}); snap.Settings != nil {
		t.Fatalf("no settings: %q", snap.Settings)
	}
}

type packingSession struct{ fakeSession }

func (s packingSession) PackedSettings() []byte { return packedmap.Pack(s.settings) }

// packedSession holds its settings packed already, as connector sessions do.
type packedSession struct {
	fakeSession
	packed []byte
}

func (s packedSession) PackedSettings() []byte { return s.packed }

// forwardOf runs for every forwarded message: the forward and its session
// snapshot are one allocation, and carry the request, the target's epoch
// and the session.
func TestForwardOfIsOneAllocation(t *testing.T) {
	packed := packedmap.Pack(map[string]string{"rid": "room-1"})
	r := handler.Request{Route: "chat.chatHandler.send", Body: []byte(`{"content":"hi"}`), Notify: true,
		Session: packedSession{packed: packed}}
	target := rpc.Instance{ID: "chat-1", Epoch: 7}
	fw := forwardOf(r, target)
	if fw.Route != r.Route || string(fw.Body) != string(r.Body) || !fw.Notify || fw.TargetEpoch != 7 ||
		fw.Session == nil || fw.Session.FrontendId != "connector-1" || fw.Session.Id != 1 || string(fw.Session.Settings) != string(packed) {
		t.Fatalf("forward %v", fw)
	}
	if n := testing.AllocsPerRun(100, func() { fw = forwardOf(r, target) }); n != 1 {
		t.Fatalf("forwardOf: %v allocations, want 1", n)
	}
}
