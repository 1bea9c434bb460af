package connector

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/protocol"
)

// logBuffer collects log lines so tests can assert that a close was logged.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type testServer struct {
	*Server
	addr string
	logs *logBuffer
}

// echoMux registers the routes tests use.
func echoMux() *handler.Mux {
	m := handler.NewMux()
	m.Handle("connector.echo.echo", func(ctx context.Context, r handler.Request) ([]byte, error) {
		return r.Body, nil
	})
	m.Handle("connector.echo.push", func(ctx context.Context, r handler.Request) ([]byte, error) {
		return nil, r.Session.Push(ctx, "onPush", json.RawMessage(r.Body))
	})
	m.Handle("connector.echo.bind", handler.Typed(func(ctx context.Context, s handler.Session, req *struct{ UID string }) (*struct{ Code int }, error) {
		if err := s.Bind(ctx, req.UID); err != nil {
			return &struct{ Code int }{500}, nil
		}
		return &struct{ Code int }{200}, nil
	}))
	m.Handle("connector.echo.kick", func(ctx context.Context, r handler.Request) ([]byte, error) {
		return nil, r.Session.Kick(ctx, string(r.Body))
	})
	m.Handle("connector.echo.fail", func(ctx context.Context, r handler.Request) ([]byte, error) {
		return nil, handler.Errorf(418, "teapot")
	})
	m.Handle("connector.echo.slow", func(ctx context.Context, r handler.Request) ([]byte, error) {
		<-ctx.Done() // until its deadline, or the server closes
		return nil, ctx.Err()
	})
	m.Handle("connector.echo.panic", func(ctx context.Context, r handler.Request) ([]byte, error) {
		panic("boom")
	})
	return m
}

func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	logs := &logBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.ID == "" {
		cfg.ID = "connector-test"
	}
	if cfg.Handler == nil {
		cfg.Handler = echoMux().Serve
	}
	if cfg.Dictionary == nil {
		cfg.Dictionary, _ = protocol.NewDictionary([]string{"connector.echo.echo", "onPush"})
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != ErrServerClosed {
			t.Errorf("Serve returned %v", err)
		}
	})
	return &testServer{Server: srv, addr: ln.Addr().String(), logs: logs}
}

// rawClient speaks the protocol byte by byte over TCP or WebSocket.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	ws   bool
	dec  protocol.Decoder
	got  []protocol.Package
	dict *protocol.Dictionary
}

func dialRaw(t *testing.T, addr string, useWS bool) *rawClient {
	t.Helper()
	c := &rawClient{t: t, ws: useWS}
	c.dec.MaxBody = protocol.MaxBodyLen
	var err error
	if useWS {
		c.conn, _, _, err = ws.Dial(context.Background(), "ws://"+addr+"/")
	} else {
		c.conn, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.conn.Close() })
	return c
}

// send writes bytes: one masked binary frame on WebSocket, in one write as
// browsers send a frame (wsutil alone writes the header and the payload
// apart).
func (c *rawClient) send(b []byte) {
	c.t.Helper()
	var err error
	if c.ws {
		var frame bytes.Buffer
		if err = wsutil.WriteClientBinary(&frame, b); err == nil {
			_, err = c.conn.Write(frame.Bytes())
		}
	} else {
		_, err = c.conn.Write(b)
	}
	if err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *rawClient) sendPkg(typ protocol.PackageType, body []byte) {
	c.t.Helper()
	p, err := protocol.EncodePackage(typ, body)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(p)
}

func (c *rawClient) sendMsg(m protocol.Message) {
	c.t.Helper()
	p, err := protocol.EncodeDataPackage(&m, c.dict)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(p)
}

// next returns the next package from the server, or fails after timeout.
func (c *rawClient) next(timeout time.Duration) (protocol.Package, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	for len(c.got) == 0 {
		var data []byte
		var err error
		if c.ws {
			data, err = wsutil.ReadServerBinary(c.conn)
		} else {
			buf := make([]byte, 64<<10)
			var n int
			n, err = c.conn.Read(buf)
			data = buf[:n]
		}
		if err != nil {
			return protocol.Package{}, err
		}
		if err := c.dec.Feed(data, func(p protocol.Package) error {
			c.got = append(c.got, protocol.Package{Type: p.Type, Body: bytes.Clone(p.Body)})
			return nil
		}); err != nil {
			return protocol.Package{}, err
		}
	}
	p := c.got[0]
	c.got = c.got[1:]
	return p, nil
}

func (c *rawClient) expect(typ protocol.PackageType) protocol.Package {
	c.t.Helper()
	p, err := c.next(5 * time.Second)
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", typ, err)
	}
	if p.Type != typ {
		c.t.Fatalf("got %s %q, want %s", p.Type, p.Body, typ)
	}
	return p
}

func (c *rawClient) expectMsg(typ protocol.MessageType) protocol.Message {
	c.t.Helper()
	p := c.expect(protocol.Data)
	m, err := protocol.DecodeMessage(p.Body, c.dict)
	if err != nil {
		c.t.Fatal(err)
	}
	if m.Type != typ {
		c.t.Fatalf("got %s %+v, want %s", m.Type, m, typ)
	}
	return m
}

// expectClosed waits for the server to end the connection.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	for {
		p, err := c.next(5 * time.Second)
		if err == nil {
			continue // drain what was sent before the close
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			c.t.Fatalf("connection still open (last package %s)", p.Type)
		}
		return
	}
}

func (c *rawClient) handshake() protocol.HandshakeResponse {
	c.t.Helper()
	c.sendPkg(protocol.Handshake, []byte(`{"sys":{"type":"test","version":"0.1"},"user":{}}`))
	p := c.expect(protocol.Handshake)
	var resp struct {
		Code int `json:"code"`
		Sys  struct {
			Heartbeat int               `json:"heartbeat"`
			Dict      map[string]uint16 `json:"dict"`
		} `json:"sys"`
		User json.RawMessage `json:"user"`
	}
	if err := json.Unmarshal(p.Body, &resp); err != nil {
		c.t.Fatalf("handshake answer %q: %v", p.Body, err)
	}
	routes := make([]string, len(resp.Sys.Dict))
	for r, code := range resp.Sys.Dict {
		routes[code-1] = r
	}
	c.dict, _ = protocol.NewDictionary(routes)
	c.sendPkg(protocol.HandshakeAck, nil)
	if resp.Sys.Heartbeat > 0 {
		c.expect(protocol.Heartbeat) // sent in answer to the ack
	}
	return protocol.HandshakeResponse{Code: resp.Code, User: resp.User}
}

func (c *rawClient) request(id uint64, route, body string) protocol.Message {
	c.t.Helper()
	c.sendMsg(protocol.Message{Type: protocol.Request, ID: id, Route: route, Body: []byte(body)})
	m := c.expectMsg(protocol.Response)
	if m.ID != id {
		c.t.Fatalf("response id %d, want %d", m.ID, id)
	}
	return m
}

func contains(t *testing.T, logs *logBuffer, substr string) {
	t.Helper()
	waitFor(t, "log line "+substr, func() bool { return strings.Contains(logs.String(), substr) })
}

var _ = io.EOF
