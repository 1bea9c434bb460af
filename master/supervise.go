package master

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/master/launch"
	"github.com/shaddock/shaddock/proto/masterpb"
)

// Supervision is one loop (reconcile) that compares, for every server,
// what should be (want, killReq, restartReq) with what is (its instance
// and registry stream), and starts the operation that closes the gap:
// start, graceful stop, kill. Operations run on goroutines of their own,
// never holding Master.mu across a launcher call, and report back by
// changing the server under the lock, which wakes the loop again. The loop
// also runs the deadlines: heartbeats, registration, settling, backoff.

// reconcile runs until the master shuts down.
func (m *Master) reconcile() {
	defer m.wg.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		m.step(time.Now())
		select {
		case <-m.ctx.Done():
			return
		case <-m.wake:
		case <-t.C:
		}
	}
}

// step makes one pass over every server.
func (m *Master) step(now time.Time) {
	var ops []func()
	m.mu.Lock()
	if !m.settled && !now.Before(m.settleBy) {
		var missing []string
		for id := range m.settleWait {
			missing = append(missing, id)
		}
		m.settleLocked("grace period over; not re-registered: " + strings.Join(sortedIDs(missing), ", "))
	}
	for _, id := range m.idsLocked() {
		srv := m.servers[id]
		m.deadlinesLocked(srv, now)
		if op := m.nextOpLocked(srv, now); op != nil {
			ops = append(ops, op)
		}
	}
	m.mu.Unlock()
	for _, op := range ops {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			op()
		}()
	}
}

// deadlinesLocked applies the time limits: a silent server is lost, an
// instance that does not register in time failed (or, adopted, is lost).
func (m *Master) deadlinesLocked(srv *server, now time.Time) {
	if srv.sess != nil && now.Sub(srv.lastSeen) > heartbeatTimeout {
		m.log.Warn("server lost: no heartbeat", "server", srv.id, "silent", now.Sub(srv.lastSeen).Round(time.Millisecond))
		m.endSessionLocked(srv, "heartbeat timeout")
		if srv.inst == nil || !srv.inst.stopping {
			m.setStateLocked(srv, masterpb.ServerState_LOST, m.withHostErr(srv, fmt.Sprintf("no heartbeat for %s", heartbeatTimeout)))
		}
	}
	if !srv.waitReg.IsZero() && now.After(srv.waitReg) {
		srv.waitReg = time.Time{}
		if srv.sess == nil && srv.inst == nil {
			m.setStateLocked(srv, masterpb.ServerState_LOST, "its port is in use, but it did not register and no process of it is known")
		}
	}
	inst := srv.inst
	if inst == nil || inst.registered || inst.registerBy.IsZero() || !now.After(inst.registerBy) {
		return
	}
	inst.registerBy = time.Time{}
	if inst.adopted {
		m.log.Warn("adopted server did not re-register", "server", srv.id, "pid", inst.h.PID, "host", inst.h.Host)
		m.setStateLocked(srv, masterpb.ServerState_LOST, m.withHostErr(srv, fmt.Sprintf("did not re-register within %s", adoptTimeout)))
		return
	}
	if inst.stopping {
		return
	}
	// Started, running, silent: it will not serve. Kill it, so that it
	// neither lingers nor registers late.
	reason := fmt.Sprintf("not registered within %s (startTimeout)", m.startTimeout())
	m.log.Error("server did not register in time; killing it", "server", srv.id, "pid", inst.h.PID, "host", inst.h.Host, "timeout", m.startTimeout())
	m.failLocked(srv, reason, "")
	srv.killReq = true
}

// withHostErr adds what is wrong with the server's host, if anything.
func (m *Master) withHostErr(srv *server, reason string) string {
	if err := m.hosts.hostErr(srv.host()); err != nil {
		return reason + " (" + err.Error() + ")"
	}
	return reason
}

