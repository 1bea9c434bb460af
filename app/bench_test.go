package app

import (
	"context"
	"log/slog"
	"testing"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/rpc"
)

// The per-message routing decision of a frontend: a stateful type's pinned
// session against hash routing by a setting (what chat used before).
// Run: go test -run=^$ -bench=Target -benchmem ./app
func benchFrontend(b *testing.B, st map[string]stateful, routes map[string]rpc.RouteFunc) *frontend {
	mem := rpc.NewMembership()
	mem.Replace(startChatNodes(b, []string{"chat-1", "chat-2"}, func(string, string) int64 { return 0 }))
	node, err := rpc.NewNode(rpc.Config{Self: rpc.Member{ID: "connector-1", Type: "connector", Frontend: true}, Secret: "s", Membership: mem})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(node.Close)
	mux := handler.NewMux()
	mux.Seal()
	f := newFrontend("connector", node, mux, routes, st, slog.Default())
	b.Cleanup(f.close)
	return f
}

func BenchmarkTargetStatefulPinned(b *testing.B) {
	f := benchFrontend(b, map[string]stateful{"chat": {setting: "rid"}}, nil)
	s := newKickSession(1, "room-3")
	f.pins.pin(s, "chat", "room-3", rpc.Instance{ID: "chat-1", Epoch: 1})
	r := handler.Request{Route: "chat.chatHandler.send", Session: s}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.target(ctx, s, "chat", r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTargetRouteBySetting(b *testing.B) {
	f := benchFrontend(b, nil, map[string]rpc.RouteFunc{"chat": rpc.RouteBySetting("rid")})
	s := newKickSession(1, "room-3")
	r := handler.Request{Route: "chat.chatHandler.send", Session: s}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.target(ctx, s, "chat", r); err != nil {
			b.Fatal(err)
		}
	}
}
