package rpc

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shaddock/shaddock/proto/clusterpb"
)

// startInlineBackend starts a frontend and a backend whose forwards with
// route "chat.h.inline" are non-blocking; handle serves every forward.
func startInlineBackend(t *testing.T, handle func(be *testNode, ctx context.Context, req *clusterpb.ForwardRequest) *clusterpb.ForwardReply) (be *testNode, front *fakeFrontend) {
	t.Helper()
	var self *testNode
	ready := make(chan struct{})
	_, self, front = startPair(t, Handlers{
		Forward: func(ctx context.Context, req *clusterpb.ForwardRequest) *clusterpb.ForwardReply {
			<-ready
			return handle(self, ctx, req)
		},
		ForwardNonBlocking: func(req *clusterpb.ForwardRequest) bool { return req.Route == "chat.h.inline" },
	})
	close(ready)
	return self, front
}

// sendBatch sends reqs to be as one ForwardBatch and returns the reply
// batches it answers with, until it has a reply for each request.
func sendBatch(t *testing.T, be *testNode, reqs []*clusterpb.ForwardRequest) []*clusterpb.ForwardReplyBatch {
	t.Helper()
	cc, err := grpc.NewClient(be.ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), WithSecret("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := clusterpb.NewClusterClient(cc).Forwards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&clusterpb.ForwardBatch{Requests: reqs}); err != nil {
		t.Fatal(err)
	}
	var got []*clusterpb.ForwardReplyBatch
	for n := 0; n < len(reqs); {
		b, err := st.Recv()
		if err != nil {
			t.Fatalf("after %d replies: %v", n, err)
		}
		got = append(got, b)
		n += len(b.Replies)
	}
	st.CloseSend()
	return got
}

func inlineBatch(n int) []*clusterpb.ForwardRequest {
	reqs := make([]*clusterpb.ForwardRequest, n)
	for i := range reqs {
		reqs[i] = &clusterpb.ForwardRequest{Seq: uint64(i + 1), Route: "chat.h.inline", Body: []byte(fmt.Sprint(i)),
			Session: &clusterpb.Session{FrontendId: "fe-1", Id: int64(i + 1)}}
	}
	return reqs
}

// Non-blocking handlers run on the receiver, one after the other, and
// what they send leaves once the batch is served: their one-way pushes as
// one message, their replies as one.
func TestNonBlockingBatchLeavesTogether(t *testing.T) {
	var (
		mu      sync.Mutex
		order   []string
		running int
		overlap bool
		early   []string // pushes sent before the batch was served
	)
	be, front := startInlineBackend(t, func(be *testNode, ctx context.Context, req *clusterpb.ForwardRequest) *clusterpb.ForwardReply {
		mu.Lock()
		running++
		overlap = overlap || running > 1
		order = append(order, string(req.Body))
		mu.Unlock()
		before := be.BatchStats().Pushes.Messages
		if _, err := be.PushMany(ctx, map[string]*clusterpb.PushRequest{"fe-1": {Route: "onChat", SessionIds: []int64{req.Session.Id}}}, false); err != nil {
			t.Errorf("push: %v", err)
		}
		if be.BatchStats().Pushes.Messages != before {
			mu.Lock()
			early = append(early, string(req.Body))
			mu.Unlock()
		}
		mu.Lock()
		running--
		mu.Unlock()
		return &clusterpb.ForwardReply{Body: req.Body}
	})
	// Open the push stream first, so that the batch's pushes only queue.
	if _, err := be.PushMany(context.Background(), map[string]*clusterpb.PushRequest{"fe-1": {Route: "warm", SessionIds: []int64{99}}}, false); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "warm-up push delivered", func() bool { front.mu.Lock(); defer front.mu.Unlock(); return len(front.pushes) == 1 })
	pushesBefore := be.BatchStats().Pushes

	const n = 50
	replies := sendBatch(t, be, inlineBatch(n))

	if len(replies) != 1 || len(replies[0].Replies) != n {
		t.Fatalf("%d reply messages, want 1 carrying all %d replies", len(replies), n)
	}
	for i, rep := range replies[0].Replies {
		if rep.Seq != uint64(i+1) || string(rep.Body) != fmt.Sprint(i) {
			t.Fatalf("reply %d: seq %d body %q", i, rep.Seq, rep.Body)
		}
	}
	mu.Lock()
	if overlap || len(early) > 0 {
		t.Errorf("handlers overlapped: %v; pushes sent before the batch was served: %v", overlap, early)
	}
	for i, b := range order {
		if b != fmt.Sprint(i) {
			t.Fatalf("served out of batch order: %v", order)
		}
	}
	mu.Unlock()
	waitUntil(t, "pushes delivered", func() bool { front.mu.Lock(); defer front.mu.Unlock(); return len(front.pushes) == 1+n })
	if got := be.BatchStats().Pushes; got.Messages-pushesBefore.Messages != 1 || got.Items-pushesBefore.Items != n {
		t.Fatalf("the batch's pushes left in %d messages carrying %d, want 1 carrying %d",
			got.Messages-pushesBefore.Messages, got.Items-pushesBefore.Items, n)
	}
}

