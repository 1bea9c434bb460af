//go:build linux

package connector

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/shaddock/shaddock/protocol"
)

func parkedCount(srv *testServer) (n int) {
	srv.mu.RLock()
	defer srv.mu.RUnlock()
	for _, s := range srv.sessions {
		if s.parked.Load() {
			n++
		}
	}
	return n
}

// Idle sessions give up their reader goroutines to the idle poller, and
// get one back as soon as they send: requests, heartbeats and WebSocket
// frames work as before, on both transports.
func TestIdleSessionsPark(t *testing.T) {
	for _, useWS := range []bool{false, true} {
		srv := startServer(t, Config{Heartbeat: time.Minute, idleAfter: 30 * time.Millisecond})
		before := runtime.NumGoroutine()
		const n = 20
		clients := make([]*rawClient, n)
		for i := range clients {
			clients[i] = dialRaw(t, srv.addr, useWS)
			clients[i].handshake()
		}
		waitFor(t, "every session parked", func() bool { return parkedCount(srv) == n })
		// No goroutine per parked session (the clients' own are not counted
		// by rawClient: it reads on the test goroutine).
		// Polled: a reader publishes parked a moment before it returns.
		g := runtime.NumGoroutine()
		for deadline := time.Now().Add(2 * time.Second); g > before+5 && time.Now().Before(deadline); g = runtime.NumGoroutine() {
			time.Sleep(5 * time.Millisecond)
		}
		if g > before+5 {
			t.Errorf("ws=%v: %d goroutines with %d parked sessions, %d before", useWS, g, n, before)
		}
		for round := range 3 {
			for i, c := range clients {
				id := uint64(round*n + i + 1)
				if m := c.request(id, "connector.echo.echo", `"hi"`); string(m.Body) != `"hi"` {
					t.Fatalf("reply %q", m.Body)
				}
				c.sendPkg(protocol.Heartbeat, nil)
				c.expect(protocol.Heartbeat)
			}
			waitFor(t, "sessions parked again", func() bool { return parkedCount(srv) == n })
		}
		// Parked sessions hold no queue arrays. (Polled: the reader
		// publishes parked before it releases them.)
		var holding string
		held := func() bool {
			holding = ""
			srv.mu.RLock()
			defer srv.mu.RUnlock()
			for _, s := range srv.sessions {
				s.qmu.Lock()
				s.wmu.Lock()
				if s.inq != nil || cap(s.wq) > idleWriteQueue {
					holding = fmt.Sprintf("parked session %d holds queues: in cap %d, write cap %d", s.id, cap(s.inq), cap(s.wq))
				}
				s.wmu.Unlock()
				s.qmu.Unlock()
			}
			return holding != ""
		}
		for deadline := time.Now().Add(2 * time.Second); held() && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		if holding != "" {
			t.Error(holding)
		}
		// A parked session that the client closes goes away.
		clients[0].conn.Close()
		waitFor(t, "closed session gone", func() bool { return srv.Len() == n-1 })
	}
}

// A parked session is closed once it has been silent for the heartbeat
// timeout, neither before nor much later, and the close is logged as a
// heartbeat timeout.
func TestParkedHeartbeatTimeout(t *testing.T) {
	const timeout = time.Second
	srv := startServer(t, Config{Heartbeat: timeout, HeartbeatTimeout: timeout, idleAfter: 30 * time.Millisecond})
	c := dialRaw(t, srv.addr, false)
	c.handshake()
	c.sendPkg(protocol.Heartbeat, nil)
	last := time.Now()
	c.expect(protocol.Heartbeat)
	waitFor(t, "session parked", func() bool { return parkedCount(srv) == 1 })
	c.expectClosed()
	silent := time.Since(last)
	if silent < timeout-20*time.Millisecond || silent > timeout+timeout/4 {
		t.Fatalf("closed after %v of silence, want %v", silent, timeout)
	}
	contains(t, srv.logs, "heartbeat timeout; closing")
}

// Pushes and kicks reach parked sessions (writes do not need the reader),
// and a graceful shutdown with parked sessions kicks them and returns.
func TestParkedSessionsPushAndShutdown(t *testing.T) {
	srv := startServer(t, Config{Heartbeat: time.Minute, idleAfter: 30 * time.Millisecond})
	var clients []*rawClient
	for _, useWS := range []bool{false, true, false, true} {
		c := dialRaw(t, srv.addr, useWS)
		c.handshake()
		clients = append(clients, c)
	}
	waitFor(t, "sessions parked", func() bool { return parkedCount(srv) == len(clients) })
	if err := srv.Broadcast("onPush", []byte(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if m := c.expectMsg(protocol.Push); string(m.Body) != `{"x":1}` {
			t.Fatalf("push %q", m.Body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, c := range clients {
		c.expect(protocol.Kick)
		c.expectClosed()
	}
}

// A burst of only heartbeats parks the session at once (its client is
// idle); one with a request keeps the reader until the session is silent
// for idleAfter.
func TestHeartbeatParksAtOnce(t *testing.T) {
	for _, useWS := range []bool{false, true} {
		srv := startServer(t, Config{Heartbeat: time.Minute, idleAfter: time.Hour})
		c := dialRaw(t, srv.addr, useWS)
		c.handshake()
		c.request(1, "connector.echo.echo", `"a"`)
		time.Sleep(50 * time.Millisecond)
		if n := parkedCount(srv); n != 0 {
			t.Fatalf("ws=%v: a session that just made a request parked", useWS)
		}
		c.sendPkg(protocol.Heartbeat, nil)
		c.expect(protocol.Heartbeat)
		waitFor(t, "session parked after a heartbeat", func() bool { return parkedCount(srv) == 1 })
		if m := c.request(2, "connector.echo.echo", `"b"`); string(m.Body) != `"b"` {
			t.Fatalf("reply %q", m.Body)
		}
	}
}

// A heartbeat followed by part of a package does not park the session:
// the rest is read by the same reader.
func TestNoParkMidPackage(t *testing.T) {
	srv := startServer(t, Config{Heartbeat: time.Minute, idleAfter: time.Hour})
	c := dialRaw(t, srv.addr, false)
	c.handshake()
	hb, _ := protocol.EncodePackage(protocol.Heartbeat, nil)
	msg, err := protocol.EncodeDataPackage(&protocol.Message{Type: protocol.Request, ID: 7, Route: "connector.echo.echo", Body: []byte(`"x"`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.send(append(hb, msg[:3]...))
	c.expect(protocol.Heartbeat)
	time.Sleep(50 * time.Millisecond)
	if n := parkedCount(srv); n != 0 {
		t.Fatal("parked in the middle of a package")
	}
	c.send(msg[3:])
	if m := c.expectMsg(protocol.Response); m.ID != 7 || string(m.Body) != `"x"` {
		t.Fatalf("response %d %q", m.ID, m.Body)
	}
}