// nextOpLocked returns the operation that brings srv closer to what is
// wanted, marking it under way, or nil.
func (m *Master) nextOpLocked(srv *server, now time.Time) func() {
	inst := srv.inst
	switch {
	case m.closing || srv.starting:
		return nil
	case inst != nil && srv.killReq && !inst.killing:
		inst.stopping, inst.killing = true, true
		return func() { m.kill(srv, inst) }
	case inst != nil && (!srv.want || srv.restartReq) && !inst.stopping && !srv.hold:
		// (Held: a stop in phases, frontends first, has not reached it.)
		inst.stopping = true
		return func() { m.stop(srv, inst) }
	case inst == nil && (!srv.want || srv.restartReq) && srv.sess != nil && !srv.stopSent && !srv.hold:
		// Registered, but not started or adopted by this master: it can
		// only be asked, through its stream.
		srv.stopSent = true
		m.sendLocked(srv, srv.sess, stopCommand(srv.stopReason))
		return nil
	case srv.want && !srv.hold && srv.configured && inst == nil && srv.sess == nil && srv.waitReg.IsZero() && !now.Before(srv.nextTry):
		srv.starting, srv.restartReq, srv.killReq, srv.stopSent = true, false, false, false
		if srv.autoStart {
			srv.restarts++
		}
		auto := srv.autoStart
		srv.autoStart = false
		srv.epoch++
		epoch, c, added := srv.epoch, srv.cfg, srv.added
		srv.draining = false
		m.setStateLocked(srv, masterpb.ServerState_STARTING, "")
		return func() { m.start(srv, c, epoch, auto, added) }
	}
	return nil
}

// start launches one instance of a server.
func (m *Master) start(srv *server, c config.Server, epoch uint64, auto, added bool) {
	ctx, cancel := context.WithTimeout(m.ctx, launchTimeout)
	defer cancel()
	l, err := m.hosts.launcher(c.Host)
	if err == nil && isLocalHost(c.Host) {
		err = m.checkBinary()
	}
	if err == nil {
		err = m.hosts.prepare(ctx, c.Host)
	}
	var h launch.Handle
	if err == nil {
		bin := m.binaryFor(c.Group)
		h, err = l.Start(ctx, m.spec(c, epoch, bin, m.hosts.build(c.Host, bin), added))
	}
	m.mu.Lock()
	srv.starting = false
	if err != nil {
		m.log.Error("server not started", "server", c.ID, "host", c.Host, "err", err)
		if auto && !m.initial.Load() && srv.want && !m.closing {
			// An automatic restart keeps trying, with backoff (a host may
			// be back soon).
			m.scheduleLocked(srv, 0)
			m.setStateLocked(srv, masterpb.ServerState_LOST, "restart failed: "+reasonOf(err))
		} else {
			m.failLocked(srv, reasonOf(err), "")
		}
		m.mu.Unlock()
		m.saveState()
		return
	}
	inst := newInstance(epoch, h, l, false, time.Now().Add(m.startTimeout()))
	srv.inst = inst
	srv.conns, srv.reason, srv.tail = 0, "", ""
	m.notifyLocked()
	m.mu.Unlock()
	m.log.Info("server started", "server", c.ID, "host", c.Host, "pid", h.PID, "epoch", epoch)
	m.saveState()
	m.watch(srv, inst)
}

// reasonOf is a start error as `master list` shows it: a host's trouble
// (key, reachability) as the host error alone, which names the host,
// without the steps that ran into it.
func reasonOf(err error) string {
	var he *launch.HostError
	if errors.As(err, &he) {
		return he.Error()
	}
	return err.Error()
}

// checkBinary says plainly when the game binary is not there, naming the
// config key: the commonest mistake in a new servers.toml.
func (m *Master) checkBinary() error {
	fi, err := os.Stat(m.binary)
	switch {
	case err != nil:
		return fmt.Errorf("binary %s (servers.toml [%s] binary = %q, relative to base %s): %w", m.binary, m.env.Name, m.env.Binary, m.base, errors.Unwrap(err))
	case fi.IsDir() || fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("binary %s (servers.toml [%s] binary = %q) is not an executable file", m.binary, m.env.Name, m.env.Binary)
	}
	return nil
}

