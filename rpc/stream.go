package rpc

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/shaddock/shaddock/internal/deadline"
)

// errStreamClosed fails calls waiting on a stream that ended.
var errStreamClosed = errors.New("stream closed")

// batchStream is one open client stream of batches: every message carries
// the requests (or replies) queued since the previous one.
type batchStream[Req, Rep any] interface {
	send(reqs []*Req) error
	recv() ([]*Rep, error)
	closeSend()
}

// batchClient adapts a generated bidirectional stream of batch messages
// (ReqB holding []*Req, RepB holding []*Rep) to batchStream.
type batchClient[Req, Rep, ReqB, RepB any] struct {
	st     grpc.BidiStreamingClient[ReqB, RepB]
	wrap   func([]*Req) *ReqB
	unwrap func(*RepB) []*Rep
}

func (b batchClient[Req, Rep, ReqB, RepB]) send(reqs []*Req) error { return b.st.Send(b.wrap(reqs)) }

func (b batchClient[Req, Rep, ReqB, RepB]) recv() ([]*Rep, error) {
	m, err := b.st.Recv()
	if err != nil {
		return nil, err
	}
	return b.unwrap(m), nil
}

func (b batchClient[Req, Rep, ReqB, RepB]) closeSend() { _ = b.st.CloseSend() }

// sendQueue is what waits to leave on one stream, and whether a goroutine is
// sending it. It has no lock of its own: its owner's mutex guards it, so that
// the owner can make queue order match an order of its own (sequence
// numbers) under one lock.
//
// Sending is done by whoever queues onto an idle queue (push reports true):
// that goroutine yields once, so that the goroutines already runnable queue
// theirs too, then sends everything queued as one message, and again while
// more arrived during the send. Nothing waits on a timer, so a lone message
// leaves at once; under load, a message carries whatever accumulated while
// the previous one was being sent. No goroutine per stream is needed to send,
// and no handoff to one.
type sendQueue[T any] struct {
	items   []*T
	spare   []*T
	sending bool
}

// push queues x and reports whether the caller must now send (flush).
func (q *sendQueue[T]) push(x *T) bool {
	q.items = append(q.items, x)
	if q.sending {
		return false
	}
	q.sending = true
	return true
}

// take returns everything queued, for the sender to send, after recycling
// the previous batch sent; nil (and the sender role given up) when nothing
// is queued.
func (q *sendQueue[T]) take(prev []*T) []*T {
	if prev != nil {
		clear(prev) // the queue keeps no reference to what was sent
		if cap(prev) <= maxSpareBatch {
			q.spare = prev[:0]
		}
	}
	if len(q.items) == 0 {
		q.sending = false
		return nil
	}
	batch := q.items
	q.items, q.spare = q.spare, nil
	return batch
}

// drop forgets what is queued (the stream is gone); a sender still sending
// finds out at its next take.
func (q *sendQueue[T]) drop() {
	clear(q.items)
	q.items = q.items[:0]
}

// maxSpareBatch bounds the batch slice a queue keeps for reuse, so a burst
// does not pin a large array.
const maxSpareBatch = 1024

// yieldBeforeSend lets the goroutines already runnable run before a sender
// takes its batch: with one P (GOMAXPROCS=1, as the demo runs every server)
// they could not otherwise add to it, and every request would leave alone.
// grpc-go's loopy writer yields the same way before a small write. With
// nothing else runnable it returns at once.
func yieldBeforeSend() { runtime.Gosched() }

// batchCounter counts the messages (batches) sent on a kind of stream and the
// items they carried: items / messages is the mean batch size.
type batchCounter struct{ messages, items atomic.Uint64 }

func (b *batchCounter) add(items int) {
	b.messages.Add(1)
	b.items.Add(uint64(items))
}

func (b *batchCounter) load() BatchCount {
	return BatchCount{Messages: b.messages.Load(), Items: b.items.Load()}
}

// BatchCount is how many stream messages went out and how many requests or
// replies they carried.
type BatchCount struct{ Messages, Items uint64 }

// Mean is the mean number of items per message (0 with none).
func (c BatchCount) Mean() float64 {
	if c.Messages == 0 {
		return 0
	}
	return float64(c.Items) / float64(c.Messages)
}

