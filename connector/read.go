package connector

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/protocol"
)

// readBufSize is the pooled buffer a reader borrows while bytes are
// available. Idle connections hold none.
const readBufSize = 16 << 10

var (
	errUnknownProtocol = errors.New("first bytes are neither a Pomelo handshake nor an HTTP upgrade")
	errSecondHandshake = errors.New("a second handshake on the connection")
)

// bufPool is shared by all servers: buffers carry no state between uses.
var bufPool = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// serve sniffs the connection on the accepting goroutine, then runs the
// read loop on a fresh one: sniffing and the WebSocket upgrade grow a
// goroutine's stack, and Go keeps a live goroutine's stack near its
// high-water mark, so the goroutine that idles for the session's life must
// not be the one that parsed HTTP (docs/websocket.md measures the cost).
func (s *Session) serve() {
	if err := s.start(); err != nil {
		s.end(err)
		return
	}
	s.continueReading()
}

// continueReading runs the next read loop on a fresh goroutine owned by the
// server, or ends the session when the server is closing and starts none.
func (s *Session) continueReading() {
	if s.readNext == nil {
		s.readNext = func() { s.run(s.readLoop) } // one closure per connection, not per burst
	}
	if !s.srv.routines.Go(s.readNext) {
		s.end(errServerClose)
	}
}

// errHandedOff ends a read loop that has started its successor.
var errHandedOff = errors.New("read loop continues on a new goroutine")

// run runs a read loop until the connection ends, or until the loop hands
// over (to the idle poller, or to a fresh goroutine: see readBurst and
// readFailed).
func (s *Session) run(loop func() error) {
	if err := loop(); err != errHandedOff {
		s.end(err)
	}
}

// end logs why the connection ended and closes the session.
func (s *Session) end(err error) {
	s.logClose(err)
	if errors.Is(err, errClientClosedWS) {
		return // the writer closes once the close frame is echoed
	}
	s.close(err)
}

// start reads the first bytes and decides between raw TCP and WebSocket;
// the read loop (readLoop) continues after it.
func (s *Session) start() error {
	s.nc.SetReadDeadline(time.Now().Add(s.srv.cfg.HandshakeTimeout))
	bp, n, err := s.readChunk()
	if err != nil {
		return err
	}
	defer bufPool.Put(bp)
	first := (*bp)[:n]
	switch {
	case first[0] == 'G': // "GET ": an HTTP upgrade
		br := upgradeReaders.Get().(*bufio.Reader)
		defer upgradeReaders.Put(br)
		br.Reset(&prefixedReader{first: first, r: s.nc})
		defer br.Reset(nil)
		rest, err := s.upgrade(br)
		if err != nil {
			return err
		}
		// Frames the client sent right behind its request are already
		// read; they are handled before br goes back to the pool.
		return s.feedWS(rest)
	case first[0] == byte(protocol.Handshake):
		return s.feed(first)
	default:
		return fmt.Errorf("%w (0x%02x)", errUnknownProtocol, first[0])
	}
}

// readBurst reads one burst, handles it, and hands the next wait to a fresh
// goroutine. It is the reader of connections without a raw socket (TLS) and
// of systems without readLoop's (readiness_linux.go); handling a burst can
// grow a goroutine's stack, and a fresh goroutine per burst keeps a waiting
// reader at the minimum stack.
func (s *Session) readBurst() error {
	bp, n, err := s.readChunk()
	if err != nil {
		return s.readFailed(err)
	}
	s.onlyHeartbeats = true
	err = s.feedChunk((*bp)[:n])
	bufPool.Put(bp)
	if err != nil {
		return err
	}
	if s.idleBurst() && s.park() {
		return errHandedOff
	}
	s.continueReading()
	return errHandedOff
}

// feedChunk hands bytes read from the client to the decoder of its
// transport.
func (s *Session) feedChunk(p []byte) error {
	if s.ws {
		return s.feedWS(p)
	}
	return s.feed(p)
}

// idleBurst reports whether the burst just handled held nothing but
// heartbeats and ended between packages and frames: an idle client's, whose
// reader parks at once rather than wait for the sweeper (idle_linux.go). Not
// in the middle of a package or frame: its rest is probably on its way.
func (s *Session) idleBurst() bool {
	return s.onlyHeartbeats && s.dec.Buffered() == 0 && s.frame.between()
}

