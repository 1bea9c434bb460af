package rpc

import (
	"context"
	"sync"
)

// batchScope holds back sends while a stream's receiver serves a batch of
// non-blocking requests itself (Handlers.ForwardNonBlocking).
//
// A goroutine that queues the first item of an idle send queue becomes its
// sender: it yields, so that others may add to the batch, and sends. The
// receiver serving a batch one request after the other cannot use that
// yield (the rest of the batch is its own work), and would send each
// request's push and reply alone. Inside a scope, the sender role of a
// one-way send or of a reply is taken as usual but its send is held until
// the batch is served: each queue then leaves as one message.
//
// Only sends nobody waits for are held: a call waiting for its answer
// inside the scope would wait for itself. A hold asked for after the scope
// closed (a goroutine the handler started, using its context) is refused,
// and the asker sends at once, as outside any scope.
type batchScope struct {
	mu      sync.Mutex
	open    bool
	flushes []func()
}

type scopeKey struct{}

// withScope returns a context carrying s, for the requests served inside it.
func withScope(parent context.Context, s *batchScope) context.Context {
	return context.WithValue(parent, scopeKey{}, s)
}

// scopeOf returns the scope ctx carries, or nil.
func scopeOf(ctx context.Context) *batchScope {
	s, _ := ctx.Value(scopeKey{}).(*batchScope)
	return s
}

// begin opens the scope for a batch.
func (s *batchScope) begin() {
	s.mu.Lock()
	s.open = true
	s.mu.Unlock()
}

// hold keeps flush until end and reports true, or reports false when the
// scope is nil or not open (the caller then flushes itself).
func (s *batchScope) hold(flush func()) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open {
		return false
	}
	s.flushes = append(s.flushes, flush)
	return true
}

// end closes the scope and runs what it held, in the order held (a
// handler's pushes before its reply). Flushes held while these run (a
// flush handing on) are run too.
//
// It yields once, as a sender does, and the flushes do not yield again:
// a yield between two of them would let the connection's writer (grpc-go's
// loopy writer) write the first message alone, where without it the
// messages for one connection (a backend's replies and pushes to a
// frontend, which share the frontend's connection: see PushFeed) leave in
// one write.
func (s *batchScope) end() {
	var done []func()
	for {
		s.mu.Lock()
		fs := s.flushes
		if len(fs) == 0 {
			s.open = false
			if done != nil { // reused by the next batch
				clear(done)
				s.flushes = done[:0]
			}
			s.mu.Unlock()
			return
		}
		s.flushes = nil
		s.mu.Unlock()
		if done == nil {
			yieldBeforeSend() // once; the flushes read their queues after it
		}
		for _, f := range fs {
			f()
		}
		done = fs
	}
}