// caller multiplexes request/reply pairs over one bidirectional stream of
// batches, matching replies to requests by sequence number. The stream is
// opened on first use and again after it fails; calls waiting on a failed
// stream fail at once.
type caller[Req, Rep any] struct {
	name   string // "forward", "call" or "push", for errors
	open   func(ctx context.Context) (batchStream[Req, Rep], error)
	setSeq func(*Req, uint64)
	getSeq func(*Rep) uint64
	ctx    context.Context // lives as long as the peer
	// spawn starts the stream's receiver on a goroutine its node owns; false
	// means the node is closing.
	spawn func(func()) bool
	sent  *batchCounter

	// Streams whose receiver acknowledges cumulatively (pushes) set these:
	// every request queued is kept until acknowledged, and those still kept
	// when the stream breaks go to onLost.
	ackOf   func(*Rep) uint64 // the acknowledgement a reply carries, 0 if none
	onLost  func([]*Req)
	onReply func(*Rep) // replies nobody waits for (pushes reporting missing targets)

	mu     sync.Mutex
	stream *outStream[Req, Rep]
	// feed is a stream the peer opened for this caller's requests (a push
	// feed), not in use yet: current takes it rather than opening one.
	feed    batchStream[Req, Rep]
	pending map[uint64]waiter[Rep]
	unacked []sent[Req] // in seq order
	seq     uint64
	// expiry fails waiters whose deadline passed (see watch): one timer for
	// the caller, armed for the earliest deadline (expiresAt, unix nanos; 0
	// when unarmed), instead of one per call.
	expiry    *time.Timer
	expiresAt int64
	closed    bool // the peer is gone: the expiry is not re-armed
}

// waiter is a call waiting for its reply: w gets the reply or the error.
// A deadline (unix nanos) set means the caller's expiry enforces it, and
// the call does not watch its context.
type waiter[Rep any] struct {
	w chan result[Rep]
	// cb, instead of w, takes the outcome on the goroutine that has it (a
	// stream's receiver, the expiry, a failing sender): see startAsync.
	cb       func(*Rep, error)
	deadline int64
}

func (w waiter[Rep]) waits() bool { return w.w != nil || w.cb != nil }

// deliver hands the outcome to whoever waits.
func (w waiter[Rep]) deliver(r result[Rep]) {
	if w.cb != nil {
		w.cb(r.rep, r.err)
		return
	}
	w.w <- r
}

// outStream is one opened stream and what is queued for it. Requests are
// queued in seq order under caller.mu and sent in queue order by one sender
// at a time, so seq order and send order are the same, which cumulative
// acknowledgements rely on.
type outStream[Req, Rep any] struct {
	bs  batchStream[Req, Rep]
	fed bool           // bs is a feed the peer opened
	q   sendQueue[Req] // guarded by caller.mu
	// retired: the caller left this idle stream for a feed; a request that
	// found it current queues on the caller's next stream. Under caller.mu.
	retired bool
	// sendMu keeps CloseSend from running during a Send (grpc-go forbids
	// it); the sender role already keeps Sends apart.
	sendMu sync.Mutex
}

type sent[Req any] struct {
	seq uint64
	req *Req
}

type result[Rep any] struct {
	rep *Rep
	err error
}

// waiters are reused: a call allocates no channel in the steady state.
type waiterPool[Rep any] struct{ p sync.Pool }

func (w *waiterPool[Rep]) get() chan result[Rep] {
	if c, ok := w.p.Get().(chan result[Rep]); ok {
		return c
	}
	return make(chan result[Rep], 1)
}

func (w *waiterPool[Rep]) put(c chan result[Rep]) { w.p.Put(c) }

func newCaller[Req, Rep any](ctx context.Context, spawn func(func()) bool, name string, sent *batchCounter,
	open func(context.Context) (batchStream[Req, Rep], error),
	setSeq func(*Req, uint64), getSeq func(*Rep) uint64) *caller[Req, Rep] {
	return &caller[Req, Rep]{name: name, open: open, setSeq: setSeq, getSeq: getSeq, ctx: ctx, spawn: spawn,
		sent: sent, pending: make(map[uint64]waiter[Rep])}
}

// call sends req and waits for its reply or ctx's end.
func (c *caller[Req, Rep]) call(ctx context.Context, req *Req, waiters *waiterPool[Rep]) (*Rep, error) {
	p, err := c.start(req, waiters, lazyDeadline(ctx), nil)
	if err != nil {
		return nil, err
	}
	return c.wait(ctx, p, waiters)
}

// lazyDeadline returns ctx's deadline in unix nanos when ctx is a
// deadline.Context (whose timer is made only if somebody waits on Done):
// the caller's expiry then enforces it, and waiting arms no timer per call.
// 0 for other contexts, whose Done the waiter selects on (their
// cancellation matters, and their timer, if any, exists already).
func lazyDeadline(ctx context.Context) int64 {
	dc, ok := ctx.(*deadline.Context)
	if !ok {
		return 0
	}
	dl, _ := dc.Deadline()
	return dl.UnixNano()
}

