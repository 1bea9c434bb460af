package client

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/shaddock/shaddock/protocol"
	"github.com/shaddock/shaddock/tools/client/clienttest"
)

// Every behaviour is checked on both transports against the fake server.
var transports = []struct {
	name string
	opt  string
}{{"tcp", TransportTCP}, {"ws", TransportWS}}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial connects a client to s and returns it with the server side of the
// connection.
func dial(t testing.TB, s *clienttest.Server, transport string, opts Options) (*Client, *clienttest.Conn) {
	t.Helper()
	ctx := testCtx(t)
	opts.Transport = transport
	c, err := Dial(ctx, s.Addr(), opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	sc, err := s.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c, sc
}

// holdOrEcho leaves requests to "hold.*" routes unanswered and echoes others.
func holdOrEcho(route string, body []byte) []byte {
	if strings.HasPrefix(route, "hold.") {
		return nil
	}
	return body
}

func TestHandshake(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := clienttest.Start(t, clienttest.Config{
				Dict: []string{"chat.chatHandler.send", "connector.entryHandler.enter", "onChat"},
				User: json.RawMessage(`{"motd":"hi"}`),
			})
			c, sc := dial(t, s, tr.opt, Options{HandshakeUser: map[string]string{"uid": "u1"}})
			ctx := testCtx(t)

			hs := c.Handshake()
			if hs.Code != 200 || hs.Sys == nil || string(hs.User) != `{"motd":"hi"}` {
				t.Fatalf("Handshake() = %+v", hs)
			}
			if got := hs.Sys.Dict.Routes(); strings.Join(got, ",") != "chat.chatHandler.send,connector.entryHandler.enter,onChat" {
				t.Fatalf("dictionary routes = %v", got)
			}
			if hs.Sys.Dict.Version() != s.Dict().Version() {
				t.Fatalf("dictionary version %q, server's %q", hs.Sys.Dict.Version(), s.Dict().Version())
			}

			e, err := sc.Next(ctx)
			if err != nil || e.Type != protocol.Handshake {
				t.Fatalf("first package: %+v, %v", e, err)
			}
			wantType := map[string]string{"tcp": "go-tcp", "ws": "go-websocket"}[tr.name]
			if e.Hello.Sys.Type != wantType || e.Hello.Sys.Version != "0.1.0" || string(e.Hello.User) != `{"uid":"u1"}` {
				t.Fatalf("hello = %s", e.Raw[protocol.HeaderLen:])
			}
			if e.Hello.Sys.DictVersion != "" {
				t.Fatalf("dictVersion %q offered without a cached dictionary", e.Hello.Sys.DictVersion)
			}
			e, err = sc.Next(ctx)
			if err != nil || !bytes.Equal(e.Raw, []byte{2, 0, 0, 0}) {
				t.Fatalf("second package: % x, %v; want the handshake-ack 02 00 00 00", e.Raw, err)
			}
		})
	}
}

func TestDialWebSocketURL(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{})
	ctx := testCtx(t)
	c, err := Dial(ctx, s.URL(), Options{ClientType: "robot", ClientVersion: "9"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, _ := s.Accept(ctx)
	e, _ := sc.Next(ctx)
	if !sc.WS() || e.Hello == nil || e.Hello.Sys.Type != "robot" || e.Hello.Sys.Version != "9" {
		t.Fatalf("ws=%v hello=%+v", sc.WS(), e.Hello)
	}
	if _, err := Dial(ctx, s.URL(), Options{Transport: TransportTCP}); err == nil {
		t.Fatal("explicit tcp transport with a ws:// address accepted")
	}
	if _, err := Dial(ctx, s.Addr(), Options{Transport: "udp"}); err == nil {
		t.Fatal("unknown transport accepted")
	}
}

// TestWireBytes checks the exact bytes of requests and notifies, with and
// without dictionary compression.
func TestWireBytes(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := clienttest.Start(t, clienttest.Config{Dict: []string{"chat.chatHandler.send", "connector.entryHandler.enter"}})
			c, sc := dial(t, s, tr.opt, Options{})
			ctx := testCtx(t)
			if _, err := sc.Expect(ctx, protocol.HandshakeAck); err != nil {
				t.Fatal(err)
			}

			resp, err := c.Request(ctx, "connector.entryHandler.enter", []byte(`{"a":1}`))
			if err != nil || string(resp) != `{"a":1}` {
				t.Fatalf("Request = %q, %v", resp, err)
			}
			if _, err := c.Request(ctx, "area.h.m", []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
			if err := c.Notify(ctx, "chat.chatHandler.send", []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
			want := [][]byte{
				// request, route compressed: flag 0x01, id 1, code 0x0002, body
				append([]byte{4, 0, 0, 11, 0x01, 0x01, 0x00, 0x02}, `{"a":1}`...),
				// request, route as a string: flag 0x00, id 2, length 8, route, body
				append(append([]byte{4, 0, 0, 13, 0x00, 0x02, 8}, "area.h.m"...), "{}"...),
				// notify, route compressed: flag (1<<1)|1, code 0x0001, body
				append([]byte{4, 0, 0, 5, 0x03, 0x00, 0x01}, "{}"...),
			}
			for i, w := range want {
				e, err := sc.Expect(ctx, protocol.Data)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(e.Raw, w) {
					t.Errorf("message %d on the wire:\n got % x\nwant % x", i, e.Raw, w)
				}
			}
		})
	}
}

