package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/internal/deadline"
	"github.com/shaddock/shaddock/internal/lograte"
	"github.com/shaddock/shaddock/internal/routines"
	"github.com/shaddock/shaddock/internal/workpool"
	"github.com/shaddock/shaddock/proto/clusterpb"
)

// Frontend is what a frontend server lets its peers do to its sessions.
// Requests naming another instance (epoch) of the server never reach it:
// the node answers them as about sessions that do not exist.
type Frontend interface {
	// Push delivers a push to the sessions it names and reports those
	// missing; it may return nil when nothing is missing and nothing failed.
	// It must not block: it runs on the receiver of a stream of pushes
	// (Close waits for it when that stream is a push feed).
	Push(req *clusterpb.PushRequest) *clusterpb.PushReply
	Bind(ctx context.Context, sessionID int64, uid string) clusterpb.BindStatus
	Kick(ctx context.Context, req *clusterpb.KickRequest) int
	// Check returns the sessions, of those given, that do not exist.
	Check(sessionIDs []int64, uids []string) (goneSessionIDs []int64, goneUIDs []string)
}

// Config configures a Node.
type Config struct {
	Self       Member // this server
	Secret     string // cluster secret; required
	Membership *Membership
	Logger     *slog.Logger
	// Timeout is the deadline of calls whose context has none; default 10 s.
	Timeout time.Duration

	// codec replaces the cluster codec (codec.go): tests give gRPC's own,
	// to be a node of a build without it.
	codec encoding.CodecV2
}

// Handlers are what a node serves to its peers. Nil ones answer
// Unimplemented.
type Handlers struct {
	// Forward serves client messages forwarded to this server (backends).
	Forward func(ctx context.Context, req *clusterpb.ForwardRequest) *clusterpb.ForwardReply
	// ForwardNonBlocking, if set, reports whether Forward serves req
	// without blocking. The stream's receiver then serves it itself, with
	// the rest of its batch, and the replies and one-way pushes of the
	// batch leave once it is done (see batchScope); other requests each
	// get a pooled goroutine.
	ForwardNonBlocking func(req *clusterpb.ForwardRequest) bool
	// Call serves user remotes on this server.
	Call func(ctx context.Context, req *clusterpb.CallRequest) *clusterpb.CallReply
	// Frontend serves pushes and session operations (frontends).
	Frontend Frontend
	// Holds reports how much state this server holds for a key (0: none),
	// for placement (backends of stateful types; see Place); an error means
	// it cannot tell now, and placement fails rather than guess.
	Holds func(key string) (int64, error)
	// Gone learns of sessions this server pushed to that their frontend
	// instance does not have (closed, or never its), so state pointing at
	// them can be dropped. It runs on a receiving goroutine: it must not
	// block.
	Gone func(inst Instance, sessionIDs []int64, uids []string)
}

// Node is a server's cluster endpoint: it serves the Cluster service to its
// peers and calls theirs.
type Node struct {
	cfg  Config
	log  *slog.Logger
	mem  *Membership
	srv  *grpc.Server
	pool *workpool.Pool

	ctx    context.Context // parent of peer streams; cancelled by Close
	cancel context.CancelFunc

	// h holds the handlers from Serve on; nil before, so nothing reaches a
	// handler that is not built yet.
	h atomic.Pointer[Handlers]
	// served is closed by Serve: a frontend opens its push feeds then.
	served     chan struct{}
	servedOnce sync.Once

	mu     sync.Mutex
	peers  map[string]*peer
	closed bool

	kmu   sync.Mutex
	kicks map[Instance]*pendingKick // see KickEventually

	inflight sync.WaitGroup // requests from peers being handled
	// routines owns the node's goroutines (health watches, stream
	// receivers, kick retries); Close waits for them and for pool's workers.
	routines routines.Group

	batches batchCounters
	// slowInlineLog limits the warnings about non-blocking handlers that
	// block (see serveStream).
	slowInlineLog lograte.Limiter

	fwdWaiters  waiterPool[clusterpb.ForwardReply]
	callWaiters waiterPool[clusterpb.CallReply]
	pushWaiters waiterPool[clusterpb.PushReply]
}

