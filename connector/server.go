package connector

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shaddock/shaddock/internal/lograte"
	"github.com/shaddock/shaddock/internal/routines"
	"github.com/shaddock/shaddock/internal/workpool"
	"github.com/shaddock/shaddock/protocol"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("connector: server closed")

// Server is a frontend server. Create it with New, then call Serve with one
// or more listeners; stop it with Shutdown (graceful) or Close.
type Server struct {
	cfg  Config
	log  *slog.Logger
	pool *workpool.Pool

	ctx    context.Context // parent of every handler context; cancelled by Close
	cancel context.CancelFunc

	heartbeatPkg []byte // immutable, shared by every heartbeat answer
	handshaker   *protocol.Handshaker

	nextID   atomic.Int64
	draining atomic.Bool // Shutdown began: new requests are refused

	settings settingsTable // settings maps shared between sessions

	mu        sync.RWMutex
	sessions  map[int64]*Session
	uids      map[string]*Session
	listeners map[net.Listener]struct{}
	closing   bool

	active sync.WaitGroup // sessions not yet finished (closed and hooks run)
	serves sync.WaitGroup // Serve loops
	// routines owns every goroutine the server starts itself (readers,
	// flushers); pool's workers run session work and waiting writers.
	// finish waits for both.
	routines routines.Group

	flushers  []*flusher
	flushQuit chan struct{} // also stops the idle sweeper
	// idle holds the read side of idle sessions (nil: each keeps its
	// reader).
	idle       *idlePoller
	finishOnce sync.Once

	// failLog keeps the per-request failure lines (request or notify
	// failed) to one a second under a fault, with a count.
	failLog lograte.Limiter
}

// failLogEvery is the least time between two lines about failed requests.
const failLogEvery = time.Second

// flusherFor returns the flusher that owns a session's writes.
func (s *Server) flusherFor(id int64) *flusher {
	return s.flushers[uint64(id)%uint64(len(s.flushers))]
}

// New validates cfg and returns a server.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		failLog:   lograte.Limiter{Every: failLogEvery},
		cfg:       cfg,
		log:       cfg.Logger.With("server", cfg.ID),
		pool:      workpool.New(10 * time.Second),
		ctx:       ctx,
		cancel:    cancel,
		sessions:  make(map[int64]*Session),
		uids:      make(map[string]*Session),
		listeners: make(map[net.Listener]struct{}),
	}
	// One flusher per CPU the process may use: writes are syscall-bound.
	s.flushQuit = make(chan struct{})
	for range max(1, runtime.GOMAXPROCS(0)) {
		f := newFlusher()
		s.flushers = append(s.flushers, f)
		s.routines.Go(func() { f.run(s.flushQuit) })
	}
	if s.idle = newIdlePoller(s); s.idle != nil {
		s.routines.Go(s.idle.run)
		s.routines.Go(func() { s.idle.sweep(s.flushQuit) })
	}
	s.heartbeatPkg, _ = protocol.EncodePackage(protocol.Heartbeat, nil)
	offer := protocol.HandshakeOffer{Heartbeat: int(cfg.Heartbeat / time.Second), Dict: cfg.Dictionary}
	if cfg.Protos != nil {
		offer.Protos, offer.ProtoVersion = cfg.Protos.HandshakeJSON(), cfg.Protos.Version()
	}
	var err error
	if s.handshaker, err = protocol.NewHandshaker(offer); err != nil {
		return nil, fmt.Errorf("connector %s: %w", cfg.ID, err)
	}
	return s, nil
}

// ID returns the server id.
func (s *Server) ID() string { return s.cfg.ID }

// Serve accepts connections on l until Shutdown or Close, and returns
// ErrServerClosed then, or the listener's error.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.serves.Add(1)
	s.mu.Unlock()
	defer s.serves.Done()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyFiles) {
				// Out of file descriptors or a transient failure: wait rather
				// than spin, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("connector %s: accept: %w", s.cfg.ID, err)
		}
		backoff = 0
		if tc, ok := nc.(*net.TCPConn); ok && s.cfg.SocketSendBuffer > 0 {
			tc.SetWriteBuffer(s.cfg.SocketSendBuffer)
		}
		if s.cfg.TLS != nil {
			// The TLS handshake runs on the session's first read, under
			// the handshake deadline, not here on the accepting goroutine.
			nc = tls.Server(nc, s.cfg.TLS)
		}
		sess := s.register(nc)
		if sess == nil {
			continue
		}
		if !s.routines.Go(sess.serve) {
			sess.close(errServerClose) // closing: register raced with it
		}
	}
}

// register creates the session for a new connection, or closes the
// connection when the server is closing or full.
func (s *Server) register(nc net.Conn) *Session {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		nc.Close()
		return nil
	}
	if s.cfg.MaxSessions > 0 && len(s.sessions) >= s.cfg.MaxSessions {
		s.mu.Unlock()
		s.log.Warn("connection refused: session limit reached", "remote", nc.RemoteAddr().String(), "limit", s.cfg.MaxSessions)
		nc.Close()
		return nil
	}
	sess := newSession(s, s.nextID.Add(1), nc)
	s.sessions[sess.id] = sess
	s.active.Add(1)
	s.mu.Unlock()
	return sess
}

func (s *Server) isClosing() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closing
}

