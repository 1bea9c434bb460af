// Package client is a Go client of the Pomelo protocol (TCP or WebSocket) for
// shaddock's tests, the load robot and the pomeloc command.
//
// A Client costs two goroutines (one reader, one writer) and a timer, however
// many requests are in flight: requests wait on a pooled channel, writes from
// every goroutine are coalesced into one buffer that the writer hands to the
// socket in one call, and the reader decodes in place. It is not a game
// client SDK: it has no reconnection, protobuf bodies or route caching.
//
// RawConn (DialRaw) is the escape hatch for tests that need to send what a
// well-behaved client never would.
package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shaddock/shaddock/protocol"
)

// Options configures Dial. The zero value dials TCP, follows the server's
// heartbeat and drops pushes.
type Options struct {
	// Transport is TransportTCP (default) or TransportWS. An address starting
	// with ws:// or wss:// is WebSocket anyway.
	Transport string
	// TLS, if set, dials TLS: raw TCP over TLS, or wss:// for WebSocket.
	TLS *tls.Config
	// HandshakeUser is the "user" part of the handshake, marshalled with
	// encoding/json (pass json.RawMessage for ready JSON); nil omits it.
	HandshakeUser any
	// ClientType and ClientVersion fill sys.type and sys.version; defaults
	// "go-tcp" or "go-websocket", and "0.1.0".
	ClientType, ClientVersion string
	// Dict is a dictionary kept from an earlier handshake (Handshake().Sys.Dict).
	// Its version is offered as sys.dictVersion; a server that recognises it
	// leaves the dictionary out of its answer and this one is used. Clients of
	// one load robot can share one dictionary this way.
	Dict *protocol.Dictionary
	// NoHeartbeat disables heartbeats and the silence timeout, to test a
	// server's handling of silent clients. By default the client sends a
	// heartbeat every interval the server announced (counted from the
	// server's last heartbeat, as the Pomelo JS client does) and ends with
	// ErrHeartbeatTimeout when nothing arrives for twice that interval.
	NoHeartbeat bool
	// OnPush receives server pushes on the reader goroutine: it must not
	// block for long, and body is valid only during the call. It may be called
	// before Dial returns, once the handshake is done, and is not called once
	// the client has ended (a call already under way when Close is called in
	// parallel may still finish after Close returns).
	OnPush func(route string, body []byte)
	// OnKick is called on the reader goroutine when the server kicks the
	// client, before the client ends with *KickedError.
	OnKick func(reason string)
	// Logger receives debug lines (ignored responses, unexpected packages);
	// nil discards them.
	Logger *slog.Logger
}

// Client is one Pomelo connection. Its methods are safe for concurrent use.
type Client struct {
	conn net.Conn
	ws   bool
	log  *slog.Logger
	opts Options

	// Set by the reader while handling the handshake answer, read-only once
	// hsDone is closed (Request and Notify only run after Dial returned).
	hs      protocol.HandshakeResponse
	dict    *protocol.Dictionary
	hsDone  chan struct{}
	timeout time.Duration // read silence limit, 0 for none; reader-owned

	mu         sync.Mutex
	nextID     uint64
	pending    map[uint64]*call // nil once the client ended
	hbTimer    *time.Timer
	hbInterval time.Duration

	w writer

	closing   atomic.Bool // Close was called: any end is ErrClosed
	closeOnce sync.Once
	endOnce   sync.Once
	done      chan struct{}
	err       error // written once before done is closed

	rd  *bufio.Reader // WebSocket only: the frame stream
	dec protocol.Decoder
}

// call is a waiting request. Calls are pooled: a request costs no channel
// allocation. Exactly one send happens on ch per registration.
type call struct {
	ch   chan struct{}
	body []byte
	err  error
}

var callPool = sync.Pool{New: func() any { return &call{ch: make(chan struct{}, 1)} }}

// Dial connects to addr ("host:port" for TCP, "ws://host:port/" or
// "host:port" with Options.Transport "ws" for WebSocket), performs the
// handshake and the handshake-ack, and returns once data may flow. ctx bounds
// the connection and the handshake only.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	conn, br, isWS, err := dialTransport(ctx, addr, opts.Transport, opts.TLS)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	hello, err := handshakeRequest(&opts, isWS)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	c := &Client{
		conn:    conn,
		ws:      isWS,
		log:     opts.Logger,
		opts:    opts,
		hsDone:  make(chan struct{}),
		pending: make(map[uint64]*call),
		done:    make(chan struct{}),
		rd:      br,
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("peer", addr)
	c.w.init()
	// The decoder guards a server's input; a client trusts its server to the
	// protocol's own limit (pushes of a big room can exceed 64 KiB).
	c.dec.MaxBody = protocol.MaxBodyLen
	c.enqueuePackage(protocol.Handshake, hello)
	go c.readLoop()
	go c.writeLoop()

	select {
	case <-c.hsDone:
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("dial %s: %w", addr, c.err)
	case <-ctx.Done():
		c.end(fmt.Errorf("handshake: %w", ctx.Err()))
		return nil, fmt.Errorf("dial %s: %w", addr, c.err)
	}
}

// handshakeRequest encodes the client's hello.
func handshakeRequest(opts *Options, isWS bool) ([]byte, error) {
	req := protocol.HandshakeRequest{Sys: protocol.HandshakeClientSys{
		Type:        opts.ClientType,
		Version:     opts.ClientVersion,
		DictVersion: opts.Dict.Version(),
	}}
	if req.Sys.Type == "" {
		req.Sys.Type = "go-tcp"
		if isWS {
			req.Sys.Type = "go-websocket"
		}
	}
	if req.Sys.Version == "" {
		req.Sys.Version = "0.1.0"
	}
	if opts.HandshakeUser != nil {
		u, err := json.Marshal(opts.HandshakeUser)
		if err != nil {
			return nil, fmt.Errorf("handshake user: %w", err)
		}
		req.User = u
	}
	return json.Marshal(&req)
}