// batchCounters count the messages a node sent on each kind of stream.
type batchCounters struct {
	forwards, calls, pushes                  batchCounter // requests, as a client
	forwardReplies, callReplies, pushReplies batchCounter // replies, as a server
}

// BatchStats is what a node sent on its cluster streams: messages and the
// requests or replies they carried, per kind of stream.
type BatchStats struct {
	Forwards, Calls, Pushes                  BatchCount
	ForwardReplies, CallReplies, PushReplies BatchCount
}

// BatchStats returns the node's stream counts so far.
func (n *Node) BatchStats() BatchStats {
	b := &n.batches
	return BatchStats{
		Forwards: b.forwards.load(), Calls: b.calls.load(), Pushes: b.pushes.load(),
		ForwardReplies: b.forwardReplies.load(), CallReplies: b.callReplies.load(), PushReplies: b.pushReplies.load(),
	}
}

// NewNode returns a node. It can call peers at once (so the servers that
// handle what peers send can be built on it); call Serve, with those
// handlers, to accept peers.
func NewNode(cfg Config) (*Node, error) {
	if cfg.Secret == "" {
		return nil, errors.New("rpc: Config.Secret is required")
	}
	if cfg.Membership == nil {
		return nil, errors.New("rpc: Config.Membership is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.codec == nil {
		cfg.codec = newCodec()
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{cfg: cfg, log: cfg.Logger.With("server", cfg.Self.ID), mem: cfg.Membership,
		pool: workpool.New(10 * time.Second), ctx: ctx, cancel: cancel, peers: make(map[string]*peer), served: make(chan struct{}),
		kicks: make(map[Instance]*pendingKick), slowInlineLog: lograte.Limiter{Every: slowInlineEvery}}
	opts := append(RequireSecret(cfg.Secret, n.log),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 5 * time.Second, Timeout: 3 * time.Second}),
		grpc.StaticStreamWindowSize(flowWindow), grpc.StaticConnWindowSize(flowWindow),
		grpc.ForceServerCodecV2(cfg.codec),
	)
	n.srv = grpc.NewServer(opts...)
	clusterpb.RegisterClusterServer(n.srv, &service{n: n})
	n.mem.Watch(n.syncPeers)
	n.syncPeers()
	return n, nil
}

// flowWindow is the HTTP/2 flow-control window of every cluster stream and
// connection, fixed. gRPC's default window starts at 64 KiB and grows by
// estimating the bandwidth-delay product, for which it sends a PING each
// round trip while data flows: on a cluster's long-lived streams, where
// data always flows, that was a PING and its ack per round trip, and a
// WINDOW_UPDATE every 16 KiB per stream, each a frame to write and read.
// 1 MiB is below the 16 MiB the estimator may grow to, and it is a bound
// on unread data, not memory set aside.
const flowWindow = 1 << 20

// Membership returns the node's view of the cluster.
func (n *Node) Membership() *Membership { return n.mem }

// Self returns this server's member entry.
func (n *Node) Self() Member { return n.cfg.Self }

// Serve accepts peers on ln until Close and hands what they send to h.
// Calls a node makes to itself also go to h, and fail before Serve.
func (n *Node) Serve(ln net.Listener, h Handlers) error {
	n.h.CompareAndSwap(nil, &h)
	n.servedOnce.Do(func() { close(n.served) })
	return n.srv.Serve(ln)
}

// handlers returns the handlers given to Serve (zero before).
func (n *Node) handlers() Handlers {
	if h := n.h.Load(); h != nil {
		return *h
	}
	return Handlers{}
}

// Shutdown waits until the requests peers sent have been handled (or ctx
// ends), then closes every stream and peer connection.
func (n *Node) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	if !n.routines.Go(func() { n.inflight.Wait(); close(done) }) {
		return nil // closed already
	}
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("rpc %s: shutdown with requests still in flight: %w", n.cfg.Self.ID, ctx.Err())
	}
	n.Close()
	return err
}

// Close stops serving and closes every peer connection at once; it returns
// once every goroutine the node started has returned.
func (n *Node) Close() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	peers := n.peers
	n.peers = map[string]*peer{}
	n.mu.Unlock()
	n.srv.Stop()
	n.cancel()
	for _, p := range peers {
		p.close()
	}
	n.routines.Wait()
	n.pool.Close()
	n.pool.Wait()
	n.logBatches()
}

