package rpc

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shaddock/shaddock/proto/clusterpb"
)

// A push feed carries a peer's pushes to a frontend on the connection the
// frontend opened to that peer, rather than on one the peer opened: a
// backend's replies to a connector's forwards and its pushes to that
// connector then travel on one connection, where gRPC writes what is queued
// for all its streams at once, so a batch's replies and pushes usually leave
// in one write and arrive in one read. The pushes keep their protocol
// (sequence numbers, cumulative acknowledgements, the kick of what a broken
// stream left unacknowledged): only the stream's direction differs.
//
// A frontend keeps a feed open to every peer (keepFeed). A peer's push
// caller uses the feed when it opens a stream, and moves to a feed that
// arrives while it uses a Pushes stream of its own once that stream is idle
// (everything sent on it acknowledged, nothing waiting), so no push can
// overtake an earlier one. Without a feed (a frontend of an older build, or
// one whose feed is being reopened) the peer dials Pushes as before.

// feedFromKey is the metadata key naming the frontend that opened a feed.
const feedFromKey = "shaddock-from"

// feed is the peer's end of a PushFeed, as the push caller's stream: its
// requests go out as the server's messages, acknowledgements come in as
// the client's. closeSend ends the PushFeed handler, which ends the stream.
type feed struct {
	st   grpc.BidiStreamingServer[clusterpb.PushReplyBatch, clusterpb.PushBatch]
	done chan struct{}
	once sync.Once
}

func (f *feed) send(reqs []*clusterpb.PushRequest) error {
	return f.st.Send(&clusterpb.PushBatch{Requests: reqs})
}

func (f *feed) recv() ([]*clusterpb.PushReply, error) {
	b, err := f.st.Recv()
	if err != nil {
		return nil, err
	}
	return b.GetReplies(), nil
}

func (f *feed) closeSend() { f.once.Do(func() { close(f.done) }) }

// ended reports whether the frontend has ended the feed (or lost its
// connection): the caller does not take it then.
func (f *feed) ended() bool { return f.st.Context().Err() != nil }

// PushFeed takes a feed from a frontend for this node's pushes to it, and
// holds the stream open until the push caller is done with it or the
// frontend ends it.
func (s *service) PushFeed(st grpc.BidiStreamingServer[clusterpb.PushReplyBatch, clusterpb.PushBatch]) error {
	md, _ := metadata.FromIncomingContext(st.Context())
	from := md.Get(feedFromKey)
	if len(from) != 1 || from[0] == "" {
		return status.Error(codes.InvalidArgument, "push feed: no "+feedFromKey)
	}
	p, err := s.n.peer(from[0])
	if err != nil {
		return status.Error(codes.FailedPrecondition, "push feed: "+err.Error())
	}
	f := &feed{st: st, done: make(chan struct{})}
	p.push.attach(f)
	select {
	case <-f.done:
	case <-st.Context().Done():
		p.push.detach(f)
	}
	return nil
}

// Bounds of the wait before a frontend reopens a feed that ended: a peer
// that is restarting refuses it for a while, and its pushes meanwhile take
// Pushes. A peer of an older build (no PushFeed) is asked again after
// feedRetryOld, in case it has been updated since.
const (
	feedRetryMin = 50 * time.Millisecond
	feedRetryMax = 2 * time.Second
	feedRetryOld = 30 * time.Second
)

// keepFeed keeps a push feed open from this frontend to p, serving the
// pushes that come down it, until ctx ends (the peer is removed or the node
// closes).
func (n *Node) keepFeed(ctx context.Context, p *peer) {
	select {
	case <-n.served:
	case <-ctx.Done():
		return
	}
	fe := n.handlers().Frontend
	if fe == nil {
		return // not a frontend after all: nothing to push to
	}
	ctx = metadata.AppendToOutgoingContext(ctx, feedFromKey, n.cfg.Self.ID)
	wait := feedRetryMin
	for {
		began := time.Now()
		err := n.feedOnce(ctx, fe, p)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > 10*feedRetryMax {
			wait = feedRetryMin // it had been up: retry soon
		}
		pause := wait
		if status.Code(err) == codes.Unimplemented {
			pause = feedRetryOld
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return
		}
		wait = min(2*wait, feedRetryMax)
	}
}

// feedOnce opens one feed to p (once the connection is ready) and serves it
// until it ends.
func (n *Node) feedOnce(ctx context.Context, fe Frontend, p *peer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream however serving it ended
	st, err := p.client.PushFeed(ctx, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	err = n.servePushes(fe,
		func() ([]*clusterpb.PushRequest, error) {
			b, err := st.Recv()
			return b.GetRequests(), err
		},
		func(reps []*clusterpb.PushReply) error { return st.Send(&clusterpb.PushReplyBatch{Replies: reps}) })
	if err != nil && !errors.Is(err, context.Canceled) {
		n.log.Debug("push feed ended", "peer", p.id, "err", err)
	}
	return err
}
