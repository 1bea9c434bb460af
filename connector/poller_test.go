//go:build linux

package connector

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// Working sessions are read by the server's poller: an idle one holds no
// goroutine (each used to hold a parked reader, 2 KiB of stack and more),
// and every one of them still answers, over TCP and WebSocket.
func TestIdleWorkingSessionsHoldNoGoroutine(t *testing.T) {
	for _, useWS := range []bool{false, true} {
		t.Run(fmt.Sprintf("ws=%v", useWS), func(t *testing.T) {
			srv := startServer(t, Config{Heartbeat: 10 * time.Second})
			const n = 60
			clients := make([]*rawClient, n)
			settle := func() int {
				time.Sleep(50 * time.Millisecond)
				return runtime.NumGoroutine()
			}
			before := settle()
			for i := range clients {
				clients[i] = dialRaw(t, srv.addr, useWS)
				clients[i].handshake()
			}
			waitFor(t, "every session polled", func() bool {
				srv.mu.RLock()
				defer srv.mu.RUnlock()
				polled := 0
				for _, s := range srv.sessions {
					if s.polled.Load() != nil {
						polled++
					}
				}
				return polled == n
			})
			// The test's own clients read synchronously: any growth is the
			// server's. A few goroutines may come and go (dispatch workers).
			if after := settle(); after-before > n/10 {
				t.Fatalf("%d goroutines before %d idle sessions, %d after: they are not polled", before, n, after)
			}
			for i, c := range clients {
				if m := c.request(uint64(i+1), "connector.echo.echo", `{"i":1}`); string(m.Body) != `{"i":1}` {
					t.Fatalf("session %d: echo %s", i, m.Body)
				}
			}
			// A client that closes is noticed by the poller.
			clients[0].conn.Close()
			waitFor(t, "closed session gone", func() bool { return srv.Len() == n-1 })
		})
	}
}

// A polled session that sends more than one read takes arrives whole: the
// poller reads once per wake-up, and a socket with bytes left is reported
// again (the set is level-triggered).
func TestPolledSessionLargeRequest(t *testing.T) {
	srv := startServer(t, Config{})
	c := dialRaw(t, srv.addr, false)
	c.handshake()
	waitFor(t, "session polled", func() bool {
		srv.mu.RLock()
		defer srv.mu.RUnlock()
		for _, s := range srv.sessions {
			return s.polled.Load() != nil
		}
		return false
	})
	big := make([]byte, 3*readBufSize)
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	body := `"` + string(big) + `"`
	for id := uint64(1); id <= 3; id++ {
		if m := c.request(id, "connector.echo.echo", body); string(m.Body) != body {
			t.Fatalf("request %d: echo of %d bytes came back as %d", id, len(body), len(m.Body))
		}
	}
}
