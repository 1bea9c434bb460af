package rpc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/internal/deadline"
	"github.com/shaddock/shaddock/proto/clusterpb"
)

// service implements clusterpb.ClusterServer on top of the node's handlers.
type service struct {
	clusterpb.UnimplementedClusterServer
	n *Node
}

// replySender sends a stream's replies in batches: see sendQueue. Replies
// complete on many goroutines; the first to find the queue idle sends what
// the others queue meanwhile.
type replySender[Rep any] struct {
	mu     sync.Mutex
	q      sendQueue[Rep]
	send   func([]*Rep) error
	sent   *batchCounter
	log    *slog.Logger
	heldFn func() // sendQueued, made once for batchScope.hold
}

func (r *replySender[Rep]) reply(rep *Rep) {
	r.mu.Lock()
	sender := r.q.push(rep)
	r.mu.Unlock()
	if sender {
		r.flush()
	}
}

// replyHeld queues rep, served inside scope: if it makes this goroutine
// the sender, the send waits for the scope's end.
func (r *replySender[Rep]) replyHeld(rep *Rep, scope *batchScope) {
	r.mu.Lock()
	sender := r.q.push(rep)
	r.mu.Unlock()
	if sender && !scope.hold(r.heldFn) {
		r.flush()
	}
}

// flush sends what is queued until nothing is; called by the sender.
func (r *replySender[Rep]) flush() {
	yieldBeforeSend()
	r.sendQueued()
}

// sendQueued sends what is queued until nothing is, without yielding
// first: for a scope's end, which yields once for all it held.
func (r *replySender[Rep]) sendQueued() {
	var batch []*Rep
	for {
		r.mu.Lock()
		batch = r.q.take(batch)
		r.mu.Unlock()
		if batch == nil {
			return
		}
		err := r.send(batch)
		r.sent.add(len(batch))
		if err != nil {
			r.log.Debug("replies not sent: stream ended", "replies", len(batch), "err", err)
		}
	}
}

// serveStream receives batches of requests until the stream ends, handles
// each request on a pooled goroutine, and sends replies as they complete
// (in any order, batched). Requests inline reports true for (non-blocking
// handlers; inline may be nil) are served on the receiving goroutine
// instead, in batch order, inside a batchScope.
//
// A batch whose inline requests took longer than slowInline is logged
// (route names the requests): a handler declared non-blocking that blocks
// stalls every request of its stream.
func serveStream[Req, Rep any](n *Node, recv func() ([]*Req, error), send func([]*Rep) error, sent *batchCounter,
	handle func(ctx context.Context, req *Req) *Rep, timeout func(*Req) uint32, inline func(*Req) bool, route func(*Req) string) error {
	replies := &replySender[Rep]{send: send, sent: sent, log: n.log}
	replies.heldFn = replies.sendQueued
	scope := &batchScope{}
	scoped := withScope(n.ctx, scope)
	for {
		reqs, err := recv()
		if err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				return nil
			}
			return err
		}
		held := false
		var began time.Time
		for _, req := range reqs {
			n.inflight.Add(1)
			if inline != nil && inline(req) {
				if !held {
					scope.begin()
					held = true
					began = time.Now()
				}
				ctx := deadline.Timeout(scoped, requestTimeout(n, timeout(req)))
				rep := handle(ctx, req)
				ctx.Cancel()
				replies.replyHeld(rep, scope)
				n.inflight.Done()
				continue
			}
			n.pool.Go(func() {
				defer n.inflight.Done()
				ctx := deadline.Timeout(n.ctx, requestTimeout(n, timeout(req)))
				rep := handle(ctx, req)
				ctx.Cancel()
				replies.reply(rep)
			})
		}
		if held {
			took := time.Since(began)
			scope.end()
			if took > slowInline {
				slowInlineBatch(n, took, reqs, inline, route)
			}
		}
	}
}

