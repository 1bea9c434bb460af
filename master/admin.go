package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shaddock/shaddock/proto/masterpb"
)

// The admin commands change what is wanted (under Master.mu), wake the
// reconcile loop, and wait, bounded, until what is observed matches,
// streaming a line per server as it gets there. None of them calls a
// launcher itself, so none hangs on a dead host: a server that cannot be
// reached is reported when its bound is over.

type adminService struct {
	masterpb.UnimplementedAdminServer
	m *Master
}

// List returns every configured server and every registered one that is not
// in the config. It only reads the master's view: it answers at once
// whatever the hosts do.
func (a adminService) List(context.Context, *masterpb.ListRequest) (*masterpb.ListReply, error) {
	m := a.m
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	rep := &masterpb.ListReply{Env: m.env.Name, MasterId: m.env.Master.ID, MasterPid: int32(os.Getpid()), Update: m.updateNote}
	for _, id := range m.idsLocked() {
		rep.Servers = append(rep.Servers, m.statusLocked(m.servers[id], now))
	}
	return rep, nil
}

// targets returns the servers sel picks, or NotFound if it picks none.
func (m *Master) targets(sel *masterpb.Selector) ([]target, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ts []target
	for _, id := range m.idsLocked() {
		typ, group, front := m.servers[id].typeGroup()
		if selected(sel, id, typ, group) {
			ts = append(ts, target{id: id, frontend: front})
		}
	}
	if len(ts) == 0 {
		if emptySelector(sel) {
			return nil, status.Error(codes.NotFound, "the cluster has no servers")
		}
		return nil, status.Errorf(codes.NotFound, "no server matches %s", describeSelector(sel))
	}
	return ts, nil
}

func describeSelector(sel *masterpb.Selector) string {
	var parts []string
	for _, p := range []struct {
		name string
		vals []string
	}{{"id", sel.GetIds()}, {"type", sel.GetTypes()}, {"group", sel.GetGroups()}} {
		if len(p.vals) > 0 {
			parts = append(parts, p.name+" "+strings.Join(p.vals, ","))
		}
	}
	if len(parts) == 0 {
		return "all servers"
	}
	return strings.Join(parts, " and ")
}

type opResult struct {
	id  string
	msg string
	err error
}

// progress sends progress lines; a client that went away does not stop the
// operation.
type progress struct {
	st          grpc.ServerStreamingServer[masterpb.Progress] // nil: lines go to log
	log         *slog.Logger
	mu          sync.Mutex // a stream takes one sender at a time
	done, total int
	failed      int
}

func (p *progress) send(msg string, isErr bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.st == nil {
		if p.log != nil {
			p.log.Info("progress", "line", msg, "error", isErr)
		}
		return
	}
	p.st.Send(&masterpb.Progress{Message: msg, Done: int32(p.done), Total: int32(p.total), Error: isErr})
}

func (p *progress) result(r opResult) {
	p.mu.Lock()
	p.done++
	p.mu.Unlock()
	if r.err != nil {
		p.mu.Lock()
		p.failed++
		p.mu.Unlock()
		p.send(fmt.Sprintf("%s: %v (%d/%d)", r.id, r.err, p.done, p.total), true)
		return
	}
	p.send(fmt.Sprintf("%s %s (%d/%d)", r.id, r.msg, p.done, p.total), false)
}

// forward passes the master's notes (uploads, say) to a command's client
// until the returned func is called.
func (m *Master) forward(p *progress) func() {
	notes, unfollow := m.follow()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case n := <-notes:
				p.send(n, false)
			case <-done:
				return
			}
		}
	}()
	return func() {
		unfollow()
		close(done)
		<-finished
	}
}

// await waits until check reports the server done (ok or failed), the
// bound passes, or the master or the client goes away.
func (m *Master) await(ctx context.Context, id string, bound time.Duration, check func(*server) (done bool, msg string, err error)) opResult {
	t := time.NewTimer(bound)
	defer t.Stop()
	for {
		m.mu.Lock()
		srv := m.servers[id]
		var done bool
		var msg string
		var err error
		if srv == nil {
			// Only a server that is not in the config is forgotten: when
			// it stopped.
			done, msg = true, "stopped (not in the config: it left the membership)"
		} else {
			done, msg, err = check(srv)
		}
		reason := ""
		if srv != nil {
			reason = srv.reason
		}
		ch := m.changed
		m.mu.Unlock()
		if done {
			return opResult{id, msg, err}
		}
		select {
		case <-ch:
		case <-t.C:
			err := fmt.Errorf("not done after %s", bound)
			if reason != "" {
				err = fmt.Errorf("not done after %s: %s", bound, reason)
			}
			return opResult{id: id, err: err}
		case <-ctx.Done():
			return opResult{id: id, err: fmt.Errorf("the client went away: %w", ctx.Err())}
		case <-m.ctx.Done():
			return opResult{id: id, err: errMasterClosing}
		}
	}
}

// procAt is a server's process when a command began.
type procAt struct {
	pid  int
	host string
}

func (s *server) procAt() procAt {
	if s.inst != nil {
		return procAt{s.inst.h.PID, s.inst.h.Host}
	}
	return procAt{}
}

