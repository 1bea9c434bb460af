package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/protocol"
)

// Handshake progress of a connection. The reader goroutine advances it, the
// dispatch worker moves it from stHandshaking to stWaitAck.
const (
	stInit        int32 = iota // waiting for the client's handshake
	stHandshaking              // handshake received, answer being prepared
	stWaitAck                  // answer sent, waiting for the handshake-ack
	stWorking                  // data flows
	stClosed
)

var (
	errSessionGone  = fmt.Errorf("connector: %w", handler.ErrSessionGone)
	errAlreadyBound = fmt.Errorf("connector: %w", handler.ErrAlreadyBound)
	errUIDBound     = fmt.Errorf("connector: %w", handler.ErrUIDBound)
	errServerClose  = errors.New("server closed")
	errKicked       = errors.New("kicked")
	errTooManyFiles = syscall.EMFILE
)

// Session is one client connection and what the framework knows of its
// user. It implements handler.Session. All methods are safe for concurrent use.
type Session struct {
	id  int64
	srv *Server
	nc  net.Conn
	rc  syscall.RawConn // nil when the conn does not expose one
	ws  bool            // set once by the reader before any write
	// The small fields sit together (a session is ~0.5 KB; 15,000 idle ones
	// are what the connector holds), each with the owner noted below.
	pollAdded bool // reader: the socket is registered with the idle poller
	// reader: the burst being handled held only heartbeats
	onlyHeartbeats bool
	running        bool // qmu: a dispatch worker runs, or an asynchronous handler has the session
	asyncStarting  bool // qmu: the worker is inside AsyncHandler
	writing        bool // wmu: a writer runs
	closeAfter     bool // wmu: a kick is queued: close once it is written
	skipRead       bool // reader: the last read drained the socket (readLoop)

	state  atomic.Int32
	inLoop atomic.Bool // the reader is inside rc.Read (readLoop): close leaves the descriptor to it
	uid    atomic.Pointer[string]
	closed atomic.Bool
	// Idle parking (idle_linux.go): parked is set while the idle poller
	// holds the read side (no reader runs), toPark asks the reader to park.
	parked   atomic.Bool
	toPark   atomic.Bool
	rn       int32        // reader: bytes read by readReady (at most readBufSize)
	lastRead atomic.Int64 // unix nanos of the client's last bytes, once working

	// Owned by the reader goroutine.
	dec          protocol.Decoder
	frame        wsFrame
	readFn       func(fd uintptr) bool // readHandle
	readNext     func()                // the next read loop, started by continueReading
	rbuf         *[]byte
	rerr         error // set by readReady and readHandle
	deadlineAt   int64 // unix nanos when the read deadline was last pushed out
	rateTokens   float64
	rateAt       int64
	rateNotified int64

	qmu     sync.Mutex // dispatch queue
	drainFn func()     // drain, made once: a method value per dispatch would allocate; set by newSession
	inq     []inbound
	inHead  int
	inWait  chan struct{}
	// The AsyncHandler call in progress (qmu): its done is taken once, if
	// its generation is still current; one that came before AsyncHandler
	// returned leaves its outcome in early, for the worker to answer.
	asyncGen uint32
	early    *asyncResult

	wmu sync.Mutex // write queue
	wq  []outbound
	// Owned by whichever goroutine is the session's writer (writing set).
	rest    []byte // bytes a full socket did not take, for the waiting writer
	writeFn func(fd uintptr) bool
	wbuf    []byte
	wn      int
	werr    syscall.Errno // set by writeReady

	wqBytes    int
	closeCause error

	mu       sync.Mutex   // settings and hooks
	settings *settingsBox // copy-on-write, possibly shared (settings.go); nil for none
	hooks    []func(*Session)
}

func newSession(srv *Server, id int64, nc net.Conn) *Session {
	s := &Session{id: id, srv: srv, nc: nc}
	s.drainFn = s.drain
	s.dec.MaxBody = srv.cfg.MaxPackageSize
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			s.rc = rc
		}
	}
	return s
}

// ID returns the session id, unique on this server.
func (s *Session) ID() int64 { return s.id }

// FrontendID returns the id of the server holding the connection.
func (s *Session) FrontendID() string { return s.srv.cfg.ID }

// FrontendEpoch returns the epoch of the server instance holding the
// connection (Config.Epoch): session ids are unique per instance.
func (s *Session) FrontendEpoch() uint64 { return s.srv.cfg.Epoch }

// UID returns the bound user id, "" before Bind.
func (s *Session) UID() string {
	if p := s.uid.Load(); p != nil {
		return *p
	}
	return ""
}

// RemoteAddr returns the client's address.
func (s *Session) RemoteAddr() net.Addr { return s.nc.RemoteAddr() }

// Transport returns "ws" or "tcp".
func (s *Session) Transport() string {
	if s.ws {
		return "ws"
	}
	return "tcp"
}

// Closed reports whether the session has ended.
func (s *Session) Closed() bool { return s.closed.Load() }

// Bind associates uid with the session; see handler.Session.
func (s *Session) Bind(ctx context.Context, uid string) error {
	if uid == "" {
		return errors.New("connector: bind: empty uid")
	}
	old, err := s.srv.bind(s, uid)
	if err != nil {
		return fmt.Errorf("bind %q: %w", uid, err)
	}
	if old != nil {
		s.srv.log.Info("uid bound again; kicking the old session", "uid", uid, "session", s.id, "old", old.id)
		old.kick("logged in elsewhere")
	}
	return nil
}

// Get returns a setting.
func (s *Session) Get(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.settings == nil {
		return "", false
	}
	v, ok := s.settings.m[key]
	return v, ok
}

