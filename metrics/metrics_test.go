package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shaddock/shaddock/handler"
)

// scrape serves s on a loopback port and returns one scrape's text.
func scrape(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

func TestSeries(t *testing.T) {
	sessions := 3
	s := New(Config{ID: "connector-1", Type: "connector", Group: "a", Build: "0123456789ab",
		Routes: []string{"chat.chatHandler.send", "connector.entryHandler.enter"}, Sessions: func() int { return sessions },
		KickReasons: map[string]string{"server stopped, please re-enter": "server_stopped"}})
	h := s.Wrap(func(ctx context.Context, r handler.Request) ([]byte, error) {
		switch string(r.Body) {
		case "404":
			return nil, handler.Errorf(404, "nope")
		case "boom":
			return nil, errors.New("internal detail")
		case "wrapped":
			return nil, &handler.Error{Code: 503, Err: errors.New("x")}
		}
		return []byte(`{}`), nil
	})
	ctx := context.Background()
	for _, c := range []struct{ route, body string }{
		{"chat.chatHandler.send", ""}, {"chat.chatHandler.send", ""}, {"chat.chatHandler.send", "404"},
		{"connector.entryHandler.enter", "boom"}, {"connector.entryHandler.enter", "wrapped"},
		{"no.such.route", ""}, {"another.unknown.route", "404"},
	} {
		h(ctx, handler.Request{Route: c.route, Body: []byte(c.body)})
	}
	h(ctx, handler.Request{Route: "chat.chatHandler.send", Notify: true})
	s.Pushed(5)
	s.Pushed(0)
	s.ClusterPush()
	s.Kicked("server stopped, please re-enter", 3)
	s.Refused("chat.chatHandler.send", 429)
	s.Refused("no.such.route", 503)
	s.Kicked("you cheated, user 1234", 1)
	s.Handled("chat.chatRemote.add", 200, time.Millisecond)
	s.Request("chat.chatHandler.send", 70000, time.Millisecond)

	text := scrape(t, s)
	for _, want := range []string{
		`shaddock_sessions 3`,
		`shaddock_requests_total{code="200",route="chat.chatHandler.send"} 2`,
		`shaddock_requests_total{code="404",route="chat.chatHandler.send"} 1`,
		`shaddock_requests_total{code="500",route="connector.entryHandler.enter"} 1`,
		`shaddock_requests_total{code="503",route="connector.entryHandler.enter"} 1`,
		`shaddock_requests_total{code="200",route="other"} 1`,
		`shaddock_requests_total{code="404",route="other"} 1`,
		`shaddock_requests_total{code="other",route="chat.chatHandler.send"} 1`,
		`shaddock_request_duration_seconds_count{route="chat.chatHandler.send"} 4`,
		`shaddock_request_duration_seconds_bucket{route="chat.chatHandler.send",le="+Inf"} 4`,
		`shaddock_notifies_total{route="chat.chatHandler.send"} 1`,
		`shaddock_pushes_total 5`,
		`shaddock_cluster_pushes_total 1`,
		`shaddock_kicks_total{reason="server_stopped"} 3`,
		`shaddock_kicks_total{reason="other"} 1`,
		`shaddock_requests_total{code="429",route="chat.chatHandler.send"} 1`,
		`shaddock_requests_total{code="503",route="other"} 1`,
		`shaddock_backend_requests_total{code="200",route="other"} 1`,
		`shaddock_server_info{build="0123456789ab",group="a",id="connector-1",type="connector"} 1`,
		`go_goroutines `,
		`process_cpu_seconds_total `,
	} {
		if !strings.Contains(text, want+"") {
			t.Errorf("scrape lacks %q", want)
		}
	}
	for _, bad := range []string{"no.such.route", "another.unknown.route"} {
		if strings.Contains(text, bad) {
			t.Errorf("an unregistered route made its own series: %q", bad)
		}
	}
	sessions = 7
	if !strings.Contains(scrape(t, s), "shaddock_sessions 7") {
		t.Error("shaddock_sessions is not read at scrape time")
	}
}

// A backend has no sessions gauge; two servers in one process do not collide.
func TestBackendAndTwoServers(t *testing.T) {
	a := New(Config{ID: "chat-1", Type: "chat", Routes: []string{"chat.chatHandler.send"}})
	b := New(Config{ID: "chat-2", Type: "chat", Routes: []string{"chat.chatHandler.send"}})
	a.Handled("chat.chatHandler.send", 200, time.Millisecond)
	if text := scrape(t, a); strings.Contains(text, "shaddock_sessions") ||
		!strings.Contains(text, `shaddock_backend_requests_total{code="200",route="chat.chatHandler.send"} 1`) {
		t.Errorf("backend scrape:\n%s", text)
	}
	if text := scrape(t, b); !strings.Contains(text, `shaddock_backend_requests_total{code="200",route="chat.chatHandler.send"} 0`) {
		t.Errorf("second server shares the first's series:\n%s", text)
	}
}

func TestCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{{nil, 200}, {handler.Errorf(429, "slow down"), 429}, {errors.New("x"), 500},
		{errors.Join(errors.New("ctx"), handler.Errorf(504, "late")), 504}} {
		if got := Code(c.err); got != c.want {
			t.Errorf("Code(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// The cost of counting a request, against the same handler unwrapped.
// go test -run=^$ -bench=Handler -benchmem ./metrics
func BenchmarkHandler(b *testing.B) {
	h := func(ctx context.Context, r handler.Request) ([]byte, error) { return nil, nil }
	req := handler.Request{Route: "chat.chatHandler.send"}
	ctx := context.Background()
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h(ctx, req)
		}
	})
	b.Run("metrics", func(b *testing.B) {
		w := New(Config{Routes: []string{"chat.chatHandler.send"}}).Wrap(h)
		b.ReportAllocs()
		for b.Loop() {
			w(ctx, req)
		}
	})
	b.Run("metrics-parallel", func(b *testing.B) {
		w := New(Config{Routes: []string{"chat.chatHandler.send"}}).Wrap(h)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				w(ctx, req)
			}
		})
	})
}

// An asynchronous handler's requests count when their done is called, with
// its outcome; declined ones are not counted (Handler counts them).
func TestWrapAsync(t *testing.T) {
	s := New(Config{ID: "connector-1", Type: "connector", Routes: []string{"chat.chatHandler.send"}})
	var dones []func([]byte, error)
	h := s.WrapAsync(func(ctx context.Context, r handler.Request, done func([]byte, error)) bool {
		if string(r.Body) == "decline" {
			return false
		}
		dones = append(dones, done)
		return true
	})
	var answered int
	ctx := context.Background()
	for _, body := range []string{"a", "b", "decline"} {
		h(ctx, handler.Request{Route: "chat.chatHandler.send", Body: []byte(body)}, func([]byte, error) { answered++ })
	}
	h(ctx, handler.Request{Route: "chat.chatHandler.send", Notify: true}, func([]byte, error) {})
	if text := scrape(t, s); strings.Contains(text, `shaddock_requests_total{code="200",route="chat.chatHandler.send"} 1`) {
		t.Fatal("counted before done")
	}
	dones[0]([]byte(`{}`), nil)
	dones[1](nil, handler.Errorf(503, "down"))
	text := scrape(t, s)
	for _, want := range []string{
		`shaddock_requests_total{code="200",route="chat.chatHandler.send"} 1`,
		`shaddock_requests_total{code="503",route="chat.chatHandler.send"} 1`,
		`shaddock_notifies_total{route="chat.chatHandler.send"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if answered != 2 {
		t.Fatalf("done reached the connector %d times, want 2", answered)
	}
}
