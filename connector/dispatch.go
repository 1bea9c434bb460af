package connector

import (
	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/internal/deadline"
	"github.com/shaddock/shaddock/protocol"
)

// inbound is one unit of work for a session's dispatch worker.
type inbound struct {
	kind  uint8
	id    uint64
	route string
	body  []byte
}

const (
	inRequest uint8 = iota
	inNotify
	inHandshake
	inKick   // kick once the work queued before it is done (graceful shutdown)
	inClosed // the session ended: run the close hooks
)

// enqueue hands work to the session's worker, in order. When MaxPending
// messages are already waiting, the reader blocks here, which stops it
// reading: the client is slowed by TCP flow control instead of growing memory.
func (s *Session) enqueue(in inbound) { s.queue(in, true) }

// kickAfterQueued queues a kick behind the work already queued, ignoring the
// MaxPending bound so a shutdown never waits on one session's reader.
func (s *Session) kickAfterQueued(reason string) {
	s.queue(inbound{kind: inKick, body: []byte(reason)}, false)
}

// queue appends in and starts the worker if it is not running; bounded
// waits while the queue is at MaxPending.
func (s *Session) queue(in inbound, bounded bool) {
	s.qmu.Lock()
	for bounded && len(s.inq)-s.inHead >= s.srv.cfg.MaxPending && !s.closed.Load() {
		if s.inWait == nil {
			s.inWait = make(chan struct{})
		}
		wait := s.inWait
		s.qmu.Unlock()
		<-wait
		s.qmu.Lock()
	}
	if s.closed.Load() {
		s.qmu.Unlock()
		return
	}
	s.inq = append(s.inq, in)
	s.startDrainLocked()
}

// startDrainLocked starts the worker unless it runs; called with qmu held,
// it releases it.
func (s *Session) startDrainLocked() {
	start := !s.running
	s.running = true
	s.qmu.Unlock()
	if start {
		s.srv.pool.Go(s.drainFn)
	}
}

// drain runs the session's queued work one item at a time; it is the only
// place handlers run for this session, which is what orders them.
func (s *Session) drain() {
	for {
		s.qmu.Lock()
		if s.inHead == len(s.inq) {
			s.stopDrainLocked()
			s.qmu.Unlock()
			return
		}
		in := s.inq[s.inHead]
		s.inq[s.inHead] = inbound{}
		s.inHead++
		if s.inWait != nil {
			close(s.inWait)
			s.inWait = nil
		}
		s.qmu.Unlock()

		switch in.kind {
		case inRequest, inNotify:
			if s.handle(in) {
				return // an asynchronous handler has the session; its done goes on (resume)
			}
		case inHandshake:
			s.handshake(in.body)
		case inKick:
			s.kick(string(in.body))
		case inClosed:
			s.finish()
			// Nothing can be queued after inClosed; leave running set so no
			// worker starts again.
			return
		}
	}
}

// stopDrainLocked marks the queue idle (no worker runs), dropping a
// large or parked session's array; called with qmu held.
func (s *Session) stopDrainLocked() {
	s.inq, s.inHead = s.inq[:0], 0
	if cap(s.inq) > 16 || s.parked.Load() {
		s.inq = nil // a parked (idle) session keeps none (releaseQueues)
	}
	s.running = false
}