// slowInline is how long the non-blocking requests of one batch may take
// before the node warns that one of their handlers blocks. They take
// microseconds each when they are what they were declared to be.
const (
	slowInline      = 100 * time.Millisecond
	slowInlineEvery = 10 * time.Second
)

// slowInlineBatch warns (at most once per slowInlineEvery) that the
// non-blocking requests of a batch held their stream's receiver for took.
func slowInlineBatch[Req any](n *Node, took time.Duration, reqs []*Req, inline func(*Req) bool, route func(*Req) string) {
	ok, suppressed := n.slowInlineLog.Allow()
	if !ok {
		return
	}
	var routes []string
	count := 0
	for _, req := range reqs {
		if !inline(req) {
			continue
		}
		count++
		if r := route(req); len(routes) < 5 && !slices.Contains(routes, r) {
			routes = append(routes, r)
		}
	}
	n.log.Warn("non-blocking handlers held their stream: one of them blocks (a call, a lock, I/O) and delays every message of the stream; register it with Handle, not HandleNonBlocking",
		"took", took.Round(time.Millisecond), "requests", count, "routes", routes, "warnings_suppressed", suppressed)
}

// requestTimeout is the time a request may take: what its sender will
// wait (ms), or the node's default when it did not say.
func requestTimeout(n *Node, ms uint32) time.Duration {
	if ms == 0 {
		return n.cfg.Timeout
	}
	return time.Duration(ms) * time.Millisecond
}

func (s *service) Forwards(st grpc.BidiStreamingServer[clusterpb.ForwardBatch, clusterpb.ForwardReplyBatch]) error {
	forward := s.n.handlers().Forward
	if forward == nil {
		return status.Error(codes.Unimplemented, "this server does not take forwarded messages")
	}
	return serveStream(s.n,
		func() ([]*clusterpb.ForwardRequest, error) {
			b, err := st.Recv()
			return b.GetRequests(), err
		},
		func(reps []*clusterpb.ForwardReply) error {
			return st.Send(&clusterpb.ForwardReplyBatch{Replies: reps})
		},
		&s.n.batches.forwardReplies,
		func(ctx context.Context, req *clusterpb.ForwardRequest) *clusterpb.ForwardReply {
			rep := s.n.serveForward(ctx, forward, req)
			rep.Seq = req.Seq
			return rep
		}, (*clusterpb.ForwardRequest).GetTimeoutMs, s.n.handlers().ForwardNonBlocking, (*clusterpb.ForwardRequest).GetRoute)
}

func (s *service) Calls(st grpc.BidiStreamingServer[clusterpb.CallBatch, clusterpb.CallReplyBatch]) error {
	call := s.n.handlers().Call
	if call == nil {
		return status.Error(codes.Unimplemented, "this server has no remotes")
	}
	return serveStream(s.n,
		func() ([]*clusterpb.CallRequest, error) {
			b, err := st.Recv()
			return b.GetRequests(), err
		},
		func(reps []*clusterpb.CallReply) error { return st.Send(&clusterpb.CallReplyBatch{Replies: reps}) },
		&s.n.batches.callReplies,
		func(ctx context.Context, req *clusterpb.CallRequest) *clusterpb.CallReply {
			rep := s.n.serveCall(ctx, call, req)
			rep.Seq = req.Seq
			return rep
		}, (*clusterpb.CallRequest).GetTimeoutMs, nil, nil)
}

// pushAckEvery and pushAckDelay bound how many pushes, and for how long, a
// frontend leaves unacknowledged: acknowledgements are what let a sender
// know which pushes a broken stream may have lost.
const (
	pushAckEvery = 64
	pushAckDelay = 5 * time.Millisecond
)

