package rpc

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shaddock/shaddock/internal/leakcheck"
	"github.com/shaddock/shaddock/proto/clusterpb"
)

// TestCloseWaitsForItsGoroutines: once Close returns, nothing the node
// started still runs: health watches, stream receivers, handlers in flight,
// the retry of a kick to a frontend that cannot be reached.
func TestCloseWaitsForItsGoroutines(t *testing.T) {
	fe, be, front := startNodes(t)
	ctx := context.Background()
	if _, err := fe.Call(ctx, "be-1", &clusterpb.CallRequest{Route: "chat.r.m", Body: nil}); err != nil {
		t.Fatal(err)
	}
	// A forward in flight when the backend closes.
	inflight := make(chan error, 1)
	go func() {
		_, err := fe.Forward(ctx, "be-1", &clusterpb.ForwardRequest{Route: "chat.h.slow", Session: &clusterpb.Session{}})
		inflight <- err
	}()
	// Pushes lost with their stream while the frontend is gone: the backend
	// keeps retrying the kick of their sessions.
	release := make(chan struct{})
	front.mu.Lock()
	front.hold = release
	front.mu.Unlock()
	be.PushMany(ctx, map[string]*clusterpb.PushRequest{"fe-1": {Route: "onChat", SessionIds: []int64{3}}}, false)
	// Close ends the frontend's streams at once, and waits for the push
	// its feed is handling (the frontend's Push holds it until released).
	closed := make(chan struct{})
	go func() { fe.Close(); close(closed) }()
	waitUntil(t, "the kick retry", func() bool { return be.routines.Running() > 1 })
	close(release)
	<-closed
	time.Sleep(20 * time.Millisecond)

	be.Close()
	<-inflight
	var ours []string
	for _, g := range leakcheck.Leaked() {
		if strings.Contains(g, "shaddock/shaddock/rpc.") && !strings.Contains(g, "TestCloseWaitsForItsGoroutines") {
			ours = append(ours, g)
		}
	}
	if len(ours) > 0 {
		t.Fatalf("%d goroutines of the nodes still run after Close:\n\n%s", len(ours), strings.Join(ours, "\n\n"))
	}
}
