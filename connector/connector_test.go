package connector

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/protocol"
)

func forBoth(t *testing.T, fn func(t *testing.T, useWS bool)) {
	t.Run("tcp", func(t *testing.T) { fn(t, false) })
	t.Run("ws", func(t *testing.T) { fn(t, true) })
}

func TestHandshakeRequestPushHeartbeatKick(t *testing.T) {
	forBoth(t, func(t *testing.T, useWS bool) {
		srv := startServer(t, Config{Heartbeat: 7 * time.Second})
		c := dialRaw(t, srv.addr, useWS)

		c.sendPkg(protocol.Handshake, []byte(`{"sys":{"type":"test","version":"0.1"}}`))
		hs := c.expect(protocol.Handshake)
		want := `{"code":200,"sys":{"heartbeat":7,"dict":{"connector.echo.echo":1,"onPush":2}`
		if !strings.HasPrefix(string(hs.Body), want) {
			t.Fatalf("handshake answer %s\nwant prefix %s", hs.Body, want)
		}
		c.dict, _ = protocol.NewDictionary([]string{"connector.echo.echo", "onPush"})
		c.sendPkg(protocol.HandshakeAck, nil)
		// Like Pomelo, the server answers the ack with a heartbeat.
		c.expect(protocol.Heartbeat)

		// Request with a compressed route: flag 0x01, id 1, code 0x0001.
		c.send([]byte{0x04, 0x00, 0x00, 0x06, 0x01, 0x01, 0x00, 0x01, '{', '}'})
		if p := c.expect(protocol.Data); !bytes.Equal(p.Body, []byte{0x04, 0x01, '{', '}'}) {
			t.Fatalf("response bytes % x, want 04 01 7b 7d", p.Body)
		}
		// Request with a string route and a large id.
		if m := c.request(300, "connector.echo.echo", `{"a":1}`); string(m.Body) != `{"a":1}` {
			t.Fatalf("echo body %q", m.Body)
		}
		// A notify that makes the server push; the push travels with its code.
		c.sendMsg(protocol.Message{Type: protocol.Notify, Route: "connector.echo.push", Body: []byte(`{"x":2}`)})
		p := c.expect(protocol.Data)
		if !bytes.Equal(p.Body, []byte{0x07, 0x00, 0x02, '{', '"', 'x', '"', ':', '2', '}'}) {
			t.Fatalf("push bytes % x", p.Body)
		}
		// Heartbeat is answered.
		c.sendPkg(protocol.Heartbeat, nil)
		c.expect(protocol.Heartbeat)
		// Handler errors reach the client as {code,msg}.
		if m := c.request(2, "connector.echo.fail", ""); string(m.Body) != `{"code":418,"msg":"teapot"}` {
			t.Fatalf("error body %s", m.Body)
		}
		if m := c.request(3, "connector.nope.nope", ""); !strings.Contains(string(m.Body), `"code":404`) {
			t.Fatalf("unknown route body %s", m.Body)
		}
		if m := c.request(4, "connector.echo.panic", ""); string(m.Body) != `{"code":500,"msg":"internal server error"}` {
			t.Fatalf("panic body %s", m.Body)
		}
		// Kick: the reason arrives, then the connection closes.
		c.sendMsg(protocol.Message{Type: protocol.Request, ID: 5, Route: "connector.echo.kick", Body: []byte("go away")})
		k := c.expect(protocol.Kick)
		if string(k.Body) != `{"reason":"go away"}` {
			t.Fatalf("kick body %s", k.Body)
		}
		c.expectClosed()
		waitFor(t, "session removed", func() bool { return srv.Len() == 0 })
	})
}

