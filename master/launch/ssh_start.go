package launch

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Starts leave for their host in batches, a group commit: a Start queues
// its spec on its host; a starter goroutine takes a session slot, then
// everything queued at that moment, and starts it all in one session
// (remoteStart). There is no timer: a Start that finds a starter free
// leaves at once, alone; Starts that arrive while the host's starters are
// busy leave together in the next session. A master starting a cluster
// thus pays a session, a login shell and the script's own forks once per
// batch instead of once per server.
const (
	// sshStartSessions is how many start sessions may run at once on a
	// host (out of its sshOpSessions). Two: one starting, one filling up
	// while the first runs; more sessions would only split the batches
	// and pay more logins.
	sshStartSessions = 2
	// sshStartBatchMax bounds the servers of one session, so that one
	// batch does not hold its slot for long.
	sshStartBatchMax = 64
	// sshStartCmdMax bounds a batch's calls on the command line, in bytes:
	// sshd hands the whole command to the login shell as one argument,
	// and Linux takes at most 128 KiB in one argument (MAX_ARG_STRLEN);
	// the script and the wrapper take the rest.
	sshStartCmdMax = 96 << 10
)

// startEnvVar is the variable remoteStart and remoteWrapper read the
// environment with, and the one the wrapper's child uses after exporting
// it: no spec may set it.
const startEnvVar = "shaddock_kv"

// sshStartReq is one Start, queued on its host or in a batch.
type sshStartReq struct {
	spec  Spec
	call  string // its line in the batch script (startCall)
	cost  int    // what call adds to the command line, quoted again
	env   string // its environment block (startEnv)
	state atomic.Int32
	batch *sshStartBatch   // the batch it is in; set under the host's mu
	res   chan sshStartRes // (cap 1) its outcome, sent once by deliver
}

// sshStartReq states: waiting for its outcome; given it; given up by the
// caller (its context ended). Whoever moves it from waiting decides.
const (
	startWaiting int32 = iota
	startDelivered
	startAbandoned
)

type sshStartRes struct {
	h   Handle
	err error
}

// sshStartBatch is one start session's servers.
type sshStartBatch struct {
	ctx     context.Context // the session's: ends when the launcher closes, or every caller has given up
	cancel  context.CancelFunc
	waiting atomic.Int32 // its requests still waiting
}

// Start starts spec's server on spec.Host: detached, in spec.Dir, stdin
// from /dev/null, output appended to spec.Log after a header line, and its
// exit status appended when it ends. spec.Environ goes over the session's
// stdin, never on a command line. It returns once the server's pid is
// known; a server that fails after its exec shows in Wait.
//
// Concurrent Starts on one host share sessions (see sshStartSessions);
// each gets its own outcome. A Start whose ctx ends before its server is
// known to run returns ctx's error; if its server starts all the same, it
// is killed, so that no server runs that the caller does not know of.
func (s *SSH) Start(ctx context.Context, spec Spec) (Handle, error) {
	fail := func(err error) (Handle, error) {
		return Handle{}, fmt.Errorf("start %s on %s: %w", spec.ID, spec.Host, err)
	}
	if err := checkSSHSpec(spec); err != nil {
		return fail(err)
	}
	h, err := s.host(spec.Host)
	if err != nil {
		return fail(err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	r := &sshStartReq{spec: spec, call: startCall(spec), env: startEnv(spec), res: make(chan sshStartRes, 1)}
	r.cost = len(remoteQuote(r.call))
	if err := h.queueStart(r); err != nil {
		return fail(err)
	}
	var res sshStartRes
	select {
	case res = <-r.res:
	case <-ctx.Done():
		if h.abandon(r) {
			return fail(ctx.Err())
		}
		res = <-r.res // delivered meanwhile
	}
	if res.err != nil {
		return fail(res.err)
	}
	s.log.Info("server started", "server", spec.ID, "host", spec.Host, "pid", res.h.PID)
	return res.h, nil
}

// queueStart queues r, and starts a starter if fewer than
// sshStartSessions run. While the queue holds a request, a starter runs:
// one that finds the queue empty ends under the same lock.
func (h *sshHost) queueStart(r *sshStartReq) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.starters < sshStartSessions {
		if !h.s.spawn(h.starter) {
			return errSSHClosed
		}
		h.starters++
	}
	h.startQ = append(h.startQ, r)
	return nil
}

// abandon gives r up for its caller, unless it has its outcome already
// (false). The batch's session ends once no request in it waits.
func (h *sshHost) abandon(r *sshStartReq) bool {
	h.mu.Lock()
	ok := r.state.CompareAndSwap(startWaiting, startAbandoned)
	b := r.batch
	h.mu.Unlock()
	if ok && b != nil && b.waiting.Add(-1) == 0 {
		b.cancel()
	}
	return ok
}

// deliver gives r its outcome, unless its caller has given up (false).
func (r *sshStartReq) deliver(res sshStartRes) bool {
	if !r.state.CompareAndSwap(startWaiting, startDelivered) {
		return false
	}
	if r.batch != nil {
		r.batch.waiting.Add(-1)
	}
	r.res <- res
	return true
}

// starter runs start sessions while Starts are queued: a session slot
// first, then whatever is queued at that moment.
func (h *sshHost) starter() {
	for {
		select {
		case h.ops <- struct{}{}:
		case <-h.s.ctx.Done():
			// The launcher closes: what is queued fails.
			for _, r := range h.takeStarts(true) {
				r.deliver(sshStartRes{err: errSSHClosed})
			}
			return
		}
		reqs := h.takeStarts(false)
		if reqs == nil {
			<-h.ops
			return
		}
		h.startBatch(reqs)
		<-h.ops
	}
}

// takeStarts takes the next batch off the queue, or all of it when the
// launcher closes, skipping requests given up meanwhile. When it takes
// nothing, or all, the starter ends: it says so under the lock that
// queueStart takes.
func (h *sshHost) takeStarts(all bool) []*sshStartReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	var reqs []*sshStartReq
	cost, n := 0, 0
	for ; n < len(h.startQ); n++ {
		r := h.startQ[n]
		if r.state.Load() != startWaiting {
			continue
		}
		if !all && len(reqs) > 0 && (len(reqs) == sshStartBatchMax || cost+r.cost > sshStartCmdMax) {
			break
		}
		reqs = append(reqs, r)
		cost += r.cost
	}
	h.startQ = append([]*sshStartReq(nil), h.startQ[n:]...)
	if len(reqs) == 0 || all {
		h.starters--
		return reqs
	}
	ctx, cancel := context.WithCancel(h.s.ctx)
	b := &sshStartBatch{ctx: ctx, cancel: cancel}
	b.waiting.Store(int32(len(reqs)))
	for _, r := range reqs {
		r.batch = b // under mu: abandon sees it, or skips it
	}
	return reqs
}