// logBatches reports how well the cluster streams batched over the node's
// life (the mean number of requests or replies per message).
func (n *Node) logBatches() {
	b := n.BatchStats()
	var attrs []any
	for _, c := range []struct {
		name string
		c    BatchCount
	}{{"forwards", b.Forwards}, {"forward_replies", b.ForwardReplies}, {"calls", b.Calls},
		{"call_replies", b.CallReplies}, {"pushes", b.Pushes}, {"push_replies", b.PushReplies}} {
		if c.c.Messages > 0 {
			attrs = append(attrs, slog.Group(c.name, "messages", c.c.Messages, "items", c.c.Items,
				"mean", math.Round(c.c.Mean()*100)/100))
		}
	}
	if len(attrs) > 0 {
		n.log.Info("cluster stream batches", attrs...)
	}
}

// syncPeers keeps one connection per other member, dialled eagerly so that
// reachability is known before the first message needs it.
func (n *Node) syncPeers() {
	want := map[string]Member{}
	for _, m := range n.mem.All() {
		if m.ID != n.cfg.Self.ID && m.State != StateStopped && m.State != StateLost {
			want[m.ID] = m
		}
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	var stale []*peer
	for id, p := range n.peers {
		if m, ok := want[id]; !ok || m.Addr() != p.addr {
			stale = append(stale, p)
			delete(n.peers, id)
		}
	}
	for id, m := range want {
		p, ok := n.peers[id]
		if !ok {
			var err error
			if p, err = n.dial(m); err != nil {
				n.log.Error("cannot create peer connection", "peer", id, "err", err)
				continue
			}
			n.peers[id] = p
		}
		if m.State == StateRunning && (p.seen.State != StateRunning || p.seen.Epoch != m.Epoch) {
			// It has registered, so it listens: connect now rather than at
			// the end of a backoff grown while it was starting (dialled on
			// STARTING, refused until it listened). Routing skips it while
			// it is marked down.
			p.cc.ResetConnectBackoff()
		}
		p.seen = m
	}
	n.mu.Unlock()
	for _, p := range stale {
		p.close()
	}
}

// peer returns the connection to a member.
func (n *Node) peer(id string) (*peer, error) {
	n.mu.Lock()
	p := n.peers[id]
	n.mu.Unlock()
	if p == nil {
		return nil, &handler.Error{Code: handler.CodeUnavailable, Msg: "server unavailable",
			Err: fmt.Errorf("server %s is not a reachable cluster member", id)}
	}
	return p, nil
}

// peer is the connection to one other server and its streams.
type peer struct {
	id, addr string
	cc       *grpc.ClientConn
	cancel   context.CancelFunc
	forward  *caller[clusterpb.ForwardRequest, clusterpb.ForwardReply]
	call     *caller[clusterpb.CallRequest, clusterpb.CallReply]
	push     *caller[clusterpb.PushRequest, clusterpb.PushReply]
	client   clusterpb.ClusterClient
	seen     Member // the member as last synced; under Node.mu
}

func (n *Node) dial(m Member) (*peer, error) {
	cc, err := grpc.NewClient(m.Addr(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		WithSecret(n.cfg.Secret),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 3 * time.Second,
		}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 5 * time.Second, Timeout: 3 * time.Second, PermitWithoutStream: true}),
		grpc.WithStaticStreamWindowSize(flowWindow), grpc.WithStaticConnWindowSize(flowWindow),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(n.cfg.codec)),
	)
	if err != nil {
		return nil, fmt.Errorf("dial %s at %s: %w", m.ID, m.Addr(), err)
	}
	ctx, cancel := context.WithCancel(n.ctx)
	client := clusterpb.NewClusterClient(cc)
	p := &peer{id: m.ID, addr: m.Addr(), cc: cc, cancel: cancel, client: client,
		forward: newCaller(ctx, n.routines.Go, "forward to "+m.ID, &n.batches.forwards,
			func(ctx context.Context) (batchStream[clusterpb.ForwardRequest, clusterpb.ForwardReply], error) {
				st, err := client.Forwards(ctx)
				return batchClient[clusterpb.ForwardRequest, clusterpb.ForwardReply, clusterpb.ForwardBatch, clusterpb.ForwardReplyBatch]{st: st,
					wrap: func(r []*clusterpb.ForwardRequest) *clusterpb.ForwardBatch {
						return &clusterpb.ForwardBatch{Requests: r}
					},
					unwrap: (*clusterpb.ForwardReplyBatch).GetReplies}, err
			},
			func(r *clusterpb.ForwardRequest, s uint64) { r.Seq = s },
			(*clusterpb.ForwardReply).GetSeq),
		call: newCaller(ctx, n.routines.Go, "call to "+m.ID, &n.batches.calls,
			func(ctx context.Context) (batchStream[clusterpb.CallRequest, clusterpb.CallReply], error) {
				st, err := client.Calls(ctx)
				return batchClient[clusterpb.CallRequest, clusterpb.CallReply, clusterpb.CallBatch, clusterpb.CallReplyBatch]{st: st,
					wrap:   func(r []*clusterpb.CallRequest) *clusterpb.CallBatch { return &clusterpb.CallBatch{Requests: r} },
					unwrap: (*clusterpb.CallReplyBatch).GetReplies}, err
			},
			func(r *clusterpb.CallRequest, s uint64) { r.Seq = s },
			(*clusterpb.CallReply).GetSeq),
		push: newCaller(ctx, n.routines.Go, "push to "+m.ID, &n.batches.pushes,
			func(ctx context.Context) (batchStream[clusterpb.PushRequest, clusterpb.PushReply], error) {
				st, err := client.Pushes(ctx)
				return batchClient[clusterpb.PushRequest, clusterpb.PushReply, clusterpb.PushBatch, clusterpb.PushReplyBatch]{st: st,
					wrap:   func(r []*clusterpb.PushRequest) *clusterpb.PushBatch { return &clusterpb.PushBatch{Requests: r} },
					unwrap: (*clusterpb.PushReplyBatch).GetReplies}, err
			},
			func(r *clusterpb.PushRequest, s uint64) { r.Seq = s },
			(*clusterpb.PushReply).GetSeq),
	}
	p.push.ackOf = func(r *clusterpb.PushReply) uint64 { return r.Acked }
	p.push.onLost = func(lost []*clusterpb.PushRequest) { n.pushesLost(m.ID, lost) }
	p.push.onReply = func(r *clusterpb.PushReply) { n.pushReplied(m.ID, r) }
	cc.Connect()
	if !n.routines.Go(func() { n.watchHealth(ctx, p) }) ||
		(n.cfg.Self.Frontend && !n.routines.Go(func() { n.keepFeed(ctx, p) })) {
		p.close()
		return nil, fmt.Errorf("dial %s: node closed", m.ID)
	}
	return p, nil
}

