package client

import (
	"context"
	"fmt"
	"sync"

	"github.com/gobwas/ws"
	"github.com/shaddock/shaddock/protocol"
)

const (
	// maxQueued bounds the bytes waiting for the socket. Past it, Request and
	// Notify wait (or fail with their context): a server that stops reading
	// cannot make a client grow without bound.
	maxQueued = 1 << 20
	// maxKeptBuffer: a write buffer that grew past this during a burst is
	// dropped after use rather than kept by an idle connection.
	maxKeptBuffer = 64 << 10
)

// writer is the outgoing queue. Callers append encoded packages (WebSocket
// frames on WS) to buf under mu; the writer goroutine swaps buf for spare and
// writes it with one call, outside the lock. Everything that arrives while a
// write is in progress goes out in the next one: writes coalesce by
// themselves under load and cost one syscall when idle.
type writer struct {
	mu      sync.Mutex
	buf     []byte
	spare   []byte
	closing bool          // Close was called: refuse writes, flush, end
	ended   bool          // the client ended: refuse writes
	space   chan struct{} // closed when buf is taken, for callers waiting on a full queue
	wake    chan struct{} // capacity 1: "buf is not empty"
}

func (w *writer) init() { w.wake = make(chan struct{}, 1) }

// signal wakes the writer goroutine; a signal already pending is enough.
func (w *writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// close marks the queue closing and, on WebSocket, queues a close frame. It
// reports false when the client already ended.
func (w *writer) close(isWS bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return false
	}
	w.closing = true
	if isWS {
		w.buf = appendFrame(w.buf, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	}
	return true
}

// drop releases the buffers once the client ended and wakes waiting callers.
func (w *writer) drop() {
	w.mu.Lock()
	w.ended = true
	w.buf, w.spare = nil, nil
	if w.space != nil {
		close(w.space)
		w.space = nil
	}
	w.mu.Unlock()
}

// lockForWrite takes w.mu for an append, waiting while the queue is full
// when ctx is not nil. On error the lock is not held.
func (c *Client) lockForWrite(ctx context.Context) error {
	w := &c.w
	w.mu.Lock()
	for {
		switch {
		case w.closing:
			w.mu.Unlock()
			return ErrClosed
		case w.ended:
			w.mu.Unlock()
			return c.err // drop runs after err is set
		case ctx == nil || len(w.buf) < maxQueued:
			return nil
		}
		ch := w.space
		if ch == nil {
			ch = make(chan struct{})
			w.space = ch
		}
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		w.mu.Lock()
	}
}

// enqueue encodes a request or notify straight into the write buffer.
func (c *Client) enqueue(ctx context.Context, m *protocol.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n := protocol.MessageLen(m, c.dict)
	if n > protocol.MaxBodyLen {
		return fmt.Errorf("%w: message of %d bytes", protocol.ErrBodyTooLarge, n)
	}
	if err := c.lockForWrite(ctx); err != nil {
		return err
	}
	w := &c.w
	start := len(w.buf)
	var err error
	if c.ws {
		mask := newMask()
		w.buf = appendFrameHeader(w.buf, ws.OpBinary, protocol.HeaderLen+n, mask)
		p := len(w.buf)
		if w.buf, err = protocol.AppendDataPackage(w.buf, m, c.dict); err == nil {
			ws.Cipher(w.buf[p:], mask, 0)
		}
	} else {
		w.buf, err = protocol.AppendDataPackage(w.buf, m, c.dict)
	}
	if err != nil {
		w.buf = w.buf[:start]
		w.mu.Unlock()
		return err
	}
	w.mu.Unlock()
	if start == 0 {
		w.signal()
	}
	return nil
}

// enqueuePackage queues a non-data package (handshake, ack, heartbeat). It
// ignores the queue bound (these are tiny and must not wait) and does nothing
// once the client is closing or ended.
func (c *Client) enqueuePackage(t protocol.PackageType, body []byte) {
	w := &c.w
	w.mu.Lock()
	if w.ended || w.closing {
		w.mu.Unlock()
		return
	}
	start := len(w.buf)
	if c.ws {
		mask := newMask()
		w.buf = appendFrameHeader(w.buf, ws.OpBinary, protocol.HeaderLen+len(body), mask)
		p := len(w.buf)
		w.buf, _ = protocol.AppendPackage(w.buf, t, body) // bodies here are tiny
		ws.Cipher(w.buf[p:], mask, 0)
	} else {
		w.buf, _ = protocol.AppendPackage(w.buf, t, body)
	}
	w.mu.Unlock()
	if start == 0 {
		w.signal()
	}
}

// enqueueControl queues a WebSocket control frame (a pong).
func (c *Client) enqueueControl(op ws.OpCode, payload []byte) {
	w := &c.w
	w.mu.Lock()
	if w.ended || w.closing {
		w.mu.Unlock()
		return
	}
	start := len(w.buf)
	w.buf = appendFrame(w.buf, op, payload)
	w.mu.Unlock()
	if start == 0 {
		w.signal()
	}
}

// writeLoop is the only writer of the socket.
func (c *Client) writeLoop() {
	w := &c.w
	for {
		select {
		case <-w.wake:
		case <-c.done:
			return
		}
		w.mu.Lock()
		if w.ended {
			w.mu.Unlock()
			return
		}
		buf := w.buf
		w.buf, w.spare = w.spare[:0], nil
		closing := w.closing
		if w.space != nil {
			close(w.space)
			w.space = nil
		}
		w.mu.Unlock()

		if len(buf) > 0 {
			if _, err := c.conn.Write(buf); err != nil {
				c.end(fmt.Errorf("client: write: %w", err))
				return
			}
		}
		if closing {
			c.end(ErrClosed)
			return
		}
		if cap(buf) > maxKeptBuffer {
			buf = nil
		}
		w.mu.Lock()
		if !w.ended {
			w.spare = buf[:0]
		}
		w.mu.Unlock()
	}
}