func TestSeveralPackagesPerReadAndSplitPackages(t *testing.T) {
	forBoth(t, func(t *testing.T, useWS bool) {
		srv := startServer(t, Config{})
		c := dialRaw(t, srv.addr, useWS)
		c.handshake()
		var all []byte
		for i := uint64(1); i <= 3; i++ {
			p, _ := protocol.EncodeDataPackage(&protocol.Message{Type: protocol.Request, ID: i, Route: "connector.echo.echo", Body: []byte(fmt.Sprint(i))}, c.dict)
			all = append(all, p...)
		}
		c.send(all) // three packages in one write / one frame
		for i := uint64(1); i <= 3; i++ {
			if m := c.expectMsg(protocol.Response); m.ID != i || string(m.Body) != fmt.Sprint(i) {
				t.Fatalf("response %d: %+v", i, m)
			}
		}
		p, _ := protocol.EncodeDataPackage(&protocol.Message{Type: protocol.Request, ID: 9, Route: "connector.echo.echo", Body: []byte("split")}, c.dict)
		for _, b := range p { // one byte per write / per frame
			c.send([]byte{b})
			time.Sleep(time.Millisecond)
		}
		if m := c.expectMsg(protocol.Response); m.ID != 9 || string(m.Body) != "split" {
			t.Fatalf("split: %+v", m)
		}
	})
}

func TestWebSocketFragmentsPingAndClose(t *testing.T) {
	srv := startServer(t, Config{})
	c := dialRaw(t, srv.addr, true)
	c.handshake()
	p, _ := protocol.EncodeDataPackage(&protocol.Message{Type: protocol.Request, ID: 1, Route: "connector.echo.echo", Body: []byte("frag")}, c.dict)
	// One message over three frames: binary (not final), continuation, continuation (final).
	frames := []ws.Frame{
		ws.NewFrame(ws.OpBinary, false, p[:3]),
		ws.NewFrame(ws.OpContinuation, false, p[3:7]),
		ws.NewFrame(ws.OpContinuation, true, p[7:]),
	}
	for _, f := range frames {
		if err := ws.WriteFrame(c.conn, ws.MaskFrame(f)); err != nil {
			t.Fatal(err)
		}
	}
	if m := c.expectMsg(protocol.Response); string(m.Body) != "frag" {
		t.Fatalf("fragmented request: %+v", m)
	}
	// Ping is answered with a pong carrying the same payload.
	ws.WriteFrame(c.conn, ws.MaskFrame(ws.NewPingFrame([]byte("hi"))))
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, err := ws.ReadHeader(c.conn)
	if err != nil || h.OpCode != ws.OpPong || h.Length != 2 {
		t.Fatalf("pong header %+v, %v", h, err)
	}
	pong := make([]byte, 2)
	if _, err := c.conn.Read(pong); err != nil || string(pong) != "hi" {
		t.Fatalf("pong payload %q %v", pong, err)
	}
	// Close is echoed, then the server closes.
	ws.WriteFrame(c.conn, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	h, err = ws.ReadHeader(c.conn)
	if err != nil || h.OpCode != ws.OpClose {
		t.Fatalf("close echo %+v, %v", h, err)
	}
	waitFor(t, "session gone", func() bool { return srv.Len() == 0 })
}

func TestWebSocketProtocolErrorsClose(t *testing.T) {
	cases := map[string]ws.Frame{
		"text frame":   ws.MaskFrame(ws.NewTextFrame([]byte("hello"))),
		"unmasked":     ws.NewBinaryFrame([]byte{0x03, 0, 0, 0}),
		"continuation": ws.MaskFrame(ws.NewFrame(ws.OpContinuation, true, []byte{1})),
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			srv := startServer(t, Config{})
			c := dialRaw(t, srv.addr, true)
			c.handshake()
			ws.WriteFrame(c.conn, f)
			c.expectClosed()
			contains(t, srv.logs, "protocol violation")
		})
	}
}