// failLocked marks a server FAILED with why (and its log's last lines):
// it is not started again until someone asks.
func (m *Master) failLocked(srv *server, reason, tail string) {
	srv.want = false
	srv.tail = tail
	m.setStateLocked(srv, masterpb.ServerState_FAILED, reason)
	msg := fmt.Sprintf("%s failed on %s: %s", srv.id, srv.host(), reason)
	if tail != "" {
		msg += "\n" + indent(tail)
	}
	m.note(msg, true)
}

// indent prefixes every line of s for progress output.
func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "    | " + l
	}
	return strings.Join(lines, "\n")
}

// scheduleLocked sets when srv may be restarted: after 1 s, doubling up to
// 30 s, back to 1 s after a run of 60 s or more.
func (m *Master) scheduleLocked(srv *server, uptime time.Duration) {
	if uptime >= restartReset {
		srv.backoff = 0
	}
	delay := max(srv.backoff, restartMin)
	srv.backoff = min(2*delay, restartMax)
	srv.nextTry = time.Now().Add(delay)
	srv.autoStart = true
	m.log.Info("restarting server after backoff", "server", srv.id, "in", delay)
	// Wake the loop when the backoff is over.
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-m.ctx.Done():
		case <-t.C:
			m.kick()
		}
	}()
}

// watch waits, on a goroutine, for an instance's end.
func (m *Master) watch(srv *server, inst *instance) {
	ch := inst.l.Wait(inst.h)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		select {
		case e, ok := <-ch:
			if ok {
				m.exited(srv, inst, e)
			}
		case <-m.ctx.Done():
		}
	}()
}

// exited records an instance's end: STOPPED if it was asked to stop,
// FAILED if it ended before registering, else LOST (and restarted with
// backoff if autoRestart).
func (m *Master) exited(srv *server, inst *instance, e launch.Exit) {
	m.mu.Lock()
	asked := inst.stopping
	m.mu.Unlock()
	var tail string
	if !asked {
		tail = m.logTail(inst, 8) // its last words, before anyone restarts it
	}
	m.mu.Lock()
	first := false
	inst.doneOnce.Do(func() { first = true; close(inst.done) })
	if !first || srv.inst != inst {
		m.mu.Unlock()
		return
	}
	srv.inst, srv.conns = nil, 0
	if srv.sess != nil && (srv.info.GetEpoch() == inst.epoch || int(srv.info.GetPid()) == inst.h.PID) {
		m.endSessionLocked(srv, "process ended")
	}
	how := describeExit(e, "", tail)
	switch {
	case inst.stopping:
		m.log.Info("server stopped", "server", srv.id, "pid", inst.h.PID, "host", inst.h.Host, "status", e.Status)
		st := masterpb.ServerState_STOPPED
		if srv.restartReq && srv.want {
			st = masterpb.ServerState_STARTING // the restart's start follows at once
		}
		m.setStateLocked(srv, st, "stopped: "+e.Status)
	case !inst.registered && !inst.adopted:
		m.log.Error("server exited before it registered", "server", srv.id, "pid", inst.h.PID, "host", inst.h.Host, "status", e.Status)
		how = describeExit(e, " before registering", tail)
		if srv.cfg.AutoRestart && srv.want && !m.initial.Load() && !m.closing {
			srv.tail = tail // what a waiting start reports
			m.scheduleLocked(srv, 0)
			m.setStateLocked(srv, masterpb.ServerState_LOST, how)
		} else {
			m.failLocked(srv, how, tail)
		}
	default:
		m.log.Warn("server lost: exited unasked", "server", srv.id, "pid", inst.h.PID, "host", inst.h.Host, "status", e.Status, "log", inst.h.Log)
		srv.tail = tail
		switch {
		case m.initial.Load():
			m.failLocked(srv, how, tail)
		case srv.want && srv.cfg.AutoRestart && !m.closing:
			m.setStateLocked(srv, masterpb.ServerState_LOST, how)
			m.scheduleLocked(srv, time.Since(inst.started))
		default:
			srv.want = false
			m.setStateLocked(srv, masterpb.ServerState_LOST, how)
		}
	}
	m.notifyLocked()
	m.mu.Unlock()
	m.saveState()
}

