package master

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shaddock/shaddock/proto/masterpb"
)

type adminService struct {
	masterpb.UnimplementedAdminServer
	m *Master
}

// List returns every configured server and every registered one that is not
// in the config.
func (a adminService) List(context.Context, *masterpb.ListRequest) (*masterpb.ListReply, error) {
	m := a.m
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	rep := &masterpb.ListReply{Env: m.env.Name, MasterId: m.env.Master.ID, MasterPid: int32(os.Getpid())}
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
		srv := m.servers[id]
		typ, group, front := srv.cfg.Type, srv.cfg.Group, srv.cfg.Frontend
		if !srv.configured && srv.info != nil {
			typ, group, front = srv.info.GetType(), srv.info.GetGroup(), srv.info.GetFrontend()
		}
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
	st          grpc.ServerStreamingServer[masterpb.Progress]
	done, total int
	failed      int
}

func (p *progress) send(msg string, isErr bool) {
	p.st.Send(&masterpb.Progress{Message: msg, Done: int32(p.done), Total: int32(p.total), Error: isErr})
}

func (p *progress) result(r opResult) {
	p.done++
	if r.err != nil {
		p.failed++
		p.send(fmt.Sprintf("%s: %v (%d/%d)", r.id, r.err, p.done, p.total), true)
		return
	}
	p.send(fmt.Sprintf("%s %s (%d/%d)", r.id, r.msg, p.done, p.total), false)
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
	m.mu.Lock()
	for _, t := range ts { // nothing restarts what is being stopped
		if srv := m.servers[t.id]; srv != nil {
			srv.want = false
			srv.gen++
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
		for _, t := range phase {
			go func() {
				msg, err := m.stopOne(t.id, reason)
				results <- opResult{t.id, msg, err}
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
		defer m.requestStop()
	}
	if p.failed > 0 {
		return status.Errorf(codes.Aborted, "%d of %d servers did not stop", p.failed, p.total)
	}
	return nil
}

// stopCommand asks a server to stop gracefully.
func stopCommand(reason string) *masterpb.MasterMessage {
	return &masterpb.MasterMessage{Msg: &masterpb.MasterMessage_Command{Command: &masterpb.Command{
		Cmd: &masterpb.Command_Stop{Stop: &masterpb.StopCommand{Reason: reason, TimeoutMs: uint32(stopTimeout / time.Millisecond)}}}}}
}

var errMasterClosing = errors.New("the master is shutting down")

// waitDone waits for a process's end to be recorded, up to d.
func (m *Master) waitDone(p *proc, d time.Duration) (bool, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true, nil
	case <-t.C:
		return false, nil
	case <-m.ctx.Done():
		return false, errMasterClosing
	}
}

// stopOne stops one server: the stop command over its registry stream (or
// SIGTERM if it is not connected), SIGTERM 15 s later, SIGKILL 5 s after
// that. It returns when the process has exited.
func (m *Master) stopOne(id, reason string) (string, error) {
	m.mu.Lock()
	srv := m.servers[id]
	if srv == nil {
		m.mu.Unlock()
		return "is gone", nil
	}
	srv.want = false
	srv.gen++
	p, s := srv.proc, srv.sess
	if p == nil && s == nil {
		defer m.mu.Unlock()
		if !srv.adoptBy.IsZero() {
			return "", errors.New("it seems to be running (its port is in use) but has not registered and its pid is unknown: cannot stop it")
		}
		if !srv.configured { // a lost server the config does not know: forget it
			delete(m.servers, id)
			m.broadcastLocked(&masterpb.MasterMessage{Msg: &masterpb.MasterMessage_Removed{Removed: id}}, nil)
			m.notifyLocked()
			return "was not running; removed from the membership", nil
		}
		return "was not running", nil
	}
	srv.stopping, srv.stopReason = true, reason
	if s != nil {
		m.sendLocked(srv, s, stopCommand(reason))
	}
	m.mu.Unlock()

	if p == nil {
		return m.stopUnowned(srv, s)
	}
	if s == nil {
		if err := p.signal(syscall.SIGTERM); err != nil && !errors.Is(err, errEnded) {
			return "", err
		}
	}
	how := "stopped"
	for _, step := range []struct {
		wait time.Duration
		sig  syscall.Signal
		how  string
	}{{termAfter, syscall.SIGTERM, "stopped after SIGTERM"}, {killAfter, syscall.SIGKILL, "killed (did not stop in time)"}, {killAfter, 0, ""}} {
		done, err := m.waitDone(p, step.wait)
		if err != nil {
			return "", err
		}
		if done {
			return fmt.Sprintf("%s (pid %d, %s)", how, p.pid, p.exitStatus()), nil
		}
		if step.sig == 0 {
			break
		}
		m.log.Warn(fmt.Sprintf("%s did not exit in time; sending %s", id, step.sig), "server", id, "pid", p.pid)
		if err := p.signal(step.sig); err != nil && !errors.Is(err, errEnded) {
			return "", err
		}
		how = step.how
	}
	return "", fmt.Errorf("pid %d did not exit after SIGKILL", p.pid)
}

// stopUnowned waits for a server the master has no process for (it
// registered on its own) to end its stream after the stop command.
func (m *Master) stopUnowned(srv *server, s *session) (string, error) {
	deadline := time.NewTimer(termAfter + killAfter)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		gone := srv.sess != s
		ch := m.changed
		m.mu.Unlock()
		if gone {
			return "stopped (its stream ended; this master did not start it)", nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return "", fmt.Errorf("did not stop within %s, and this master did not start it, so it cannot signal it", termAfter+killAfter)
		case <-m.ctx.Done():
			return "", errMasterClosing
		}
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
	for _, t := range ts {
		go func() {
			msg, err := m.killOne(t.id)
			results <- opResult{t.id, msg, err}
		}()
	}
	for range ts {
		p.result(<-results)
	}
	if p.failed > 0 {
		return status.Errorf(codes.Aborted, "%d of %d servers not killed", p.failed, p.total)
	}
	return nil
}

func (m *Master) killOne(id string) (string, error) {
	m.mu.Lock()
	srv := m.servers[id]
	if srv == nil {
		m.mu.Unlock()
		return "is gone", nil
	}
	srv.want = false
	srv.gen++
	p := srv.proc
	if p == nil {
		defer m.mu.Unlock()
		if srv.sess != nil || !srv.adoptBy.IsZero() {
			return "", errors.New("running, but not started or adopted by this master: cannot kill it by pid")
		}
		return "was not running", nil
	}
	srv.stopping, srv.stopReason = true, "killed"
	m.mu.Unlock()
	m.log.Warn("killing "+id, "server", id, "pid", p.pid)
	if err := p.signal(syscall.SIGKILL); err != nil && !errors.Is(err, errEnded) {
		return "", err
	}
	done, err := m.waitDone(p, killAfter)
	if err != nil {
		return "", err
	}
	if !done {
		return "", fmt.Errorf("pid %d did not exit after SIGKILL", p.pid)
	}
	return fmt.Sprintf("killed (pid %d, %s)", p.pid, p.exitStatus()), nil
}

// Start starts the selected configured servers that are not running and
// reports each as it reaches RUNNING, for up to 30 s.
func (a adminService) Start(req *masterpb.StartRequest, st grpc.ServerStreamingServer[masterpb.Progress]) error {
	m := a.m
	ts, err := m.targets(req.GetSelect())
	if err != nil {
		return err
	}
	p := &progress{st: st, total: len(ts)}
	waiting := map[string]*proc{} // id → the process it must reach RUNNING with
	for _, t := range ts {
		m.mu.Lock()
		srv := m.servers[t.id]
		if !srv.configured {
			m.mu.Unlock()
			p.result(opResult{id: t.id, err: errors.New("not in the config: the master cannot start it")})
			continue
		}
		srv.want = true
		srv.gen++
		srv.backoff = 0
		running := srv.proc != nil || srv.spawning || srv.sess != nil || !srv.adoptBy.IsZero()
		cur := srv.proc
		m.mu.Unlock()
		if running {
			p.send(t.id+" is already running", false)
			waiting[t.id] = cur
			continue
		}
		started, err := m.spawn(t.id, false)
		if err != nil {
			p.result(opResult{id: t.id, err: err})
			continue
		}
		waiting[t.id] = started
	}
	timeout := time.NewTimer(startWait)
	defer timeout.Stop()
	for len(waiting) > 0 {
		m.mu.Lock()
		var results []opResult
		for _, id := range sortedIDs(keys(waiting)) {
			srv, want := m.servers[id], waiting[id]
			switch {
			case srv.state == masterpb.ServerState_RUNNING:
				pid := 0
				if srv.proc != nil {
					pid = srv.proc.pid
				}
				results = append(results, opResult{id: id, msg: fmt.Sprintf("running (pid %d)", pid)})
			case want != nil && srv.proc != want:
				results = append(results, opResult{id: id, err: fmt.Errorf("pid %d exited before it was running (%s); see %s", want.pid, srv.lastErr, m.paths.ServerLog(id))})
			}
		}
		ch := m.changed
		m.mu.Unlock()
		for _, r := range results {
			delete(waiting, r.id)
			p.result(r)
		}
		if len(waiting) == 0 {
			break
		}
		select {
		case <-ch:
		case <-timeout.C:
			for _, id := range sortedIDs(keys(waiting)) {
				p.result(opResult{id: id, err: fmt.Errorf("not running after %s; see %s", startWait, m.paths.ServerLog(id))})
			}
			waiting = nil
		case <-st.Context().Done():
			return status.FromContextError(st.Context().Err()).Err()
		case <-m.ctx.Done():
			return status.Error(codes.Unavailable, errMasterClosing.Error())
		}
	}
	if p.failed > 0 {
		return status.Errorf(codes.Aborted, "%d of %d servers not running", p.failed, p.total)
	}
	return nil
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