func TestDataBeforeAckIgnored(t *testing.T) {
	srv := startServer(t, Config{})
	c := dialRaw(t, srv.addr, false)
	c.sendPkg(protocol.Handshake, []byte(`{"sys":{}}`))
	c.expect(protocol.Handshake)
	c.dict, _ = protocol.NewDictionary([]string{"connector.echo.echo", "onPush"})
	c.sendMsg(protocol.Message{Type: protocol.Request, ID: 1, Route: "connector.echo.echo", Body: []byte("early")})
	c.sendPkg(protocol.HandshakeAck, nil)
	c.expect(protocol.Heartbeat)
	if m := c.request(2, "connector.echo.echo", "late"); string(m.Body) != "late" {
		t.Fatalf("got %+v", m)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	srv := startServer(t, Config{
		CheckClient: func(typ, version string) bool { return version != "old" },
		UserHandshake: func(ctx context.Context, s *Session, user json.RawMessage) (any, error) {
			var u struct{ Token string }
			json.Unmarshal(user, &u)
			if u.Token != "secret" {
				return nil, fmt.Errorf("bad token")
			}
			return map[string]string{"welcome": "yes"}, nil
		},
	})
	for _, tc := range []struct {
		body, want string
	}{
		{`not json`, `{"code":500}`},
		{`{"sys":{"version":"old"},"user":{"token":"secret"}}`, `{"code":501}`},
		{`{"sys":{"version":"1"},"user":{"token":"wrong"}}`, `{"code":500}`},
	} {
		c := dialRaw(t, srv.addr, false)
		c.sendPkg(protocol.Handshake, []byte(tc.body))
		if p := c.expect(protocol.Handshake); string(p.Body) != tc.want {
			t.Fatalf("%s: answer %s, want %s", tc.body, p.Body, tc.want)
		}
		c.expectClosed()
	}
	c := dialRaw(t, srv.addr, false)
	c.sendPkg(protocol.Handshake, []byte(`{"sys":{"version":"1"},"user":{"token":"secret"}}`))
	if p := c.expect(protocol.Handshake); !strings.Contains(string(p.Body), `"user":{"welcome":"yes"}`) {
		t.Fatalf("answer %s lacks the user part", p.Body)
	}
}

func TestHeartbeatRoundedUpToWholeSeconds(t *testing.T) {
	srv := startServer(t, Config{Heartbeat: 1500 * time.Millisecond})
	c := dialRaw(t, srv.addr, false)
	c.sendPkg(protocol.Handshake, []byte(`{"sys":{}}`))
	if p := c.expect(protocol.Handshake); !strings.Contains(string(p.Body), `"heartbeat":2`) {
		t.Fatalf("answer %s, want heartbeat 2", p.Body)
	}
	if srv.cfg.HeartbeatTimeout != 4*time.Second {
		t.Fatalf("timeout %v, want 2× the rounded interval", srv.cfg.HeartbeatTimeout)
	}
}

func TestCachedDictionaryNotResent(t *testing.T) {
	srv := startServer(t, Config{})
	c := dialRaw(t, srv.addr, false)
	d, _ := protocol.NewDictionary([]string{"connector.echo.echo", "onPush"})
	c.sendPkg(protocol.Handshake, []byte(`{"sys":{"dictVersion":"`+d.Version()+`"}}`))
	p := c.expect(protocol.Handshake)
	if strings.Contains(string(p.Body), `"dict"`) || !strings.Contains(string(p.Body), `"useDict":true`) {
		t.Fatalf("answer %s", p.Body)
	}
}

func TestHandshakeTimeoutCloses(t *testing.T) {
	srv := startServer(t, Config{HandshakeTimeout: 200 * time.Millisecond})
	c := dialRaw(t, srv.addr, false)
	start := time.Now()
	c.expectClosed()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %v", d)
	}
	contains(t, srv.logs, "handshake timeout")
	// A client that handshakes but never acks is closed too.
	c = dialRaw(t, srv.addr, true)
	c.sendPkg(protocol.Handshake, []byte(`{"sys":{}}`))
	c.expect(protocol.Handshake)
	c.expectClosed()
}

func TestHeartbeatTimeoutCloses(t *testing.T) {
	srv := startServer(t, Config{Heartbeat: time.Second, HeartbeatTimeout: time.Second})
	c := dialRaw(t, srv.addr, false)
	c.handshake()
	// Heartbeats every 250 ms for longer than the timeout keep it alive
	// (the deadline moves), then silence closes it.
	start := time.Now()
	for time.Since(start) < 1500*time.Millisecond {
		time.Sleep(250 * time.Millisecond)
		c.sendPkg(protocol.Heartbeat, nil)
		c.expect(protocol.Heartbeat)
	}
	c.expectClosed()
	contains(t, srv.logs, "heartbeat timeout")
}