func TestConcurrentRequests(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := clienttest.Start(t, clienttest.Config{Async: true, Dict: []string{"echo.h.m"}})
			c, sc := dial(t, s, tr.opt, Options{})
			ctx := testCtx(t)
			const workers, each = 32, 50
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Go(func() {
					for i := range each {
						route := "echo.h.m"
						if i%2 == 1 {
							route = "other.h.m" // uncompressed
						}
						body := fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)
						resp, err := c.Request(ctx, route, []byte(body))
						if err != nil {
							errs <- err
							return
						}
						if string(resp) != body {
							errs <- fmt.Errorf("request %s got response %s", body, resp)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			seen := make(map[uint64]bool)
			for range workers * each {
				e, err := sc.Expect(ctx, protocol.Data)
				if err != nil {
					t.Fatal(err)
				}
				if seen[e.Msg.ID] {
					t.Fatalf("id %d used twice", e.Msg.ID)
				}
				seen[e.Msg.ID] = true
			}
			for id := uint64(1); id <= workers*each; id++ {
				if !seen[id] {
					t.Fatalf("id %d never used: ids must count from 1", id)
				}
			}
		})
	}
}

type pushed struct {
	route string
	body  string
}

// pushRecorder collects pushes from OnPush (copying the body, which is only
// valid during the call).
func pushRecorder() (func(string, []byte), <-chan pushed) {
	ch := make(chan pushed, 100)
	return func(route string, body []byte) { ch <- pushed{route, string(body)} }, ch
}

func expectPushes(t *testing.T, ch <-chan pushed, want ...pushed) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-ch:
			if got != w {
				t.Fatalf("push %+v, want %+v", got, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no push, want %+v", w)
		}
	}
}

func gz(t *testing.T, s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestPush(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := clienttest.Start(t, clienttest.Config{Dict: []string{"onAdd", "onChat"}})
			onPush, ch := pushRecorder()
			c, sc := dial(t, s, tr.opt, Options{OnPush: onPush})
			ctx := testCtx(t)
			if _, err := sc.Expect(ctx, protocol.HandshakeAck); err != nil {
				t.Fatal(err)
			}

			// Compressed route, written by hand: flag (3<<1)|1, code 0x0002.
			raw := append([]byte{4, 0, 0, 5, 0x07, 0x00, 0x02}, "{}"...)
			if err := sc.Send(raw); err != nil {
				t.Fatal(err)
			}
			if err := sc.Push("onLeave", []byte(`{"user":"bob"}`)); err != nil { // not in the dictionary
				t.Fatal(err)
			}
			big := strings.Repeat(`{"k":"v"},`, 1000)
			gzPush, _ := protocol.EncodeDataPackage(&protocol.Message{Type: protocol.Push, Route: "onAdd", Gzip: true, Body: gz(t, big)}, s.Dict())
			if err := sc.Send(gzPush); err != nil {
				t.Fatal(err)
			}
			expectPushes(t, ch, pushed{"onChat", "{}"}, pushed{"onLeave", `{"user":"bob"}`}, pushed{"onAdd", big})
			if c.Err() != nil {
				t.Fatal(c.Err())
			}
		})
	}
}