// startBatch runs one start session for reqs (holding a session slot),
// gives each its outcome as its line comes, and kills the servers that
// started for callers that had given up.
func (h *sshHost) startBatch(reqs []*sshStartReq) {
	b := reqs[0].batch
	defer b.cancel()
	var env strings.Builder
	calls := make([]string, len(reqs))
	for i, r := range reqs {
		calls[i] = r.call
		env.WriteString(r.env)
	}
	now := time.Now().UTC().Format("2006-01-02T15:04:05Z")
	h.s.log.Debug("ssh start session", "host", h.name, "servers", len(reqs))
	rep := &startReport{reqs: reqs, errs: make([][]string, len(reqs)), done: make([]bool, len(reqs))}
	err := h.session(b.ctx, remoteCommand(startBatchScript(calls), remoteWrapper, now), strings.NewReader(env.String()), rep)
	if h.s.ctx.Err() != nil {
		err = errSSHClosed
	}
	for _, hd := range rep.finish(err) {
		h.s.log.Warn("server started for a Start that had returned; killing it", "server", hd.ID, "host", h.name, "pid", hd.PID)
		h.s.spawn(func() {
			ctx, cancel := context.WithTimeout(h.s.ctx, time.Minute)
			defer cancel()
			if err := h.s.stop(ctx, hd, "KILL", 0); err != nil {
				h.s.log.Warn("could not kill a server started for nobody", "server", hd.ID, "host", h.name, "pid", hd.PID, "err", err)
			}
		})
	}
}

// startReport takes a start session's output (the session's stdout, a
// line at a time as it comes) and gives each request its outcome.
type startReport struct {
	mu      sync.Mutex
	reqs    []*sshStartReq
	errs    [][]string // each request's error lines
	done    []bool     // its outcome is decided
	boot    string
	partial []byte    // the start of a line not ended yet
	other   capBuffer // lines it does not know, for an error
	orphans []Handle  // started for nobody (see finish)
}

func (p *startReport) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(b)
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if len(p.partial) < 64<<10 {
				p.partial = append(p.partial, b...)
			}
			return n, nil
		}
		line := string(append(p.partial, b[:i]...))
		p.partial, b = p.partial[:0], b[i+1:]
		p.line(line)
	}
}

// line handles one line of the report.
func (p *startReport) line(line string) {
	l := parseStartLine(line)
	if l.kind != "boot" && l.kind != "" && l.i >= len(p.reqs) {
		l.kind = ""
	}
	switch l.kind {
	case "boot":
		p.boot = l.text
	case "err":
		p.errs[l.i] = append(p.errs[l.i], l.text)
	case "fail":
		if p.done[l.i] {
			return
		}
		p.done[l.i] = true
		msg := p.errs[l.i]
		if l.text != "" || len(msg) == 0 {
			msg = append(msg, cmp.Or(l.text, "the server did not start"))
		}
		p.reqs[l.i].deliver(sshStartRes{err: errors.New(strings.Join(msg, "\n"))})
	case "ok":
		if p.done[l.i] {
			return
		}
		p.done[l.i] = true
		r := p.reqs[l.i]
		spec := r.spec
		hd := Handle{Driver: DriverSSH, Host: spec.Host, ID: spec.ID, PID: l.pid, Started: time.Now(),
			BootID: p.boot, StartTicks: l.ticks, Binary: spec.Binary, Log: spec.Log}
		res := sshStartRes{h: hd}
		if p.boot == "" { // the script prints it first: something is wrong
			res = sshStartRes{err: errors.New("no boot id in the report")}
		}
		if !r.deliver(res) || res.err != nil {
			p.orphans = append(p.orphans, hd)
		}
	default:
		p.other.Write([]byte(line + "\n"))
	}
}

// finish gives every request still without an outcome its error lines,
// or the session's error err, and returns the servers that started for
// nobody: their callers had given up, or got an error.
func (p *startReport) finish(err error) []Handle {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.partial) > 0 {
		p.line(string(p.partial))
		p.partial = nil
	}
	for i, r := range p.reqs {
		switch {
		case p.done[i]:
		case len(p.errs[i]) > 0:
			r.deliver(sshStartRes{err: errors.New(strings.Join(p.errs[i], "\n"))})
		case err != nil:
			r.deliver(sshStartRes{err: err})
		default:
			r.deliver(sshStartRes{err: fmt.Errorf("the host did not report on this server (output %q)", p.other.String())})
		}
	}
	return p.orphans
}