// describeExit is an exit as `master list` shows it: "exited 1<when>:
// <the last line the server wrote>".
func describeExit(e launch.Exit, when, tail string) string {
	how := e.Status
	if e.Code > 0 {
		how = fmt.Sprintf("exited %d", e.Code)
	}
	how += when
	if last := lastWords(tail); last != "" {
		how += ": " + last
	}
	return how
}

// lastWords is the last line of a log tail that the server wrote (not the
// master's or launcher's "===" lines), shortened.
func lastWords(tail string) string {
	lines := strings.Split(strings.TrimRight(tail, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "===") {
			continue
		}
		if len(l) > 200 {
			l = l[:200] + "…"
		}
		return l
	}
	return ""
}

// logTail returns the last n lines of an instance's log, read through its
// launcher (over SSH for a remote server), bounded in time.
func (m *Master) logTail(inst *instance, n int) string {
	if inst.h.Log == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(m.ctx, 3*time.Second)
	defer cancel()
	var b strings.Builder
	if err := inst.l.Logs(ctx, inst.h.Host, inst.h.Log, n, false, &b); err != nil {
		return ""
	}
	return b.String()
}

// stop ends an instance gracefully: the stop command over its registry
// stream (its clients are kicked with the reason, in-flight work finishes),
// SIGTERM after termAfter, SIGKILL killAfter later. Without a stream the
// launcher's SIGTERM comes at once. It returns once the end is recorded.
func (m *Master) stop(srv *server, inst *instance) {
	m.mu.Lock()
	s := srv.sess
	if s != nil && !(srv.info.GetEpoch() == inst.epoch || int(srv.info.GetPid()) == inst.h.PID) {
		s = nil // a stream, but not from this instance
	}
	reason := srv.stopReason
	if reason == "" {
		reason = "server stopping"
	}
	if s != nil {
		m.sendLocked(srv, s, stopCommand(reason))
	}
	m.mu.Unlock()
	m.log.Info("stopping server", "server", srv.id, "pid", inst.h.PID, "host", inst.h.Host, "reason", reason, "registered", s != nil)
	if s != nil && m.waitDone(inst, termAfter) {
		return
	}
	m.signal(srv, inst, func(ctx context.Context) error { return inst.l.Stop(ctx, inst.h, killAfter) }, "stop", "stopped")
}

// kill ends an instance with SIGKILL.
func (m *Master) kill(srv *server, inst *instance) {
	m.log.Warn("killing server", "server", srv.id, "pid", inst.h.PID, "host", inst.h.Host)
	m.signal(srv, inst, func(ctx context.Context) error { return inst.l.Kill(ctx, inst.h) }, "kill", "killed")
}

// signal runs a launcher's stop or kill until it succeeds (a host may be
// unreachable for a while), then waits for the end to be recorded.
func (m *Master) signal(srv *server, inst *instance, do func(context.Context) error, what, done string) {
	backoff := 500 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(m.ctx, termAfter+killAfter)
		err := do(ctx)
		cancel()
		if err == nil {
			break
		}
		if m.ctx.Err() != nil {
			return
		}
		m.log.Warn("could not "+what+" server; retrying", "server", srv.id, "pid", inst.h.PID, "host", inst.h.Host, "err", err)
		m.mu.Lock()
		srv.reason = fmt.Sprintf("%s failed: %v", what, err)
		m.notifyLocked()
		m.mu.Unlock()
		if m.waitDone(inst, backoff) {
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	// The launcher saw it end; its Wait reports the end shortly. Record it
	// here if that is late, so a stop never hangs on a watcher.
	if !m.waitDone(inst, 5*time.Second) && m.ctx.Err() == nil {
		m.exited(srv, inst, launch.Exit{Code: -1, Status: done, At: time.Now()})
	}
}

// waitDone waits up to d for an instance's end to be recorded.
func (m *Master) waitDone(inst *instance, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-inst.done:
		return true
	case <-t.C:
		return false
	case <-m.ctx.Done():
		return false
	}
}