// readFailed handles what ended a read. A deadline the sweeper set parks
// the session; one that fired early re-arms the heartbeat; either way the
// reader continues on a fresh goroutine (errHandedOff). Anything else ends
// the session.
func (s *Session) readFailed(err error) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if s.toPark.Swap(false) {
		// The sweeper found the session idle (idle_linux.go).
		if s.park() {
			return errHandedOff
		}
		s.resumeDeadline()
		s.continueReading()
		return errHandedOff
	}
	if s.rearmHeartbeat() {
		s.continueReading()
		return errHandedOff
	}
	return err
}

// feed decodes bytes from the client and keeps the read deadline ahead.
func (s *Session) feed(p []byte) error {
	s.touch()
	return s.dec.Feed(p, s.onPackage)
}

// touch records that the client spoke and pushes the heartbeat deadline
// out, at most every quarter timeout so a busy connection does not reset a
// timer per read. The deadline may then fire up to a quarter early; the
// reader re-arms it (rearmHeartbeat), so a client is closed after exactly
// the timeout of silence, as documented.
func (s *Session) touch() {
	if s.state.Load() != stWorking {
		return
	}
	now := time.Now()
	last := now.UnixNano()
	s.lastRead.Store(last)
	timeout := s.srv.cfg.HeartbeatTimeout
	if timeout <= 0 || last-s.deadlineAt < int64(timeout/4) {
		return
	}
	s.deadlineAt = last
	s.nc.SetReadDeadline(now.Add(timeout))
}

// unpark starts a reader for a session the idle poller held, whose socket
// became readable.
func (s *Session) unpark() {
	s.resumeDeadline()
	s.continueReading()
}

// resumeDeadline gives a reader back the read deadline it needs (the
// heartbeat deadline, or none) after the sweeper moved it into the past.
func (s *Session) resumeDeadline() {
	timeout := s.srv.cfg.HeartbeatTimeout
	if timeout <= 0 {
		s.nc.SetReadDeadline(time.Time{})
		return
	}
	last := s.lastRead.Load()
	s.deadlineAt = last
	s.nc.SetReadDeadline(time.Unix(0, last).Add(timeout))
}

// rearmHeartbeat handles a read deadline that fired: if the client has not
// yet been silent for the whole heartbeat timeout, the deadline moves to
// the moment it will have been, and it reports true.
func (s *Session) rearmHeartbeat() bool {
	timeout := s.srv.cfg.HeartbeatTimeout
	if s.state.Load() != stWorking || timeout <= 0 {
		return false
	}
	last := s.lastRead.Load()
	until := time.Unix(0, last).Add(timeout)
	if !time.Now().Before(until) {
		return false
	}
	s.deadlineAt = last
	s.nc.SetReadDeadline(until)
	return true
}

func (s *Session) onPackage(p protocol.Package) error {
	if p.Type != protocol.Heartbeat {
		s.onlyHeartbeats = false
	}
	switch p.Type {
	case protocol.Handshake:
		if !s.state.CompareAndSwap(stInit, stHandshaking) {
			return errBadMessage{errSecondHandshake}
		}
		s.enqueue(inbound{kind: inHandshake, body: bytes.Clone(p.Body)})
	case protocol.HandshakeAck:
		if s.state.CompareAndSwap(stWaitAck, stWorking) {
			if s.srv.cfg.HeartbeatTimeout > 0 {
				s.deadlineAt = 0
				s.touch()
			} else {
				s.nc.SetReadDeadline(time.Time{})
			}
			if s.srv.cfg.Heartbeat > 0 {
				// Pomelo answers the ack with a heartbeat, and its JS client
				// only starts heartbeating once it has received one.
				s.enqueueWrite(outbound{b: s.srv.heartbeatPkg}, false)
			}
		}
	case protocol.Heartbeat:
		if st := s.state.Load(); st == stWaitAck || st == stWorking {
			s.enqueueWrite(outbound{b: s.srv.heartbeatPkg}, false)
		}
	case protocol.Data:
		if s.state.Load() != stWorking {
			// Pomelo ignores data before the handshake-ack; so do we.
			s.srv.log.Debug("data before handshake-ack ignored", "session", s.id)
			return nil
		}
		return s.onMessage(p.Body)
	case protocol.Kick:
		// Clients do not kick; ignore as Pomelo does.
	}
	return nil
}