// writeChunked writes b in pieces of varying size with pauses, so the client
// reads it in many pieces that cut packages (and frames) anywhere.
func writeChunked(t *testing.T, sc *clienttest.Conn, b []byte) {
	t.Helper()
	sizes := []int{1, 2, 3, 5, 8, 13}
	for i := 0; len(b) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(b))
		if err := sc.WriteSocket(b[:n]); err != nil {
			t.Fatal(err)
		}
		b = b[n:]
		time.Sleep(2 * time.Millisecond)
	}
}

func pushPkg(t *testing.T, route, body string) []byte {
	p, err := protocol.EncodeDataPackage(&protocol.Message{Type: protocol.Push, Route: route, Body: []byte(body)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCoalescedAndSplit: several packages in one read (one frame), packages
// split across reads, and on WebSocket a package fragmented across frames
// with a ping in between.
func TestCoalescedAndSplit(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := clienttest.Start(t, clienttest.Config{Handler: holdOrEcho})
			onPush, ch := pushRecorder()
			c, sc := dial(t, s, tr.opt, Options{OnPush: onPush})
			ctx := testCtx(t)
			if _, err := sc.Expect(ctx, protocol.HandshakeAck); err != nil {
				t.Fatal(err)
			}

			// A held request whose response arrives in the same write as pushes.
			type result struct {
				body []byte
				err  error
			}
			res := make(chan result, 1)
			go func() {
				b, err := c.Request(ctx, "hold.h.m", []byte(`{}`))
				res <- result{b, err}
			}()
			req, err := sc.Expect(ctx, protocol.Data)
			if err != nil {
				t.Fatal(err)
			}
			resp, _ := protocol.EncodeDataPackage(&protocol.Message{Type: protocol.Response, ID: req.Msg.ID, Body: []byte(`"late"`)}, nil)
			a, b, d := pushPkg(t, "a", `1`), pushPkg(t, "b", `2`), pushPkg(t, "d", `3`)
			if err := sc.Send(a, resp, b, d); err != nil { // one write, one frame
				t.Fatal(err)
			}
			expectPushes(t, ch, pushed{"a", "1"}, pushed{"b", "2"}, pushed{"d", "3"})
			if r := <-res; r.err != nil || string(r.body) != `"late"` {
				t.Fatalf("held request: %q, %v", r.body, r.err)
			}

			// Packages cut anywhere across reads.
			long := strings.Repeat("x", 300) // a 2-byte frame length on WS
			stream := append(append(pushPkg(t, "e", `"`+long+`"`), pushPkg(t, "f", `4`)...), pushPkg(t, "g", `5`)...)
			if sc.WS() {
				// One frame per package... but also a package fragmented
				// over two frames with a ping between the fragments.
				h := pushPkg(t, "h", `6`)
				var frames []byte
				frames = append(frames, clienttest.Frame(ws.OpBinary, true, stream)...)
				frames = append(frames, clienttest.Frame(ws.OpBinary, false, h[:5])...)
				frames = append(frames, clienttest.Frame(ws.OpPing, true, []byte("hi"))...)
				frames = append(frames, clienttest.Frame(ws.OpContinuation, true, h[5:])...)
				writeChunked(t, sc, frames)
				expectPushes(t, ch, pushed{"e", `"` + long + `"`}, pushed{"f", "4"}, pushed{"g", "5"}, pushed{"h", "6"})
				e, err := sc.Next(ctx)
				if err != nil || e.Op != ws.OpPong || string(e.Raw) != "hi" {
					t.Fatalf("after a ping: %+v, %v; want a pong with the ping's payload", e, err)
				}
			} else {
				writeChunked(t, sc, stream)
				expectPushes(t, ch, pushed{"e", `"` + long + `"`}, pushed{"f", "4"}, pushed{"g", "5"})
			}
			if c.Err() != nil {
				t.Fatal(c.Err())
			}
		})
	}
}