// pushesLost handles pushes a broken stream left unacknowledged: they may
// not have reached their sessions, so those sessions are kicked (their
// clients reconnect and catch up) rather than left silently out of date.
func (n *Node) pushesLost(id string, lost []*clusterpb.PushRequest) {
	targets, broadcasts := 0, 0
	for _, r := range lost {
		if r.Broadcast {
			broadcasts++
		}
		targets += len(r.SessionIds) + len(r.Uids)
	}
	n.log.Warn("push stream broke before pushes were acknowledged; kicking their sessions",
		"peer", id, "pushes", len(lost), "targets", targets, "broadcasts", broadcasts)
	for _, r := range lost {
		n.KickEventually(Instance{id, r.Epoch}, r.SessionIds, r.Uids, ReasonUndelivered)
	}
}

// watchHealth marks the peer down in the membership while its connection is
// failing, and up again once it is ready, so routing skips it meanwhile.
func (n *Node) watchHealth(ctx context.Context, p *peer) {
	defer n.mem.SetDown(p.id, false) // a removed peer carries no down mark
	for {
		st := p.cc.GetState()
		switch st {
		case connectivity.Ready:
			n.mem.SetDown(p.id, false)
		case connectivity.TransientFailure:
			n.mem.SetDown(p.id, true)
		case connectivity.Idle:
			// A lost connection goes idle; reconnect at once rather than at
			// the next call, so the peer's state is known.
			p.cc.Connect()
		}
		if !p.cc.WaitForStateChange(ctx, st) {
			return
		}
	}
}