// Request sends a request and waits for its response body (JSON for a
// shaddock or Pomelo server). Application errors are inside the body: the
// protocol has no error response. The error is ctx's when ctx ends first,
// or wraps the reason the connection ended (ErrClosed, *KickedError, ...).
func (c *Client) Request(ctx context.Context, route string, body []byte) ([]byte, error) {
	p, err := c.Go(ctx, route, body)
	if err != nil {
		return nil, err
	}
	return p.Wait(ctx)
}

// Pending is a request that has been queued for sending and whose response
// has not been collected. Collect it exactly once with Wait.
type Pending struct {
	c     *Client
	id    uint64
	route string
	cl    *call
}

// Go queues a request and returns without waiting for the response.
// Requests from one goroutine go on the wire in the order of their Go calls
// (Request from several goroutines gives no order), which matters because a
// server handles a session's messages in arrival order.
func (c *Client) Go(ctx context.Context, route string, body []byte) (*Pending, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("request %s: %w", route, err)
	}
	cl := callPool.Get().(*call)
	c.mu.Lock()
	if c.pending == nil {
		c.mu.Unlock()
		callPool.Put(cl)
		return nil, fmt.Errorf("request %s: %w", route, c.Err())
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = cl
	c.mu.Unlock()

	m := protocol.Message{Type: protocol.Request, ID: id, Route: route, Body: body}
	if err := c.enqueue(ctx, &m); err != nil {
		c.release(id, cl)
		return nil, fmt.Errorf("request %s: %w", route, err)
	}
	return &Pending{c: c, id: id, route: route, cl: cl}, nil
}

// Wait returns the response body, or ctx's error when ctx ends first.
func (p *Pending) Wait(ctx context.Context) ([]byte, error) {
	select {
	case <-p.cl.ch:
		resp, err := p.cl.body, p.cl.err
		p.cl.body, p.cl.err = nil, nil
		callPool.Put(p.cl)
		if err != nil {
			return nil, fmt.Errorf("request %s: %w", p.route, err)
		}
		return resp, nil
	case <-ctx.Done():
		p.c.release(p.id, p.cl)
		return nil, fmt.Errorf("request %s: %w", p.route, ctx.Err())
	}
}

// release forgets a request its caller stopped waiting for and pools the
// call. When the reader (or end) already took the call, its one send is
// imminent: wait for it so the pooled channel is empty.
func (c *Client) release(id uint64, cl *call) {
	c.mu.Lock()
	_, mine := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if !mine {
		<-cl.ch
	}
	cl.body, cl.err = nil, nil
	callPool.Put(cl)
}

// RequestJSON marshals req, sends it as a request and unmarshals the response
// into resp (skipped when resp is nil).
func (c *Client) RequestJSON(ctx context.Context, route string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("request %s: %w", route, err)
	}
	out, err := c.Request(ctx, route, body)
	if err != nil {
		return err
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(out, resp); err != nil {
		return fmt.Errorf("request %s: response: %w", route, err)
	}
	return nil
}

// Notify sends a notify (no response). It returns once the message is queued
// for writing; a later write failure ends the client.
func (c *Client) Notify(ctx context.Context, route string, body []byte) error {
	m := protocol.Message{Type: protocol.Notify, Route: route, Body: body}
	if err := c.enqueue(ctx, &m); err != nil {
		return fmt.Errorf("notify %s: %w", route, err)
	}
	return nil
}

// Handshake returns the server's handshake answer. Sys is never nil; Sys.Dict
// (and Sys.RouteToCode) hold the dictionary in use, nil when there is none.
func (c *Client) Handshake() protocol.HandshakeResponse { return c.hs }

// Done is closed when the connection has ended; Err then says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is nil while the client runs, then the reason it ended: ErrClosed,
// ErrHeartbeatTimeout, *KickedError, an error wrapping io.EOF when the server
// closed the connection, or the read/write/protocol error.
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// closeFlushTimeout bounds how long Close waits for queued writes (a last
// notify, the WebSocket close frame) to reach the socket.
const closeFlushTimeout = time.Second

// Close sends what is already queued (waiting at most a second), closes the
// connection and fails pending requests with ErrClosed. It is idempotent and
// safe to call from any goroutine, OnPush included; every call returns once
// the client has ended.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		if !c.w.close(c.ws) {
			return // already ended
		}
		_ = c.conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		c.w.signal()
		t := time.NewTimer(closeFlushTimeout)
		defer t.Stop()
		select {
		case <-c.done:
		case <-t.C:
			c.end(ErrClosed)
		}
	})
	<-c.done
	return nil
}

// end records why the client ended (first call wins), closes the connection
// and fails pending requests. The reader and writer notice the closed
// connection or done and exit.
func (c *Client) end(err error) {
	c.endOnce.Do(func() {
		if c.closing.Load() {
			err = ErrClosed
		}
		c.err = err
		close(c.done)
		_ = c.conn.Close()
		c.mu.Lock()
		pending := c.pending
		c.pending = nil
		if c.hbTimer != nil {
			c.hbTimer.Stop()
		}
		c.mu.Unlock()
		for _, cl := range pending {
			cl.err = err
			cl.ch <- struct{}{}
		}
		c.w.drop()
	})
}
