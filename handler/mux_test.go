package handler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

type echoReq struct {
	Text string `json:"text"`
}
type echoResp struct {
	Echo string `json:"echo"`
}

func TestTypedHandlerAndFiltersInOrder(t *testing.T) {
	m := NewMux()
	var trace []string
	m.Use(Before(func(ctx context.Context, r Request) error {
		trace = append(trace, "before:"+r.Route)
		if strings.Contains(string(r.Body), "forbidden") {
			return Errorf(403, "no")
		}
		return nil
	}), After(func(ctx context.Context, r Request, resp []byte, err error) {
		trace = append(trace, fmt.Sprintf("after:%s:%v", resp, err))
	}))
	m.Handle("chat.h.echo", Typed(func(ctx context.Context, s Session, req *echoReq) (*echoResp, error) {
		trace = append(trace, "handler")
		return &echoResp{Echo: req.Text}, nil
	}))
	resp, err := m.Serve(context.Background(), Request{Route: "chat.h.echo", Body: []byte(`{"text":"hi"}`)})
	if err != nil || string(resp) != `{"echo":"hi"}` {
		t.Fatalf("got %s, %v", resp, err)
	}
	if got := strings.Join(trace, " "); got != `before:chat.h.echo handler after:{"echo":"hi"}:<nil>` {
		t.Fatalf("trace %q", got)
	}
	_, err = m.Serve(context.Background(), Request{Route: "chat.h.echo", Body: []byte(`{"text":"forbidden"}`)})
	var herr *Error
	if !errors.As(err, &herr) || herr.Code != 403 {
		t.Fatalf("before filter did not stop the request: %v", err)
	}
}

func TestBadBodyIs400AndUnknownRoute404(t *testing.T) {
	m := NewMux()
	m.Handle("chat.h.echo", Typed(func(ctx context.Context, s Session, req *echoReq) (*echoResp, error) {
		return &echoResp{}, nil
	}))
	_, err := m.Serve(context.Background(), Request{Route: "chat.h.echo", Body: []byte(`{"text":`)})
	if b := ErrorBody(err); !strings.HasPrefix(string(b), `{"code":400`) {
		t.Fatalf("bad body: %s", b)
	}
	_, err = m.Serve(context.Background(), Request{Route: "chat.h.nope"})
	if b := ErrorBody(err); !strings.HasPrefix(string(b), `{"code":404`) {
		t.Fatalf("unknown route: %s", b)
	}
	if b := ErrorBody(errors.New("secret detail")); string(b) != `{"code":500,"msg":"internal server error"}` {
		t.Fatalf("plain error leaks: %s", b)
	}
	// An empty body decodes to the zero request (Pomelo clients may omit it).
	if _, err := m.Serve(context.Background(), Request{Route: "chat.h.echo"}); err != nil {
		t.Fatal(err)
	}
}

func TestRegistrationErrorsPanic(t *testing.T) {
	for name, fn := range map[string]func(m *Mux){
		"bad route": func(m *Mux) { m.Handle("chat.echo", nil) },
		"twice":     func(m *Mux) { m.Handle("a.b.c", nil); m.Handle("a.b.c", nil) },
		"late":      func(m *Mux) { m.Seal(); m.Handle("a.b.c", nil) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			fn(NewMux())
		})
	}
}

func TestRemoteAdapter(t *testing.T) {
	m := NewMux()
	m.Handle("chat.chatRemote.add", Remote(func(ctx context.Context, req *echoReq) (*[]string, error) {
		return &[]string{req.Text}, nil
	}))
	resp, err := m.Serve(context.Background(), Request{Route: "chat.chatRemote.add", Body: []byte(`{"text":"a"}`)})
	if err != nil || string(resp) != `["a"]` {
		t.Fatalf("got %s %v", resp, err)
	}
	if ServerType("chat.chatRemote.add") != "chat" || ServerType("nodot") != "" {
		t.Fatal("ServerType")
	}
}

func TestHandleNonBlocking(t *testing.T) {
	m := NewMux()
	h := func(ctx context.Context, r Request) ([]byte, error) { return []byte("ok"), nil }
	m.Handle("chat.h.waits", h)
	m.HandleNonBlocking("chat.h.quick", h)
	if m.NonBlocking("chat.h.waits") || !m.NonBlocking("chat.h.quick") || m.NonBlocking("chat.h.none") {
		t.Fatal("NonBlocking does not report the way routes were registered")
	}
	if resp, err := m.Serve(context.Background(), Request{Route: "chat.h.quick"}); err != nil || string(resp) != "ok" {
		t.Fatalf("a non-blocking route is served as any other: %q %v", resp, err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("registering a route twice did not panic")
		}
	}()
	m.HandleNonBlocking("chat.h.waits", h)
}