// handle runs the message's handler and answers it. It reports true when
// an AsyncHandler took the message: its done answers and resumes the
// queue, and the worker must leave the session to it.
func (s *Session) handle(in inbound) (async bool) {
	ctx := deadline.Timeout(s.srv.ctx, s.srv.cfg.RequestTimeout)
	req := handler.Request{Route: in.route, Body: in.body, Notify: in.kind == inNotify, Session: s}
	if ah := s.srv.cfg.AsyncHandler; ah != nil {
		s.qmu.Lock()
		s.asyncStarting = true
		s.asyncGen++
		gen := s.asyncGen
		s.qmu.Unlock()
		var taken bool
		panicked := s.safely(in.route, func() {
			taken = ah(ctx, req, func(resp []byte, err error) { s.asyncDone(ctx, in, gen, resp, err) })
		})
		s.qmu.Lock()
		s.asyncStarting = false
		early := s.early
		s.early = nil
		if early == nil && (panicked || !taken) {
			s.asyncGen++ // a done still to come is ignored
		}
		s.qmu.Unlock()
		switch {
		case early != nil:
			s.answer(in, early.resp, early.err)
			ctx.Cancel()
			return false
		case panicked:
			s.answer(in, nil, handler.Errorf(handler.CodeInternal, "internal server error"))
			ctx.Cancel()
			return false
		case taken:
			return true
		}
	}
	defer ctx.Cancel()
	var (
		resp []byte
		err  error
	)
	if s.safely(in.route, func() { resp, err = s.srv.cfg.Handler(ctx, req) }) {
		err = handler.Errorf(handler.CodeInternal, "internal server error")
	}
	s.answer(in, resp, err)
	return false
}

// asyncResult is what a done called before its AsyncHandler returned
// left for the worker.
type asyncResult struct {
	resp []byte
	err  error
}

// asyncDone is an AsyncHandler's done (generation gen): answer, then go on
// with the queue. A done called while the worker is still inside the
// AsyncHandler leaves its outcome to the worker, which goes on itself; a
// second call, or one for a call the worker gave up on (it panicked), does
// nothing.
func (s *Session) asyncDone(ctx *deadline.Context, in inbound, gen uint32, resp []byte, err error) {
	s.qmu.Lock()
	if gen != s.asyncGen {
		s.qmu.Unlock()
		return
	}
	s.asyncGen++
	if s.asyncStarting {
		s.early = &asyncResult{resp, err}
		s.qmu.Unlock()
		return
	}
	s.qmu.Unlock()
	s.answer(in, resp, err)
	ctx.Cancel()
	s.qmu.Lock()
	if s.inHead == len(s.inq) {
		s.stopDrainLocked()
		s.qmu.Unlock()
		return
	}
	s.qmu.Unlock()
	s.srv.pool.Go(s.drainFn) // running stays set: the new worker owns the queue
}

// answer responds to a request with what its handler returned, or logs a
// notify's failure.
func (s *Session) answer(in inbound, resp []byte, err error) {
	if in.kind == inNotify {
		if err != nil {
			if ok, n := s.srv.failLog.Allow(); ok {
				s.logger().Info("notify failed", "route", in.route, "err", err, "failures_since_last_line", n)
			}
		}
		return
	}
	s.respond(in.id, in.route, resp, err)
}

// respond queues the response to request id of route. The body is JSON;
// with a server proto for the route it travels protobuf-encoded, error
// bodies too, as Pomelo encodes whatever a handler answers.
func (s *Session) respond(id uint64, route string, body []byte, err error) {
	if err != nil {
		if _, ok := err.(*handler.Error); !ok {
			if ok, n := s.srv.failLog.Allow(); ok {
				s.logger().Info("request failed", "route", route, "err", err, "failures_since_last_line", n)
			}
		}
		body = handler.ErrorBody(err)
	}
	if m := s.srv.cfg.Protos.Server(route); m != nil {
		bp := protoBufPool.Get().(*[]byte)
		defer protoBufPool.Put(bp)
		*bp = s.srv.encodeProto(m, route, body, (*bp)[:0])
		body = *bp
	}
	pkg, encErr := protocol.EncodeDataPackage(&protocol.Message{Type: protocol.Response, ID: id, Body: body}, nil)
	if encErr != nil {
		s.logger().Error("response cannot be encoded", "err", encErr)
		pkg, _ = protocol.EncodeDataPackage(&protocol.Message{Type: protocol.Response, ID: id,
			Body: handler.ErrorBody(handler.Errorf(handler.CodeInternal, "response too large"))}, nil)
	}
	s.SendPackage(pkg)
}