// Set changes a setting. Settings are copy-on-write: they change rarely
// and are read with every forwarded message (SettingsView).
func (s *Session) Set(key, value string) {
	s.mu.Lock()
	var cur map[string]string
	if s.settings != nil {
		cur = s.settings.m
	}
	if v, ok := cur[key]; !ok || v != value {
		next := make(map[string]string, len(cur)+1)
		for k, v := range cur {
			next[k] = v
		}
		next[key] = value
		s.settings = s.srv.settings.share(next)
	}
	s.mu.Unlock()
}

// Settings returns a copy of every setting.
func (s *Session) Settings() map[string]string {
	view := s.SettingsView()
	out := make(map[string]string, len(view))
	for k, v := range view {
		out[k] = v
	}
	return out
}

// SettingsView returns the current settings without copying them. The map
// is never modified once returned (Set replaces it), and callers must not
// modify it either.
func (s *Session) SettingsView() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.settings == nil {
		return nil
	}
	return s.settings.m
}

// PackedSettings returns the current settings packed (internal/packedmap),
// as they travel to backends; nil for none. The bytes must not be
// modified.
func (s *Session) PackedSettings() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.settings == nil {
		return nil
	}
	return s.settings.packed
}

// OnClose registers fn to run once when the session ends, after any message
// it was handling has finished. Hooks run in registration order. If the
// session has already ended, fn is not called.
func (s *Session) OnClose(fn func(*Session)) {
	s.mu.Lock()
	s.hooks = append(s.hooks, fn)
	s.mu.Unlock()
}

// Push sends a push message to the client. v is JSON-encoded unless it is a
// []byte or json.RawMessage, sent as is.
func (s *Session) Push(ctx context.Context, route string, v any) error {
	var body []byte
	switch b := v.(type) {
	case []byte:
		body = b
	case json.RawMessage:
		body = b
	default:
		var err error
		if body, err = json.Marshal(v); err != nil {
			return fmt.Errorf("push %s: encode: %w", route, err)
		}
	}
	pkg, err := s.srv.EncodePush(route, body)
	if err != nil {
		return fmt.Errorf("push %s: %w", route, err)
	}
	if !s.SendPackage(pkg) {
		return fmt.Errorf("push %s: %w", route, errSessionGone)
	}
	return nil
}

// Kick sends the client a kick package with reason and closes the session
// once it is written. Nothing is sent after the kick: a handler that kicks
// its own session gets no response to the client (as in Pomelo).
func (s *Session) Kick(ctx context.Context, reason string) error {
	if !s.kick(reason) {
		return errSessionGone
	}
	return nil
}

func (s *Session) kick(reason string) bool {
	s.srv.log.Debug("kicking session", "session", s.id, "reason", reason)
	return s.enqueueWrite(outbound{b: protocol.EncodeKick(reason)}, true)
}

func (s *Session) logger() *slog.Logger {
	return s.srv.log.With("session", s.id, "remote", s.nc.RemoteAddr().String())
}

// close ends the session once: the connection closes, queued writes and
// queued messages are dropped, and the close hooks run after any message
// being handled.
func (s *Session) close(cause error) {
	if !s.closed.CompareAndSwap(false, true) {
		return
	}
	s.state.Store(stClosed)
	if s.inLoop.Load() {
		// The reader is inside rc.Read, perhaps handling a burst that
		// waits on this very goroutine (a full dispatch queue, below):
		// Close would wait for it. Shutting the socket down ends the
		// connection for the client at once and wakes the reader, which
		// closes the descriptor as it leaves (readLoop). The order of
		// closed and inLoop makes one of the two close it.
		s.rc.Control(func(fd uintptr) { syscall.Shutdown(int(fd), syscall.SHUT_RDWR) })
	} else {
		s.nc.Close()
	}
	s.srv.unregister(s)

	s.wmu.Lock()
	s.wq, s.wqBytes, s.closeCause = nil, 0, cause
	s.wmu.Unlock()

	s.qmu.Lock()
	for i := s.inHead; i < len(s.inq); i++ {
		s.inq[i] = inbound{}
	}
	s.inq, s.inHead = append(s.inq[:0], inbound{kind: inClosed}), 0
	if s.inWait != nil {
		close(s.inWait)
		s.inWait = nil
	}
	s.startDrainLocked()
}

// idleWriteQueue is the write queue capacity an idle session keeps: enough
// for the heartbeat answer, which would otherwise allocate one every time.
const idleWriteQueue = 2

// releaseQueues drops the dispatch queue's array and a write queue array
// grown past idleWriteQueue when they are empty and unused (they are kept
// while a session is busy: they are reused from one message to the next).
func (s *Session) releaseQueues() {
	s.qmu.Lock()
	if !s.running && s.inHead == len(s.inq) {
		s.inq, s.inHead = nil, 0
	}
	s.qmu.Unlock()
	s.wmu.Lock()
	if !s.writing && len(s.wq) == 0 && cap(s.wq) > idleWriteQueue {
		s.wq = nil
	}
	s.wmu.Unlock()
}

// finish runs the close hooks; it is the last thing a session does.
func (s *Session) finish() {
	s.mu.Lock()
	hooks := s.hooks
	s.hooks = nil
	s.mu.Unlock()
	for _, h := range hooks {
		s.safely("close hook", func() { h(s) })
	}
	if fn := s.srv.cfg.OnSessionClosed; fn != nil {
		s.safely("session closed hook", func() { fn(s) })
	}
	s.srv.active.Done()
}

// safely runs fn, turning a panic into a log line so one bad hook or handler
// cannot take the server down.
func (s *Session) safely(what string, fn func()) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			s.logger().Error("panic", "in", what, "panic", r, "stack", stack())
			panicked = true
		}
	}()
	fn()
	return false
}