func (s *service) Pushes(st grpc.BidiStreamingServer[clusterpb.PushBatch, clusterpb.PushReplyBatch]) error {
	fe := s.n.handlers().Frontend
	if fe == nil {
		return status.Error(codes.Unimplemented, "not a frontend")
	}
	return s.n.servePushes(fe,
		func() ([]*clusterpb.PushRequest, error) {
			b, err := st.Recv()
			return b.GetRequests(), err
		},
		func(reps []*clusterpb.PushReply) error { return st.Send(&clusterpb.PushReplyBatch{Replies: reps}) })
}

// servePushes serves one stream of pushes to this frontend, a Pushes
// stream a peer opened or a PushFeed this node opened to it, until it ends
// (nil for an end by the other side or a cancellation).
func (n *Node) servePushes(fe Frontend, recv func() ([]*clusterpb.PushRequest, error), sendReplies func([]*clusterpb.PushReply) error) error {
	// Pushes are cheap and must stay in order per sender: handle a batch's
	// pushes on the receiving goroutine, all of them before it reads again
	// (the sessions' writer then flushes each session once for the batch),
	// and acknowledge in batches.
	var (
		mu         sync.Mutex // Send and the counters
		last, sent uint64
		timer      *time.Timer
		armed      bool
		ended      bool
		out        []*clusterpb.PushReply // replies of the current batch
	)
	send := func(reps []*clusterpb.PushReply) error { // with mu held
		n.batches.pushReplies.add(len(reps))
		return sendReplies(reps)
	}
	ack := func() { // with mu held
		if last > sent && !ended {
			if err := send([]*clusterpb.PushReply{{Acked: last}}); err == nil {
				sent = last
			}
		}
	}
	defer func() {
		mu.Lock()
		ended = true
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
	}()
	for {
		reqs, err := recv()
		if err != nil {
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				return nil
			}
			return err
		}
		if len(reqs) == 0 {
			continue
		}
		out = out[:0]
		for _, req := range reqs {
			rep := n.servePush(fe, req)
			if rep != nil && (req.WantReply || rep.Error != nil || len(rep.MissingSessionIds)+len(rep.MissingUids) > 0) {
				rep.Seq = req.Seq
				out = append(out, rep)
			}
		}
		mu.Lock()
		last = reqs[len(reqs)-1].Seq
		switch {
		case len(out) > 0:
			// Every push of the batch is handled: each reply acknowledges
			// them all.
			for _, rep := range out {
				rep.Acked = last
			}
			err = send(out)
			sent = last
		case last-sent >= pushAckEvery:
			ack()
		case !armed:
			armed = true
			if timer == nil {
				timer = time.AfterFunc(pushAckDelay, func() { mu.Lock(); armed = false; ack(); mu.Unlock() })
			} else {
				timer.Reset(pushAckDelay)
			}
		}
		mu.Unlock()
		clear(out)
		if err != nil {
			return err
		}
	}
}

func (s *service) Bind(ctx context.Context, req *clusterpb.BindRequest) (*clusterpb.BindReply, error) {
	fe := s.n.handlers().Frontend
	if fe == nil {
		return nil, status.Error(codes.Unimplemented, "not a frontend")
	}
	return &clusterpb.BindReply{Status: s.n.serveBind(ctx, fe, req)}, nil
}

func (s *service) Kick(ctx context.Context, req *clusterpb.KickRequest) (*clusterpb.KickReply, error) {
	fe := s.n.handlers().Frontend
	if fe == nil {
		return nil, status.Error(codes.Unimplemented, "not a frontend")
	}
	return &clusterpb.KickReply{Kicked: int32(s.n.serveKick(ctx, fe, req))}, nil
}

func (s *service) Check(ctx context.Context, req *clusterpb.CheckRequest) (*clusterpb.CheckReply, error) {
	fe := s.n.handlers().Frontend
	if fe == nil {
		return nil, status.Error(codes.Unimplemented, "not a frontend")
	}
	return s.n.serveCheck(fe, req), nil
}