func (p *peer) close() {
	p.forward.close()
	p.call.close()
	p.push.close()
	p.cancel()
	p.cc.Close()
}

// withDeadline gives ctx the node's default timeout if it has no deadline,
// and returns the time left for the wire. The context made is a lazy
// deadline.Context: nothing arms a timer for it unless something waits on
// Done (stream waiters do not: see lazyDeadline).
func (n *Node) withDeadline(ctx context.Context) (context.Context, context.CancelFunc, uint32) {
	if _, ok := ctx.Deadline(); !ok {
		ctx, cancel := deadline.WithTimeout(ctx, n.cfg.Timeout)
		return ctx, cancel, uint32(n.cfg.Timeout / time.Millisecond)
	}
	dl, _ := ctx.Deadline()
	return ctx, func() {}, msUntil(dl)
}

// msUntil is the time left until dl in whole milliseconds, at least one:
// what a request tells its server it will wait.
func msUntil(dl time.Time) uint32 {
	left := time.Until(dl)
	if left < time.Millisecond {
		left = time.Millisecond
	}
	return uint32(left / time.Millisecond)
}

// callError turns a transport failure into an error a client can read: a
// code and a plain message; what failed where stays in the cause.
func callError(what, id string, err error) error {
	var herr *handler.Error
	switch {
	case errors.As(err, &herr):
		return err
	case errors.Is(err, context.DeadlineExceeded):
		return &handler.Error{Code: handler.CodeTimeout, Msg: "server did not answer in time", Err: fmt.Errorf("%s %s: %w", what, id, err)}
	case status.Code(err) == codes.Unimplemented:
		return &handler.Error{Code: handler.CodeNotFound, Msg: "route not served by that server", Err: fmt.Errorf("%s %s: %w", what, id, err)}
	default:
		return &handler.Error{Code: handler.CodeUnavailable, Msg: "server unavailable", Err: fmt.Errorf("%s %s: %w", what, id, err)}
	}
}

// replyError converts an error carried in a reply.
func replyError(e *clusterpb.Error) error {
	if e == nil {
		return nil
	}
	return &handler.Error{Code: int(e.Code), Msg: e.Msg}
}

// Forward sends a client message to server id and returns its reply. A
// reply carrying an error returns it as *handler.Error, with the reply.
func (n *Node) Forward(ctx context.Context, id string, req *clusterpb.ForwardRequest) (*clusterpb.ForwardReply, error) {
	ctx, cancel, ms := n.withDeadline(ctx)
	defer cancel()
	req.TimeoutMs = ms
	if h := n.handlers(); id == n.cfg.Self.ID && h.Forward != nil {
		rep := n.serveForward(ctx, h.Forward, req)
		return rep, replyError(rep.Error)
	}
	p, err := n.peer(id)
	if err != nil {
		return nil, err
	}
	rep, err := p.forward.call(ctx, req, &n.fwdWaiters)
	if err != nil {
		return nil, callError("forward "+req.Route+" to", id, err)
	}
	return rep, replyError(rep.Error)
}

// ForwardAsync is Forward without waiting: it sends req and returns, and
// done gets what Forward would have returned, exactly once, on the
// goroutine that has it: the stream's receiver for a reply (so done must
// not block), the caller's expiry at ctx's deadline, or this goroutine
// when req could not be sent. ctx's deadline bounds the wait (the node's
// default timeout without one); its cancellation is not watched. A
// forward to this server itself is served before ForwardAsync returns.
func (n *Node) ForwardAsync(ctx context.Context, id string, req *clusterpb.ForwardRequest, done func(*clusterpb.ForwardReply, error)) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(n.cfg.Timeout)
	}
	req.TimeoutMs = msUntil(dl)
	if h := n.handlers(); id == n.cfg.Self.ID && h.Forward != nil {
		rep := n.serveForward(ctx, h.Forward, req)
		done(rep, replyError(rep.Error))
		return
	}
	p, err := n.peer(id)
	if err != nil {
		done(nil, err)
		return
	}
	route := req.Route
	err = p.forward.startAsync(req, dl.UnixNano(), func(rep *clusterpb.ForwardReply, err error) {
		if err != nil {
			done(nil, callError("forward "+route+" to", id, err))
			return
		}
		done(rep, replyError(rep.Error))
	})
	if err != nil {
		done(nil, callError("forward "+route+" to", id, err))
	}
}