func TestHeartbeatInterval(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			s := clienttest.Start(t, clienttest.Config{Heartbeat: 1})
			c, sc := dial(t, s, tr.opt, Options{})
			ctx := testCtx(t)
			ack, err := sc.Expect(ctx, protocol.HandshakeAck)
			if err != nil {
				t.Fatal(err)
			}
			// The server answers the ack with a heartbeat (as Pomelo does);
			// the client's heartbeats then follow one interval after each
			// answer.
			last := ack.At
			for i := range 3 {
				e, err := sc.Expect(ctx, protocol.Heartbeat)
				if err != nil {
					t.Fatal(err)
				}
				if gap := e.At.Sub(last); gap < 900*time.Millisecond || gap > 1500*time.Millisecond {
					t.Fatalf("heartbeat %d came %v after the previous one, want about 1s", i, gap)
				}
				if !bytes.Equal(e.Raw, []byte{3, 0, 0, 0}) {
					t.Fatalf("heartbeat bytes % x", e.Raw)
				}
				last = e.At
			}
			if c.Err() != nil {
				t.Fatalf("client ended: %v", c.Err())
			}
		})
	}
}

func TestHeartbeatTimeout(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			s := clienttest.Start(t, clienttest.Config{Heartbeat: 1, Silent: true})
			start := time.Now()
			c, sc := dial(t, s, tr.opt, Options{})
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("client still running 5s after a 1s-interval server went silent")
			}
			elapsed := time.Since(start)
			if !errors.Is(c.Err(), ErrHeartbeatTimeout) {
				t.Fatalf("Err() = %v, want ErrHeartbeatTimeout", c.Err())
			}
			if elapsed < 1900*time.Millisecond || elapsed > 3*time.Second {
				t.Fatalf("timed out after %v, want about 2× the 1s interval", elapsed)
			}
			if _, err := sc.Expect(testCtx(t), protocol.Heartbeat); err != nil {
				t.Fatalf("the client sent no heartbeat before giving up: %v", err)
			}
			if _, err := c.Request(testCtx(t), "x.y.z", nil); !errors.Is(err, ErrHeartbeatTimeout) {
				t.Fatalf("request after the timeout: %v", err)
			}
		})
	}
}

func TestNoHeartbeat(t *testing.T) {
	t.Parallel()
	s := clienttest.Start(t, clienttest.Config{Heartbeat: 1, Silent: true})
	c, sc := dial(t, s, TransportTCP, Options{NoHeartbeat: true})
	select {
	case <-c.Done():
		t.Fatalf("client with NoHeartbeat ended: %v", c.Err())
	case <-time.After(2500 * time.Millisecond):
	}
	_ = c.Close()
	for {
		e, err := sc.Next(testCtx(t))
		if err != nil {
			break
		}
		if e.Type == protocol.Heartbeat {
			t.Fatal("client with NoHeartbeat sent a heartbeat")
		}
	}
}

func TestKick(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := clienttest.Start(t, clienttest.Config{Handler: holdOrEcho})
			kicked := make(chan string, 1)
			c, sc := dial(t, s, tr.opt, Options{OnKick: func(r string) { kicked <- r }})
			ctx := testCtx(t)
			errc := make(chan error, 1)
			go func() {
				_, err := c.Request(ctx, "hold.h.m", nil)
				errc <- err
			}()
			if _, err := sc.Expect(ctx, protocol.Data); err != nil {
				t.Fatal(err)
			}
			if err := sc.Kick("server maintenance"); err != nil {
				t.Fatal(err)
			}
			<-c.Done()
			var ke *KickedError
			if !errors.As(c.Err(), &ke) || ke.Reason != "server maintenance" {
				t.Fatalf("Err() = %v, want *KickedError{server maintenance}", c.Err())
			}
			if r := <-kicked; r != "server maintenance" {
				t.Fatalf("OnKick(%q)", r)
			}
			if err := <-errc; !errors.As(err, &ke) || !strings.Contains(err.Error(), "hold.h.m") {
				t.Fatalf("pending request failed with %v, want the kick, naming the route", err)
			}
		})
	}
}

func TestHandshakeRefused(t *testing.T) {
	for _, tr := range transports {
		for _, code := range []int{500, 501} {
			t.Run(fmt.Sprint(tr.name, code), func(t *testing.T) {
				s := clienttest.Start(t, clienttest.Config{Code: code})
				c, err := Dial(testCtx(t), s.Addr(), Options{Transport: tr.opt})
				var he *HandshakeError
				if !errors.As(err, &he) || he.Code != code || c != nil {
					t.Fatalf("Dial = %v, %v; want *HandshakeError{%d}", c, err, code)
				}
				if !strings.Contains(err.Error(), fmt.Sprint(code)) {
					t.Fatalf("error %q does not name the code", err)
				}
			})
		}
	}
}