func TestOversizedAndMalformedCloseOnlyThatConnection(t *testing.T) {
	for name, bad := range map[string][]byte{
		"16 MiB length":    {0x04, 0xff, 0xff, 0xff},
		"over the limit":   append([]byte{0x04, 0x00, 0x04, 0x01}, make([]byte, 1025)...),
		"bad package type": {0x09, 0x00, 0x00, 0x00},
		"bad message":      {0x04, 0x00, 0x00, 0x02, 0x08, 0x00},
		"client push":      {0x04, 0x00, 0x00, 0x03, 0x06, 0x01, 'x'},
	} {
		t.Run(name, func(t *testing.T) {
			srv := startServer(t, Config{MaxPackageSize: 1024})
			good := dialRaw(t, srv.addr, false)
			good.handshake()
			badc := dialRaw(t, srv.addr, false)
			badc.handshake()
			badc.send(bad)
			badc.expectClosed()
			contains(t, srv.logs, "protocol violation")
			if m := good.request(1, "connector.echo.echo", "still here"); string(m.Body) != "still here" {
				t.Fatalf("other client affected: %+v", m)
			}
		})
	}
}

func TestUnknownFirstBytesClose(t *testing.T) {
	srv := startServer(t, Config{})
	c := dialRaw(t, srv.addr, false)
	c.send([]byte("\x16\x03\x01 hello tls"))
	c.expectClosed()
	contains(t, srv.logs, "neither a Pomelo handshake nor an HTTP upgrade")
}

func TestSlowReaderIsClosedAndMemoryBounded(t *testing.T) {
	forBoth(t, func(t *testing.T, useWS bool) {
		srv := startServer(t, Config{WriteQueueBytes: 64 << 10, WriteTimeout: 2 * time.Second})
		slow := dialRaw(t, srv.addr, useWS)
		slow.handshake()
		slow.request(1, "connector.echo.bind", `{"UID":"slow"}`)
		fast := dialRaw(t, srv.addr, useWS)
		fast.handshake()
		sess := srv.SessionByUID("slow")
		// The slow client stops reading; pushes keep coming.
		body := bytes.Repeat([]byte("x"), 1000)
		deadline := time.Now().Add(10 * time.Second)
		maxQueued := 0
		for !sess.Closed() && time.Now().Before(deadline) {
			srv.PushToUIDs([]string{"slow"}, "onPush", body)
			sess.wmu.Lock()
			maxQueued = max(maxQueued, sess.wqBytes)
			sess.wmu.Unlock()
		}
		if !sess.Closed() {
			t.Fatal("slow client still connected")
		}
		if maxQueued > 64<<10 {
			t.Fatalf("queue grew to %d bytes, limit 64 KiB", maxQueued)
		}
		contains(t, srv.logs, "client not reading; closing")
		if m := fast.request(7, "connector.echo.echo", "ok"); string(m.Body) != "ok" {
			t.Fatalf("other client affected: %+v", m)
		}
	})
}

func TestRateLimit(t *testing.T) {
	// One token per 1,000 s: no refill during the test, however slow the
	// machine, so exactly the requests past the burst are refused.
	var refused atomic.Int32 // OnRefused hears each refusal, with its code
	srv := startServer(t, Config{RequestRate: 0.001, RequestBurst: 5, OnRefused: func(route string, code int) {
		if route == "connector.echo.echo" && code == handler.CodeTooManyRequests {
			refused.Add(1)
		}
	}})
	c := dialRaw(t, srv.addr, false)
	c.handshake()
	limited := 0
	for i := uint64(1); i <= 20; i++ {
		m := c.request(i, "connector.echo.echo", "x")
		switch {
		case strings.Contains(string(m.Body), `"code":429`):
			limited++
		case i > 5:
			t.Fatalf("request %d past the burst answered %s", i, m.Body)
		}
	}
	if limited != 15 || refused.Load() != 15 {
		t.Fatalf("%d of 20 requests limited (OnRefused heard %d), want 15 with burst 5", limited, refused.Load())
	}
	contains(t, srv.logs, "over its request rate")
}

