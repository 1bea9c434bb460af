package connector

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// poller reads the working sessions of a server from one goroutine, through
// an epoll set of its own, instead of a parked goroutine per session.
//
// Why: a parked reader costs an idle session a goroutine (a 2 KiB stack and
// its descriptor), and a busy one a goroutine start per burst plus the read
// that finds the socket drained (Go's netpoller is edge-triggered, so a
// reader must read until EAGAIN before it may park). The poller's set is
// level-triggered: one read per ready socket per wake-up, a socket with more
// left is simply reported again, and an idle session holds no goroutine.
//
// The set's descriptor is itself registered with Go's netpoller (an epoll
// descriptor is readable while it has ready members), so the loop parks like
// any other goroutine and never blocks a thread in epoll_wait.
//
// Sessions come here once they are working (handshake and ack done, and the
// WebSocket upgrade before that, on the session's own goroutine); TLS
// sessions never do (crypto/tls may hold plaintext the socket's readiness
// does not show). Reads go through the connection's RawConn, which holds
// the descriptor for the read, so a concurrent Close cannot hand the number
// to another connection mid-read; sessions are named in the set by id, so a
// stale event of a closed session finds nothing.
type poller struct {
	srv  *Server
	file *os.File // the epoll descriptor, registered with Go's netpoller
	rc   syscall.RawConn

	mu       sync.Mutex
	sessions map[int64]*Session

	// Owned by the loop goroutine.
	events []syscall.EpollEvent
	n      int
	ready  []*Session
	waitFn func(fd uintptr) bool
}

// pollEvents is how many ready sessions one wake-up takes at most; the rest
// stay ready (level-triggered) for the next.
const pollEvents = 256

func newPoller(srv *Server) (*poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("epoll set nonblocking: %w", err)
	}
	file := os.NewFile(uintptr(fd), "connector-epoll")
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("epoll rawconn: %w", err)
	}
	p := &poller{srv: srv, file: file, rc: rc, sessions: make(map[int64]*Session), events: make([]syscall.EpollEvent, pollEvents)}
	p.waitFn = p.collect
	return p, nil
}

// add hands a working session to the poller; false if it has closed (the
// caller then reads it itself, and finds it closed). Only the session's
// reader calls it, between two bursts.
func (p *poller) add(s *Session) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.closed.Load() {
		return false // close already ran its remove; it would not see us
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(uint64(s.id)), Pad: int32(uint64(s.id) >> 32)}
	var cerr error
	if err := s.rc.Control(func(fd uintptr) {
		cerr = syscall.EpollCtl(p.fd(), syscall.EPOLL_CTL_ADD, int(fd), &ev)
	}); err != nil {
		return false
	}
	if cerr != nil {
		s.srv.log.Warn("poller: cannot watch a session; its goroutine reads it", "session", s.id, "err", cerr)
		return false
	}
	s.polled.Store(p)
	p.sessions[s.id] = s
	return true
}

// remove takes a session out of the set. close calls it before closing the
// connection, while the descriptor still names it.
func (p *poller) remove(s *Session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sessions[s.id] != s {
		return
	}
	delete(p.sessions, s.id)
	s.rc.Control(func(fd uintptr) {
		syscall.EpollCtl(p.fd(), syscall.EPOLL_CTL_DEL, int(fd), nil)
	})
}

func (p *poller) fd() int { return int(p.file.Fd()) }

// run reads ready sessions until the poller is closed.
func (p *poller) run() {
	for {
		if err := p.rc.Read(p.waitFn); err != nil {
			return // closed by stop
		}
		p.mu.Lock()
		for _, ev := range p.events[:p.n] {
			if s := p.sessions[int64(uint64(uint32(ev.Fd))|uint64(uint32(ev.Pad))<<32)]; s != nil {
				p.ready = append(p.ready, s)
			}
		}
		p.mu.Unlock()
		for i, s := range p.ready {
			s.pollRead()
			p.ready[i] = nil
		}
		p.ready = p.ready[:0]
	}
}

// collect takes the ready members without waiting; false parks the loop
// until the set is readable again.
func (p *poller) collect(fd uintptr) bool {
	for {
		n, err := syscall.EpollWait(int(fd), p.events, 0)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			p.srv.log.Error("poller: epoll_wait failed", "err", err)
			n = 0
		}
		p.n = n
		return n > 0
	}
}

// sweep closes the sessions silent for the whole heartbeat timeout (a
// polled session has no read deadline), every tick until quit closes.
func (p *poller) sweep(timeout time.Duration, quit <-chan struct{}) {
	// A silent client is closed at most a tick late: a sixteenth of the
	// timeout, and at most a second (a scan of 15,000 sessions is ~0.1 ms).
	every := min(max(timeout/16, 10*time.Millisecond), time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	var expired []*Session
	for {
		select {
		case <-quit:
			return
		case <-t.C:
		}
		limit := time.Now().Add(-timeout).UnixNano()
		p.mu.Lock()
		for _, s := range p.sessions {
			if s.lastRead.Load() <= limit {
				expired = append(expired, s)
			}
		}
		p.mu.Unlock()
		for i, s := range expired {
			s.end(os.ErrDeadlineExceeded)
			expired[i] = nil
		}
		expired = expired[:0]
	}
}

// stop ends run (sessions are all closed by then).
func (p *poller) stop() { p.file.Close() }

// pollRead reads what one ready session has, on the poller's goroutine.
// Handling a burst never blocks (dispatch and writes are queued), so the
// loop serves every ready session in turn.
func (s *Session) pollRead() {
	bp, n, err := s.readOnce()
	if err == nil && n == 0 {
		return // reported ready, but another read took it first
	}
	if err == nil {
		if s.ws {
			err = s.feedWS((*bp)[:n])
		} else {
			err = s.feed((*bp)[:n])
		}
		bufPool.Put(bp)
	}
	if err != nil {
		s.polled.Load().remove(s) // nothing more is read, whatever end does
		s.end(err)
	}
}

// readOnce makes one read of a polled session: (nil, 0, nil) when the
// socket turned out empty.
func (s *Session) readOnce() (*[]byte, int, error) {
	s.rn, s.rerr, s.rempty = 0, nil, false
	if err := s.rc.Read(s.readFn); err != nil {
		if s.rbuf != nil {
			bufPool.Put(s.rbuf)
			s.rbuf = nil
		}
		return nil, 0, err
	}
	bp := s.rbuf
	s.rbuf = nil
	switch {
	case s.rempty:
		return nil, 0, nil // readReady returned the buffer
	case s.rerr != nil:
		bufPool.Put(bp)
		return nil, 0, s.rerr
	case s.rn == 0:
		bufPool.Put(bp)
		return nil, 0, io.EOF
	}
	return bp, s.rn, nil
}
