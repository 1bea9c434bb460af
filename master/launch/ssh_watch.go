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

// sshWatchTick is how often the master asks a host's watcher to look at
// its processes: the watcher blocks between ticks, so a host pays for
// watching only when asked, and an end is noticed within a tick (plus,
// rarely, a second while its exit status is logged).
const sshWatchTick = 500 * time.Millisecond

// sshHeartbeatTimeout is how long the watcher session may leave a tick
// unanswered before it is restarted. A dead connection is found sooner by
// keepalives; this catches a wedged remote script.
const sshHeartbeatTimeout = 30 * time.Second

// sshWatchSweep is every how many ticks the watcher checks the identity
// of every process in full (start time in /proc/PID/stat), not only that
// its pid is there: a zombie or a reused pid is noticed within 30 s. The
// full check costs the host about half a millisecond per process.
const sshWatchSweep = 60

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
// becomes empty (nil) or the launcher closes. It sends the watcher each
// watched process once (all of them again in a new session), and a tick
// every sshWatchTick once the last one was answered.
func (h *sshHost) watchSession(c *sshConn) error {
	s := h.s
	sess, err := h.newSession(s.ctx, c)
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
	if err := sess.Start(remoteCommand(remoteWatch, strconv.Itoa(s.watchSweep))); err != nil {
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
	// The whole set goes out at once, and a tick: the first round
	// re-checks every process, which reports those that ended while the
	// host could not be reached.
	sent := map[uint64]bool{}
	send := func() (empty bool, err error) {
		recs, empty := h.newWatches(sent)
		if recs != "" {
			_, err = io.WriteString(stdin, recs)
		}
		return empty, err
	}
	if _, err := send(); err != nil {
		return h.sessionErr(c, err)
	}
	if _, err := io.WriteString(stdin, "t\n"); err != nil {
		return h.sessionErr(c, err)
	}
	asked := true // a tick is unanswered: the next waits
	tick := time.NewTicker(sshWatchTick)
	defer tick.Stop()
	hb := time.NewTimer(sshHeartbeatTimeout)
	defer hb.Stop()
	running := false
	for {
		select {
		case <-s.ctx.Done():
			sess.Signal("TERM")
			return nil
		case <-h.changed:
			empty, err := send()
			if err != nil {
				return h.sessionErr(c, err)
			}
			if empty {
				return nil
			}
		case <-tick.C:
			if asked {
				continue // a slow host gets no backlog of ticks
			}
			if _, err := io.WriteString(stdin, "t\n"); err != nil {
				return h.sessionErr(c, err)
			}
			asked = true
		case line, ok := <-lines:
			if !ok {
				return h.sessionErr(c, errors.New("watcher session ended"))
			}
			if line == "." {
				asked = false
				hb.Reset(sshHeartbeatTimeout)
				if !running {
					running = true
					s.log.Debug("ssh watcher running", "host", h.name)
				}
			}
			if rest, ok := strings.CutPrefix(line, "gone "); ok {
				nStr, st, _ := strings.Cut(rest, " ")
				if n, err := strconv.ParseUint(nStr, 10, 64); err == nil {
					h.ended(n, exitFromReport(st, time.Now()))
					delete(sent, n) // the watcher has dropped it too
				}
			}
		case <-hb.C:
			return fmt.Errorf("watcher silent for %s", sshHeartbeatTimeout)
		}
	}
}

// newWatches is, in remoteWatch's format, the watched processes not in
// sent yet, which it adds to sent; empty when nothing is watched.
func (h *sshHost) newWatches(sent map[uint64]bool) (recs string, empty bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, w := range h.watches {
		if sent[w.n] {
			continue
		}
		sent[w.n] = true
		boot := w.h.BootID
		if boot == "" {
			boot = "-"
		}
		fmt.Fprintf(&b, "w %d %d %d %s\n%s\n%s\n%s\n", w.n, w.h.PID, w.h.StartTicks, boot, w.h.Binary, w.h.ID, w.h.Log)
	}
	return b.String(), len(h.watches) == 0
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