func TestOrderPerSessionParallelAcross(t *testing.T) {
	var inflight, peak atomic.Int32
	release := make(chan struct{})
	m := handler.NewMux()
	m.Handle("connector.t.slow", func(ctx context.Context, r handler.Request) ([]byte, error) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		return r.Body, nil
	})
	m.Handle("connector.t.seq", func(ctx context.Context, r handler.Request) ([]byte, error) {
		time.Sleep(time.Duration(len(r.Body)%3) * time.Millisecond) // uneven work
		return r.Body, nil
	})
	srv := startServer(t, Config{Handler: m.Serve})
	// In order per session: 50 pipelined requests come back in order.
	c := dialRaw(t, srv.addr, false)
	c.handshake()
	for i := uint64(1); i <= 50; i++ {
		c.sendMsg(protocol.Message{Type: protocol.Request, ID: i, Route: "connector.t.seq", Body: []byte(strings.Repeat("x", int(i)))})
	}
	for i := uint64(1); i <= 50; i++ {
		if r := c.expectMsg(protocol.Response); r.ID != i {
			t.Fatalf("response %d arrived as #%d", r.ID, i)
		}
	}
	// In parallel across sessions: 3 sessions all inside the handler at once.
	var clients []*rawClient
	for i := 0; i < 3; i++ {
		cc := dialRaw(t, srv.addr, false)
		cc.handshake()
		cc.sendMsg(protocol.Message{Type: protocol.Request, ID: 1, Route: "connector.t.slow"})
		clients = append(clients, cc)
	}
	waitFor(t, "3 handlers in flight", func() bool { return peak.Load() == 3 })
	close(release)
	for _, cc := range clients {
		cc.expectMsg(protocol.Response)
	}
}

func TestBindPolicies(t *testing.T) {
	srv := startServer(t, Config{})
	a := dialRaw(t, srv.addr, false)
	a.handshake()
	b := dialRaw(t, srv.addr, false)
	b.handshake()
	if m := a.request(1, "connector.echo.bind", `{"UID":"u1"}`); string(m.Body) != `{"Code":200}` {
		t.Fatalf("first bind: %s", m.Body)
	}
	if m := b.request(1, "connector.echo.bind", `{"UID":"u1"}`); string(m.Body) != `{"Code":500}` {
		t.Fatalf("duplicate bind: %s", m.Body)
	}
	if m := a.request(2, "connector.echo.bind", `{"UID":"u2"}`); string(m.Body) != `{"Code":500}` {
		t.Fatalf("rebind to another uid: %s", m.Body)
	}

	srv2 := startServer(t, Config{BindPolicy: BindKickOld})
	a = dialRaw(t, srv2.addr, false)
	a.handshake()
	b = dialRaw(t, srv2.addr, false)
	b.handshake()
	a.request(1, "connector.echo.bind", `{"UID":"u1"}`)
	if m := b.request(1, "connector.echo.bind", `{"UID":"u1"}`); string(m.Body) != `{"Code":200}` {
		t.Fatalf("kick-old bind: %s", m.Body)
	}
	if k := a.expect(protocol.Kick); !strings.Contains(string(k.Body), "logged in elsewhere") {
		t.Fatalf("old session kick %s", k.Body)
	}
	if s := srv2.SessionByUID("u1"); s == nil || s.Closed() {
		t.Fatal("new session not bound")
	}
}

func TestCloseHooksRunAfterInflightHandler(t *testing.T) {
	var mu sync.Mutex
	var events []string
	record := func(e string) { mu.Lock(); events = append(events, e); mu.Unlock() }
	entered := make(chan struct{})
	m := handler.NewMux()
	m.Handle("connector.t.slow", func(ctx context.Context, r handler.Request) ([]byte, error) {
		r.Session.(*Session).OnClose(func(*Session) { record("hook") })
		close(entered)
		time.Sleep(200 * time.Millisecond)
		record("handler done")
		return nil, nil
	})
	closed := make(chan struct{})
	srv := startServer(t, Config{Handler: m.Serve, OnSessionClosed: func(*Session) { record("server hook"); close(closed) }})
	c := dialRaw(t, srv.addr, false)
	c.handshake()
	c.sendMsg(protocol.Message{Type: protocol.Request, ID: 1, Route: "connector.t.slow"})
	<-entered
	c.conn.Close()
	<-closed
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(events) != "[handler done hook server hook]" {
		t.Fatalf("events %v", events)
	}
}

