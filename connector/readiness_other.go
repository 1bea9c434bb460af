//go:build !linux

package connector

import (
	"io"
	"time"
)

// Off Linux the reader blocks in Read holding a pooled buffer (correct, but
// an idle connection then costs that buffer), and writes block with the
// write deadline set by the caller.

// readLoop is the per-burst reader (readBurst) off Linux.
func (s *Session) readLoop() error { return s.readBurst() }

func (s *Session) readChunk() (*[]byte, int, error) {
	bp := bufPool.Get().(*[]byte)
	n, err := s.nc.Read(*bp)
	if n == 0 {
		bufPool.Put(bp)
		if err == nil {
			err = io.EOF
		}
		return nil, 0, err
	}
	return bp, n, nil
}

func (s *Session) tryWrite(b []byte) (int, error) {
	s.nc.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
	return s.nc.Write(b)
}