// inflight is a sent request whose reply has not been collected.
type inflight[Rep any] struct {
	seq uint64
	w   chan result[Rep]
	// byExpiry: the caller's expiry enforces the deadline.
	byExpiry bool
}

// start queues req for sending and returns without waiting for its reply,
// so one goroutine can fan a message out to several peers and then collect
// the replies. With waiters nil the request is one-way: nobody waits for a
// reply of its own, and the error reports a send that failed with req in
// it (req then went to onLost too). A deadline dl (unix nanos, for a call
// with waiters; 0 for none) is enforced by the caller's expiry: see
// lazyDeadline. A one-way request started inside an open scope that makes
// this goroutine the sender is sent when the scope ends (its send error is
// then not reported here).
func (c *caller[Req, Rep]) start(req *Req, waiters *waiterPool[Rep], dl int64, scope *batchScope) (inflight[Rep], error) {
	var w chan result[Rep]
	if waiters != nil {
		w = waiters.get()
	}
	p, err := c.send(req, waiter[Rep]{w: w, deadline: dl}, scope)
	if err != nil && w != nil && p.seq == 0 {
		waiters.put(w) // never queued: nobody will deliver to it
	}
	return p, err
}

// startAsync queues req and returns at once; cb gets the reply or the
// error exactly once, on the goroutine that has it: a stream's receiver,
// the expiry (dl, unix nanos, must be set), a sender whose send failed,
// or this one when req could not be queued (then startAsync also returns
// the error). cb must not block.
func (c *caller[Req, Rep]) startAsync(req *Req, dl int64, cb func(*Rep, error)) error {
	_, err := c.send(req, waiter[Rep]{cb: cb, deadline: dl}, nil)
	return err
}

// send queues req, registering wt for its reply unless wt waits for
// nothing (one-way), and sends it or leaves it to the sender. A request
// not queued has seq 0.
func (c *caller[Req, Rep]) send(req *Req, wt waiter[Rep], scope *batchScope) (inflight[Rep], error) {
	st, err := c.current()
	if err != nil {
		return inflight[Rep]{}, err
	}
	w := wt.w
	dl := wt.deadline
	c.mu.Lock()
	for c.stream != st {
		if !st.retired { // failed between current() and here
			c.mu.Unlock()
			return inflight[Rep]{}, fmt.Errorf("%s: %w", c.name, errStreamClosed)
		}
		c.mu.Unlock() // left for a feed: queue on that
		if st, err = c.current(); err != nil {
			return inflight[Rep]{}, err
		}
		c.mu.Lock()
	}
	c.seq++
	seq := c.seq
	c.setSeq(req, seq)
	if !wt.waits() {
		dl = 0 // one-way: nothing to expire
	} else {
		c.pending[seq] = wt
		if dl != 0 {
			c.watch(dl)
		}
	}
	if c.ackOf != nil {
		c.unacked = append(c.unacked, sent[Req]{seq, req})
	}
	sender := st.q.push(req)
	c.mu.Unlock()
	if sender && !wt.waits() && scope != nil && scope.hold(func() { _ = c.sendQueued(st, senderRounds) }) {
		// Sent when the scope ends; a failure then hands req to onLost.
		return inflight[Rep]{seq: seq}, nil
	}
	if sender {
		// A failed send delivers the error to w (wait returns it) and hands
		// what was unacknowledged, this request included, to onLost.
		if err := c.flush(st, senderRounds); err != nil && !wt.waits() {
			return inflight[Rep]{seq: seq}, fmt.Errorf("%s: %w: %w", c.name, errStreamClosed, err)
		}
	}
	return inflight[Rep]{seq: seq, w: w, byExpiry: dl != 0}, nil
}

// senderRounds bounds how many messages a goroutine that became a stream's
// sender sends before it hands the role to a goroutine of the node's own:
// with several Ps and a steady flow the queue refills during every send,
// and the goroutine (a session's handler, waiting for its own reply next)
// would otherwise go on sending everybody else's requests.
const senderRounds = 4

// flush sends what is queued on st, one message per take, until nothing is
// left, or hands the rest to a goroutine of its own after limit messages
// (0: no limit). It returns the error of the first send (the one carrying
// the request of the goroutine that became sender), nil if that one went
// out.
func (c *caller[Req, Rep]) flush(st *outStream[Req, Rep], limit int) error {
	yieldBeforeSend()
	return c.sendQueued(st, limit)
}

