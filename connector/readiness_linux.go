package connector

import (
	"errors"
	"io"
	"net"
	"syscall"
	"time"
)

// readLoop reads and handles the client's bursts inside one readiness wait
// of the runtime's netpoller (rc.Read), so a busy connection keeps one
// reader for as long as it stays busy and pays one read (recvfrom(2)) per burst.
//
// A reader that called rc.Read once per burst paid two: the read that got
// the burst, and the next one, which found the socket drained before
// parking (rc.Read resets the descriptor's readiness each time it is
// called, so it must try a read first). Inside one rc.Read the readiness
// is never reset: after a short read (the socket was drained) the callback
// returns false and waits, and any bytes that arrived since the runtime
// last woke this reader have left a readiness event that ends the wait at
// once. That saves one system call per burst, a fifth of a connector's,
// and the goroutine start that each burst used to cost.
//
// The session parks (no goroutine at all, idle_linux.go) after a burst of
// heartbeats alone or when the sweeper finds it silent, so only busy
// sessions keep a reader and the stack their handling grew. While the
// reader is inside rc.Read, Close would wait for it: close shuts the socket
// down instead and leaves the descriptor to the reader (see close).
func (s *Session) readLoop() error {
	if s.rc == nil {
		return s.readBurst() // TLS: see readChunk
	}
	s.inLoop.Store(true)
	var err error
	if s.closed.Load() {
		err = net.ErrClosed
	} else {
		if s.readFn == nil {
			s.readFn = s.readHandle // one closure per connection
		}
		err = s.rc.Read(s.readFn)
	}
	s.inLoop.Store(false)
	s.skipRead = false // the next rc.Read resets readiness: read first
	if s.rbuf != nil {
		bufPool.Put(s.rbuf)
		s.rbuf = nil
	}
	if s.closed.Load() {
		s.nc.Close() // close left the descriptor to this reader
	}
	if err == nil {
		err, s.rerr = s.rerr, nil
	}
	if err == errIdleBurst {
		if !s.park() {
			s.continueReading()
		}
		return errHandedOff
	}
	return s.readFailed(err)
}

// errIdleBurst ends readLoop's wait after a burst of heartbeats alone.
var errIdleBurst = errors.New("idle burst: park")

// readHandle is readLoop's readiness callback: it reads and handles bursts
// until the socket is drained (false: wait for the next) or the loop must
// end (true, the reason in s.rerr).
func (s *Session) readHandle(fd uintptr) bool {
	for {
		if s.skipRead {
			s.skipRead = false
			return false
		}
		if s.rbuf == nil {
			s.rbuf = bufPool.Get().(*[]byte)
		}
		buf := *s.rbuf
		if s.srv.cfg.onRead != nil {
			s.srv.cfg.onRead()
		}
		n, err := sockRead(int(fd), buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			bufPool.Put(s.rbuf) // waiting connections hold no buffer
			s.rbuf = nil
			return false
		case err != nil:
			s.rerr = errno(err)
			return true
		case n == 0:
			s.rerr = io.EOF
			return true
		}
		drained := n < len(buf)
		s.onlyHeartbeats = true
		err = s.feedChunk(buf[:n])
		if drained {
			bufPool.Put(s.rbuf)
			s.rbuf = nil
			s.skipRead = true
		}
		switch {
		case err != nil:
			s.rerr = err
			return true
		case s.closed.Load():
			s.rerr = net.ErrClosed
			return true
		case drained && s.idleBurst() && s.srv.idle != nil:
			s.rerr = errIdleBurst
			return true
		}
	}
}

// readChunk waits until the socket has data and reads it into a pooled
// buffer, which the caller returns to bufPool: the first bytes of a
// connection (start), and every burst of a TLS one (readBurst). The read
// happens inside the netpoller's readiness callback, so a connection
// waiting for them holds no buffer.
func (s *Session) readChunk() (*[]byte, int, error) {
	if s.rc == nil {
		// A TLS connection: the readiness of its socket says nothing of
		// the plaintext crypto/tls may already hold, so it blocks in Read
		// with a buffer.
		bp := bufPool.Get().(*[]byte)
		n, err := s.nc.Read(*bp)
		if n == 0 {
			bufPool.Put(bp)
			if err == nil {
				err = io.ErrNoProgress
			}
			return nil, 0, err
		}
		return bp, n, nil
	}
	s.rn, s.rerr = 0, nil
	// Only the first bytes of a connection come through here (readLoop
	// reads the rest), so the method value is made once per connection.
	if err := s.rc.Read(s.readReady); err != nil {
		if s.rbuf != nil {
			bufPool.Put(s.rbuf)
			s.rbuf = nil
		}
		return nil, 0, err
	}
	bp := s.rbuf
	s.rbuf = nil
	if s.rerr != nil {
		err := s.rerr
		s.rerr = nil
		bufPool.Put(bp)
		return nil, 0, err
	}
	if s.rn == 0 {
		bufPool.Put(bp)
		return nil, 0, io.EOF
	}
	return bp, int(s.rn), nil
}

// readReady is the readiness callback: false means "nothing yet, park".
func (s *Session) readReady(fd uintptr) bool {
	if s.rbuf == nil {
		s.rbuf = bufPool.Get().(*[]byte)
	}
	for {
		n, err := sockRead(int(fd), *s.rbuf)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			bufPool.Put(s.rbuf) // parked connections hold no buffer
			s.rbuf = nil
			return false
		case err != nil:
			s.rerr = errno(err)
		default:
			s.rn = int32(n)
		}
		return true
	}
}

// tryWrite writes what the socket accepts now without waiting, and returns
// how much that was. Only the session's current writer calls it.
func (s *Session) tryWrite(b []byte) (int, error) {
	if s.rc == nil { // not reached: writeOut hands such sessions to a waiting writer
		s.nc.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
		return s.nc.Write(b)
	}
	if s.writeFn == nil {
		s.writeFn = s.writeReady
	}
	s.wbuf, s.wn, s.werr = b, 0, 0
	err := s.rc.Write(s.writeFn)
	s.wbuf = nil
	if err != nil {
		return s.wn, err
	}
	if s.werr != 0 {
		return s.wn, s.werr
	}
	return s.wn, nil
}

// writeReady is the write callback: one attempt, never a wait.
func (s *Session) writeReady(fd uintptr) bool {
	for s.wn < len(s.wbuf) {
		n, err := sockWrite(int(fd), s.wbuf[s.wn:])
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			return true // full: the caller hands the rest to a waiting writer
		case err != nil:
			s.werr = errno(err)
			return true
		}
		s.wn += n
	}
	return true
}

// errno is the Errno a failed system call returned (the reader and writer
// keep it in 8 bytes rather than an interface's 16).
func errno(err error) syscall.Errno {
	if e, ok := err.(syscall.Errno); ok && e != 0 {
		return e
	}
	return syscall.EIO
}