// stopCommand asks a server to stop gracefully.
func stopCommand(reason string) *masterpb.MasterMessage {
	return &masterpb.MasterMessage{Msg: &masterpb.MasterMessage_Command{Command: &masterpb.Command{
		Cmd: &masterpb.Command_Stop{Stop: &masterpb.StopCommand{Reason: reason, TimeoutMs: uint32(stopTimeout / time.Millisecond)}}}}}
}

// recover re-adopts the servers an earlier master left running: those
// whose recorded process still runs (asked of each launcher, hosts in
// parallel), and local ones whose cluster port answers although no process
// is known (found again when they register). Until they have
// re-registered, or settleGrace has passed, no membership snapshot is
// sent. A server whose host cannot be reached now is not started again: it
// may be running, and it is never given a second copy.
func (m *Master) recover() {
	st, err := readState(m.paths.StateFile(m.env.Name))
	if err != nil {
		m.log.Warn("ignoring the state file", "err", err)
	}
	if u, err := m.readUpdate(); err == nil && u != nil {
		m.updateNote = u.describe()
	}
	type found struct {
		id    string
		entry StateEntry
		l     launch.Launcher
		err   error
	}
	var (
		wg      sync.WaitGroup
		fmu     sync.Mutex
		results []found
	)
	m.mu.Lock()
	// What `master add` and `master remove` changed stays changed until a
	// reload makes the cluster follow servers.toml again.
	for id, c := range st.Added {
		if m.servers[id] == nil {
			m.servers[id] = &server{id: id, cfg: c, configured: true, added: true, want: true, state: masterpb.ServerState_STOPPED}
		}
	}
	for _, id := range st.Removed {
		if _, running := st.Servers[id]; !running {
			delete(m.servers, id)
			m.removed[id] = true
		}
	}
	for id, e := range st.Epochs {
		if m.servers[id] == nil {
			m.forgotten[id] = e
		}
	}
	for id, srv := range m.servers {
		srv.epoch = max(srv.epoch, st.Epochs[id])
	}
	for id, e := range st.Servers {
		srv := m.servers[id]
		if srv == nil {
			m.log.Warn("the state file names a server that is not in the config; not adopted", "server", id, "pid", e.Handle.PID, "host", e.Handle.Host)
			continue
		}
		srv.epoch = max(srv.epoch, e.Epoch)
		l, err := m.hosts.byDriver(e.Handle.Driver)
		if err != nil {
			// It may well run: keep it, unwatched, rather than start a
			// second copy.
			m.log.Warn("cannot check a recorded server; not starting another copy", "server", id, "pid", e.Handle.PID, "host", e.Handle.Host, "err", err)
			l = unavailable{err}
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
			defer cancel()
			err := l.Recover(ctx, e.Handle)
			fmu.Lock()
			results = append(results, found{id, e, l, err})
			fmu.Unlock()
		})
	}
	m.mu.Unlock()
	wg.Wait()

	now := time.Now()
	m.mu.Lock()
	m.settleWait = map[string]bool{}
	var adopted []*server
	for _, f := range results {
		srv := m.servers[f.id]
		switch {
		case errors.Is(f.err, launch.ErrGone):
			m.log.Info("recorded server is no longer running", "server", f.id, "pid", f.entry.Handle.PID, "host", f.entry.Handle.Host)
			continue
		case f.err != nil:
			m.log.Warn("cannot tell whether a recorded server still runs; not starting another copy", "server", f.id,
				"pid", f.entry.Handle.PID, "host", f.entry.Handle.Host, "err", f.err)
			srv.reason = "its host cannot be reached: " + f.err.Error()
		default:
			m.log.Info("adopted server: still running", "server", f.id, "pid", f.entry.Handle.PID, "host", f.entry.Handle.Host)
		}
		srv.inst = newInstance(f.entry.Epoch, f.entry.Handle, f.l, true, now.Add(adoptTimeout))
		srv.state = masterpb.ServerState_STARTING
		if f.err == nil {
			// Published, if it is not back by the time the membership
			// settles, as lost (settleLocked); it is running meanwhile.
			srv.info = f.entry.Member.info(f.id)
		}
		m.settleWait[f.id] = true
		adopted = append(adopted, srv)
	}
	var probe []config.Server
	for _, srv := range m.servers {
		if srv.configured && srv.inst == nil && isLocalHost(srv.cfg.Host) {
			probe = append(probe, srv.cfg)
		}
	}
	m.mu.Unlock()
	for _, srv := range adopted {
		m.watch(srv, srv.inst)
	}

	busy := probePorts(probe)
	m.mu.Lock()
	for _, id := range sortedIDs(busy) {
		srv := m.servers[id]
		srv.state = masterpb.ServerState_STARTING
		srv.waitReg = now.Add(adoptTimeout)
		m.settleWait[id] = true
		m.log.Warn("cluster port in use though no recorded process runs the server: not starting it; waiting for it to register",
			"server", id, "addr", net.JoinHostPort(srv.cfg.Host, strconv.Itoa(srv.cfg.Port)))
	}
	if len(m.settleWait) == 0 {
		m.settled = true
	} else {
		m.log.Info("waiting for running servers to re-register before sending membership", "grace", settleGrace, "servers", len(m.settleWait))
	}
	m.mu.Unlock()
	m.saveState()
}

