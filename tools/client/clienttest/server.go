// Package clienttest runs an in-process fake Pomelo server, as net/http/httptest
// does for HTTP, for the tests of package client and of the tools built on it
// (pomeloc). It speaks raw TCP and WebSocket on one port like Pomelo's hybrid
// connector, answers the handshake, heartbeats and requests, records what it
// receives byte for byte, and lets a test push, kick, go silent or write
// arbitrary bytes, split or coalesced as it likes.
//
// It is a test double, not a server: no sessions, routing or limits.
package clienttest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/shaddock/shaddock/protocol"
)

// Config shapes the fake server's answers.
type Config struct {
	// Heartbeat is the interval in seconds announced in the handshake; 0
	// announces none. Like Pomelo, the server sends one heartbeat right after
	// the ack and answers each heartbeat it receives.
	Heartbeat int
	// Dict lists the dictionary routes in code order (codes 1..n).
	Dict []string
	// Code is the handshake answer's code; 0 means 200. Any other code is
	// answered alone and the connection closed, as Pomelo does.
	Code int
	// User is the "user" part of the handshake answer.
	User json.RawMessage
	// Handler answers requests; nil echoes the body. A nil result sends no
	// response at all (a request left pending).
	Handler func(route string, body []byte) []byte
	// Async answers each request from its own goroutine after a random delay
	// of up to 2ms, so responses come back out of order.
	Async bool
	// Silent answers nothing after the handshake: no heartbeats, no responses.
	Silent bool
	// NoRecord keeps no events, for benchmarks.
	NoRecord bool
	// Lax accepts client misbehaviour (unmasked or text frames, frames that
	// do not hold exactly one package, data before the ack). By default any
	// of it fails the test at cleanup: the client must never do it.
	Lax bool
}

// Server is a running fake server. Start it with Start; it stops at the
// test's cleanup.
type Server struct {
	tb   testing.TB
	cfg  Config
	dict *protocol.Dictionary
	hs   *protocol.Handshaker
	ln   net.Listener

	accepted chan *Conn
	wg       sync.WaitGroup

	mu         sync.Mutex
	conns      map[*Conn]struct{}
	violations []string
	closed     bool
}

// Start listens on a loopback port and serves until the test ends.
func Start(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	var dict *protocol.Dictionary
	if len(cfg.Dict) > 0 {
		var err error
		if dict, err = protocol.NewDictionary(cfg.Dict); err != nil {
			tb.Fatalf("clienttest: dictionary: %v", err)
		}
	}
	hs, err := protocol.NewHandshaker(protocol.HandshakeOffer{Heartbeat: cfg.Heartbeat, Dict: dict})
	if err != nil {
		tb.Fatalf("clienttest: handshake: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("clienttest: listen: %v", err)
	}
	s := &Server{
		tb: tb, cfg: cfg, dict: dict, hs: hs, ln: ln,
		accepted: make(chan *Conn, 1024),
		conns:    make(map[*Conn]struct{}),
	}
	s.wg.Add(1)
	go s.acceptLoop()
	tb.Cleanup(func() {
		s.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, v := range s.violations {
			tb.Errorf("clienttest: client misbehaved: %s", v)
		}
	})
	return s
}

// Addr is the TCP address, "127.0.0.1:port".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the WebSocket address of the same port.
func (s *Server) URL() string { return "ws://" + s.Addr() + "/" }

// Dict is the server's dictionary.
func (s *Server) Dict() *protocol.Dictionary { return s.dict }

// Accept returns the next connection, once its transport is known (before
// the Pomelo handshake).
func (s *Server) Accept(ctx context.Context) (*Conn, error) {
	select {
	case c := <-s.accepted:
		return c, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("clienttest: accept: %w", ctx.Err())
	}
}

// Close stops listening, closes every connection and waits for the server's
// goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	_ = s.ln.Close()
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.nc.Close()
	}
	s.wg.Wait()
}

