//go:build linux

package connector

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// idlePoller holds the read side of idle sessions without a goroutine each.
//
// A session's reader parks in the runtime's netpoller while it expects
// bytes, on a goroutine of its own (2 KiB of stack and a g of about 450
// bytes, which the runtime never frees). Once a working session has been
// silent for Config.idleAfter, the sweeper wakes its reader, which registers the
// socket with this epoll instance (one-shot, level-triggered) and exits. When
// bytes arrive, the waiter starts a fresh reader for the session, which reads
// as before. Busy sessions never come here, so they pay nothing for it; an
// idle one pays one epoll_ctl per silence.
//
// The epoll instance itself waits in the runtime's netpoller (an epoll
// descriptor is pollable), so the waiter holds no thread, and closing it ends
// the waiter. The sweeper also closes parked sessions whose heartbeat
// timeout has passed (their reader's deadline cannot fire: they have none).
type idlePoller struct {
	srv *Server
	fd  int
	f   *os.File
	rc  syscall.RawConn
}

// newIdlePoller returns the server's idle poller, or nil when the system
// refuses one (sessions then keep their parked readers).
func newIdlePoller(srv *Server) *idlePoller {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		srv.log.Warn("no epoll instance for idle sessions; each keeps a goroutine", "err", err)
		return nil
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil
	}
	f := os.NewFile(uintptr(fd), "idle-sessions")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil
	}
	return &idlePoller{srv: srv, fd: fd, f: f, rc: rc}
}

func (p *idlePoller) close() {
	if p != nil {
		p.f.Close()
	}
}

// run wakes parked sessions whose sockets became readable, until close.
func (p *idlePoller) run() {
	evs := make([]syscall.EpollEvent, 128)
	ready := make([]*Session, 0, len(evs))
	p.rc.Read(func(fd uintptr) bool {
		for {
			n, err := syscall.EpollWait(int(fd), evs, 0)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil {
				p.srv.log.Error("idle sessions: epoll_wait failed", "err", err)
				return true
			}
			ready = ready[:0]
			p.srv.mu.RLock()
			for _, ev := range evs[:n] {
				id := int64(uint32(ev.Fd)) | int64(ev.Pad)<<32
				if s := p.srv.sessions[id]; s != nil {
					ready = append(ready, s)
				}
			}
			p.srv.mu.RUnlock()
			for i, s := range ready {
				if s.parked.CompareAndSwap(true, false) {
					s.unpark()
				}
				ready[i] = nil
			}
			if n < len(evs) {
				return false // drained: wait for the next readiness
			}
		}
	})
}

// sweep parks the readers of sessions silent for idleAfter and closes
// parked sessions silent for their heartbeat timeout, every tick, until
// quit is closed.
func (p *idlePoller) sweep(quit <-chan struct{}) {
	srv := p.srv
	timeout := int64(srv.cfg.HeartbeatTimeout)
	tick := 500 * time.Millisecond
	if timeout > 0 {
		tick = min(tick, max(10*time.Millisecond, srv.cfg.HeartbeatTimeout/16))
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	var expired, idle []*Session
	for {
		select {
		case <-quit:
			return
		case <-t.C:
		}
		now := time.Now().UnixNano()
		idleAfter := int64(srv.cfg.idleAfter)
		srv.mu.RLock()
		for _, s := range srv.sessions {
			last := s.lastRead.Load()
			switch {
			case s.parked.Load():
				if timeout > 0 && now-last >= timeout {
					expired = append(expired, s)
				}
			case s.rc != nil && s.state.Load() == stWorking && now-last >= idleAfter && !s.toPark.Load():
				idle = append(idle, s)
			}
		}
		srv.mu.RUnlock()
		for i, s := range expired {
			if s.parked.CompareAndSwap(true, false) {
				s.end(os.ErrDeadlineExceeded)
			}
			expired[i] = nil
		}
		for i, s := range idle {
			// The reader's wait ends at once, and it parks (readFailed).
			s.toPark.Store(true)
			s.nc.SetReadDeadline(longAgo)
			idle[i] = nil
		}
		expired, idle = expired[:0], idle[:0]
	}
}

// longAgo is a deadline that has passed.
var longAgo = time.Unix(1, 0)

// park hands the session's read side to the idle poller and reports true,
// or false when it cannot (the reader then goes on waiting itself). Only
// the session's reader calls it; once it returns true, the reader must
// exit without touching the session's reader state.
func (s *Session) park() bool {
	p := s.srv.idle
	if p == nil || s.rc == nil || s.state.Load() != stWorking {
		return false
	}
	added := s.pollAdded
	s.pollAdded = true
	id := s.id
	var err error
	// Published before the socket is armed: the waiter may claim the
	// session as soon as epoll_ctl returns. And before the queues are
	// released: a dispatch worker or writer finishing from now on sees it
	// and keeps no array either.
	s.parked.Store(true)
	s.releaseQueues()
	if cerr := s.rc.Control(func(fd uintptr) { err = p.arm(int(fd), id, added) }); cerr != nil {
		err = cerr
	}
	if err == nil {
		return true
	}
	if s.parked.CompareAndSwap(true, false) {
		s.pollAdded = added
		return false
	}
	return true // claimed meanwhile (its heartbeat timeout passed)
}

// arm registers fd for one readiness event naming session id.
func (p *idlePoller) arm(fd int, id int64, added bool) error {
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd:     int32(uint32(id)),
		Pad:    int32(id >> 32),
	}
	op := syscall.EPOLL_CTL_ADD
	if added {
		op = syscall.EPOLL_CTL_MOD
	}
	err := syscall.EpollCtl(p.fd, op, fd, &ev)
	switch {
	case op == syscall.EPOLL_CTL_MOD && errors.Is(err, syscall.ENOENT):
		err = syscall.EpollCtl(p.fd, syscall.EPOLL_CTL_ADD, fd, &ev)
	case op == syscall.EPOLL_CTL_ADD && errors.Is(err, syscall.EEXIST):
		err = syscall.EpollCtl(p.fd, syscall.EPOLL_CTL_MOD, fd, &ev)
	}
	return err
}
