package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/proto/clusterpb"
)

// Requests naming another instance of a server never reach what the
// current instance holds: a restarted frontend has none of its
// predecessor's sessions, a restarted backend none of its state.
func TestRequestsForAnotherInstance(t *testing.T) {
	fe, be, front := startNodes(t) // fe-1 epoch 5, be-1 epoch 9
	ctx := context.Background()

	// A push for the predecessor (epoch 4): every target is missing, and
	// the sender learns it for that instance.
	rep, err := be.Push(ctx, "fe-1", &clusterpb.PushRequest{Route: "onChat", SessionIds: []int64{1, 2}, Uids: []string{"u"}, Epoch: 4})
	if err != nil || len(rep.MissingSessionIds) != 2 || len(rep.MissingUids) != 1 || rep.Epoch != 4 {
		t.Fatalf("push to epoch 4: %+v %v", rep, err)
	}
	if len(front.pushes) != 0 {
		t.Fatal("a push for another instance reached the frontend")
	}
	if got := be.goneReports(); len(got) != 1 || got[0] != "fe-1#4: [1 2] [u]" {
		t.Fatalf("gone reports %q", got)
	}
	// One-way pushes report the same, asynchronously.
	be.PushMany(ctx, map[string]*clusterpb.PushRequest{"fe-1": {Route: "onChat", SessionIds: []int64{3}, Epoch: 4}}, false)
	waitUntil(t, "the one-way report", func() bool { return len(be.goneReports()) == 2 })
	if got := be.goneReports()[1]; got != "fe-1#4: [3] []" {
		t.Fatalf("one-way gone report %q", got)
	}
	// The current instance gets its pushes.
	if rep, err := be.Push(ctx, "fe-1", &clusterpb.PushRequest{Route: "onChat", SessionIds: []int64{1}, Epoch: 5}); err != nil || len(rep.MissingSessionIds) != 0 {
		t.Fatalf("push to epoch 5: %+v %v", rep, err)
	}
	if n, err := be.Kick(ctx, "fe-1", &clusterpb.KickRequest{SessionIds: []int64{1}, Epoch: 4}); err != nil || n != 0 {
		t.Fatalf("kick for epoch 4 kicked %d (%v)", n, err)
	}
	if st, _ := be.Bind(ctx, Instance{"fe-1", 4}, 1, "u"); st != clusterpb.BindStatus_BIND_SESSION_GONE {
		t.Fatalf("bind for epoch 4: %v", st)
	}
	chk, err := be.Check(ctx, Instance{"fe-1", 5}, []int64{3, 100}, nil)
	if err != nil || fmt.Sprint(chk.GoneSessionIds) != "[100]" {
		t.Fatalf("check epoch 5: %+v %v", chk, err)
	}
	if chk, _ := be.Check(ctx, Instance{"fe-1", 4}, []int64{3}, []string{"u"}); len(chk.GoneSessionIds) != 1 || len(chk.GoneUids) != 1 {
		t.Fatalf("check epoch 4: %+v", chk)
	}
	// A message routed to a backend's predecessor is not served by it.
	_, err = fe.Forward(ctx, "be-1", &clusterpb.ForwardRequest{Route: "chat.h.echo", Session: &clusterpb.Session{}, TargetEpoch: 8})
	var herr *handler.Error
	if !errors.As(err, &herr) || herr.Code != handler.CodeUnavailable {
		t.Fatalf("forward to epoch 8: %v, want 503", err)
	}
	if _, err := fe.Call(ctx, "be-1", &clusterpb.CallRequest{Route: "chat.r.m", TargetEpoch: 9}); err != nil {
		t.Fatalf("call to epoch 9: %v", err)
	}
}

// A push that cannot be sent to its frontend gets its sessions kicked once
// the frontend can be reached again; not when the frontend was replaced.
func TestUndeliveredPushKicksWhenTheFrontendIsBack(t *testing.T) {
	fe, be, _ := startNodes(t)
	ctx := context.Background()
	addr := fe.ln.Addr().String()
	fe.Close()
	waitUntil(t, "fe-1 unreachable", func() bool { return len(be.Membership().Eligible("connector")) == 0 })
	// Its push feed ended with it: the push must try a stream of its own.
	feedWaiting(t, be, false)
	be.PushMany(ctx, map[string]*clusterpb.PushRequest{"fe-1": {Route: "onChat", SessionIds: []int64{7}, Epoch: 5}}, false)
	if !containsWait(t, be.logs, "push not delivered; kicking its sessions") {
		t.Fatal("no log line for the undelivered push")
	}
	// The same instance comes back (a cut link restored).
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	back := &fakeFrontend{}
	mf, _ := fe.Membership().Get("fe-1")
	mb, _ := be.Membership().Get("be-1")
	startNode(t, mf, []Member{mf, mb}, ln, Handlers{Frontend: back})
	waitUntil(t, "the kick", func() bool {
		back.mu.Lock()
		defer back.mu.Unlock()
		return len(back.kicks) == 1
	})
	if k := back.kicks[0]; fmt.Sprint(k.SessionIds) != "[7]" || k.Epoch != 5 || k.Reason != ReasonUndelivered {
		t.Fatalf("kick %+v", k)
	}

	// Undelivered to an instance that is then replaced: nothing to kick,
	// the retry ends.
	be.Membership().Upsert(Member{ID: "fe-9", Type: "connector", Host: "127.0.0.1", Port: 1, State: StateRunning, Epoch: 1})
	be.PushMany(ctx, map[string]*clusterpb.PushRequest{"fe-9": {Route: "onChat", SessionIds: []int64{1}, Epoch: 1}}, false)
	be.Membership().Upsert(Member{ID: "fe-9", Type: "connector", Host: "127.0.0.1", Port: 1, State: StateStarting, Epoch: 2})
	waitUntil(t, "the retry to end", func() bool {
		be.kmu.Lock()
		defer be.kmu.Unlock()
		return len(be.kicks) == 0
	})
}

func containsWait(t *testing.T, logs *syncBuffer, s string) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if contains := logs.String(); len(contains) > 0 && strings.Contains(contains, s) {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}