// probePorts returns the servers whose cluster port accepts connections.
func probePorts(servers []config.Server) []string {
	var mu sync.Mutex
	var busy []string
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), 300*time.Millisecond)
			if err != nil {
				return
			}
			c.Close()
			mu.Lock()
			busy = append(busy, s.ID)
			mu.Unlock()
		})
	}
	wg.Wait()
	return busy
}

// saveState records the instances the master runs, and every epoch.
func (m *Master) saveState() {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	st := State{Env: m.env.Name, Servers: map[string]StateEntry{}, Epochs: map[string]uint64{}}
	m.mu.Lock()
	for id, srv := range m.servers {
		if i := srv.inst; i != nil {
			e := StateEntry{Handle: i.h, Epoch: i.epoch}
			if srv.info != nil && (srv.info.GetEpoch() == i.epoch || int(srv.info.GetPid()) == i.h.PID) {
				e.Member = stateMember(srv.info)
			}
			st.Servers[id] = e
		}
		if srv.epoch > 0 {
			st.Epochs[id] = srv.epoch
		}
		if srv.added {
			if st.Added == nil {
				st.Added = map[string]config.Server{}
			}
			st.Added[id] = srv.cfg
		}
	}
	for id, e := range m.forgotten {
		if _, ok := st.Epochs[id]; !ok && e > 0 {
			st.Epochs[id] = e
		}
	}
	for id := range m.removed {
		st.Removed = append(st.Removed, id)
	}
	slices.Sort(st.Removed)
	m.mu.Unlock()
	if err := writeState(m.paths.StateFile(m.env.Name), st); err != nil {
		m.log.Error("state file not saved: a restarted master may not re-adopt the servers", "err", err)
	}
}

// unavailable stands in for a launcher the master cannot make (its SSH
// settings are broken, say) for instances it found in its state file: they
// are neither watched nor started again, and every operation says why.
type unavailable struct{ err error }

func (u unavailable) Start(context.Context, launch.Spec) (launch.Handle, error) {
	return launch.Handle{}, u.err
}
func (u unavailable) Recover(context.Context, launch.Handle) error { return u.err }

// Wait never reports an end: it cannot be seen.
func (u unavailable) Wait(launch.Handle) <-chan launch.Exit { return make(chan launch.Exit) }
func (u unavailable) Stop(context.Context, launch.Handle, time.Duration) error {
	return u.err
}
func (u unavailable) Kill(context.Context, launch.Handle) error { return u.err }
func (u unavailable) Logs(context.Context, string, string, int, bool, io.Writer) error {
	return u.err
}
func (u unavailable) Close() error { return nil }
