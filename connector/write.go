package connector

import (
	"errors"
	"net"
	"sync"
	"time"
)

// outbound is one queued write: a Pomelo package (framed on WebSocket
// connections when written) or, with raw, bytes written as they are.
// Packages may be shared between sessions (encode-once broadcasts) and are
// never modified.
type outbound struct {
	b   []byte
	raw bool
}

// queueEntryCost is what a queued entry costs beyond its bytes, so a flood
// of tiny packages also hits the queue limit.
const queueEntryCost = 32

// writeBufSize is the pooled buffer the writer fills before each write.
const writeBufSize = 32 << 10

var writeBufPool = sync.Pool{New: func() any { b := make([]byte, 0, writeBufSize); return &b }}

var errSlowClient = errors.New("write queue full: client is not reading")

// SendPackage queues an encoded package for the client. It never blocks: a
// client whose queue is full is closed instead. pkg must not be modified
// afterwards (it may be shared). It reports whether the package was queued.
func (s *Session) SendPackage(pkg []byte) bool {
	return s.enqueueWrite(outbound{b: pkg}, false)
}

func (s *Session) enqueueWrite(o outbound, thenClose bool) bool {
	s.wmu.Lock()
	if s.closed.Load() || s.closeAfter {
		s.wmu.Unlock()
		return false
	}
	cost := len(o.b) + queueEntryCost
	if s.wqBytes+cost > s.srv.cfg.WriteQueueBytes {
		queued := s.wqBytes
		s.wmu.Unlock()
		s.logger().Warn("client not reading; closing", "queued_bytes", queued, "limit", s.srv.cfg.WriteQueueBytes)
		s.close(errSlowClient)
		return false
	}
	s.wq = append(s.wq, o)
	s.wqBytes += cost
	s.closeAfter = thenClose
	start := !s.writing
	s.writing = true
	s.wmu.Unlock()
	if start {
		s.srv.pool.Go(s.flush)
	}
	return true
}

// flush writes queued entries until the queue is empty, batching as many as
// fit a pooled buffer into each write. It runs on a pool worker, at most one
// per session at a time.
func (s *Session) flush() {
	bp := writeBufPool.Get().(*[]byte)
	defer writeBufPool.Put(bp)
	var batch []outbound
	for {
		s.wmu.Lock()
		if len(s.wq) == 0 || s.closed.Load() {
			s.writing = false
			if cap(s.wq) > 64 {
				s.wq = nil // a burst's queue is not kept by an idle session
			}
			closeNow := s.closeAfter && !s.closed.Load()
			s.wmu.Unlock()
			if closeNow {
				s.close(errKicked)
			}
			return
		}
		batch, s.wq = s.wq, batch[:0]
		s.wqBytes = 0
		s.wmu.Unlock()

		if err := s.writeBatch(bp, batch); err != nil {
			if !s.closed.Load() {
				s.logger().Info("write failed; closing", "err", err)
			}
			s.close(err)
			return
		}
		clear(batch) // drop references to written packages
	}
}

func (s *Session) writeBatch(bp *[]byte, batch []outbound) error {
	buf := (*bp)[:0]
	s.nc.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
	for _, o := range batch {
		framed := s.ws && !o.raw
		if len(o.b) > writeBufSize/2 {
			// Large package: no copy, one vectored write with the pending bytes.
			if framed {
				buf = appendWSHeader(buf, len(o.b))
			}
			bufs := net.Buffers{buf, o.b}
			if _, err := bufs.WriteTo(s.nc); err != nil {
				return err
			}
			buf = (*bp)[:0]
			continue
		}
		if len(buf)+len(o.b)+10 > cap(buf) {
			if _, err := s.nc.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		if framed {
			buf = appendWSHeader(buf, len(o.b))
		}
		buf = append(buf, o.b...)
	}
	if len(buf) > 0 {
		if _, err := s.nc.Write(buf); err != nil {
			return err
		}
	}
	return nil
}
