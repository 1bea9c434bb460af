package rpc

import (
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/shaddock/shaddock/proto/clusterpb"
)

// pushStream reports whether p's push caller has a stream and whether it is
// a feed the frontend opened, and whether a feed waits to be used.
func pushStream(p *peer) (open, fed, waiting bool) {
	p.push.mu.Lock()
	defer p.push.mu.Unlock()
	if st := p.push.stream; st != nil {
		open, fed = true, st.fed
	}
	return open, fed, p.push.feed != nil
}

// feedWaiting returns be's peer fe-1 once a feed from it waits to be used
// (want true) or none does (false).
func feedWaiting(t *testing.T, be *testNode, want bool) *peer {
	t.Helper()
	p, err := be.peer("fe-1")
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, fmt.Sprintf("a feed from fe-1 waiting: %v", want), func() bool {
		_, _, waiting := pushStream(p)
		return waiting == want
	})
	return p
}

// pushOne sends a one-way push for uid to fe-1.
func pushOne(t *testing.T, be *testNode, uid string) {
	t.Helper()
	if _, err := be.PushMany(context.Background(), map[string]*clusterpb.PushRequest{
		"fe-1": {Route: "onChat", Body: []byte("{}"), Uids: []string{uid}},
	}, false); err != nil {
		t.Fatal(err)
	}
}

// pushedUIDs is what the frontend got, in order.
func pushedUIDs(f *fakeFrontend) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s []string
	for _, p := range f.pushes {
		s = append(s, p.Uids...)
	}
	return fmt.Sprint(s)
}

// A frontend opens a feed to its peers, and their pushes to it go down the
// feed, acknowledged as on a stream of their own.
func TestPushesTakeTheFeedTheFrontendOpened(t *testing.T) {
	_, be, front := startNodes(t)
	p := feedWaiting(t, be, true)
	var want []string
	for i := 0; i < 100; i++ {
		pushOne(t, be, fmt.Sprint("u", i))
		want = append(want, fmt.Sprint("u", i))
	}
	if open, fed, _ := pushStream(p); !open || !fed {
		t.Fatalf("push stream open %v, a feed %v: want the feed", open, fed)
	}
	waitUntil(t, "every push acknowledged", func() bool { return unacked(p) == 0 })
	if got := pushedUIDs(front); got != fmt.Sprint(want) {
		t.Fatalf("frontend got %s", got)
	}
}

// startPairWithoutFeeds is startPair with a frontend that opens no feeds by
// itself (as one of an older build): its peer pushes on a Pushes stream of
// its own until the test opens a feed.
func startPairWithoutFeeds(t *testing.T) (fe, be *testNode, front *fakeFrontend) {
	lnF, _ := net.Listen("tcp", "127.0.0.1:0")
	lnB, _ := net.Listen("tcp", "127.0.0.1:0")
	mf, mb := memberOn("fe-1", "connector", 5, lnF), memberOn("be-1", "chat", 9, lnB)
	front = &fakeFrontend{}
	members := []Member{mf, mb}
	mf.Frontend = false // no keepFeed from dial
	fe = startNode(t, mf, members, lnF, Handlers{Frontend: front})
	be = startNode(t, mb, members, lnB, Handlers{})
	return fe, be, front
}

// openFeed makes fe keep a feed open to be-1 until the test ends.
func openFeed(t *testing.T, fe *testNode) {
	fp, err := fe.peer("be-1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); fe.keepFeed(ctx, fp) }()
	t.Cleanup(func() { cancel(); <-done })
}

// A feed that arrives while the peer pushes on a stream of its own is taken
// once that stream is idle: pushes not yet acknowledged keep the old stream
// (so none overtakes another), and none is lost or kicked in the move.
func TestPushesMoveToAFeedOnlyOnceTheirStreamIsIdle(t *testing.T) {
	fe, be, front := startPairWithoutFeeds(t)
	p, err := be.peer("fe-1")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	front.mu.Lock()
	front.hold = release // the frontend takes the first push and sends no ack
	front.mu.Unlock()
	pushOne(t, be, "u0")
	if open, fed, _ := pushStream(p); !open || fed {
		t.Fatalf("push stream open %v, a feed %v: want a Pushes stream", open, fed)
	}
	openFeed(t, fe)
	waitUntil(t, "the feed", func() bool { _, _, waiting := pushStream(p); return waiting })
	pushOne(t, be, "u1") // u0 is unacknowledged: u1 must follow it on the same stream
	if _, fed, _ := pushStream(p); fed {
		t.Fatal("moved to the feed with a push unacknowledged")
	}
	front.mu.Lock()
	front.hold = nil
	front.mu.Unlock()
	close(release)
	waitUntil(t, "u0 and u1 acknowledged", func() bool { return unacked(p) == 0 })
	pushOne(t, be, "u2")
	if _, fed, _ := pushStream(p); !fed {
		t.Fatal("an idle stream was not left for the feed")
	}
	waitUntil(t, "u2 acknowledged", func() bool { return unacked(p) == 0 })
	if got := pushedUIDs(front); got != "[u0 u1 u2]" {
		t.Fatalf("frontend got %s", got)
	}
	front.mu.Lock()
	defer front.mu.Unlock()
	if len(front.kicks) != 0 {
		t.Fatalf("kicks %v", front.kicks)
	}
}

// A feed that ends with pushes unacknowledged gets their sessions kicked,
// as a broken Pushes stream does, and the next push takes a new stream.
func TestBrokenFeedKicksTheSessionsOfItsUnacknowledgedPushes(t *testing.T) {
	_, be, front := startNodes(t)
	p := feedWaiting(t, be, true)
	release := make(chan struct{})
	front.mu.Lock()
	front.hold = release
	front.mu.Unlock()
	pushOne(t, be, "a")
	p.push.mu.Lock()
	f, isFeed := p.push.stream.bs.(*feed)
	p.push.mu.Unlock()
	if !isFeed {
		t.Fatal("the push did not take the feed")
	}
	f.closeSend() // the peer ends the feed, with "a" unacknowledged
	waitUntil(t, "the kick", func() bool {
		front.mu.Lock()
		defer front.mu.Unlock()
		return len(front.kicks) == 1
	})
	close(release)
	front.mu.Lock()
	k := front.kicks[0]
	front.hold = nil
	front.mu.Unlock()
	if fmt.Sprint(k.Uids) != "[a]" || k.Reason == "" {
		t.Fatalf("kick %+v", k)
	}
	// The frontend reopens its feed; meanwhile a push takes Pushes.
	pushOne(t, be, "b")
	waitUntil(t, "b delivered", func() bool { return pushedUIDs(front) == "[a b]" })
}
