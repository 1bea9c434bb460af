package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shaddock/shaddock/protocol"
	"github.com/shaddock/shaddock/tools/client"
	"github.com/shaddock/shaddock/tools/client/clienttest"
)

// syncBuffer is an output the test can read while pomeloc writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls out until it contains want.
func waitFor(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output never showed %q:\n%s", want, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// gate answers queryEntry like the chat example's gate and echoes the rest.
func gate(route string, body []byte) []byte {
	if route == "gate.gateHandler.queryEntry" {
		return []byte(`{"code":200,"host":"127.0.0.1","port":3050}`)
	}
	return body
}

// start connects a console to a fake server, as main does.
func start(t *testing.T, cfg clienttest.Config) (*console, *client.Client, *clienttest.Conn, *syncBuffer) {
	t.Helper()
	s := clienttest.Start(t, cfg)
	out := &syncBuffer{}
	con := newConsole(out)
	ctx := testCtx(t)
	c, err := client.Dial(ctx, s.Addr(), client.Options{OnPush: con.push})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	sc, err := s.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return con, c, sc, out
}

func TestPipedCommands(t *testing.T) {
	con, c, sc, out := start(t, clienttest.Config{Handler: gate, Dict: []string{"chat.chatHandler.send", "gate.gateHandler.queryEntry"}})
	in := strings.NewReader(`request gate.gateHandler.queryEntry {"uid":"u1"}
# a comment, then a blank line

notify chat.chatHandler.send {"content": "hi"}
req echo.h.m
dict
`)
	if err := con.run(testCtx(t), c, in, runOptions{timeout: 5 * time.Second}); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	got := out.String()
	for _, want := range []string{
		"response gate.gateHandler.queryEntry (",
		"{\n  \"code\": 200,\n  \"host\": \"127.0.0.1\",\n  \"port\": 3050\n}\n",
		"response echo.h.m (",
		"    1 chat.chatHandler.send\n    2 gate.gateHandler.queryEntry\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	// The notify reached the server with its body as typed.
	var notify clienttest.Event
	for {
		e, err := sc.Expect(testCtx(t), protocol.Data)
		if err != nil {
			t.Fatal(err)
		}
		if e.Msg.Type == protocol.Notify {
			notify = e
			break
		}
	}
	if notify.Msg.Route != "chat.chatHandler.send" || string(notify.Msg.Body) != `{"content": "hi"}` {
		t.Fatalf("notify %s %s", notify.Msg.Route, notify.Msg.Body)
	}
	if c.Err() == nil {
		t.Fatal("client not closed at the end of input")
	}
}

// TestWaitsForPendingResponses: input ends before the response arrives.
func TestWaitsForPendingResponses(t *testing.T) {
	slow := func(route string, body []byte) []byte {
		time.Sleep(200 * time.Millisecond)
		return []byte(`{"slow":true}`)
	}
	con, c, _, out := start(t, clienttest.Config{Handler: slow, Async: true})
	if err := con.run(testCtx(t), c, strings.NewReader("request a.b.c\n"), runOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"slow": true`) {
		t.Fatalf("response not printed before exit:\n%s", out)
	}
}

func TestPushesAndWatch(t *testing.T) {
	con, c, sc, out := start(t, clienttest.Config{Dict: []string{"onChat"}})
	inR, inW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- con.run(testCtx(t), c, inR, runOptions{}) }()

	if err := sc.Push("onAdd", []byte(`{ "user": "bob" }`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, out, "push onAdd {\"user\":\"bob\"}\n")

	// Once onChat is watched, onAdd is no longer printed. The request is a
	// marker: when its response shows, the watch command has run.
	_, _ = io.WriteString(inW, "watch onChat\nrequest mark.h.m\n")
	waitFor(t, out, "response mark.h.m")
	_ = sc.Push("onAdd", []byte(`{"user":"carol"}`))
	_ = sc.Push("onChat", []byte(`{"msg":"hi"}`))
	waitFor(t, out, "push onChat {\"msg\":\"hi\"}\n")

	_, _ = io.WriteString(inW, "watch\nunwatch\nrequest mark2.h.m\n")
	waitFor(t, out, "response mark2.h.m")
	_ = sc.Push("onAdd", []byte(`{"user":"dave"}`))
	waitFor(t, out, `push onAdd {"user":"dave"}`)
	_ = inW.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "carol") {
		t.Fatalf("an unwatched push was printed:\n%s", out)
	}
	if !strings.Contains(out.String(), "watching onChat\n") {
		t.Fatalf("watch without a route did not list the watched routes:\n%s", out)
	}
}

func TestWaitAfterInput(t *testing.T) {
	con, c, sc, out := start(t, clienttest.Config{})
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = sc.Push("onLate", []byte(`1`))
	}()
	start := time.Now()
	if err := con.run(testCtx(t), c, strings.NewReader(""), runOptions{wait: 400 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("returned after %v, before -wait", d)
	}
	if !strings.Contains(out.String(), "push onLate 1\n") {
		t.Fatalf("push during -wait not printed:\n%s", out)
	}
}

func TestKicked(t *testing.T) {
	con, c, sc, _ := start(t, clienttest.Config{})
	inR, inW := io.Pipe() // input stays open: the kick must end run anyway
	defer inW.Close()
	done := make(chan error, 1)
	go func() { done <- con.run(testCtx(t), c, inR, runOptions{}) }()
	_ = sc.Kick("maintenance")
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "kicked by the server: maintenance") {
			t.Fatalf("run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not end on a kick")
	}
}

func TestDisconnected(t *testing.T) {
	con, c, sc, _ := start(t, clienttest.Config{})
	inR, inW := io.Pipe()
	defer inW.Close()
	done := make(chan error, 1)
	go func() { done <- con.run(testCtx(t), c, inR, runOptions{}) }()
	// Read everything first: closing a socket with unread input resets it.
	if _, err := sc.Expect(testCtx(t), protocol.HandshakeAck); err != nil {
		t.Fatal(err)
	}
	sc.Close()
	if err := <-done; !errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "disconnected") {
		t.Fatalf("run = %v", err)
	}
}

func TestBadCommands(t *testing.T) {
	con, c, _, out := start(t, clienttest.Config{Handler: func(string, []byte) []byte { return nil }})
	in := strings.NewReader("request\nrequest a.b.c {bad json\nfrobnicate\nhelp\nrequest hold.h.m\nquit\nrequest never.sent\n")
	err := con.run(testCtx(t), c, in, runOptions{timeout: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "4 command(s) failed") {
		t.Fatalf("run = %v\n%s", err, out)
	}
	got := out.String()
	for _, want := range []string{
		"error: usage: request ROUTE [JSON]",
		"error: request a.b.c: body is not valid JSON",
		`error: unknown command "frobnicate"`,
		"commands:\n",
		"error: request hold.h.m: context deadline exceeded",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "never.sent") {
		t.Errorf("a command after quit ran:\n%s", got)
	}
}

// TestCommand runs the whole command as main does, minus the process.
func TestCommand(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{Handler: gate, Heartbeat: 3, Dict: []string{"a.b.c"}})
	for _, args := range [][]string{
		{s.Addr()},
		{"-ws", "-user", `{"uid":"u1"}`, s.Addr()},
		{s.URL()},
	} {
		var out, errw syncBuffer
		in := strings.NewReader(`request gate.gateHandler.queryEntry {"uid":"u1"}` + "\n")
		if code := pomeloc(testCtx(t), args, in, &out, &errw); code != 0 {
			t.Fatalf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, &out, &errw)
		}
		if !strings.Contains(out.String(), "connected to") || !strings.Contains(out.String(), "heartbeat 3s, 1 routes") ||
			!strings.Contains(out.String(), `"port": 3050`) {
			t.Fatalf("%v: output:\n%s", args, &out)
		}
	}

	var out, errw syncBuffer
	if code := pomeloc(testCtx(t), nil, strings.NewReader(""), &out, &errw); code != 2 || !strings.Contains(errw.String(), "usage: pomeloc") {
		t.Fatalf("no address: exit %d, stderr %s", code, &errw)
	}
	if code := pomeloc(testCtx(t), []string{"-user", "{", s.Addr()}, strings.NewReader(""), &out, &errw); code != 2 {
		t.Fatalf("bad -user: exit %d", code)
	}
	refusing := clienttest.Start(t, clienttest.Config{Code: 501})
	errw = syncBuffer{}
	if code := pomeloc(testCtx(t), []string{refusing.Addr()}, strings.NewReader(""), &out, &errw); code != 1 || !strings.Contains(errw.String(), "501") {
		t.Fatalf("refused handshake: exit %d, stderr %s", code, &errw)
	}
}
