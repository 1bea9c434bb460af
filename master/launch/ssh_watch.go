package launch

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// sshHeartbeatTimeout is how long the watcher session may stay silent
// (it prints a heartbeat twice a second) before it is restarted. A dead
// connection is found sooner by keepalives; this catches a wedged remote
// script.
const sshHeartbeatTimeout = 30 * time.Second

// sshWatchKey identifies a watched process across pid reuse.
type sshWatchKey struct {
	pid   int
	ticks uint64
	boot  string
}

// sshWatch is one watched process and the channels waiting for its end.
type sshWatch struct {
	n    uint64 // its number in the watcher protocol
	h    Handle
	subs []chan Exit
}

// Wait returns a channel that receives the end of h's process, once, and
// is then closed. The host's watcher notices an end within about a second
// while the host is reachable; while it is not, nothing is sent, and the
// processes that ended meanwhile are reported after reconnecting. After
// Close the channel closes without a value.
func (s *SSH) Wait(h Handle) <-chan Exit {
	ch := make(chan Exit, 1)
	host, err := s.host(h.Host)
	if err != nil || checkHandle(h) != nil {
		// Nothing can be known about it: as after Close.
		close(ch)
		return ch
	}
	key := sshWatchKey{h.PID, h.StartTicks, h.BootID}
	host.mu.Lock()
	defer host.mu.Unlock()
	if !host.watcher {
		if !s.spawn(host.watch) {
			close(ch)
			return ch
		}
		host.watcher = true
	}
	w := host.watches[key]
	if w == nil {
		host.nextN++
		w = &sshWatch{n: host.nextN, h: h}
		host.watches[key] = w
		host.byN[w.n] = w
		host.setChanged()
	}
	w.subs = append(w.subs, ch)
	return ch
}

// setChanged tells the watcher that the set changed.
func (h *sshHost) setChanged() {
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

// watch is the host's watcher goroutine: while processes are watched, it
// keeps a watcher session on the host, reconnecting as needed.
func (h *sshHost) watch() {
	s := h.s
	defer h.endWatch()
	for {
		if h.idle() {
			return
		}
		if d := h.retryIn(); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		c, err := h.client(s.ctx)
		if err == nil {
			err = h.watchSession(c)
		}
		if s.ctx.Err() != nil {
			return
		}
		if err != nil {
			s.log.Debug("ssh watcher session ended", "host", h.name, "err", err)
			// Not too fast round the loop when the session fails at
			// once on a live connection.
			t := time.NewTimer(sshBackoffMin)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// idle stops the watcher when nothing is watched: under the lock, so that
// a Wait either sees it running or starts another.
func (h *sshHost) idle() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.watches) == 0 {
		h.watcher = false
		return true
	}
	return false
}

// endWatch closes, without a value, the channels of processes still
// watched when the launcher closes.
func (h *sshHost) endWatch() {
	if h.s.ctx.Err() == nil {
		return
	}
	h.mu.Lock()
	ws := h.watches
	h.watches, h.byN, h.watcher = map[sshWatchKey]*sshWatch{}, map[uint64]*sshWatch{}, false
	h.mu.Unlock()
	for _, w := range ws {
		for _, ch := range w.subs {
			close(ch)
		}
	}
}

// watchSession runs one watcher session on c until it fails, the set
// becomes empty (nil) or the launcher closes.
func (h *sshHost) watchSession(c *sshConn) error {
	s := h.s
	sess, err := c.c.NewSession()
	if err != nil {
		return h.sessionErr(c, err)
	}
	defer sess.Close()
	stdin, err := sess.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return err
	}
	if err := sess.Start(remoteCommand(remoteWatch)); err != nil {
		return h.sessionErr(c, err)
	}
	lines := make(chan string)
	stop := make(chan struct{})
	defer close(stop)
	// The reader ends when the session does (deferred Close above) or
	// when this function has returned.
	s.wg.Go(func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-stop:
				return
			}
		}
	})
	// The first set goes out at once: its first round re-checks every
	// process, which reports those that ended while the host could not
	// be reached.
	h.setChanged()
	hb := time.NewTimer(sshHeartbeatTimeout)
	defer hb.Stop()
	running := false
	for {
		select {
		case <-s.ctx.Done():
			sess.Signal("TERM")
			return nil
		case <-h.changed:
			set, empty := h.watchSet()
			if empty {
				return nil
			}
			if _, err := io.WriteString(stdin, set); err != nil {
				return h.sessionErr(c, err)
			}
		case line, ok := <-lines:
			if !ok {
				return h.sessionErr(c, errors.New("watcher session ended"))
			}
			hb.Reset(sshHeartbeatTimeout)
			if !running {
				running = true
				s.log.Debug("ssh watcher running", "host", h.name)
			}
			if rest, ok := strings.CutPrefix(line, "gone "); ok {
				nStr, st, _ := strings.Cut(rest, " ")
				if n, err := strconv.ParseUint(nStr, 10, 64); err == nil {
					h.ended(n, exitFromReport(st, time.Now()))
				}
			}
		case <-hb.C:
			return fmt.Errorf("watcher silent for %s", sshHeartbeatTimeout)
		}
	}
}

// watchSet is the watched set in remoteWatch's format.
func (h *sshHost) watchSet() (set string, empty bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, w := range h.watches {
		for _, f := range []string{strconv.FormatUint(w.n, 10), strconv.Itoa(w.h.PID),
			strconv.FormatUint(w.h.StartTicks, 10), w.h.BootID, w.h.Binary, w.h.ID, w.h.Log} {
			b.WriteString(f)
			b.WriteByte('\n')
		}
	}
	return strconv.Itoa(7*len(h.watches)) + "\n" + b.String(), len(h.watches) == 0
}

// ended delivers the end of process n and stops watching it.
func (h *sshHost) ended(n uint64, e Exit) {
	h.mu.Lock()
	w := h.byN[n]
	if w != nil {
		delete(h.byN, n)
		delete(h.watches, sshWatchKey{w.h.PID, w.h.StartTicks, w.h.BootID})
		h.setChanged()
	}
	h.mu.Unlock()
	if w == nil {
		return // reported again before the host got the new set
	}
	h.s.log.Info("server ended", "server", w.h.ID, "host", h.name, "pid", w.h.PID, "status", e.Status)
	for _, ch := range w.subs {
		ch <- e
		close(ch)
	}
}