func TestDialContext(t *testing.T) {
	// A server that accepts and never answers the handshake.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Dial(ctx, ln.Addr().String(), Options{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial = %v, want DeadlineExceeded", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("Dial took %v", time.Since(start))
	}
}

func TestRequestCancel(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := clienttest.Start(t, clienttest.Config{Handler: holdOrEcho})
			c, sc := dial(t, s, tr.opt, Options{})
			ctx := testCtx(t)

			rctx, cancel := context.WithCancel(ctx)
			errc := make(chan error, 1)
			go func() {
				_, err := c.Request(rctx, "hold.h.m", nil)
				errc <- err
			}()
			req, err := sc.Expect(ctx, protocol.Data)
			if err != nil {
				t.Fatal(err)
			}
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled request: %v", err)
			}
			dctx, dcancel := context.WithTimeout(ctx, 20*time.Millisecond)
			defer dcancel()
			if _, err := c.Request(dctx, "hold.h.m", nil); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("request past its deadline: %v", err)
			}
			c.mu.Lock()
			n := len(c.pending)
			c.mu.Unlock()
			if n != 0 {
				t.Fatalf("%d waiters left after cancellation", n)
			}

			// The late response, and one for an id never used, are ignored.
			late, _ := protocol.EncodeDataPackage(&protocol.Message{Type: protocol.Response, ID: req.Msg.ID, Body: []byte(`1`)}, nil)
			unknown, _ := protocol.EncodeDataPackage(&protocol.Message{Type: protocol.Response, ID: 999, Body: []byte(`2`)}, nil)
			if err := sc.Send(late, unknown); err != nil {
				t.Fatal(err)
			}
			if resp, err := c.Request(ctx, "echo.h.m", []byte(`"ok"`)); err != nil || string(resp) != `"ok"` {
				t.Fatalf("request after ignored responses: %q, %v", resp, err)
			}
		})
	}
}

func TestClose(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := clienttest.Start(t, clienttest.Config{Handler: holdOrEcho})
			c, sc := dial(t, s, tr.opt, Options{})
			ctx := testCtx(t)
			errc := make(chan error, 1)
			go func() {
				_, err := c.Request(ctx, "hold.h.m", nil)
				errc <- err
			}()
			if _, err := sc.Expect(ctx, protocol.Data); err != nil {
				t.Fatal(err)
			}
			// A notify queued right before Close still goes out.
			if err := c.Notify(ctx, "last.h.m", []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					if err := c.Close(); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			select {
			case <-c.Done():
			default:
				t.Fatal("Done not closed after Close returned")
			}
			if !errors.Is(c.Err(), ErrClosed) {
				t.Fatalf("Err() = %v", c.Err())
			}
			if err := <-errc; !errors.Is(err, ErrClosed) {
				t.Fatalf("pending request: %v", err)
			}
			if _, err := c.Request(ctx, "a.b.c", nil); !errors.Is(err, ErrClosed) {
				t.Fatalf("Request after Close: %v", err)
			}
			if err := c.Notify(ctx, "a.b.c", nil); !errors.Is(err, ErrClosed) {
				t.Fatalf("Notify after Close: %v", err)
			}
			_ = c.Close()

			e, err := sc.Expect(ctx, protocol.Data)
			if err != nil || e.Msg.Route != "last.h.m" {
				t.Fatalf("notify before Close: %+v, %v", e.Msg, err)
			}
			if sc.WS() {
				e, err := sc.Next(ctx)
				if err != nil || e.Op != ws.OpClose {
					t.Fatalf("no close frame after Close: %+v, %v", e, err)
				}
			}
			select {
			case <-sc.Gone():
			case <-time.After(5 * time.Second):
				t.Fatal("server still sees the connection")
			}
		})
	}
}

// TestCloseFromOnPush: Close called on the reader goroutine must not deadlock.
func TestCloseFromOnPush(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{})
	var c *Client
	ready := make(chan struct{})
	c, sc := dial(t, s, TransportTCP, Options{OnPush: func(string, []byte) {
		<-ready
		_ = c.Close()
	}})
	close(ready)
	if err := sc.Push("bye", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Close from OnPush did not end the client")
	}
}

