package master

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// lines hands progress lines to a writer on a goroutine of its own, so that
// whoever reports progress (often holding Master.mu) never waits on the
// reader: a CLI that stopped reading a pipe must not stall the master.
// Past maxLines waiting, lines are dropped and counted.
type lines struct {
	w       io.Writer
	mu      sync.Mutex
	pending []string
	dropped int
	closed  bool
	wake    chan struct{}
	done    chan struct{} // closed when run has written everything and returned
}

const maxLines = 10000

func newLines(w io.Writer) *lines {
	return &lines{w: w, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// add queues a line; it never blocks.
func (l *lines) add(line string) {
	l.mu.Lock()
	switch {
	case l.closed:
	case len(l.pending) >= maxLines:
		l.dropped++
	default:
		l.pending = append(l.pending, line)
	}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// run writes lines as they come until close.
func (l *lines) run() {
	defer close(l.done)
	for {
		<-l.wake
		l.mu.Lock()
		batch, dropped, closed := l.pending, l.dropped, l.closed
		l.pending, l.dropped = nil, 0
		l.mu.Unlock()
		for _, s := range batch {
			fmt.Fprintln(l.w, s)
		}
		if dropped > 0 {
			fmt.Fprintf(l.w, "(%d progress lines dropped: the reader is slow)\n", dropped)
		}
		if closed {
			return
		}
	}
}

// close takes no more lines and waits, up to d, until the queued ones are
// written.
func (l *lines) close(d time.Duration) {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.done:
	case <-t.C:
	}
}
