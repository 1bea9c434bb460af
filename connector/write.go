package connector

import (
	"bytes"
	"errors"
	"runtime"
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

// keptWriteQueue is the largest batch array a writer keeps as the
// session's next write queue (entries, 32 bytes each).
const keptWriteQueue = 8

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

// enqueueWrite queues o and, if the session has no writer yet, hands it to
// its flusher. Responses go this way too, not written inline: a client often
// has a push queued as well, and the two leave in one write (measured: 20 %
// fewer syscalls on the chat benchmark). A slow client costs a goroutine
// only while it is slow.
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
		s.srv.flusherFor(s.id).add(s)
	}
	return true
}

// flusher writes the output of the sessions that have some, on one
// goroutine: a wakeup serves every session made dirty meanwhile, and a
// session that got several packages since its last write (a member of a
// busy room) sends them in one write. Writes never block the flusher; a
// full socket is handed to a goroutine of its own (writeOut(true)).
type flusher struct {
	mu    sync.Mutex
	dirty []*Session
	spare []*Session
	wake  chan struct{}
	yield func() // runtime.Gosched; tests count the yields
}

func newFlusher() *flusher { return &flusher{wake: make(chan struct{}, 1), yield: runtime.Gosched} }

func (f *flusher) add(s *Session) {
	f.mu.Lock()
	f.dirty = append(f.dirty, s)
	first := len(f.dirty) == 1
	f.mu.Unlock()
	if first {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

// run flushes until quit is closed, then once more so nothing queued
// before the end is left unwritten.
func (f *flusher) run(quit <-chan struct{}) {
	for {
		select {
		case <-f.wake:
		case <-quit:
			f.flushAll()
			return
		}
		// The wake made the flusher the next goroutine to run, ahead of
		// those already runnable (the rest of a batch of pushes from the
		// cluster, responses being completed): let them queue first, so a
		// session gets their output in the same write.
		f.settle()
		f.flushAll()
	}
}

// settle yields until a yield brings no new dirty session (at most 4
// times): each yield lets the goroutines already runnable (the receivers
// of the other cluster streams, handlers completing) queue their output
// first. One yield measured 13 % fewer connector writes per room request
// than none; yielding on while output arrives, 0.76–0.99× the server CPU
// per room request of one yield. There is no timer: with nothing else
// runnable it returns after two yields.
func (f *flusher) settle() {
	n := -1
	for range 4 {
		f.yield()
		f.mu.Lock()
		d := len(f.dirty)
		f.mu.Unlock()
		if d == n {
			return
		}
		n = d
	}
}

func (f *flusher) flushAll() {
	for {
		f.mu.Lock()
		batch := f.dirty
		f.dirty, f.spare = f.spare[:0], nil
		f.mu.Unlock()
		if len(batch) == 0 {
			f.mu.Lock()
			if f.spare == nil {
				f.spare = batch
			}
			f.mu.Unlock()
			return
		}
		for i, s := range batch {
			s.writeOut(false)
			batch[i] = nil
		}
		f.mu.Lock()
		if f.spare == nil {
			f.spare = batch[:0]
		}
		f.mu.Unlock()
	}
}

// writeOut writes the queue until it is empty. It runs on exactly one
// goroutine at a time per session (the one that set writing). With wait
// false it never blocks: a full socket hands the remainder to a pooled
// goroutine that calls writeOut(true), which waits, bounded by WriteTimeout.
func (s *Session) writeOut(wait bool) {
	if !wait && s.rc == nil {
		// A TLS connection cannot be written without blocking (crypto/tls
		// writes whole records): write on a goroutine of its own, with the
		// write deadline, so that a slow TLS client never stalls the flusher.
		s.srv.pool.Go(s.writeOutWaiting)
		return
	}
	bp := writeBufPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 4*writeBufSize { // a buffer grown by a huge package is not kept
			writeBufPool.Put(bp)
		}
	}()
	var batch []outbound
	for {
		out := s.rest
		s.rest = nil
		if out == nil {
			s.wmu.Lock()
			if len(s.wq) == 0 || s.closed.Load() {
				s.writing = false
				keep := keptWriteQueue
				if s.parked.Load() {
					keep = idleWriteQueue // see releaseQueues
				}
				if cap(s.wq) > keep {
					s.wq = nil // a burst's queue is not kept by an idle session
				}
				if s.wq == nil && cap(batch) <= keep && !s.closed.Load() {
					// Keep the last batch's (cleared) array for the next
					// write: a session's every write would allocate one
					// otherwise (a heartbeat answer, say).
					s.wq = batch[:0]
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
			*bp = s.appendFrames(batch, (*bp)[:0])
			clear(batch) // drop references to packages (they may be shared)
			out = *bp
		}
		var err error
		if wait {
			s.nc.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
			_, err = s.nc.Write(out)
		} else {
			var n int
			n, err = s.tryWrite(out)
			if err == nil && n < len(out) {
				s.rest = bytes.Clone(out[n:]) // the pooled buffer stays with us
				s.srv.pool.Go(s.writeOutWaiting)
				return
			}
		}
		if err != nil {
			if !s.closed.Load() {
				s.logger().Info("write failed; closing", "err", err)
			}
			s.close(err)
			return
		}
	}
}

func (s *Session) writeOutWaiting() { s.writeOut(true) }

// appendFrames appends the batch to buf as the bytes to write. On WebSocket
// connections the packages of a batch share one binary frame (a run of them
// between raw entries, which are written as they are): Pomelo's clients
// decode every package a frame holds, and a client pays per frame (a
// message event, a decode call), so a burst of pushes costs it one frame
// rather than one per package.
func (s *Session) appendFrames(batch []outbound, buf []byte) []byte {
	if !s.ws {
		for _, o := range batch {
			buf = append(buf, o.b...)
		}
		return buf
	}
	for i := 0; i < len(batch); {
		if batch[i].raw {
			buf = append(buf, batch[i].b...)
			i++
			continue
		}
		j, n := i, 0
		for ; j < len(batch) && !batch[j].raw; j++ {
			n += len(batch[j].b)
		}
		buf = appendWSHeader(buf, n)
		for ; i < j; i++ {
			buf = append(buf, batch[i].b...)
		}
	}
	return buf
}
