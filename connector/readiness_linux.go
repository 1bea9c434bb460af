package connector

import (
	"errors"
	"io"
	"syscall"
	"time"
)

// readChunk waits until the socket has data and reads it into a pooled
// buffer, which the caller returns to bufPool. The read happens inside the
// netpoller's readiness callback, so an idle connection parks holding no
// buffer at all (only its goroutine), and a busy one pays one read(2) per
// burst plus the one that finds it drained: what Go's own Read costs.
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
	if s.readFn == nil {
		s.readFn = s.readReady // one closure per connection, not per read
	}
	s.rn, s.rerr = 0, 0
	if err := s.rc.Read(s.readFn); err != nil {
		if s.rbuf != nil {
			bufPool.Put(s.rbuf)
			s.rbuf = nil
		}
		return nil, 0, err
	}
	bp := s.rbuf
	s.rbuf = nil
	if s.rerr != 0 {
		bufPool.Put(bp)
		return nil, 0, s.rerr
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
		n, err := syscall.Read(int(fd), *s.rbuf)
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
		n, err := syscall.Write(int(fd), s.wbuf[s.wn:])
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