func (s *Server) violation(format string, args ...any) {
	if s.cfg.Lax {
		return
	}
	s.mu.Lock()
	s.violations = append(s.violations, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		c := &Conn{s: s, nc: nc, gone: make(chan struct{}), wake: make(chan struct{}, 1)}
		c.silent.Store(s.cfg.Silent)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// Event is one thing the server received.
type Event struct {
	// Type is the package type, or 0 for a WebSocket control frame.
	Type protocol.PackageType
	// Op is the control frame's opcode (ws.OpPong, ws.OpClose).
	Op ws.OpCode
	// Raw is the whole package as received, header included, or the
	// control frame's payload.
	Raw []byte
	// Msg is the decoded message of a data package (Body aliases Raw).
	Msg protocol.Message
	// Hello is the decoded handshake request of a handshake package.
	Hello *protocol.HandshakeRequest
	// At is when it arrived.
	At time.Time
}

// Conn is the server side of one client connection.
type Conn struct {
	s      *Server
	nc     net.Conn
	ws     bool
	silent atomic.Bool

	wmu sync.Mutex // serialises socket writes
	out []byte     // responses of the current read, written in one call

	emu    sync.Mutex
	events []Event
	wake   chan struct{}
	gone   chan struct{}
	state  int // 0 awaiting handshake, 1 awaiting ack, 2 running; reader-owned
	closer sync.Once
}

// WS reports whether the client connected with WebSocket.
func (c *Conn) WS() bool { return c.ws }

// SetSilent stops (or resumes) every answer: heartbeats and responses.
func (c *Conn) SetSilent(v bool) { c.silent.Store(v) }

// Gone is closed when the connection's reader has stopped: the client
// closed it, or the server did.
func (c *Conn) Gone() <-chan struct{} { return c.gone }

// Next returns the next event, waiting for it. Once the connection is gone
// and every event was returned, it fails with io.EOF.
func (c *Conn) Next(ctx context.Context) (Event, error) {
	for {
		c.emu.Lock()
		if len(c.events) > 0 {
			e := c.events[0]
			c.events = c.events[1:]
			c.emu.Unlock()
			return e, nil
		}
		c.emu.Unlock()
		select {
		case <-c.wake:
		case <-c.gone:
			c.emu.Lock()
			n := len(c.events)
			c.emu.Unlock()
			if n == 0 {
				return Event{}, io.EOF
			}
		case <-ctx.Done():
			return Event{}, fmt.Errorf("clienttest: waiting for an event: %w", ctx.Err())
		}
	}
}

// Expect returns the next package of type t, skipping other events.
func (c *Conn) Expect(ctx context.Context, t protocol.PackageType) (Event, error) {
	for {
		e, err := c.Next(ctx)
		if err != nil {
			return e, fmt.Errorf("clienttest: expecting a %s package: %w", t, err)
		}
		if e.Type == t {
			return e, nil
		}
	}
}

func (c *Conn) record(e Event) {
	if c.s.cfg.NoRecord {
		return
	}
	e.At = time.Now()
	c.emu.Lock()
	c.events = append(c.events, e)
	c.emu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Push sends a push, its route compressed when the dictionary has it.
func (c *Conn) Push(route string, body []byte) error {
	pkg, err := protocol.EncodeDataPackage(&protocol.Message{Type: protocol.Push, Route: route, Body: body}, c.s.dict)
	if err != nil {
		return err
	}
	return c.Send(pkg)
}

// Kick sends a kick package with reason and closes the connection.
func (c *Conn) Kick(reason string) error {
	err := c.Send(protocol.EncodeKick(reason))
	c.Close()
	return err
}

// Send writes complete packages in one write: one frame holding them all on
// WebSocket.
func (c *Conn) Send(pkgs ...[]byte) error {
	var b []byte
	for _, p := range pkgs {
		b = append(b, p...)
	}
	if c.ws {
		b = Frame(ws.OpBinary, true, b)
	}
	return c.WriteSocket(b)
}

// WriteSocket writes b on the socket as is: on WebSocket, b must be frames
// (see Frame). Tests split packages or frames across reads with it.
func (c *Conn) WriteSocket(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.nc.Write(b)
	return err
}

// Close ends the connection in an orderly way (a close frame first on
// WebSocket).
func (c *Conn) Close() {
	c.closer.Do(func() {
		if c.ws {
			_ = c.WriteSocket(Frame(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")))
		}
		_ = c.nc.Close()
	})
}

// Frame returns an unmasked server frame.
func Frame(op ws.OpCode, fin bool, payload []byte) []byte {
	b, err := ws.CompileFrame(ws.Frame{Header: ws.Header{Fin: fin, OpCode: op, Length: int64(len(payload))}, Payload: payload})
	if err != nil {
		panic(err) // only for lengths no test uses
	}
	return b
}

func (c *Conn) serve() {
	defer c.s.wg.Done()
	defer func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		_ = c.nc.Close()
		close(c.gone)
	}()
	br := bufio.NewReader(c.nc)
	first, err := br.Peek(1)
	if err != nil {
		return
	}
	if first[0] == 'G' { // "GET /": a WebSocket upgrade, as the hybrid connector detects it
		c.ws = true
		if _, err := ws.Upgrade(struct {
			io.Reader
			io.Writer
		}{br, c.nc}); err != nil {
			return
		}
	}
	c.s.accepted <- c
	var dec protocol.Decoder
	dec.MaxBody = protocol.MaxBodyLen
	if c.ws {
		c.readFrames(br, &dec)
	} else {
		c.readStream(br, &dec)
	}
}

func (c *Conn) readStream(br *bufio.Reader, dec *protocol.Decoder) {
	buf := make([]byte, 16<<10)
	for {
		n, err := br.Read(buf)
		if n > 0 {
			ok := c.feed(dec, buf[:n])
			c.flush()
			if !ok {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// flush writes the responses produced so far in one call, as a real server
// batches them.
func (c *Conn) flush() {
	if len(c.out) > 0 {
		_ = c.WriteSocket(c.out)
		c.out = c.out[:0]
	}
}

func (c *Conn) readFrames(br *bufio.Reader, dec *protocol.Decoder) {
	defer c.flush()
	var buf []byte
	for {
		if br.Buffered() == 0 {
			c.flush() // nothing more to batch with
		}
		h, err := ws.ReadHeader(br)
		if err != nil {
			return
		}
		if int64(cap(buf)) < h.Length {
			buf = make([]byte, h.Length)
		}
		payload := buf[:h.Length]
		if _, err := io.ReadFull(br, payload); err != nil {
			return
		}
		if !h.Masked {
			c.s.violation("unmasked websocket frame (opcode %d)", h.OpCode)
		} else {
			ws.Cipher(payload, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpBinary:
			if !h.Fin {
				c.s.violation("fragmented websocket frame")
			}
			if n := packagesIn(payload); n != 1 {
				c.s.violation("websocket frame holding %d packages (% x)", n, payload[:min(16, len(payload))])
			}
			if !c.feed(dec, payload) {
				return
			}
		case ws.OpClose:
			c.record(Event{Op: ws.OpClose, Raw: append([]byte(nil), payload...)})
			c.flush()
			_ = c.WriteSocket(Frame(ws.OpClose, true, payload[:min(2, len(payload))]))
			return
		case ws.OpPing:
			_ = c.WriteSocket(Frame(ws.OpPong, true, payload))
		case ws.OpPong:
			c.record(Event{Op: ws.OpPong, Raw: append([]byte(nil), payload...)})
		default:
			c.s.violation("websocket frame with opcode %d", h.OpCode)
			if !c.feed(dec, payload) {
				return
			}
		}
	}
}

// packagesIn counts the packages in b by their length fields (their types
// are the decoder's business), -1 if b is not exactly a sequence of whole
// packages.
func packagesIn(b []byte) int {
	n := 0
	for len(b) > 0 {
		if len(b) < protocol.HeaderLen {
			return -1
		}
		l := protocol.HeaderLen + (int(b[1])<<16 | int(b[2])<<8 | int(b[3]))
		if len(b) < l {
			return -1
		}
		b = b[l:]
		n++
	}
	return n
}

// feed decodes and handles input; false means the connection must close.
// Responses accumulate in c.out until the reader flushes.
func (c *Conn) feed(dec *protocol.Decoder, b []byte) bool {
	if err := dec.Feed(b, c.handle); err != nil {
		c.flush() // a refused handshake's answer goes out before the close
		return false
	}
	return true
}

var errRefused = errors.New("handshake refused")

func (c *Conn) handle(p protocol.Package) error {
	e := Event{Type: p.Type}
	if !c.s.cfg.NoRecord {
		e.Raw = make([]byte, protocol.HeaderLen+len(p.Body))
		protocol.PutHeader(e.Raw, p.Type, len(p.Body))
		copy(e.Raw[protocol.HeaderLen:], p.Body)
	}
	switch p.Type {
	case protocol.Handshake:
		var hello protocol.HandshakeRequest
		if err := json.Unmarshal(p.Body, &hello); err != nil {
			return fmt.Errorf("bad handshake: %w", err)
		}
		e.Hello = &hello
		c.record(e)
		if c.state != 0 {
			c.s.violation("second handshake")
			return nil
		}
		code := c.s.cfg.Code
		if code == 0 {
			code = protocol.CodeOK
		}
		// Answers are protocol.Handshaker's: Pomelo 2.2.7's, field for field
		// (a client offering the current dictionary version gets useDict only).
		pkg := protocol.EncodeRefusal(code)
		if code == protocol.CodeOK {
			var err error
			if pkg, err = c.s.hs.Answer(&hello, c.s.cfg.User); err != nil {
				return err
			}
		}
		c.queue(pkg)
		if code != protocol.CodeOK {
			return errRefused
		}
		c.state = 1
	case protocol.HandshakeAck:
		c.record(e)
		if c.state != 1 {
			c.s.violation("handshake-ack in state %d", c.state)
		}
		c.state = 2
		if c.s.cfg.Heartbeat > 0 && !c.silent.Load() {
			c.queue(heartbeatPkg)
		}
	case protocol.Heartbeat:
		c.record(e)
		if !c.silent.Load() {
			c.queue(heartbeatPkg)
		}
	case protocol.Data:
		if c.state != 2 {
			c.s.violation("data before the handshake-ack")
		}
		m, err := protocol.DecodeMessage(p.Body, c.s.dict)
		if err != nil {
			return err
		}
		if !c.s.cfg.NoRecord {
			e.Msg, _ = protocol.DecodeMessage(e.Raw[protocol.HeaderLen:], c.s.dict)
			c.record(e)
		}
		if m.Type == protocol.Request && !c.silent.Load() {
			c.respond(m.ID, m.Route, m.Body)
		}
	default:
		c.record(e)
	}
	return nil
}

var heartbeatPkg = []byte{byte(protocol.Heartbeat), 0, 0, 0}

func (c *Conn) respond(id uint64, route string, body []byte) {
	if !c.s.cfg.Async {
		if out := c.answer(route, body); out != nil {
			c.out = c.appendData(c.out, &protocol.Message{Type: protocol.Response, ID: id, Body: out})
		}
		return
	}
	body = append([]byte(nil), body...) // aliases the read buffer
	go func() {
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
		if out := c.answer(route, body); out != nil {
			_ = c.WriteSocket(c.appendData(nil, &protocol.Message{Type: protocol.Response, ID: id, Body: out}))
		}
	}()
}

func (c *Conn) answer(route string, body []byte) []byte {
	if c.s.cfg.Handler == nil {
		return body
	}
	return c.s.cfg.Handler(route, body)
}

// queue adds a package to the pending output, framed on WebSocket.
func (c *Conn) queue(pkg []byte) {
	if c.ws {
		c.out = append(c.out, Frame(ws.OpBinary, true, pkg)...)
		return
	}
	c.out = append(c.out, pkg...)
}

// appendData appends a data package to dst, framed on WebSocket.
func (c *Conn) appendData(dst []byte, m *protocol.Message) []byte {
	if c.ws {
		n := protocol.HeaderLen + protocol.MessageLen(m, c.s.dict)
		dst = append(dst, 0x80|byte(ws.OpBinary))
		switch {
		case n < 126:
			dst = append(dst, byte(n))
		case n <= 0xffff:
			dst = append(dst, 126, byte(n>>8), byte(n))
		default:
			dst = append(dst, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		}
	}
	dst, _ = protocol.AppendDataPackage(dst, m, c.s.dict)
	return dst
}