func TestServerCloses(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := clienttest.Start(t, clienttest.Config{Handler: holdOrEcho})
			c, sc := dial(t, s, tr.opt, Options{})
			ctx := testCtx(t)
			errc := make(chan error, 1)
			go func() {
				_, err := c.Request(ctx, "hold.h.m", nil)
				errc <- err
			}()
			if _, err := sc.Expect(ctx, protocol.Data); err != nil {
				t.Fatal(err)
			}
			sc.Close()
			<-c.Done()
			if !errors.Is(c.Err(), io.EOF) {
				t.Fatalf("Err() = %v, want one wrapping io.EOF", c.Err())
			}
			if err := <-errc; !errors.Is(err, io.EOF) {
				t.Fatalf("pending request: %v", err)
			}
		})
	}
}

// TestBadServerInput: a message the client cannot decode ends it with the
// decoding error rather than being skipped silently.
func TestBadServerInput(t *testing.T) {
	tests := []struct {
		name string
		ws   bool // only meaningful on WebSocket
		raw  func(*clienttest.Conn) error
		want error
	}{
		{"reserved flag", false, func(sc *clienttest.Conn) error {
			return sc.Send([]byte{4, 0, 0, 2, 0xe6, 0})
		}, protocol.ErrMessageFlag},
		{"unknown route code", false, func(sc *clienttest.Conn) error {
			return sc.Send([]byte{4, 0, 0, 3, 0x07, 0, 9})
		}, protocol.ErrRouteCode},
		{"bad package type", false, func(sc *clienttest.Conn) error {
			return sc.Send([]byte{9, 0, 0, 0})
		}, protocol.ErrPackageType},
		{"text frame", true, func(sc *clienttest.Conn) error {
			return sc.WriteSocket(clienttest.Frame(ws.OpText, true, []byte("hello")))
		}, errTextFrame},
	}
	for _, tr := range transports {
		for _, tt := range tests {
			if tt.ws && tr.opt != TransportWS {
				continue
			}
			t.Run(tr.name+"/"+tt.name, func(t *testing.T) {
				s := clienttest.Start(t, clienttest.Config{})
				c, sc := dial(t, s, tr.opt, Options{})
				if err := tt.raw(sc); err != nil {
					t.Fatal(err)
				}
				select {
				case <-c.Done():
				case <-time.After(5 * time.Second):
					t.Fatal("client still running")
				}
				if !errors.Is(c.Err(), tt.want) {
					t.Fatalf("Err() = %v, want %v", c.Err(), tt.want)
				}
			})
		}
	}
}

func TestCachedDictionary(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{Dict: []string{"chat.chatHandler.send"}})
	first, _ := dial(t, s, TransportTCP, Options{})
	dict := first.Handshake().Sys.Dict

	c, sc := dial(t, s, TransportTCP, Options{Dict: dict})
	ctx := testCtx(t)
	e, err := sc.Expect(ctx, protocol.Handshake)
	if err != nil || e.Hello.Sys.DictVersion != dict.Version() {
		t.Fatalf("hello dictVersion %q, want %q (%v)", e.Hello.Sys.DictVersion, dict.Version(), err)
	}
	if got := c.Handshake().Sys.Dict; got != dict {
		t.Fatalf("dictionary not reused: %v", got)
	}
	if err := c.Notify(ctx, "chat.chatHandler.send", nil); err != nil {
		t.Fatal(err)
	}
	e, err = sc.Expect(ctx, protocol.Data)
	if err != nil || !bytes.Equal(e.Raw, []byte{4, 0, 0, 3, 0x03, 0, 1}) {
		t.Fatalf("notify with the cached dictionary: % x, %v", e.Raw, err)
	}
}

func TestDictFromMap(t *testing.T) {
	d, err := protocol.DictionaryFromCodes(map[string]uint16{"b.b.b": 2, "a.a.a": 1})
	if err != nil || strings.Join(d.Routes(), ",") != "a.a.a,b.b.b" {
		t.Fatalf("dictFromMap = %v, %v", d.Routes(), err)
	}
	for _, m := range []map[string]uint16{
		{"a": 1, "b": 3}, // gap
		{"a": 0},         // zero
		{"a": 1, "b": 1}, // duplicate code
	} {
		if _, err := protocol.DictionaryFromCodes(m); err == nil {
			t.Errorf("protocol.DictionaryFromCodes(%v) accepted", m)
		}
	}
}

