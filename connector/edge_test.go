package connector

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/protocol"
)

// A WebSocket frame whose header claims more than the package limit closes
// the connection as soon as the header is read, with a log line; so does a
// fragmented message whose frames add up to more.
func TestWebSocketFrameOverTheLimitClosesAtOnce(t *testing.T) {
	header := func(op byte, fin bool, length uint64) []byte {
		b := []byte{op, 0x80 | 127}
		if fin {
			b[0] |= 0x80
		}
		b = binary.BigEndian.AppendUint64(b, length)
		return append(b, 1, 2, 3, 4) // mask
	}
	for name, frames := range map[string][][]byte{
		"2^62 bytes":          {header(opBinary, true, 1<<62)},
		"limit + 5":           {header(opBinary, true, 1024+protocol.HeaderLen+1)},
		"fragments add up":    {header(opBinary, false, 1000), make([]byte, 1000), header(opContinuation, true, 100)},
		"2^63 + 1 (negative)": {header(opBinary, true, 1<<63+1)},
	} {
		t.Run(name, func(t *testing.T) {
			srv := startServer(t, Config{MaxPackageSize: 1024, Heartbeat: time.Minute})
			c := dialRaw(t, srv.addr, true)
			c.handshake()
			start := time.Now()
			for _, f := range frames {
				if _, err := c.conn.Write(f); err != nil {
					t.Fatal(err)
				}
			}
			c.expectClosed()
			if d := time.Since(start); d > time.Second {
				t.Fatalf("closed after %v, not at once", d)
			}
			contains(t, srv.logs, "protocol violation")
		})
	}
	// At the limit is fine: one full package in one frame.
	srv := startServer(t, Config{MaxPackageSize: 1024})
	c := dialRaw(t, srv.addr, true)
	c.handshake()
	body := make([]byte, 1024-len("connector.echo.echo")-3)
	for i := range body {
		body[i] = 'x'
	}
	pkg, _ := protocol.EncodeDataPackage(&protocol.Message{Type: protocol.Request, ID: 1, Route: "connector.echo.echo", Body: body}, nil)
	if len(pkg) != 1024+protocol.HeaderLen {
		t.Fatalf("test package is %d bytes", len(pkg))
	}
	ws.WriteFrame(c.conn, ws.MaskFrame(ws.NewBinaryFrame(pkg)))
	if m := c.expectMsg(protocol.Response); len(m.Body) != len(body) {
		t.Fatalf("response body %d bytes", len(m.Body))
	}
}

// The heartbeat timeout is what it says: a client is closed once it has
// been silent for the timeout, neither before nor a quarter later.
func TestHeartbeatTimeoutIsExact(t *testing.T) {
	// Two seconds, so that the bug this guards against (closing 1.25
	// timeouts after the last package: +500 ms) stands well clear of a
	// loaded machine's scheduling delays (up to +400 ms allowed).
	const timeout = 2 * time.Second
	for name, lastAfter := range map[string]time.Duration{
		// The deadline moved with this last package: it would have fired
		// 1.25 timeouts later before.
		"deadline moved by the last bytes": 600 * time.Millisecond,
		// The last package came too soon after the ack to move the
		// deadline: it fires early, and is re-armed.
		"deadline fired early": 300 * time.Millisecond,
	} {
		t.Run(name, func(t *testing.T) {
			srv := startServer(t, Config{Heartbeat: timeout, HeartbeatTimeout: timeout})
			c := dialRaw(t, srv.addr, false)
			c.handshake()
			time.Sleep(lastAfter)
			c.sendPkg(protocol.Heartbeat, nil)
			last := time.Now()
			c.expect(protocol.Heartbeat)
			c.expectClosed()
			silent := time.Since(last)
			if silent < timeout-20*time.Millisecond || silent > timeout+timeout/5 {
				t.Fatalf("closed after %v of silence, want %v", silent, timeout)
			}
			contains(t, srv.logs, "heartbeat timeout")
		})
	}
}

// A second handshake on a connection is a protocol error.
func TestSecondHandshakeCloses(t *testing.T) {
	for _, useWS := range []bool{false, true} {
		srv := startServer(t, Config{})
		c := dialRaw(t, srv.addr, useWS)
		c.handshake()
		c.sendPkg(protocol.Handshake, []byte(`{"sys":{}}`))
		c.expectClosed()
		contains(t, srv.logs, "second handshake")
	}
}

// Failed requests are logged at most once a second, with the count of
// those not logged: a fault behind a busy route must not flood the log.
func TestRequestFailuresLoggedRateLimited(t *testing.T) {
	m := handler.NewMux()
	m.Handle("connector.t.broken", func(ctx context.Context, r handler.Request) ([]byte, error) {
		return nil, errors.New("database unreachable")
	})
	srv := startServer(t, Config{Handler: m.Serve})
	c := dialRaw(t, srv.addr, false)
	c.handshake()
	for i := uint64(1); i <= 50; i++ {
		c.sendMsg(protocol.Message{Type: protocol.Request, ID: i, Route: "connector.t.broken"})
	}
	for i := uint64(1); i <= 50; i++ {
		if r := c.expectMsg(protocol.Response); !strings.Contains(string(r.Body), `"code":500`) {
			t.Fatalf("response %d: %s", r.ID, r.Body)
		}
	}
	if n := strings.Count(srv.logs.String(), "request failed"); n != 1 {
		t.Fatalf("50 failures within a second logged %d times:\n%s", n, srv.logs.String())
	}
	contains(t, srv.logs, "database unreachable")
}
