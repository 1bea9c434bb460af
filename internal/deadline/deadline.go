// Package deadline provides a context with a deadline whose timer is made
// only if somebody waits on Done. A server gives every request a deadline,
// but most handlers only pass it along (reading Deadline) or check Err; with
// context.WithTimeout each request would still pay for a timer and its
// cancellation, a measurable share of a small request's cost.
package deadline

import (
	"context"
	"sync"
	"time"
)

// Context is a context.Context ending at a deadline, at its parent's end, or
// when cancelled.
type Context struct {
	parent   context.Context
	deadline time.Time

	mu       sync.Mutex
	done     chan struct{} // made on the first Done call
	err      error
	timer    *time.Timer
	stopHook func() bool // parent's AfterFunc registration
}

// WithDeadline returns a context ending at d (or earlier with parent) and
// its cancel function, which must be called when the work is done.
func WithDeadline(parent context.Context, d time.Time) (*Context, context.CancelFunc) {
	c := at(parent, d)
	return c, func() { c.cancel(context.Canceled) }
}

// Timeout returns a context ending d from now (or earlier with parent);
// call its Cancel when the work is done. It is WithTimeout without the
// cancel function's allocation, for a context made per request.
func Timeout(parent context.Context, d time.Duration) *Context {
	return at(parent, time.Now().Add(d))
}

// at returns a context ending at d, or at parent's deadline if earlier.
func at(parent context.Context, d time.Time) *Context {
	if pd, ok := parent.Deadline(); ok && pd.Before(d) {
		d = pd
	}
	return &Context{parent: parent, deadline: d}
}

// Cancel ends the context, as the cancel function of WithDeadline does.
func (c *Context) Cancel() { c.cancel(context.Canceled) }

// WithTimeout is WithDeadline(parent, time.Now().Add(d)).
func WithTimeout(parent context.Context, d time.Duration) (*Context, context.CancelFunc) {
	return WithDeadline(parent, time.Now().Add(d))
}

// Deadline implements context.Context.
func (c *Context) Deadline() (time.Time, bool) { return c.deadline, true }

// Value implements context.Context.
func (c *Context) Value(key any) any { return c.parent.Value(key) }

// Done implements context.Context. The first call arms the timer.
func (c *Context) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return c.done
	}
	c.done = make(chan struct{})
	if c.err == nil {
		c.err = c.expired()
	}
	if c.err != nil {
		close(c.done)
		return c.done
	}
	c.timer = time.AfterFunc(time.Until(c.deadline), func() { c.cancel(context.DeadlineExceeded) })
	if c.parent.Done() != nil {
		c.stopHook = context.AfterFunc(c.parent, func() { c.cancel(c.parent.Err()) })
	}
	return c.done
}

// Err implements context.Context.
func (c *Context) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && c.done == nil { // no timer: look at the clock and the parent
		return c.expired()
	}
	return c.err
}

func (c *Context) expired() error {
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *Context) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		if c.done != nil {
			close(c.done)
		}
	}
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if c.stopHook != nil {
		c.stopHook()
		c.stopHook = nil
	}
}
