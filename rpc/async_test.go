package rpc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/proto/clusterpb"
)

// asyncResult collects one ForwardAsync outcome and counts the calls of
// its done.
type asyncOutcome struct {
	calls atomic.Int32
	rep   *clusterpb.ForwardReply
	err   error
	done  chan struct{}
}

func forwardAsync(n *testNode, ctx context.Context, id string, req *clusterpb.ForwardRequest) *asyncOutcome {
	o := &asyncOutcome{done: make(chan struct{})}
	n.ForwardAsync(ctx, id, req, func(rep *clusterpb.ForwardReply, err error) {
		if o.calls.Add(1) == 1 {
			o.rep, o.err = rep, err
			close(o.done)
		}
	})
	return o
}

func (o *asyncOutcome) wait(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-o.done:
	case <-time.After(within):
		t.Fatalf("done not called within %v", within)
	}
}

func TestForwardAsyncAnswersEachOnce(t *testing.T) {
	fe, _, _ := startNodes(t)
	ctx := context.Background()
	var outs []*asyncOutcome
	for i := range 300 {
		outs = append(outs, forwardAsync(fe, ctx, "be-1", &clusterpb.ForwardRequest{Route: "chat.h.echo",
			Body: []byte(fmt.Sprint(i)), Session: &clusterpb.Session{Uid: "u"}}))
	}
	failed := forwardAsync(fe, ctx, "be-1", &clusterpb.ForwardRequest{Route: "chat.h.fail", Session: &clusterpb.Session{}})
	for i, o := range outs {
		o.wait(t, 5*time.Second)
		if o.err != nil || string(o.rep.Body) != fmt.Sprint("u:", i) || o.rep.Settings["seen"] != "yes" {
			t.Fatalf("forward %d: %v %+v", i, o.err, o.rep)
		}
	}
	failed.wait(t, 5*time.Second)
	var herr *handler.Error
	if !errors.As(failed.err, &herr) || herr.Code != 418 || herr.Msg != "teapot" {
		t.Fatalf("error reply: %v", failed.err)
	}
	time.Sleep(50 * time.Millisecond) // a second call would come now
	for i, o := range append(outs, failed) {
		if n := o.calls.Load(); n != 1 {
			t.Fatalf("forward %d: done called %d times", i, n)
		}
	}
}

func TestForwardAsyncDeadlineAndFailures(t *testing.T) {
	fe, be, _ := startNodes(t)

	// The deadline is the caller's, enforced without a goroutine waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	slow := forwardAsync(fe, ctx, "be-1", &clusterpb.ForwardRequest{Route: "chat.h.slow", Session: &clusterpb.Session{}})
	slow.wait(t, 3*time.Second)
	var herr *handler.Error
	if !errors.As(slow.err, &herr) || herr.Code != handler.CodeTimeout {
		t.Fatalf("slow: %v, want a 504", slow.err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Fatalf("timed out after %v, want about 200ms", d)
	}

	// A server the node does not know: done before ForwardAsync returns.
	unknown := forwardAsync(fe, context.Background(), "nope-1", &clusterpb.ForwardRequest{Route: "nope.h.m", Session: &clusterpb.Session{}})
	select {
	case <-unknown.done:
	default:
		t.Fatal("done not called before ForwardAsync returned for an unknown server")
	}
	if unknown.err == nil {
		t.Fatal("no error for an unknown server")
	}

	// The peer going away ends what waits on it, long before its deadline.
	long, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	pending := forwardAsync(fe, long, "be-1", &clusterpb.ForwardRequest{Route: "chat.h.slow", Session: &clusterpb.Session{}})
	time.Sleep(50 * time.Millisecond)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); be.Close() }()
	pending.wait(t, 10*time.Second)
	wg.Wait()
	if n := pending.calls.Load(); n != 1 {
		t.Fatalf("done called %d times", n)
	}
}