func TestShutdownFinishesInflightThenKicks(t *testing.T) {
	entered := make(chan struct{}, 1)
	m := handler.NewMux()
	m.Handle("connector.t.slow", func(ctx context.Context, r handler.Request) ([]byte, error) {
		entered <- struct{}{}
		time.Sleep(300 * time.Millisecond)
		return []byte(`"done"`), nil
	})
	srv := startServer(t, Config{Handler: m.Serve, ShutdownReason: "maintenance"})
	c := dialRaw(t, srv.addr, false)
	c.handshake()
	c.sendMsg(protocol.Message{Type: protocol.Request, ID: 1, Route: "connector.t.slow"})
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if r := c.expectMsg(protocol.Response); string(r.Body) != `"done"` {
		t.Fatalf("in-flight response %s", r.Body)
	}
	if k := c.expect(protocol.Kick); string(k.Body) != `{"reason":"maintenance"}` {
		t.Fatalf("kick %s", k.Body)
	}
	c.expectClosed()
	if srv.Len() != 0 {
		t.Fatalf("%d sessions left", srv.Len())
	}
}

func TestBroadcastEncodesOnce(t *testing.T) {
	srv := startServer(t, Config{})
	var cs []*rawClient
	for i := 0; i < 5; i++ {
		c := dialRaw(t, srv.addr, i%2 == 0)
		c.handshake()
		cs = append(cs, c)
	}
	waitFor(t, "handshake-acks processed", func() bool {
		srv.mu.RLock()
		defer srv.mu.RUnlock()
		for _, sess := range srv.sessions {
			if sess.state.Load() != stWorking {
				return false
			}
		}
		return true
	})
	if err := srv.Broadcast("onPush", []byte(`{"all":true}`)); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if m := c.expectMsg(protocol.Push); m.Route != "onPush" || string(m.Body) != `{"all":true}` {
			t.Fatalf("push %+v", m)
		}
	}
}

// A client may send its first frame right behind the upgrade request,
// without waiting for the 101; those bytes must not be lost.
func TestWebSocketFramePipelinedBehindUpgrade(t *testing.T) {
	srv := startServer(t, Config{})
	conn, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hs, _ := protocol.EncodePackage(protocol.Handshake, []byte(`{"sys":{}}`))
	var frame bytes.Buffer
	ws.WriteFrame(&frame, ws.MaskFrame(ws.NewBinaryFrame(hs)))
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), frame.Bytes()...)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	payload, err := wsutil.ReadServerBinary(struct {
		io.Reader
		io.Writer
	}{br, conn})
	if err != nil {
		t.Fatalf("no answer to the pipelined handshake: %v", err)
	}
	if payload[0] != byte(protocol.Handshake) || !strings.Contains(string(payload), `"code":200`) {
		t.Fatalf("answer %q", payload)
	}
}

// Frames whose bytes arrive one TCP segment at a time: every header split
// point, a ping between data frames, a 16-bit length header.
func TestWebSocketFramesSplitAcrossReads(t *testing.T) {
	srv := startServer(t, Config{})
	c := dialRaw(t, srv.addr, true)
	c.handshake()
	var stream bytes.Buffer
	small, _ := protocol.EncodeDataPackage(&protocol.Message{Type: protocol.Request, ID: 1, Route: "connector.echo.echo", Body: []byte("a")}, c.dict)
	big, _ := protocol.EncodeDataPackage(&protocol.Message{Type: protocol.Request, ID: 2, Route: "connector.echo.echo", Body: bytes.Repeat([]byte("b"), 300)}, c.dict)
	ws.WriteFrame(&stream, ws.MaskFrame(ws.NewBinaryFrame(small)))
	ws.WriteFrame(&stream, ws.MaskFrame(ws.NewPingFrame([]byte("p"))))
	ws.WriteFrame(&stream, ws.MaskFrame(ws.NewBinaryFrame(big))) // 126: two-byte length
	for _, b := range stream.Bytes() {
		if _, err := c.conn.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Microsecond)
	}
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var gotPong bool
	var bodies []string
	for len(bodies) < 2 {
		h, err := ws.ReadHeader(c.conn)
		if err != nil {
			t.Fatal(err)
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(c.conn, payload); err != nil {
			t.Fatal(err)
		}
		if h.OpCode == ws.OpPong {
			gotPong = string(payload) == "p"
			continue
		}
		c.dec.Feed(payload, func(p protocol.Package) error {
			m, _ := protocol.DecodeMessage(p.Body, c.dict)
			if m.Type == protocol.Response {
				bodies = append(bodies, string(m.Body))
			}
			return nil
		})
	}
	if !gotPong || bodies[0] != "a" || bodies[1] != strings.Repeat("b", 300) {
		t.Fatalf("pong %v, bodies %q", gotPong, bodies)
	}
}
