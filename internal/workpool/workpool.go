// Package workpool reuses goroutines for short tasks, so hot paths (one task
// per message burst) do not pay for a new goroutine and its stack growth each
// time, while an idle server keeps no workers at all.
//
// There is no upper bound on workers on purpose: tasks may block on remote
// calls that need other tasks to finish, and a fixed-size pool could deadlock.
// The bound on concurrency comes from the callers (one task per session).
package workpool

import (
	"sync"
	"time"
)

// Pool runs tasks on reused goroutines. The zero value is not usable; call New.
//
// An idle worker waits on a channel of its own, on a stack of idle workers:
// Go pops the most recently idle one (its stack is warm) and hands it the
// task. Handing a task over is one lock and one channel send. (A shared
// task channel, each worker selecting on it, its idle timer and a quit
// channel, cost a select over three channels and a timer reset per task:
// 14 % of a chat server's CPU; BenchmarkHandOff 0.65x the time.) One
// timer for the whole pool retires the workers idle for a whole period.
type Pool struct {
	idleFor time.Duration
	wg      sync.WaitGroup

	mu     sync.Mutex
	idle   []*worker // oldest first; Go takes from the end
	closed bool
	gen    uint64      // periods of idleFor seen by the reaper
	reaper *time.Timer // armed while some worker is idle
	armed  bool
}

type worker struct {
	tasks chan func() // capacity 1; a nil task retires the worker
	gen   uint64      // Pool.gen when it last became idle
}

// New returns a pool whose idle workers exit after between idle and twice
// idle without a task.
func New(idle time.Duration) *Pool {
	if idle <= 0 {
		idle = 10 * time.Second
	}
	return &Pool{idleFor: idle}
}

// Go runs f on an idle worker, or on a new one if none is waiting.
func (p *Pool) Go(f func()) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.tasks <- f // never blocks: the worker is off the stack, its channel empty
		return
	}
	p.mu.Unlock()
	p.wg.Add(1)
	go p.work(&worker{tasks: make(chan func(), 1)}, f)
}

func (p *Pool) work(w *worker, f func()) {
	defer p.wg.Done()
	for f != nil {
		f()
		if !p.park(w) {
			return
		}
		f = <-w.tasks
	}
}

// park puts w on the idle stack, unless the pool is closed.
func (p *Pool) park(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	w.gen = p.gen
	p.idle = append(p.idle, w)
	if !p.armed {
		p.armed = true
		if p.reaper == nil {
			p.reaper = time.AfterFunc(p.idleFor, p.reap)
		} else {
			p.reaper.Reset(p.idleFor)
		}
	}
	return true
}

// reap retires the workers that stayed idle through a whole period, and
// re-arms itself while others are idle.
func (p *Pool) reap() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = false
	if p.closed {
		return
	}
	p.gen++
	k := 0
	for k < len(p.idle) && p.idle[k].gen+2 <= p.gen { // idle since before the last tick
		p.idle[k].tasks <- nil
		p.idle[k] = nil
		k++
	}
	n := copy(p.idle, p.idle[k:])
	clear(p.idle[n:])
	p.idle = p.idle[:n]
	if n > 0 {
		p.armed = true
		p.reaper.Reset(p.idleFor)
	}
}

// Close makes idle workers exit now instead of after the idle time. Tasks
// still running finish; Go keeps working after Close (each task then gets a
// goroutine of its own that exits when it is done). Close is idempotent.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for i, w := range p.idle {
		w.tasks <- nil
		p.idle[i] = nil
	}
	p.idle = nil
	if p.reaper != nil {
		p.reaper.Stop()
	}
}

// Wait blocks until every worker has exited: after Close, once running tasks
// finish; otherwise idle after the last task.
func (p *Pool) Wait() { p.wg.Wait() }