// A non-blocking handler that waits anyway (a push with replies) is not
// held by its own scope; a push made from a goroutine it started, after
// its batch, leaves at once.
func TestNonBlockingScopeHoldsOnlyOneWaySendsDuringTheBatch(t *testing.T) {
	later := make(chan context.Context, 1)
	be, front := startInlineBackend(t, func(be *testNode, ctx context.Context, req *clusterpb.ForwardRequest) *clusterpb.ForwardReply {
		rep, err := be.Push(ctx, "fe-1", &clusterpb.PushRequest{Route: "onWait", Uids: []string{"ghost"}})
		if err != nil || len(rep.MissingUids) != 1 {
			return &clusterpb.ForwardReply{Error: &clusterpb.Error{Code: 500, Msg: fmt.Sprint(rep, err)}}
		}
		later <- ctx
		return &clusterpb.ForwardReply{}
	})
	replies := sendBatch(t, be, inlineBatch(1))
	if e := replies[0].Replies[0].Error; e != nil {
		t.Fatalf("waiting push inside the batch: %s", e.Msg)
	}
	ctx := <-later
	// The batch is served and its scope closed: this one-way push is sent
	// by its own goroutine, not held for a scope that will not end again.
	done := make(chan error, 1)
	go func() {
		_, err := be.PushMany(ctx, map[string]*clusterpb.PushRequest{"fe-1": {Route: "onLater", SessionIds: []int64{1}}}, false)
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the late push delivered", func() bool {
		front.mu.Lock()
		defer front.mu.Unlock()
		return len(front.pushes) == 2 && front.pushes[1].Route == "onLater"
	})
}

// A handler declared non-blocking that blocks holds up its whole stream:
// the node names its route in a warning. Batches that are served quickly
// are not reported.
func TestBlockingNonBlockingHandlerIsReported(t *testing.T) {
	be, _ := startInlineBackend(t, func(be *testNode, ctx context.Context, req *clusterpb.ForwardRequest) *clusterpb.ForwardReply {
		if string(req.Body) == "2" {
			time.Sleep(slowInline + 50*time.Millisecond) // as a call to another server would
		}
		return &clusterpb.ForwardReply{}
	})
	const warning = "non-blocking handlers held their stream"
	sendBatch(t, be, inlineBatch(2)) // bodies 0 and 1: quick
	sendBatch(t, be, inlineBatch(3)) // body 2 blocks
	waitUntil(t, "the warning", func() bool { return strings.Contains(be.logs.String(), warning) })
	logs := be.logs.String()
	if n := strings.Count(logs, warning); n != 1 {
		t.Fatalf("%d warnings, want 1 (for the slow batch only):\n%s", n, logs)
	}
	line := logs[strings.Index(logs, warning):]
	line = line[:strings.IndexByte(line, '\n')]
	if !strings.Contains(line, "requests=3") || !strings.Contains(line, "chat.h.inline") {
		t.Fatalf("warning %q does not name the slow batch's route", line)
	}
}
