package rpc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/internal/deadline"
	"github.com/shaddock/shaddock/internal/routines"
	"github.com/shaddock/shaddock/proto/clusterpb"
)

// fakePushStream is a push stream whose sends can be held (as a slow
// socket would) and whose replies the test writes.
type fakePushStream struct {
	mu      sync.Mutex
	batches [][]uint64    // the seqs of each message sent
	hold    chan struct{} // when set, send waits on it after recording
	step    chan struct{} // when set, each send waits for a value from it
	entered chan struct{} // gets a value when a held send has started
	replies chan []*clusterpb.PushReply
}

var errBroken = errors.New("broken")

func newFakePushStream() *fakePushStream {
	return &fakePushStream{entered: make(chan struct{}, 16), replies: make(chan []*clusterpb.PushReply, 16)}
}

func (f *fakePushStream) send(reqs []*clusterpb.PushRequest) error {
	seqs := make([]uint64, len(reqs))
	for i, r := range reqs {
		seqs[i] = r.Seq
	}
	f.mu.Lock()
	f.batches = append(f.batches, seqs)
	hold, step := f.hold, f.step
	f.mu.Unlock()
	if hold != nil {
		f.entered <- struct{}{}
		<-hold
	}
	if step != nil {
		f.entered <- struct{}{}
		<-step
	}
	return nil
}

func (f *fakePushStream) recv() ([]*clusterpb.PushReply, error) {
	r, ok := <-f.replies
	if !ok {
		return nil, errBroken
	}
	return r, nil
}

func (f *fakePushStream) closeSend() {}

func (f *fakePushStream) setHold(c chan struct{}) {
	f.mu.Lock()
	f.hold = c
	f.mu.Unlock()
}

func (f *fakePushStream) sent() [][]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.batches)
}

func seqRange(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// newPushCaller returns a push caller over the streams streams gives out,
// reporting lost pushes (by seq) on lost.
func newPushCaller(t *testing.T, streams func() *fakePushStream, lost chan<- []uint64) (*caller[clusterpb.PushRequest, clusterpb.PushReply], *batchCounter) {
	var g routines.Group
	t.Cleanup(g.Wait)
	counter := &batchCounter{}
	c := newCaller(context.Background(), g.Go, "push to fe", counter,
		func(context.Context) (batchStream[clusterpb.PushRequest, clusterpb.PushReply], error) {
			return streams(), nil
		},
		func(r *clusterpb.PushRequest, s uint64) { r.Seq = s },
		func(r *clusterpb.PushReply) uint64 { return r.Seq })
	c.ackOf = func(r *clusterpb.PushReply) uint64 { return r.Acked }
	c.onLost = func(reqs []*clusterpb.PushRequest) {
		seqs := make([]uint64, len(reqs))
		for i, r := range reqs {
			seqs[i] = r.Seq
		}
		lost <- seqs
	}
	return c, counter
}

// What is queued while a message is being sent leaves as the next message,
// in seq order; acknowledgements still count per request; a stream that
// breaks hands every request it did not acknowledge to onLost, those still
// queued (never sent) included, in order.
func TestQueuedRequestsLeaveAsOneMessage(t *testing.T) {
	fs := newFakePushStream()
	opened := 0
	lost := make(chan []uint64, 1)
	c, counter := newPushCaller(t, func() *fakePushStream { opened++; return fs }, lost)
	push := func() error { _, err := c.start(&clusterpb.PushRequest{Route: "onChat"}, nil, 0, nil); return err }

	// The first push finds the stream idle: its goroutine sends, and is held
	// in the send while 99 more are queued.
	release := make(chan struct{})
	fs.setHold(release)
	first := make(chan error, 1)
	go func() { first <- push() }()
	<-fs.entered
	fs.setHold(nil)
	for i := 0; i < 99; i++ {
		if err := push(); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if got, want := fs.sent(), [][]uint64{{1}, seqRange(2, 100)}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("messages sent %v, want %v", got, want)
	}
	if got := counter.load(); got.Messages != 2 || got.Items != 100 {
		t.Fatalf("counted %+v", got)
	}

	// The frontend acknowledges up to 60 (a plain ack and a reply).
	fs.replies <- []*clusterpb.PushReply{{Acked: 30}, {Seq: 55, Acked: 60}}
	waitUntil(t, "the acknowledgement", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.unacked) == 40
	})

	// 101 is being sent when the stream breaks, 102..110 are queued behind it.
	release = make(chan struct{})
	fs.setHold(release)
	go func() { first <- push() }()
	<-fs.entered
	for i := 0; i < 9; i++ {
		if err := push(); err != nil {
			t.Fatal(err)
		}
	}
	close(fs.replies) // the stream breaks
	waitUntil(t, "the stream to fail", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.stream == nil
	})
	close(release)
	if got, want := <-lost, seqRange(61, 110); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("lost %v, want %v", got, want)
	}
	<-first
	if got := fs.sent(); len(got) != 3 || fmt.Sprint(got[2]) != "[101]" {
		t.Fatalf("messages sent %v: the queued pushes must not leave on a broken stream", got)
	}

	// The next push opens a new stream.
	fs2 := newFakePushStream()
	fs = fs2
	if err := push(); err != nil {
		t.Fatal(err)
	}
	if opened != 2 || fmt.Sprint(fs2.sent()) != "[[111]]" {
		t.Fatalf("opened %d streams, second sent %v", opened, fs2.sent())
	}
	c.close()
	if got := <-lost; fmt.Sprint(got) != "[111]" {
		t.Fatalf("lost on close %v", got)
	}
	close(fs2.replies) // ends its receiver
}

