// Package routines gives goroutines an owner: a Group starts them, counts
// them and lets its owner wait for every one of them when it closes, as
// nats-server starts all of its goroutines through one helper
// (startGoRoutine) and waits for them on shutdown. A server that has
// returned from Close then has nothing of its own still running: no late
// log line, no write to a closed connection, no leak in tests.
//
// It is not a pool (internal/workpool reuses goroutines) and sets no bound
// on how many run: callers bound their own work.
package routines

import (
	"sync"
	"sync/atomic"
)

// Group owns goroutines. The zero value is ready to use. Go is lock-free:
// it runs once per read burst on a connector.
type Group struct {
	state atomic.Int64 // running<<1 | closed

	mu   sync.Mutex
	idle chan struct{} // closed once closed and nothing runs; made by Wait
	done bool          // idle has been (or is to be) closed
}

// Go runs f on a new goroutine owned by the group and reports true, or, once
// the group is closed, does nothing and reports false (the caller then
// deals with the work it meant to hand over, typically by ending it).
func (g *Group) Go(f func()) bool {
	for {
		s := g.state.Load()
		if s&1 != 0 {
			return false
		}
		if g.state.CompareAndSwap(s, s+2) {
			break
		}
	}
	go func() {
		defer g.release()
		f()
	}()
	return true
}

func (g *Group) release() {
	if g.state.Add(-2) == 1 {
		g.signal()
	}
}

// Close stops the group from starting goroutines; those running go on. It is
// idempotent.
func (g *Group) Close() {
	if g.state.Or(1) == 0 {
		g.signal()
	}
}

// Closed reports whether Close has been called.
func (g *Group) Closed() bool { return g.state.Load()&1 != 0 }

// Running returns how many of the group's goroutines have not returned.
func (g *Group) Running() int { return int(g.state.Load() >> 1) }

// Wait closes the group and blocks until every goroutine it started has
// returned.
func (g *Group) Wait() {
	g.Close()
	g.mu.Lock()
	if g.done && g.idle == nil {
		g.mu.Unlock()
		return
	}
	if g.idle == nil {
		g.idle = make(chan struct{})
	}
	idle := g.idle
	g.mu.Unlock()
	<-idle
}

// signal records that the group is closed with nothing running; it happens
// exactly once (the last release after Close, or Close with none running).
func (g *Group) signal() {
	g.mu.Lock()
	g.done = true
	if g.idle != nil {
		close(g.idle)
	}
	g.mu.Unlock()
}
