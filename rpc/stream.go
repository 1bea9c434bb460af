package rpc

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc"
)

// errStreamClosed fails calls waiting on a stream that ended.
var errStreamClosed = errors.New("stream closed")

// caller multiplexes request/reply pairs over one bidirectional stream,
// matching replies to requests by sequence number. The stream is opened on
// first use and again after it fails; calls waiting on a failed stream fail
// at once.
type caller[Req, Rep any] struct {
	name   string // "forward", "call" or "push", for errors
	open   func(ctx context.Context) (grpc.BidiStreamingClient[Req, Rep], error)
	setSeq func(*Req, uint64)
	getSeq func(*Rep) uint64
	ctx    context.Context // lives as long as the peer
	// spawn starts the stream's receiver on a goroutine its node owns; false
	// means the node is closing.
	spawn func(func()) bool

	// Streams whose receiver acknowledges cumulatively (pushes) set these:
	// every request sent is kept until acknowledged, and those still kept
	// when the stream breaks go to onLost.
	ackOf   func(*Rep) uint64 // the acknowledgement a reply carries, 0 if none
	onLost  func([]*Req)
	onReply func(*Rep) // replies nobody waits for (pushes reporting missing targets)

	mu      sync.Mutex
	stream  grpc.BidiStreamingClient[Req, Rep]
	pending map[uint64]chan result[Rep]
	unacked []sent[Req] // in seq order
	seq     uint64

	// sendMu makes seq order and send order the same, which cumulative
	// acknowledgements rely on.
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

func newCaller[Req, Rep any](ctx context.Context, spawn func(func()) bool, name string,
	open func(context.Context) (grpc.BidiStreamingClient[Req, Rep], error),
	setSeq func(*Req, uint64), getSeq func(*Rep) uint64) *caller[Req, Rep] {
	return &caller[Req, Rep]{name: name, open: open, setSeq: setSeq, getSeq: getSeq, ctx: ctx, spawn: spawn,
		pending: make(map[uint64]chan result[Rep])}
}

// call sends req and waits for its reply or ctx's end.
func (c *caller[Req, Rep]) call(ctx context.Context, req *Req, waiters *waiterPool[Rep]) (*Rep, error) {
	p, err := c.start(req, waiters)
	if err != nil {
		return nil, err
	}
	return c.wait(ctx, p, waiters)
}

// inflight is a sent request whose reply has not been collected.
type inflight[Rep any] struct {
	seq uint64
	w   chan result[Rep]
}

// start sends req and returns without waiting, so one goroutine can fan a
// message out to several peers and then collect the replies. With waiters
// nil the request is one-way: nobody waits for a reply of its own.
func (c *caller[Req, Rep]) start(req *Req, waiters *waiterPool[Rep]) (inflight[Rep], error) {
	st, err := c.current()
	if err != nil {
		return inflight[Rep]{}, err
	}
	var w chan result[Rep]
	if waiters != nil {
		w = waiters.get()
	}
	c.sendMu.Lock()
	c.mu.Lock()
	if c.stream != st { // failed between current() and here
		c.mu.Unlock()
		c.sendMu.Unlock()
		if w != nil {
			waiters.put(w)
		}
		return inflight[Rep]{}, fmt.Errorf("%s: %w", c.name, errStreamClosed)
	}
	c.seq++
	seq := c.seq
	if w != nil {
		c.pending[seq] = w
	}
	if c.ackOf != nil {
		c.unacked = append(c.unacked, sent[Req]{seq, req})
	}
	c.mu.Unlock()
	c.setSeq(req, seq)
	err = st.Send(req)
	c.sendMu.Unlock()
	if err != nil {
		// fail delivers the error to w (wait returns it) and hands what
		// was unacknowledged, this request included, to onLost.
		c.fail(st, err)
		if w == nil {
			return inflight[Rep]{}, fmt.Errorf("%s: %w: %w", c.name, errStreamClosed, err)
		}
	}
	return inflight[Rep]{seq: seq, w: w}, nil
}

// wait collects the reply of a started request, or gives up at ctx's end.
func (c *caller[Req, Rep]) wait(ctx context.Context, p inflight[Rep], waiters *waiterPool[Rep]) (*Rep, error) {
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

// current returns the open stream, opening one if needed.
func (c *caller[Req, Rep]) current() (grpc.BidiStreamingClient[Req, Rep], error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stream != nil {
		return c.stream, nil
	}
	st, err := c.open(c.ctx)
	if err != nil {
		return nil, fmt.Errorf("open %s stream: %w", c.name, err)
	}
	if !c.spawn(func() { c.receive(st) }) {
		st.CloseSend()
		return nil, fmt.Errorf("open %s stream: %w", c.name, errStreamClosed)
	}
	c.stream = st
	return st, nil
}

// receive delivers replies until the stream ends, then fails what waits.
func (c *caller[Req, Rep]) receive(st grpc.BidiStreamingClient[Req, Rep]) {
	for {
		rep, err := st.Recv()
		if err != nil {
			c.fail(st, err)
			return
		}
		seq := c.getSeq(rep)
		c.mu.Lock()
		if c.ackOf != nil {
			c.acknowledge(c.ackOf(rep))
		}
		w, ok := c.pending[seq]
		delete(c.pending, seq)
		c.mu.Unlock()
		switch {
		case ok:
			w <- result[Rep]{rep: rep}
		case c.onReply != nil && seq != 0:
			c.onReply(rep)
		}
	}
}

// fail closes st (if it is still the current stream) and fails every call
// waiting on it.
func (c *caller[Req, Rep]) fail(st grpc.BidiStreamingClient[Req, Rep], err error) {
	c.mu.Lock()
	if c.stream != st {
		c.mu.Unlock()
		return
	}
	c.stream = nil
	pending := c.pending
	c.pending = make(map[uint64]chan result[Rep])
	unacked := c.unacked
	c.unacked = nil
	c.mu.Unlock()
	// grpc-go forbids CloseSend concurrently with SendMsg: wait for a send
	// in progress (it fails soon, the stream being broken or closing).
	c.sendMu.Lock()
	st.CloseSend()
	c.sendMu.Unlock()
	ferr := fmt.Errorf("%s: %w: %w", c.name, errStreamClosed, err)
	for _, w := range pending {
		w <- result[Rep]{err: ferr}
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

// close ends the current stream, failing waiting calls.
func (c *caller[Req, Rep]) close() {
	c.mu.Lock()
	st := c.stream
	c.mu.Unlock()
	if st != nil {
		c.fail(st, errors.New("peer closed"))
	}
}