// stopAccepting marks the server closing and closes its listeners.
func (s *Server) stopAccepting() []*Session {
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	all := make([]*Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.Unlock()
	return all
}

// SetShutdownReason changes the kick reason clients get on Shutdown (the
// master may give one when it stops a server).
func (s *Server) SetShutdownReason(reason string) {
	s.mu.Lock()
	s.cfg.ShutdownReason = reason
	s.mu.Unlock()
}

// Shutdown stops accepting, lets every session finish the messages it has
// already received (new ones are answered 503), kicks it with the configured
// reason, and waits until every session has closed and its close hooks have
// run, or until ctx ends; then it closes whatever is left and returns ctx's
// error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.mu.RLock()
	reason := s.cfg.ShutdownReason
	s.mu.RUnlock()
	for _, sess := range s.stopAccepting() {
		sess.kickAfterQueued(reason)
	}
	done := make(chan struct{})
	if !s.routines.Go(func() { s.active.Wait(); s.serves.Wait(); close(done) }) {
		return s.Close() // already closed
	}
	select {
	case <-done:
		s.finish()
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once, cancels handler
// contexts and waits for close hooks to run.
func (s *Server) Close() error {
	for _, sess := range s.stopAccepting() {
		sess.close(errServerClose)
	}
	s.cancel()
	s.active.Wait()
	s.serves.Wait()
	s.finish()
	return nil
}

// finish ends what outlives the sessions, once they have all finished:
// the flushers write what is left, and every goroutine of the server and
// worker of its pool has returned when it does.
func (s *Server) finish() {
	s.cancel()
	s.finishOnce.Do(func() {
		close(s.flushQuit)
		s.idle.close()
		s.routines.Wait()
		s.pool.Close()
		s.pool.Wait()
	})
}

// Len returns the number of connected sessions, handshaken or not.
func (s *Server) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.sessions)
}

// Session returns the session with id, or nil.
func (s *Server) Session(id int64) *Session {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sessions[id]
}

// SessionByUID returns the session bound to uid, or nil.
func (s *Server) SessionByUID(uid string) *Session {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.uids[uid]
}

// EncodePush encodes a push once, for sending to many sessions with
// SendPackage. body is JSON; with Protos and a server proto for route it
// travels protobuf-encoded.
func (s *Server) EncodePush(route string, body []byte) ([]byte, error) {
	if m := s.cfg.Protos.Server(route); m != nil {
		bp := protoBufPool.Get().(*[]byte)
		defer protoBufPool.Put(bp)
		*bp = s.encodeProto(m, route, body, (*bp)[:0])
		body = *bp
	}
	return protocol.EncodeDataPackage(&protocol.Message{Type: protocol.Push, Route: route, Body: body}, s.cfg.Dictionary)
}

// PushToSessions sends one push to the sessions with the given ids, encoding
// it once. It returns the ids that are not connected here.
func (s *Server) PushToSessions(ids []int64, route string, body []byte) (missing []int64, err error) {
	return pushTo(s, s.sessions, ids, route, body)
}

// PushToUIDs sends one push to the sessions bound to uids, encoding it once.
// It returns the uids with no session here.
func (s *Server) PushToUIDs(uids []string, route string, body []byte) (missing []string, err error) {
	return pushTo(s, s.uids, uids, route, body)
}

// pushTo encodes a push once and queues it to the sessions index holds for
// keys (looked up under the lock, written to outside it).
func pushTo[K comparable](s *Server, index map[K]*Session, keys []K, route string, body []byte) (missing []K, err error) {
	pkg, err := s.EncodePush(route, body)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	targets := make([]*Session, 0, len(keys))
	for _, k := range keys {
		if sess := index[k]; sess != nil {
			targets = append(targets, sess)
		} else {
			missing = append(missing, k)
		}
	}
	s.mu.RUnlock()
	for _, sess := range targets {
		sess.SendPackage(pkg)
	}
	return missing, nil
}

// Broadcast sends one push to every handshaken session.
func (s *Server) Broadcast(route string, body []byte) error {
	pkg, err := s.EncodePush(route, body)
	if err != nil {
		return err
	}
	s.mu.RLock()
	targets := make([]*Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		targets = append(targets, sess)
	}
	s.mu.RUnlock()
	for _, sess := range targets {
		if sess.state.Load() == stWorking {
			sess.SendPackage(pkg)
		}
	}
	return nil
}

// bind associates uid with sess under the bind policy.
func (s *Server) bind(sess *Session, uid string) (kicked *Session, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, live := s.sessions[sess.id]; !live {
		return nil, errSessionGone
	}
	if cur := sess.UID(); cur != "" {
		if cur == uid {
			return nil, nil
		}
		return nil, errAlreadyBound
	}
	if old := s.uids[uid]; old != nil && old != sess {
		if s.cfg.BindPolicy != BindKickOld {
			return nil, errUIDBound
		}
		kicked = old
	}
	s.uids[uid] = sess
	sess.uid.Store(&uid)
	return kicked, nil
}

// unregister removes a closed session from the maps.
func (s *Server) unregister(sess *Session) {
	s.mu.Lock()
	delete(s.sessions, sess.id)
	if uid := sess.UID(); uid != "" && s.uids[uid] == sess {
		delete(s.uids, uid)
	}
	s.mu.Unlock()
}
