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
type Pool struct {
	tasks chan func()
	quit  chan struct{}
	once  sync.Once
	idle  time.Duration
	wg    sync.WaitGroup
}

// New returns a pool whose idle workers exit after idle.
func New(idle time.Duration) *Pool {
	if idle <= 0 {
		idle = 10 * time.Second
	}
	return &Pool{tasks: make(chan func()), quit: make(chan struct{}), idle: idle}
}

// Go runs f on an idle worker, or on a new one if none is waiting.
func (p *Pool) Go(f func()) {
	select {
	case p.tasks <- f:
	default:
		p.wg.Add(1)
		go p.work(f)
	}
}

func (p *Pool) work(f func()) {
	defer p.wg.Done()
	f()
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		select {
		case f = <-p.tasks:
			f()
			t.Reset(p.idle)
		case <-t.C:
			return
		case <-p.quit:
			return
		}
	}
}

// Close makes idle workers exit now instead of after the idle time. Tasks
// still running finish; Go keeps working after Close (each task then gets a
// goroutine of its own that exits when it is done). Close is idempotent.
func (p *Pool) Close() { p.once.Do(func() { close(p.quit) }) }

// Wait blocks until every worker has exited: after Close, once running tasks
// finish; otherwise idle after the last task.
func (p *Pool) Wait() { p.wg.Wait() }
