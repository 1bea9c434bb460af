package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shaddock/shaddock/tools/client"
)

// errorLog counts errors by kind and keeps the first message of each kind.
// Errors are rare, so one mutex is fine here; latency samples never take it.
type errorLog struct {
	total  atomic.Int64
	mu     sync.Mutex
	counts map[string]int64
	sample map[string]string
}

func newErrorLog() *errorLog {
	return &errorLog{counts: map[string]int64{}, sample: map[string]string{}}
}

// add counts one error of kind; err (may be nil) is kept as the kind's
// example.
func (l *errorLog) add(kind string, err error) { l.addN(kind, 1, err) }

func (l *errorLog) addN(kind string, n int64, err error) {
	if n <= 0 {
		return
	}
	l.total.Add(n)
	l.mu.Lock()
	l.counts[kind] += n
	if _, ok := l.sample[kind]; !ok && err != nil {
		l.sample[kind] = err.Error()
	}
	l.mu.Unlock()
}

// ErrorKind is one line of the error report.
type ErrorKind struct {
	Kind    string `json:"kind"`
	Count   int64  `json:"count"`
	Example string `json:"example,omitempty"`
}

// list returns the kinds, most frequent first.
func (l *errorLog) list() []ErrorKind {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]ErrorKind, 0, len(l.counts))
	for k, n := range l.counts {
		out = append(out, ErrorKind{Kind: k, Count: n, Example: l.sample[k]})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}

// classify names an error for the report: the operation and a short class,
// so that thousands of identical failures make one line.
func classify(op string, err error) string {
	var kicked *client.KickedError
	var hs *client.HandshakeError
	var errno syscall.Errno
	var login *loginError
	switch {
	case errors.As(err, &login): // already classified
		return op + ": " + login.kind
	case errors.As(err, &kicked):
		return op + ": kicked"
	case errors.As(err, &hs):
		return fmt.Sprintf("%s: handshake code %d", op, hs.Code)
	case errors.Is(err, client.ErrHeartbeatTimeout):
		return op + ": heartbeat timeout"
	case errors.Is(err, client.ErrClosed):
		return op + ": client closed"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return op + ": timeout"
	case errors.Is(err, context.Canceled):
		return op + ": interrupted"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return op + ": closed by the server"
	case errors.As(err, &errno):
		switch errno {
		case syscall.ECONNREFUSED:
			return op + ": connection refused"
		case syscall.ECONNRESET, syscall.EPIPE:
			return op + ": connection reset"
		case syscall.EMFILE, syscall.ENFILE:
			return op + ": too many open files"
		case syscall.EADDRNOTAVAIL:
			return op + ": no local port"
		}
		return fmt.Sprintf("%s: %s", op, errno.Error())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return op + ": timeout"
	}
	return op + ": other"
}

// progress prints one line to w every second until stop is called; line
// returns the text for the elapsed time and the time since the last line.
type progress struct {
	stopOnce sync.Once
	quit     chan struct{}
	done     chan struct{}
}

func startProgress(w io.Writer, start time.Time, line func(elapsed, sinceLast time.Duration) string) *progress {
	p := &progress{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := start
		for {
			select {
			case <-p.quit:
				return
			case now := <-t.C:
				fmt.Fprintf(w, "[%6.1fs] %s\n", now.Sub(start).Seconds(), line(now.Sub(start), now.Sub(last)))
				last = now
			}
		}
	}()
	return p
}

// stop ends the progress lines; it is idempotent and returns once the
// printer has exited.
func (p *progress) stop() {
	p.stopOnce.Do(func() { close(p.quit) })
	<-p.done
}

// rate is n per d, 0 for an empty d.
func rate(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return n / d.Seconds()
}

// window is the measured part of a run: values are recorded only when they
// complete in [start, end). Times are kept as Unix nanoseconds in atomics so
// that reader goroutines (pushes) can check them while the run is set up.
type window struct {
	start, end atomic.Int64
}

func (w *window) set(start, end time.Time) {
	w.end.Store(end.UnixNano())
	w.start.Store(start.UnixNano())
}

// measuring reports whether t is inside the window (false before set).
func (w *window) measuring(t time.Time) bool {
	s := w.start.Load()
	if s == 0 {
		return false
	}
	n := t.UnixNano()
	return n >= s && n < w.end.Load()
}

func (w *window) duration() time.Duration {
	return time.Duration(w.end.Load() - w.start.Load())
}