// Call runs a user remote on server id; req carries the route, the body
// and, for a call made for a session, the session.
func (n *Node) Call(ctx context.Context, id string, req *clusterpb.CallRequest) ([]byte, error) {
	ctx, cancel, ms := n.withDeadline(ctx)
	defer cancel()
	req.TimeoutMs, req.From = ms, n.cfg.Self.ID
	if h := n.handlers(); id == n.cfg.Self.ID && h.Call != nil {
		rep := n.serveCall(ctx, h.Call, req)
		return rep.Body, replyError(rep.Error)
	}
	p, err := n.peer(id)
	if err != nil {
		return nil, err
	}
	rep, err := p.call.call(ctx, req, &n.callWaiters)
	if err != nil {
		return nil, callError("call "+req.Route+" on", id, err)
	}
	return rep.Body, replyError(rep.Error)
}

// Push delivers a push to sessions of frontend id and waits to learn
// which targets had no session there.
func (n *Node) Push(ctx context.Context, id string, req *clusterpb.PushRequest) (*clusterpb.PushReply, error) {
	reps, err := n.PushMany(ctx, map[string]*clusterpb.PushRequest{id: req}, true)
	return reps[id], err
}

// PushMany sends pushes to several frontends (one request per frontend,
// keyed by its id). With wait false they are one-way: it returns once they
// are sent, and delivery is guaranteed by acknowledgement (a push lost with
// its stream gets its sessions kicked); the error then only reports
// frontends it could not send to. With wait true it also collects every
// reply, so missing targets are known.
func (n *Node) PushMany(ctx context.Context, reqs map[string]*clusterpb.PushRequest, wait bool) (map[string]*clusterpb.PushReply, error) {
	ctx, cancel, _ := n.withDeadline(ctx)
	defer cancel()
	type started struct {
		p  *peer
		in inflight[clusterpb.PushReply]
	}
	var (
		firstErr error
		replies  map[string]*clusterpb.PushReply
		sent     map[string]started
	)
	if wait {
		replies, sent = make(map[string]*clusterpb.PushReply, len(reqs)), make(map[string]started, len(reqs))
	}
	note := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	scope := scopeOf(ctx) // one-way pushes of a non-blocking handler leave with its batch
	for id, req := range reqs {
		req.WantReply = wait
		if fe := n.handlers().Frontend; id == n.cfg.Self.ID && fe != nil {
			rep := n.servePush(fe, req) // not nil with wait (req.WantReply)
			if rep != nil {
				n.pushReplied(id, rep)
				if err := replyError(rep.Error); err != nil {
					note(err)
				}
			}
			if wait {
				replies[id] = rep
			}
			continue
		}
		p, err := n.peer(id)
		var in inflight[clusterpb.PushReply]
		if err == nil {
			var waiters *waiterPool[clusterpb.PushReply]
			if wait {
				waiters = &n.pushWaiters
			}
			in, err = p.push.start(req, waiters, lazyDeadline(ctx), scope)
			if err != nil {
				err = callError("push "+req.Route+" to", id, err)
			}
		}
		if err != nil {
			note(err)
			n.notDelivered(id, req, err)
			continue
		}
		if wait {
			sent[id] = started{p, in}
		}
	}
	for id, s := range sent {
		rep, err := s.p.push.wait(ctx, s.in, &n.pushWaiters)
		if err != nil {
			note(callError("push to", id, err))
			continue
		}
		n.pushReplied(id, rep)
		replies[id] = rep
		if err := replyError(rep.Error); err != nil {
			note(err)
		}
	}
	return replies, firstErr
}