var errMasterClosing = errors.New("the master is shutting down")

// failure describes why a start did not succeed, with the log's last lines.
func (m *Master) failure(srv *server) error {
	msg := srv.reason
	if msg == "" {
		msg = strings.ToLower(srv.state.String())
	}
	if srv.tail != "" {
		msg += "\n" + indent(srv.tail)
	}
	if srv.configured {
		msg += fmt.Sprintf("\n    (master logs --env %s --id %s)", m.env.Name, srv.id)
	}
	return errors.New(msg)
}

// startedCheck reports a server started since epoch: its new instance has
// registered and runs, or it failed.
func (m *Master) startedCheck(since uint64) func(*server) (bool, string, error) {
	return func(srv *server) (bool, string, error) {
		inst := srv.inst
		switch {
		case inst != nil && inst.epoch > since && srv.state == masterpb.ServerState_RUNNING:
			return true, fmt.Sprintf("running on %s, pid %d", srv.cfg.Host, inst.h.PID), nil
		case srv.epoch > since && inst == nil && !srv.starting &&
			(srv.state == masterpb.ServerState_FAILED || srv.state == masterpb.ServerState_LOST):
			// A start since the command failed: FAILED, or LOST when
			// autoRestart tries again. (A failure from before the command
			// is what the command is curing.)
			return true, "", m.failure(srv)
		case !srv.want && !srv.hasProc():
			return true, "", m.failure(srv)
		}
		return false, "", nil
	}
}

// Start starts the selected configured servers that are not running and
// reports each once it has registered and runs, or why it failed.
func (a adminService) Start(req *masterpb.StartRequest, st grpc.ServerStreamingServer[masterpb.Progress]) error {
	m := a.m
	ts, err := m.targets(req.GetSelect())
	if err != nil {
		return err
	}
	p := &progress{st: st, total: len(ts)}
	defer m.forward(p)()
	results := make(chan opResult, len(ts))
	n := 0
	for _, t := range ts {
		m.mu.Lock()
		srv := m.servers[t.id]
		if !srv.configured {
			m.mu.Unlock()
			p.result(opResult{id: t.id, err: errors.New("not in the config: the master cannot start it")})
			continue
		}
		if srv.hasProc() || srv.sess != nil || !srv.waitReg.IsZero() {
			srv.want = true
			m.mu.Unlock()
			p.send(t.id+" is already running", false)
			n++
			go func() {
				results <- m.await(st.Context(), t.id, m.startTimeout()+launchTimeout, func(srv *server) (bool, string, error) {
					switch srv.state {
					case masterpb.ServerState_RUNNING:
						return true, "running", nil
					case masterpb.ServerState_FAILED:
						return true, "", m.failure(srv)
					}
					return false, "", nil
				})
			}()
			continue
		}
		since := srv.epoch
		srv.want, srv.backoff, srv.nextTry, srv.autoStart, srv.killReq = true, 0, time.Time{}, false, false
		m.notifyLocked()
		m.mu.Unlock()
		n++
		go func() {
			results <- m.await(st.Context(), t.id, m.startTimeout()+launchTimeout, m.startedCheck(since))
		}()
	}
	for range n {
		p.result(<-results)
	}
	if p.failed > 0 {
		return status.Errorf(codes.Aborted, "%d of %d servers not running", p.failed, p.total)
	}
	return nil
}

// Stop stops the selected servers gracefully, frontends first, and then the
// master if asked.
func (a adminService) Stop(req *masterpb.StopRequest, st grpc.ServerStreamingServer[masterpb.Progress]) error {
	m := a.m
	ts, err := m.targets(req.GetSelect())
	if err != nil && !(req.GetMaster() && emptySelector(req.GetSelect())) {
		return err
	}
	reason := req.GetReason()
	if reason == "" {
		reason = "server stopping"
	}
	procs := map[string]procAt{}
	m.mu.Lock()
	for _, t := range ts { // nothing restarts what is being stopped
		if srv := m.servers[t.id]; srv != nil {
			// Held until its phase comes: not started, not restarted.
			srv.hold, srv.restartReq, srv.autoStart = true, false, false
			procs[t.id] = srv.procAt()
		}
	}
	m.mu.Unlock()
	m.log.Info("stopping servers", "count", len(ts), "select", describeSelector(req.GetSelect()), "reason", reason, "master", req.GetMaster())
	p := &progress{st: st, total: len(ts)}
	for _, phase := range stopPhases(ts) {
		kind := "backend"
		if phase[0].frontend {
			kind = "frontend"
		}
		ids := make([]string, len(phase))
		for i, t := range phase {
			ids[i] = t.id
		}
		p.send(fmt.Sprintf("stopping %d %s server(s): %s", len(phase), kind, strings.Join(ids, ", ")), false)
		results := make(chan opResult, len(phase))
		m.mu.Lock()
		for _, t := range phase {
			if srv := m.servers[t.id]; srv != nil {
				srv.want, srv.hold, srv.stopReason = false, false, reason
			}
		}
		m.notifyLocked()
		m.mu.Unlock()
		for _, t := range phase {
			pa := procs[t.id]
			go func() {
				results <- m.await(st.Context(), t.id, termAfter+killAfter+10*time.Second, stoppedCheck(pa.pid, pa.host))
			}()
		}
		for range phase {
			p.result(<-results)
		}
	}
	if req.GetMaster() {
		if p.failed > 0 {
			p.send(fmt.Sprintf("%d server(s) did not stop; the master exits anyway", p.failed), true)
		} else {
			p.send("master exiting", false)
		}
		// After this handler returns: the stream ends cleanly, then Run
		// stops the gRPC server gracefully and returns.
		defer m.requestStop(nil)
	}
	if p.failed > 0 {
		return status.Errorf(codes.Aborted, "%d of %d servers did not stop", p.failed, p.total)
	}
	return nil
}

