package connector

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/protocol"
)

// asyncServer serves routes connector.async.* with an AsyncHandler and
// everything else with echoMux: "later" hands its done to the test, "now"
// answers before returning, "boom" panics, "boomafter" answers and then
// panics, "twice" answers twice, "decline" leaves the message to Handler.
func asyncServer(t *testing.T) (*testServer, chan func([]byte, error), *atomic.Int32) {
	t.Helper()
	later := make(chan func([]byte, error), 4)
	closed := &atomic.Int32{}
	srv := startServer(t, Config{
		AsyncHandler: func(ctx context.Context, r handler.Request, done func([]byte, error)) bool {
			switch strings.TrimPrefix(r.Route, "connector.async.") {
			case "later":
				r.Session.(*Session).OnClose(func(*Session) { closed.Add(1) })
				later <- done
			case "now":
				done([]byte(`"now"`), nil)
			case "boom":
				panic("boom")
			case "boomafter":
				done([]byte(`"answered"`), nil)
				panic("after answering")
			case "twice":
				done([]byte(`"first"`), nil)
				done([]byte(`"second"`), nil)
			default:
				return false
			}
			return true
		},
	})
	return srv, later, closed
}

func TestAsyncHandlerKeepsTheSessionInOrder(t *testing.T) {
	srv, later, _ := asyncServer(t)
	c := dialRaw(t, srv.addr, false)
	c.handshake()
	// Two requests at once: the second waits for the first's done.
	c.sendMsg(protocol.Message{Type: protocol.Request, ID: 1, Route: "connector.async.later", Body: []byte(`{}`)})
	c.sendMsg(protocol.Message{Type: protocol.Request, ID: 2, Route: "connector.echo.echo", Body: []byte(`"two"`)})
	var done func([]byte, error)
	select {
	case done = <-later:
	case <-time.After(5 * time.Second):
		t.Fatal("the async handler did not get the first request")
	}
	if p, err := c.next(200 * time.Millisecond); err == nil {
		t.Fatalf("answer before the first request's done: %+v", p)
	}
	go done([]byte(`"one"`), nil) // from another goroutine, as a stream's receiver
	for _, want := range []struct {
		id   uint64
		body string
	}{{1, `"one"`}, {2, `"two"`}} {
		m := c.expectMsg(protocol.Response)
		if m.ID != want.id || string(m.Body) != want.body {
			t.Fatalf("response %d %s, want %d %s", m.ID, m.Body, want.id, want.body)
		}
	}
}

func TestAsyncHandlerAnswersEachRequestOnce(t *testing.T) {
	srv, _, _ := asyncServer(t)
	c := dialRaw(t, srv.addr, false)
	c.handshake()
	for i, tc := range []struct{ route, want string }{
		{"connector.async.now", `"now"`},
		{"connector.async.boom", `"code":500`},
		{"connector.async.boomafter", `"answered"`},
		{"connector.async.twice", `"first"`},
		{"connector.async.decline", `"code":404`}, // Handler (echoMux) has no such route
	} {
		id := uint64(2*i + 1)
		if m := c.request(id, tc.route, `{}`); !strings.Contains(string(m.Body), tc.want) {
			t.Fatalf("%s: %s, want %s", tc.route, m.Body, tc.want)
		}
		// The queue goes on, and nothing else was answered.
		if m := c.request(id+1, "connector.echo.echo", `"next"`); string(m.Body) != `"next"` {
			t.Fatalf("after %s: %s", tc.route, m.Body)
		}
	}
	if p, err := c.next(100 * time.Millisecond); err == nil {
		t.Fatalf("an extra answer: %+v", p)
	}
}

// A session that ends while an async handler has it finishes (close hooks)
// only after its done.
func TestAsyncHandlerHoldsTheSessionEnd(t *testing.T) {
	srv, later, closed := asyncServer(t)
	c := dialRaw(t, srv.addr, false)
	c.handshake()
	c.sendMsg(protocol.Message{Type: protocol.Request, ID: 1, Route: "connector.async.later", Body: []byte(`{}`)})
	done := <-later
	c.conn.Close()
	waitFor(t, "the session to close", func() bool { return srv.Len() == 0 })
	time.Sleep(50 * time.Millisecond)
	if closed.Load() != 0 {
		t.Fatal("close hooks ran while the async handler had the session")
	}
	done(nil, handler.Errorf(503, "gone"))
	waitFor(t, "the close hooks after done", func() bool { return closed.Load() == 1 })
}