// errBadMessage marks a malformed message: the connection closes.
type errBadMessage struct{ err error }

func (e errBadMessage) Error() string { return "malformed message: " + e.err.Error() }
func (e errBadMessage) Unwrap() error { return e.err }

func (s *Session) onMessage(b []byte) error {
	m, err := protocol.DecodeMessage(b, s.srv.cfg.Dictionary)
	if err != nil {
		return errBadMessage{err}
	}
	if m.Type != protocol.Request && m.Type != protocol.Notify {
		return errBadMessage{fmt.Errorf("client sent a %s", m.Type)}
	}
	body := m.Body
	if m.Gzip {
		if body, err = protocol.Gunzip(body, s.srv.cfg.MaxPackageSize); err != nil {
			return errBadMessage{err}
		}
	}
	kind := inRequest
	if m.Type == protocol.Notify {
		kind = inNotify
	}
	if s.srv.draining.Load() {
		if kind == inRequest {
			s.refuseRequest(m.ID, m.Route, handler.Errorf(handler.CodeUnavailable, "server shutting down"))
		}
		return nil
	}
	if !s.allow() {
		if kind == inRequest {
			s.refuseRequest(m.ID, m.Route, handler.Errorf(handler.CodeTooManyRequests, "request rate above %g/s", s.srv.cfg.RequestRate))
		}
		return nil
	}
	// A copy either way: the read buffer is reused once we return.
	if body, err = s.decodeRequestBody(m.Route, body); err != nil {
		// Pomelo's decoder throws and the request goes unanswered; a client
		// here gets a clear error instead.
		if kind == inRequest {
			s.refuseRequest(m.ID, m.Route, handler.Errorf(handler.CodeBadRequest, "bad request body: %v", err))
		} else {
			s.logger().Info("notify body does not decode with its client proto", "route", m.Route, "err", err)
		}
		return nil
	}
	s.enqueue(inbound{kind: kind, id: m.ID, route: m.Route, body: body})
	return nil
}

// refuseRequest answers a request its handler never sees.
func (s *Session) refuseRequest(id uint64, route string, err *handler.Error) {
	if fn := s.srv.cfg.OnRefused; fn != nil {
		fn(route, err.Code)
	}
	s.respond(id, route, nil, err)
}

// allow applies the per-session token bucket and logs, at most once a
// minute per session, that a client is being limited.
func (s *Session) allow() bool {
	rate := s.srv.cfg.RequestRate
	if rate <= 0 {
		return true
	}
	now := time.Now().UnixNano()
	burst := float64(s.srv.cfg.RequestBurst)
	if s.rateAt == 0 {
		s.rateTokens = burst
	} else {
		s.rateTokens = min(burst, s.rateTokens+float64(now-s.rateAt)*rate/1e9)
	}
	s.rateAt = now
	if s.rateTokens >= 1 {
		s.rateTokens--
		return true
	}
	if now-s.rateNotified > int64(time.Minute) {
		s.rateNotified = now
		s.logger().Warn("session over its request rate; rejecting", "rate", rate, "burst", burst)
	}
	return false
}

// logClose writes the line that says why a connection ended: the abnormal
// causes at info or warn level, ordinary disconnects at debug.
func (s *Session) logClose(err error) {
	if s.closed.Load() {
		return // closed from elsewhere (kick, shutdown, slow client): already logged
	}
	var (
		bad   errBadMessage
		level = slog.LevelDebug
		msg   = "connection closed"
	)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) && s.state.Load() < stWorking:
		level, msg = slog.LevelInfo, "handshake timeout; closing"
	case errors.Is(err, os.ErrDeadlineExceeded):
		level, msg = slog.LevelInfo, "heartbeat timeout; closing"
	case errors.Is(err, protocol.ErrPackageTooLarge), errors.Is(err, protocol.ErrPackageType),
		errors.As(err, &bad), errors.Is(err, errUnknownProtocol), errors.Is(err, errBadFrame):
		level, msg = slog.LevelWarn, "protocol violation; closing"
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, errClientClosedWS):
	default:
		level = slog.LevelInfo
		msg = "connection error; closing"
	}
	s.logger().Log(s.srv.ctx, level, msg, "err", err)
}

func stack() string { return string(debug.Stack()) }