// notDelivered handles a push that could not be sent to its frontend: its
// sessions may be alive and would silently miss it, so they are kicked
// (KickEventually: when the frontend can be reached again, if it is
// unreachable; not at all if it is gone, its sessions with it).
func (n *Node) notDelivered(id string, req *clusterpb.PushRequest, err error) {
	inst := Instance{id, req.Epoch}
	if !n.mayHoldSessions(inst) {
		return
	}
	// One line per incident: pushes failing while a kick is pending for the
	// instance join it silently.
	if n.kickEventually(inst, req.SessionIds, req.Uids, ReasonUndelivered) {
		n.log.Warn("push not delivered; kicking its sessions", "peer", id, "epoch", req.Epoch, "route", req.Route,
			"targets", len(req.SessionIds)+len(req.Uids), "err", err)
	}
}

// pushReplied passes a push reply's missing targets on to Handlers.Gone.
func (n *Node) pushReplied(id string, rep *clusterpb.PushReply) {
	if rep.Error != nil {
		n.log.Warn("frontend refused a push", "peer", id, "err", replyError(rep.Error))
	}
	if len(rep.MissingSessionIds)+len(rep.MissingUids) == 0 {
		return
	}
	n.log.Debug("push reached no session for some targets", "peer", id,
		"missing_sessions", len(rep.MissingSessionIds), "missing_uids", len(rep.MissingUids))
	if gone := n.handlers().Gone; gone != nil {
		gone(Instance{id, rep.Epoch}, rep.MissingSessionIds, rep.MissingUids)
	}
}

// Bind binds uid to session sessionID of frontend instance inst.
func (n *Node) Bind(ctx context.Context, inst Instance, sessionID int64, uid string) (clusterpb.BindStatus, error) {
	ctx, cancel, _ := n.withDeadline(ctx)
	defer cancel()
	req := &clusterpb.BindRequest{SessionId: sessionID, Uid: uid, Epoch: inst.Epoch}
	if fe := n.handlers().Frontend; inst.ID == n.cfg.Self.ID && fe != nil {
		return n.serveBind(ctx, fe, req), nil
	}
	p, err := n.peer(inst.ID)
	if err != nil {
		return 0, err
	}
	rep, err := p.client.Bind(ctx, req)
	if err != nil {
		return 0, callError("bind on", inst.ID, err)
	}
	return rep.Status, nil
}

// Kick kicks sessions of frontend id (of instance req.Epoch, if set) and
// returns how many it found.
func (n *Node) Kick(ctx context.Context, id string, req *clusterpb.KickRequest) (int, error) {
	ctx, cancel, _ := n.withDeadline(ctx)
	defer cancel()
	if fe := n.handlers().Frontend; id == n.cfg.Self.ID && fe != nil {
		return n.serveKick(ctx, fe, req), nil
	}
	p, err := n.peer(id)
	if err != nil {
		return 0, err
	}
	rep, err := p.client.Kick(ctx, req)
	if err != nil {
		return 0, callError("kick on", id, err)
	}
	return int(rep.Kicked), nil
}

// Check asks frontend instance inst which of the given sessions it does not
// have.
func (n *Node) Check(ctx context.Context, inst Instance, sessionIDs []int64, uids []string) (*clusterpb.CheckReply, error) {
	ctx, cancel, _ := n.withDeadline(ctx)
	defer cancel()
	req := &clusterpb.CheckRequest{Epoch: inst.Epoch, SessionIds: sessionIDs, Uids: uids}
	if fe := n.handlers().Frontend; inst.ID == n.cfg.Self.ID && fe != nil {
		return n.serveCheck(fe, req), nil
	}
	p, err := n.peer(inst.ID)
	if err != nil {
		return nil, err
	}
	rep, err := p.client.Check(ctx, req)
	if err != nil {
		return nil, callError("check on", inst.ID, err)
	}
	return rep, nil
}

// holds asks server id how much state it holds for key.
func (n *Node) holds(ctx context.Context, id, key string) (int64, error) {
	if id == n.cfg.Self.ID {
		if h := n.handlers().Holds; h != nil {
			return h(key)
		}
		return 0, nil
	}
	p, err := n.peer(id)
	if err != nil {
		return 0, err
	}
	rep, err := p.client.Holds(ctx, &clusterpb.HoldsRequest{Key: key})
	if err != nil {
		return 0, callError("holds on", id, err)
	}
	return rep.Size, nil
}
