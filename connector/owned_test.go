package connector

import (
	"strings"
	"testing"
	"time"

	"github.com/shaddock/shaddock/internal/leakcheck"
	"github.com/shaddock/shaddock/protocol"
)

// TestCloseWaitsForItsGoroutines: once Close returns, nothing the server
// started still runs: readers (also mid-burst and mid-handshake), session
// workers, waiting writers, flushers.
func TestCloseWaitsForItsGoroutines(t *testing.T) {
	// An earlier test's server may still be unwinding the goroutine that
	// told its Close that all had ended: let those go first.
	if leaked := leakcheck.Wait(5 * time.Second); leaked != "" {
		t.Fatalf("goroutines of earlier tests still run:\n\n%s", leaked)
	}
	srv := startServer(t, Config{})
	var clients []*rawClient
	for i := range 6 {
		c := dialRaw(t, srv.addr, i%2 == 0)
		if i < 4 {
			c.handshake()
			c.request(1, "connector.echo.echo", `{"n":1}`)
		}
		clients = append(clients, c) // the others stay mid-handshake
	}
	// A session busy in a handler when the server closes.
	clients[0].sendMsg(protocol.Message{Type: protocol.Request, ID: 2, Route: "connector.echo.slow"})
	time.Sleep(20 * time.Millisecond)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	// A worker that has just told the pool it is done may still be on
	// its way out for a few microseconds: what counts is what is still
	// there a moment later (a blocked reader or writer stays).
	var ours []string
	for deadline := time.Now().Add(50 * time.Millisecond); ; time.Sleep(5 * time.Millisecond) {
		ours = ours[:0]
		for _, g := range leakcheck.Leaked() {
			if strings.Contains(g, "shaddock/shaddock/") && !strings.Contains(g, "connector.(*rawClient)") {
				ours = append(ours, g)
			}
		}
		if len(ours) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(ours) > 0 {
		t.Fatalf("%d goroutines of the server still run after Close:\n\n%s", len(ours), strings.Join(ours, "\n\n"))
	}
}