// sendQueued is flush without the yield first: for a scope's end, which
// yields once for all it held.
func (c *caller[Req, Rep]) sendQueued(st *outStream[Req, Rep], limit int) error {
	var (
		batch []*Req
		first error
	)
	for i := 0; ; i++ {
		c.mu.Lock()
		if c.stream != st { // failed: what was queued failed with it
			st.q.sending = false
			c.mu.Unlock()
			if i == 0 {
				return errStreamClosed
			}
			return first
		}
		if limit > 0 && i >= limit && len(st.q.items) > 0 {
			// The sender role (q.sending) passes on as it is.
			c.mu.Unlock()
			if c.spawn(func() { _ = c.flush(st, 0) }) {
				return first
			}
			limit = 0 // the node is closing: finish here
			c.mu.Lock()
		}
		batch = st.q.take(batch)
		c.mu.Unlock()
		if batch == nil {
			return first
		}
		st.sendMu.Lock()
		err := st.bs.send(batch)
		st.sendMu.Unlock()
		c.sent.add(len(batch))
		if err != nil {
			c.fail(st, err)
			if i == 0 {
				first = err
			}
		}
	}
}

// wait collects the reply of a started request, or gives up at ctx's end.
func (c *caller[Req, Rep]) wait(ctx context.Context, p inflight[Rep], waiters *waiterPool[Rep]) (*Rep, error) {
	if p.byExpiry {
		// The reply, a failure of the stream, or the expiry's deadline
		// error: w gets exactly one of them.
		r := <-p.w
		waiters.put(p.w)
		return r.rep, r.err
	}
	select {
	case r := <-p.w:
		waiters.put(p.w)
		return r.rep, r.err
	case <-ctx.Done():
		c.mu.Lock()
		_, still := c.pending[p.seq]
		delete(c.pending, p.seq)
		c.mu.Unlock()
		if !still {
			<-p.w // a reply or failure raced the deadline; drain it so w can be reused
		}
		waiters.put(p.w)
		return nil, ctx.Err()
	}
}

// watch makes sure the expiry fires by dl (unix nanos); called with
// mu held. Deadlines mostly arrive in increasing order, so the timer is
// rarely moved, and it fires about once per timeout while calls are
// answered in time (finding nothing, or a late one, to fail).
func (c *caller[Req, Rep]) watch(dl int64) {
	if c.expiresAt != 0 && c.expiresAt <= dl {
		return
	}
	c.expiresAt = dl
	d := time.Duration(dl - time.Now().UnixNano())
	if c.expiry == nil {
		c.expiry = time.AfterFunc(d, c.expire)
		return
	}
	c.expiry.Reset(d)
}

// expire fails the calls whose deadline has passed with
// context.DeadlineExceeded, as their context would have, and re-arms the
// expiry for the earliest deadline left.
func (c *caller[Req, Rep]) expire() {
	now := time.Now().UnixNano()
	var expired []waiter[Rep]
	c.mu.Lock()
	next := int64(0)
	for seq, p := range c.pending {
		switch {
		case p.deadline == 0:
		case p.deadline <= now:
			expired = append(expired, p)
			delete(c.pending, seq)
		case next == 0 || p.deadline < next:
			next = p.deadline
		}
	}
	c.expiresAt = 0
	if next != 0 && !c.closed {
		c.watch(next)
	}
	c.mu.Unlock()
	for _, w := range expired {
		w.deliver(result[Rep]{err: context.DeadlineExceeded})
	}
}

// current returns the open stream, opening one if needed: the feed the
// peer attached if there is one, else one of the caller's own.
func (c *caller[Req, Rep]) current() (*outStream[Req, Rep], error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.stream; st != nil {
		if c.feed == nil || st.fed || !c.idle(st) {
			return st, nil
		}
		// A feed arrived while a stream of the caller's own was in use, and
		// that one is idle: nothing sent on it is unacknowledged or waited
		// for, so moving on cannot reorder or lose anything. Its receiver
		// sees the end and finds it is no longer current.
		st.retired = true
		c.stream = nil
		st.sendMu.Lock() // no sender holds it (idle); CloseSend must not meet a Send
		st.bs.closeSend()
		st.sendMu.Unlock()
	}
	bs, fed := c.feed, true
	c.feed = nil
	if e, ok := bs.(interface{ ended() bool }); ok && e.ended() {
		bs.closeSend() // the peer ended it before its handler could detach it
		bs = nil
	}
	if bs == nil {
		fed = false
		var err error
		if bs, err = c.open(c.ctx); err != nil {
			return nil, fmt.Errorf("open %s stream: %w", c.name, err)
		}
	}
	st := &outStream[Req, Rep]{bs: bs, fed: fed}
	if !c.spawn(func() { c.receive(st) }) {
		bs.closeSend()
		return nil, fmt.Errorf("open %s stream: %w", c.name, errStreamClosed)
	}
	c.stream = st
	return st, nil
}

