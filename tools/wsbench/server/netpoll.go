package main

import (
	"context"
	"errors"
	"net"

	"github.com/cloudwego/netpoll"
	"github.com/gobwas/ws"
)

// runNetpoll serves the echo on cloudwego/netpoll's epoll event loop with
// gobwas/ws framing: no goroutine exists for an idle connection; OnRequest
// runs on a pooled goroutine only when bytes have arrived. netpoll owns the
// accept loop and each connection's input buffer, so the sniff is a Peek(4)
// on that buffer instead of on a bufio.Reader.
func runNetpoll(ln net.Listener, cfg config) error {
	// Shrink the per-connection input buffer from the 8 KiB default (and the
	// 4 KiB minimum node size) to the same size the other libraries get.
	if cfg.readBuf > 0 {
		netpoll.LinkBufferCap = cfg.readBuf
		if err := netpoll.Configure(netpoll.Config{BufferSize: cfg.readBuf}); err != nil {
			return err
		}
	}
	evl, err := netpoll.NewEventLoop(
		func(ctx context.Context, c netpoll.Connection) error { return npOnRequest(ctx, c, cfg) },
		netpoll.WithOnPrepare(npOnPrepare),
		netpoll.WithReadTimeout(handshakeTimeout), // bounds waits for a partial frame
	)
	if err != nil {
		return err
	}
	return evl.Serve(ln)
}

type npStateKey struct{}

type npState struct{ upgraded bool }

func npOnPrepare(c netpoll.Connection) context.Context {
	return context.WithValue(context.Background(), npStateKey{}, new(npState))
}

func npOnRequest(ctx context.Context, c netpoll.Connection, cfg config) error {
	st := ctx.Value(npStateKey{}).(*npState)
	r := c.Reader()
	if !st.upgraded {
		p, err := r.Peek(4)
		if err != nil || string(p) != "GET " {
			return c.Close() // raw TCP is not served by this candidate
		}
		// Connection.Read blocks (up to the read timeout) until data
		// arrives, which is what ws.Upgrader expects of an io.ReadWriter.
		if _, err := wsUpgrader.Upgrade(c); err != nil {
			return c.Close()
		}
		st.upgraded = true
		sessions.Add(1)
		_ = c.AddCloseCallback(func(netpoll.Connection) error { sessions.Add(-1); return nil })
		return nil
	}

	w := c.Writer()
	for r.Len() > 0 {
		work(cfg.stackWork)
		if err := npEchoFrame(r, w, cfg.maxPayload); err != nil {
			return c.Close()
		}
	}
	if err := r.Release(); err != nil {
		return c.Close()
	}
	return w.Flush() // one write for everything echoed in this batch
}

var errClosed = errors.New("close frame")

func npEchoFrame(r netpoll.Reader, w netpoll.Writer, maxPayload int64) error {
	p, err := r.Peek(2)
	if err != nil {
		return err
	}
	hl := headerLen(p[1])
	if p, err = r.Peek(hl); err != nil {
		return err
	}
	h := parseHeader(p)
	if !h.Masked || h.Rsv != 0 {
		return ws.ErrProtocolMaskRequired
	}
	if h.Length > maxPayload {
		return errFrameTooLarge
	}
	frame, err := r.Next(hl + int(h.Length)) // blocks for a partial frame
	if err != nil {
		return err
	}
	payload := frame[hl:]
	ws.Cipher(payload, h.Mask, 0)

	fin, op := h.Fin, h.OpCode
	switch op {
	case ws.OpPong:
		return nil
	case ws.OpPing:
		fin, op = true, ws.OpPong
	}
	pending := w.MallocLen() // MallocAck counts from the last Flush
	out, err := w.Malloc(ws.MaxHeaderSize + len(payload))
	if err != nil {
		return err
	}
	n := putHeader(out, fin, op, len(payload))
	n += copy(out[n:], payload)
	if err := w.MallocAck(pending + n); err != nil {
		return err
	}
	if op == ws.OpClose {
		_ = w.Flush()
		return errClosed
	}
	return nil
}
