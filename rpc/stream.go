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

	mu      sync.Mutex
	stream  grpc.BidiStreamingClient[Req, Rep]
	pending map[uint64]chan result[Rep]
	seq     uint64

	sendMu sync.Mutex
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

func newCaller[Req, Rep any](ctx context.Context, name string,
	open func(context.Context) (grpc.BidiStreamingClient[Req, Rep], error),
	setSeq func(*Req, uint64), getSeq func(*Rep) uint64) *caller[Req, Rep] {
	return &caller[Req, Rep]{name: name, open: open, setSeq: setSeq, getSeq: getSeq, ctx: ctx,
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

// start sends req without waiting, so one goroutine can fan a message out to
// several peers and then collect the replies.
func (c *caller[Req, Rep]) start(req *Req, waiters *waiterPool[Rep]) (inflight[Rep], error) {
	st, err := c.current()
	if err != nil {
		return inflight[Rep]{}, err
	}
	w := waiters.get()
	c.mu.Lock()
	if c.stream != st { // failed between current() and here
		c.mu.Unlock()
		waiters.put(w)
		return inflight[Rep]{}, fmt.Errorf("%s: %w", c.name, errStreamClosed)
	}
	c.seq++
	seq := c.seq
	c.pending[seq] = w
	c.mu.Unlock()
	c.setSeq(req, seq)

	c.sendMu.Lock()
	err = st.Send(req)
	c.sendMu.Unlock()
	if err != nil {
		c.fail(st, err)
	}
	// On a send failure, fail has delivered the error to w: wait returns it.
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
	c.stream = st
	go c.receive(st)
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
		w, ok := c.pending[seq]
		delete(c.pending, seq)
		c.mu.Unlock()
		if ok {
			w <- result[Rep]{rep: rep}
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
	c.mu.Unlock()
	st.CloseSend()
	ferr := fmt.Errorf("%s: %w: %v", c.name, errStreamClosed, err)
	for _, w := range pending {
		w <- result[Rep]{err: ferr}
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