// idle reports whether st carries nothing: nothing queued or being sent,
// unacknowledged or waiting for a reply. Called with mu held.
func (c *caller[Req, Rep]) idle(st *outStream[Req, Rep]) bool {
	return !st.q.sending && len(st.q.items) == 0 && len(c.unacked) == 0 && len(c.pending) == 0
}

// attach gives the caller a stream its peer opened for it (a push feed),
// used from the next time the caller opens a stream or moves to it (see
// current). A feed attached earlier and not yet used is closed.
func (c *caller[Req, Rep]) attach(bs batchStream[Req, Rep]) {
	c.mu.Lock()
	old := c.feed
	if c.closed {
		old, bs = bs, nil
	}
	c.feed = bs
	c.mu.Unlock()
	if old != nil {
		old.closeSend()
	}
}

// detach forgets bs if it is the attached feed not yet in use (its stream
// ended).
func (c *caller[Req, Rep]) detach(bs batchStream[Req, Rep]) {
	c.mu.Lock()
	if c.feed == bs {
		c.feed = nil
	}
	c.mu.Unlock()
}

// receive delivers replies until the stream ends, then fails what waits.
// A batch of replies takes the lock once.
func (c *caller[Req, Rep]) receive(st *outStream[Req, Rep]) {
	var waiting []waiter[Rep] // per reply of the batch, zero if nobody waits
	for {
		reps, err := st.bs.recv()
		if err != nil {
			c.fail(st, err)
			return
		}
		waiting = waiting[:0]
		c.mu.Lock()
		for _, rep := range reps {
			if c.ackOf != nil {
				c.acknowledge(c.ackOf(rep))
			}
			seq := c.getSeq(rep)
			waiting = append(waiting, c.pending[seq])
			delete(c.pending, seq)
		}
		c.mu.Unlock()
		for i, rep := range reps {
			switch w := waiting[i]; {
			case w.waits():
				w.deliver(result[Rep]{rep: rep})
			case c.onReply != nil && c.getSeq(rep) != 0:
				c.onReply(rep)
			}
		}
		clear(waiting)
	}
}

// fail closes st (if it is still the current stream) and fails every call
// waiting on it.
func (c *caller[Req, Rep]) fail(st *outStream[Req, Rep], err error) {
	c.mu.Lock()
	if c.stream != st {
		c.mu.Unlock()
		return
	}
	c.stream = nil
	pending := c.pending
	c.pending = make(map[uint64]waiter[Rep])
	unacked := c.unacked
	c.unacked = nil
	st.q.drop() // in pending and unacked: failed and handed to onLost below
	c.mu.Unlock()
	// grpc-go forbids CloseSend concurrently with SendMsg: wait for a send
	// in progress (it fails soon, the stream being broken or closing).
	st.sendMu.Lock()
	st.bs.closeSend()
	st.sendMu.Unlock()
	ferr := fmt.Errorf("%s: %w: %w", c.name, errStreamClosed, err)
	for _, p := range pending {
		p.deliver(result[Rep]{err: ferr})
	}
	if len(unacked) > 0 && c.onLost != nil {
		lost := make([]*Req, len(unacked))
		for i, u := range unacked {
			lost[i] = u.req
		}
		c.onLost(lost)
	}
}

// acknowledge forgets the requests up to and including seq; called with mu.
func (c *caller[Req, Rep]) acknowledge(seq uint64) {
	if seq == 0 {
		return
	}
	i := 0
	for i < len(c.unacked) && c.unacked[i].seq <= seq {
		c.unacked[i] = sent[Req]{}
		i++
	}
	c.unacked = c.unacked[i:]
	if len(c.unacked) == 0 && cap(c.unacked) > 1024 {
		c.unacked = nil
	}
}

// close ends the current stream, failing waiting calls, and stops the
// expiry.
func (c *caller[Req, Rep]) close() {
	c.mu.Lock()
	st := c.stream
	c.closed = true
	if c.expiry != nil {
		c.expiry.Stop()
	}
	fd := c.feed
	c.feed = nil
	c.mu.Unlock()
	if st != nil {
		c.fail(st, errors.New("peer closed"))
	}
	if fd != nil {
		fd.closeSend()
	}
}