// TestBackpressure: against a server that stops reading, the queue fills,
// Notify waits for room and fails with its context, and Close still returns
// promptly.
func TestBackpressure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stuck := make(chan net.Conn, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		var dec protocol.Decoder
		buf := make([]byte, 4096)
		for hello := false; !hello; {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			_ = dec.Feed(buf[:n], func(p protocol.Package) error {
				hello = hello || p.Type == protocol.Handshake
				return nil
			})
		}
		answer, _ := protocol.EncodePackage(protocol.Handshake, []byte(`{"code":200}`))
		_, _ = conn.Write(answer)
		stuck <- conn // and never read again
	}()
	ctx := testCtx(t)
	c, err := Dial(ctx, ln.Addr().String(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer (<-stuck).Close()

	body := bytes.Repeat([]byte("x"), 60<<10)
	nctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	sent := 0
	for ; sent < 10000; sent++ {
		if err = c.Notify(nctx, "big.h.m", body); err != nil {
			break
		}
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after %d notifies: %v, want DeadlineExceeded", sent, err)
	}
	c.w.mu.Lock()
	queued := len(c.w.buf)
	c.w.mu.Unlock()
	if queued > maxQueued+len(body)+64 {
		t.Fatalf("%d bytes queued, bound is %d", queued, maxQueued)
	}
	start := time.Now()
	_ = c.Close()
	if d := time.Since(start); d > closeFlushTimeout+time.Second {
		t.Fatalf("Close took %v against a server that does not read", d)
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Fatalf("Err() = %v", c.Err())
	}
}

// TestNoLeak: a closed client leaves no goroutine behind.
func TestNoLeak(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{Heartbeat: 1})
	before := runtime.NumGoroutine()
	for _, tr := range transports {
		for range 10 {
			c, err := Dial(testCtx(t), s.Addr(), Options{Transport: tr.opt})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Request(testCtx(t), "a.b.c", nil); err != nil {
				t.Fatal(err)
			}
			_ = c.Close()
		}
	}
	s.Close() // its connection goroutines too
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Requests started with Go from one goroutine reach the server in call order,
// which a server relies on (it runs a session's messages in arrival order).
func TestGoKeepsWireOrder(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s := clienttest.Start(t, clienttest.Config{})
			c, sc := dial(t, s, tr.opt, Options{})
			ctx := testCtx(t)
			if _, err := sc.Expect(ctx, protocol.HandshakeAck); err != nil {
				t.Fatal(err)
			}
			var pend []*Pending
			for i := 0; i < 200; i++ {
				p, err := c.Go(ctx, fmt.Sprintf("r.h.m%d", i), []byte(fmt.Sprint(i)))
				if err != nil {
					t.Fatal(err)
				}
				pend = append(pend, p)
			}
			for i := 0; i < 200; i++ {
				e, err := sc.Expect(ctx, protocol.Data)
				if err != nil {
					t.Fatal(err)
				}
				if want := fmt.Sprintf("r.h.m%d", i); e.Msg.Route != want {
					t.Fatalf("message %d on the wire is %s, want %s", i, e.Msg.Route, want)
				}
			}
			for i, p := range pend {
				if body, err := p.Wait(ctx); err != nil || string(body) != fmt.Sprint(i) {
					t.Fatalf("response %d: %q %v", i, body, err)
				}
			}
		})
	}
}

// Pomelo, seeing the dictionary version a client offers, answers with only
// useDict (no dict, no version): the client must keep using its own, or the
// first compressed push would fail.
func TestCachedDictionaryWithPomeloStyleAnswer(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{Dict: []string{"a.b.c", "onX"}})
	pushes, got := pushRecorder()
	c, sc := dial(t, s, TransportTCP, Options{Dict: s.Dict(), OnPush: pushes})
	if d := c.Handshake().Sys.Dict; d != s.Dict() {
		t.Fatalf("client dictionary %v, want the cached one", d.Routes())
	}
	if err := sc.Push("onX", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	expectPushes(t, got, pushed{"onX", `{}`})
}