// stoppedCheck reports a server with no process and no stream left; pid
// and host are its process's when the command began (0 if none).
func stoppedCheck(pid int, host string) func(*server) (bool, string, error) {
	return func(srv *server) (bool, string, error) {
		if srv.hasProc() || srv.sess != nil {
			return false, "", nil
		}
		if !srv.waitReg.IsZero() {
			return true, "", errors.New("it seems to be running (its port is in use) but has not registered and no process of it is known: cannot stop it")
		}
		if pid == 0 {
			if srv.stopSent {
				return true, "stopped (its stream ended; this master did not start it)", nil
			}
			return true, "was not running", nil
		}
		return true, fmt.Sprintf("%s (pid %d on %s)", srv.reason, pid, host), nil
	}
}

// Kill ends the selected servers with SIGKILL, by pid: only processes this
// master started or adopted. A killed server counts as stopped (it is not
// auto-restarted); `master start` starts it again.
func (a adminService) Kill(req *masterpb.StopRequest, st grpc.ServerStreamingServer[masterpb.Progress]) error {
	m := a.m
	ts, err := m.targets(req.GetSelect())
	if err != nil {
		return err
	}
	p := &progress{st: st, total: len(ts)}
	results := make(chan opResult, len(ts))
	n := 0
	m.mu.Lock()
	for _, t := range ts {
		srv := m.servers[t.id]
		srv.want, srv.restartReq, srv.autoStart = false, false, false
		if srv.inst == nil && (srv.sess != nil || !srv.waitReg.IsZero()) {
			results <- opResult{id: t.id, err: errors.New("running, but not started or adopted by this master: cannot kill it by pid")}
			n++
			continue
		}
		srv.killReq = srv.inst != nil || srv.starting
		pa := srv.procAt()
		n++
		go func() {
			results <- m.await(st.Context(), t.id, killAfter+launchTimeout, func(srv *server) (bool, string, error) {
				done, msg, err := stoppedCheck(pa.pid, pa.host)(srv)
				if done && err == nil && pa.pid != 0 {
					msg = fmt.Sprintf("killed (pid %d on %s)", pa.pid, pa.host)
				}
				return done, msg, err
			})
		}()
	}
	m.notifyLocked()
	m.mu.Unlock()
	for range n {
		p.result(<-results)
	}
	if p.failed > 0 {
		return status.Errorf(codes.Aborted, "%d of %d servers not killed", p.failed, p.total)
	}
	return nil
}

// Restart restarts the selected servers one after another: each is stopped
// gracefully and started again, and the next one waits until its new
// instance runs. It stops at the first failure, so a broken server never
// takes the others down with it.
func (a adminService) Restart(req *masterpb.StopRequest, st grpc.ServerStreamingServer[masterpb.Progress]) error {
	m := a.m
	ts, err := m.targets(req.GetSelect())
	if err != nil {
		return err
	}
	reason := req.GetReason()
	if reason == "" {
		reason = "server restarting"
	}
	p := &progress{st: st, total: len(ts)}
	defer m.forward(p)()
	for i, t := range ts {
		m.mu.Lock()
		srv := m.servers[t.id]
		if !srv.configured {
			m.mu.Unlock()
			p.result(opResult{id: t.id, err: errors.New("not in the config: the master cannot start it again")})
			continue
		}
		oldPid := 0
		if srv.inst != nil {
			oldPid = srv.inst.h.PID
		}
		since := srv.epoch
		srv.want, srv.restartReq, srv.stopReason = true, true, reason
		srv.backoff, srv.nextTry, srv.autoStart, srv.killReq = 0, time.Time{}, false, false
		m.notifyLocked()
		m.mu.Unlock()
		r := m.await(st.Context(), t.id, termAfter+killAfter+m.startTimeout()+launchTimeout, m.startedCheck(since))
		if r.err == nil && oldPid != 0 {
			r.msg = fmt.Sprintf("restarted: pid %d → %s", oldPid, r.msg)
		}
		p.result(r)
		if r.err != nil {
			if rest := len(ts) - i - 1; rest > 0 {
				p.send(fmt.Sprintf("restart stopped at the first failure; %d server(s) not restarted", rest), true)
				p.failed += rest
			}
			break
		}
	}
	if p.failed > 0 {
		return status.Errorf(codes.Aborted, "%d of %d servers not restarted", p.failed, p.total)
	}
	return nil
}