func (s *service) Holds(ctx context.Context, req *clusterpb.HoldsRequest) (*clusterpb.HoldsReply, error) {
	rep := &clusterpb.HoldsReply{}
	if h := s.n.handlers().Holds; h != nil {
		size, err := h(req.Key)
		if err != nil {
			return nil, status.Error(codes.Unavailable, err.Error())
		}
		rep.Size = size
	}
	return rep, nil
}

// The serve functions below answer a peer's request, or this node's own
// request to itself, the same way. Requests naming another instance of this
// server (a predecessor, whose sessions and state died with it) are answered
// as about nothing that exists here.

// isSelf reports whether epoch names this instance (0 names any).
func (n *Node) isSelf(epoch uint64) bool {
	return epoch == 0 || n.cfg.Self.Epoch == 0 || epoch == n.cfg.Self.Epoch
}

// errOtherInstance answers a message routed to a predecessor of this server.
var errOtherInstance = &clusterpb.Error{Code: handler.CodeUnavailable, Msg: "server restarted"}

func (n *Node) serveForward(ctx context.Context, forward func(context.Context, *clusterpb.ForwardRequest) *clusterpb.ForwardReply, req *clusterpb.ForwardRequest) *clusterpb.ForwardReply {
	if !n.isSelf(req.TargetEpoch) {
		return &clusterpb.ForwardReply{Error: errOtherInstance}
	}
	return forward(ctx, req)
}

func (n *Node) serveCall(ctx context.Context, call func(context.Context, *clusterpb.CallRequest) *clusterpb.CallReply, req *clusterpb.CallRequest) *clusterpb.CallReply {
	if !n.isSelf(req.TargetEpoch) {
		return &clusterpb.CallReply{Error: errOtherInstance}
	}
	return call(ctx, req)
}

func (n *Node) servePush(fe Frontend, req *clusterpb.PushRequest) *clusterpb.PushReply {
	if !n.isSelf(req.Epoch) {
		return &clusterpb.PushReply{MissingSessionIds: req.SessionIds, MissingUids: req.Uids, Epoch: req.Epoch}
	}
	rep := fe.Push(req)
	if rep == nil { // delivered to every target
		if !req.WantReply {
			return nil
		}
		rep = &clusterpb.PushReply{}
	}
	rep.Epoch = req.Epoch
	if rep.Epoch == 0 {
		rep.Epoch = n.cfg.Self.Epoch
	}
	return rep
}

func (n *Node) serveBind(ctx context.Context, fe Frontend, req *clusterpb.BindRequest) clusterpb.BindStatus {
	if !n.isSelf(req.Epoch) {
		return clusterpb.BindStatus_BIND_SESSION_GONE
	}
	return fe.Bind(ctx, req.SessionId, req.Uid)
}

func (n *Node) serveKick(ctx context.Context, fe Frontend, req *clusterpb.KickRequest) int {
	if !n.isSelf(req.Epoch) {
		return 0
	}
	return fe.Kick(ctx, req)
}

func (n *Node) serveCheck(fe Frontend, req *clusterpb.CheckRequest) *clusterpb.CheckReply {
	if !n.isSelf(req.Epoch) {
		return &clusterpb.CheckReply{GoneSessionIds: req.SessionIds, GoneUids: req.Uids}
	}
	gs, gu := fe.Check(req.SessionIds, req.Uids)
	return &clusterpb.CheckReply{GoneSessionIds: gs, GoneUids: gu}
}

// ErrorReply converts a handler error for the wire; nil stays nil. Errors
// that are not *handler.Error become a generic 500 (the caller logs them).
func ErrorReply(err error) *clusterpb.Error {
	if err == nil {
		return nil
	}
	var herr *handler.Error
	if errors.As(err, &herr) {
		return &clusterpb.Error{Code: int32(herr.Code), Msg: herr.Msg}
	}
	return &clusterpb.Error{Code: handler.CodeInternal, Msg: "internal server error"}
}
