package connector

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shaddock/shaddock/protocol"
)

// A busy session pays one read(2) per burst: the reader does not try the
// drained socket again before it waits (readLoop). With one rc.Read per
// burst it would pay two, and this fails.
func TestOneReadPerBurst(t *testing.T) {
	for _, useWS := range []bool{false, true} {
		var reads atomic.Int64
		srv := startServer(t, Config{Heartbeat: time.Minute, idleAfter: time.Hour, onRead: func() { reads.Add(1) }})
		c := dialRaw(t, srv.addr, useWS)
		c.handshake()
		c.request(1, "connector.echo.echo", `"warm"`)
		const n = 100
		before := reads.Load()
		for i := range n {
			body := `"` + strconv.Itoa(i) + `"`
			if m := c.request(uint64(i+2), "connector.echo.echo", body); string(m.Body) != body {
				t.Fatalf("ws=%v: reply %q, want %q", useWS, m.Body, body)
			}
		}
		// A few spare: a readiness event can outlive the bytes it announced
		// when they arrive while the reader is reading.
		if got := reads.Load() - before; got > n+n/10 {
			t.Fatalf("ws=%v: %d reads for %d requests, want about one each", useWS, got, n)
		}
	}
}

// close from another goroutine while the reader is blocked inside its
// readiness callback (here: the dispatch queue is full) neither deadlocks
// nor leaves the socket open: the client sees the connection end, and the
// session finishes.
func TestCloseWhileReaderHandles(t *testing.T) {
	srv := startServer(t, Config{Heartbeat: time.Minute, idleAfter: time.Hour, MaxPending: 1})
	c := dialRaw(t, srv.addr, false)
	c.handshake()
	// The first request occupies the worker until its deadline or the
	// close; the next ones fill the queue, and the reader waits on it.
	var burst []byte
	for i := range 4 {
		b, err := protocol.EncodeDataPackage(&protocol.Message{Type: protocol.Request, ID: uint64(i + 1), Route: "connector.echo.slow"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		burst = append(burst, b...)
	}
	c.send(burst)
	var sess *Session
	waitFor(t, "the reader blocked on the full queue", func() bool {
		srv.mu.RLock()
		defer srv.mu.RUnlock()
		for _, s := range srv.sessions {
			sess = s
		}
		return sess != nil && sess.inLoop.Load() && queued(sess) >= 1
	})
	done := make(chan struct{})
	go func() {
		sess.close(errKicked)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("close blocked while the reader was inside its callback")
	}
	c.expectClosed()
	waitFor(t, "the reader left", func() bool { return !sess.inLoop.Load() })
}

func queued(s *Session) int {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return len(s.inq) - s.inHead
}