// A goroutine that became a stream's sender does not stay one while others
// keep queueing: after a few messages the rest is sent by a goroutine of the
// node's own, and the first goroutine goes back to its own business.
func TestSenderHandsOverUnderSteadyFlow(t *testing.T) {
	fs := newFakePushStream()
	fs.step = make(chan struct{})
	lost := make(chan []uint64, 1)
	c, _ := newPushCaller(t, func() *fakePushStream { return fs }, lost)
	push := func() error { _, err := c.start(&clusterpb.PushRequest{Route: "onChat"}, nil, 0, nil); return err }
	first := make(chan error, 1)
	go func() { first <- push() }()
	for i := 0; i < senderRounds; i++ {
		<-fs.entered // send i+1 is under way; one more request arrives meanwhile
		if err := push(); err != nil {
			t.Fatal(err)
		}
		fs.step <- struct{}{}
	}
	select {
	case err := <-first:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first sender is still sending for the others")
	}
	<-fs.entered // the last request leaves from the node's goroutine
	fs.step <- struct{}{}
	waitUntil(t, "the last send", func() bool { return len(fs.sent()) == senderRounds+1 })
	if got, want := fs.sent(), [][]uint64{{1}, {2}, {3}, {4}, {5}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("messages sent %v, want %v", got, want)
	}
	waitUntil(t, "the sender role to be free", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.stream.q.sending
	})
	c.close()
	<-lost
	close(fs.replies)
}

// Many concurrent calls through real gRPC streams: every reply matches its
// request, and they leave in fewer messages than there are calls, both
// ways.
func TestConcurrentForwardsAreBatched(t *testing.T) {
	fe, be, _ := startNodes(t)
	const calls = 1000
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	start := make(chan struct{})
	for i := 0; i < calls; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			want := fmt.Sprint(i)
			rep, err := fe.Forward(context.Background(), "be-1", &clusterpb.ForwardRequest{Route: "chat.h.echo",
				Body: []byte(want), Session: &clusterpb.Session{Uid: "u"}})
			if err != nil || string(rep.Body) != "u:"+want {
				errs <- fmt.Errorf("%d: %v %v", i, rep, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	f, r := fe.BatchStats().Forwards, be.BatchStats().ForwardReplies
	t.Logf("forwards: %d in %d messages; replies: %d in %d messages", f.Items, f.Messages, r.Items, r.Messages)
	if f.Items != calls || r.Items != calls {
		t.Fatalf("counted %d forwards and %d replies, want %d", f.Items, r.Items, calls)
	}
	if f.Messages >= calls || r.Messages >= calls {
		t.Fatalf("no batching: %d forwards in %d messages, %d replies in %d", f.Items, f.Messages, r.Items, r.Messages)
	}
}

// A call whose context is a lazy deadline.Context (as the connector gives
// each request) waits without arming a timer of its own: the caller's one
// expiry fails it at its deadline, as the context would have, and forgets
// it. Earlier deadlines move the expiry forward.
func TestLazyDeadlinesExpireWithoutATimerPerCall(t *testing.T) {
	fe, _, _ := startNodes(t)
	p, err := fe.peer("be-1")
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	starts := []time.Time{}
	for _, d := range []time.Duration{900 * time.Millisecond, 150 * time.Millisecond} {
		ctx, cancel := deadline.WithTimeout(context.Background(), d)
		defer cancel()
		starts = append(starts, time.Now())
		go func() {
			_, err := fe.Forward(ctx, "be-1", &clusterpb.ForwardRequest{Route: "chat.h.slow", Session: &clusterpb.Session{}})
			errs <- err
		}()
		if d > 200*time.Millisecond {
			waitUntil(t, "the first call to wait", func() bool {
				p.forward.mu.Lock()
				defer p.forward.mu.Unlock()
				return len(p.forward.pending) == 1
			})
		}
	}
	for i, want := range []time.Duration{150 * time.Millisecond, 900 * time.Millisecond} {
		err := <-errs
		var herr *handler.Error
		if !errors.As(err, &herr) || herr.Code != handler.CodeTimeout || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call %d: err = %v, want a 504 from the deadline", i, err)
		}
		if d := time.Since(starts[0]); d < want-50*time.Millisecond || d > want+time.Second {
			t.Fatalf("call %d failed after %v, want about %v", i, d, want)
		}
	}
	p.forward.mu.Lock()
	defer p.forward.mu.Unlock()
	if len(p.forward.pending) != 0 {
		t.Fatalf("%d calls still pending", len(p.forward.pending))
	}
}
