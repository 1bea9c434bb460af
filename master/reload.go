package master

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/proto/masterpb"
)

// Changing the topology while it runs: `master reload` applies an edited
// servers.toml, `master add` and `master remove` change one server. Added
// servers join once registered; removed ones are drained (DRAINING: not
// offered to new clients or keys, serving what they have) until their
// sessions are gone or drainTimeout passes, then stopped with a reason and
// forgotten; changed ones are restarted one after another. One change runs
// at a time.

// plan is what a reload changes.
type plan struct {
	added, removed, changed []string // ids, sorted
	unchanged               int
	next                    map[string]config.Server
}

// diff compares the running topology with env.
func (m *Master) diff(env *config.Env) plan {
	p := plan{next: map[string]config.Server{}}
	for _, s := range env.Servers {
		p.next[s.ID] = s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range m.idsLocked() {
		srv := m.servers[id]
		if !srv.configured {
			continue // not the master's: it runs of its own accord
		}
		s, ok := p.next[id]
		switch {
		case !ok:
			p.removed = append(p.removed, id)
		case !sameServer(srv.cfg, s):
			p.changed = append(p.changed, id)
		default:
			p.unchanged++
		}
	}
	for _, s := range env.Servers {
		if srv := m.servers[s.ID]; srv == nil || !srv.configured {
			p.added = append(p.added, s.ID)
		}
	}
	slices.Sort(p.added)
	return p
}

// sameServer reports whether two entries start the same server (the line
// it is on does not count, nor does having come from `master add`).
func sameServer(a, b config.Server) bool {
	a.Line, b.Line = 0, 0
	return reflect.DeepEqual(a, b)
}

// reloadable says why env cannot be applied to the running master: what
// only a new master (or `master update`) can change.
func (m *Master) reloadable(env *config.Env) error {
	var why []string
	if env.Master != m.env.Master {
		why = append(why, "[master] changed: stop the master alone (SIGTERM; the servers keep running) and start it again")
	}
	if env.SSH != m.env.SSH {
		why = append(why, "[ssh] changed: stop the master alone (SIGTERM; the servers keep running) and start it again")
	}
	if env.Binary != m.env.Binary || env.Base != m.env.Base {
		why = append(why, "binary or base changed: that is an update of every server (master update), not a reload")
	}
	if len(why) > 0 {
		return errors.New(strings.Join(why, "; "))
	}
	return nil
}

// beginChange takes the right to change the topology or the build (one
// reload, add, remove or update at a time); done gives it back.
func (m *Master) beginChange() (done func(), err error) {
	if !m.changing.TryLock() {
		return nil, status.Error(codes.FailedPrecondition, "another update, reload, add or remove is under way")
	}
	return m.changing.Unlock, nil
}

// Reload re-reads servers.toml and applies the difference.
func (a adminService) Reload(_ *masterpb.ReloadRequest, st grpc.ServerStreamingServer[masterpb.Progress]) error {
	m := a.m
	done, err := m.beginChange()
	if err != nil {
		return err
	}
	defer done()
	data, err := os.ReadFile(m.cfgAbs)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "nothing changed: %v", err)
	}
	env, err := config.Parse(m.cfgAbs, data, m.env.Name)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "nothing changed: %v", err)
	}
	if err := m.reloadable(env); err != nil {
		return status.Errorf(codes.InvalidArgument, "nothing changed: %v", err)
	}
	// What is applied from here on is this file: servers started from now
	// on read it.
	if err := writeFileAtomic(m.appliedConfig(), data); err != nil {
		return status.Errorf(codes.Internal, "nothing changed: keep a copy of the config: %v", err)
	}
	pl := m.diff(env)
	p := &progress{st: st, total: len(pl.added) + len(pl.removed) + len(pl.changed)}
	defer m.forward(p)()
	m.setRolling(env.Rolling)
	lbc := env.LB
	m.lbCfg.Store(&lbc)
	m.mu.Lock()
	m.removed = map[string]bool{} // the file decides again
	m.mu.Unlock()
	p.send(fmt.Sprintf("reload of %s: %d added (%s), %d removed (%s), %d changed (%s), %d unchanged", m.cfgAbs,
		len(pl.added), list(pl.added), len(pl.removed), list(pl.removed), len(pl.changed), list(pl.changed), pl.unchanged), false)
	m.log.Info("reloading", "config", m.cfgAbs, "added", pl.added, "removed", pl.removed, "changed", pl.changed)
	ctx := st.Context()

	// Capacity first: start what was added, then restart what changed,
	// then drain what was removed.
	var added []config.Server
	for _, id := range pl.added {
		added = append(added, pl.next[id])
	}
	for _, r := range m.addServers(ctx, added, false, p) {
		p.result(r)
	}
	for _, id := range pl.changed {
		p.result(m.replace(ctx, id, pl.next[id], p))
	}
	for _, r := range m.removeServers(ctx, pl.removed, "server removed from the cluster", p) {
		p.result(r)
	}
	m.saveState()
	if p.failed > 0 {
		return status.Errorf(codes.Aborted, "%d of %d changes failed", p.failed, p.total)
	}
	if p.total == 0 {
		p.send("nothing to change: the cluster runs what servers.toml says", false)
	}
	return nil
}

func list(ids []string) string {
	if len(ids) == 0 {
		return "-"
	}
	return strings.Join(ids, ", ")
}

// Add adds one server (not in servers.toml) and starts it.
func (a adminService) Add(req *masterpb.AddRequest, st grpc.ServerStreamingServer[masterpb.Progress]) error {
	m := a.m
	done, err := m.beginChange()
	if err != nil {
		return err
	}
	defer done()
	s, err := config.ServerFromFields(req.GetFields())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "add: %v", err)
	}
	p := &progress{st: st, total: 1}
	defer m.forward(p)()
	rs := m.addServers(st.Context(), []config.Server{s}, true, p)
	p.result(rs[0])
	m.saveState()
	if p.failed > 0 {
		return status.Errorf(codes.Aborted, "%s not added", s.ID)
	}
	return nil
}

// Remove drains the selected servers, stops them and forgets them.
func (a adminService) Remove(req *masterpb.StopRequest, st grpc.ServerStreamingServer[masterpb.Progress]) error {
	m := a.m
	done, err := m.beginChange()
	if err != nil {
		return err
	}
	defer done()
	ts, err := m.targets(req.GetSelect())
	if err != nil {
		return err
	}
	reason := req.GetReason()
	if reason == "" {
		reason = "server removed from the cluster"
	}
	ids := make([]string, len(ts))
	for i, t := range ts {
		ids[i] = t.id
	}
	p := &progress{st: st, total: len(ids)}
	defer m.forward(p)()
	for _, r := range m.removeServers(st.Context(), ids, reason, p) {
		p.result(r)
	}
	m.saveState()
	if p.failed > 0 {
		return status.Errorf(codes.Aborted, "%d of %d servers not removed", p.failed, p.total)
	}
	return nil
}

// addServers adds servers to the topology and waits until each runs.
// fromAdd marks servers that are not in servers.toml (`master add`): they
// are started with their description on the command line.
func (m *Master) addServers(ctx context.Context, ss []config.Server, fromAdd bool, p *progress) []opResult {
	results := make([]opResult, len(ss))
	waits := make([]chan opResult, len(ss))
	m.mu.Lock()
	for i, s := range ss {
		if err := m.clashLocked(s); err != nil {
			results[i] = opResult{id: s.ID, err: err}
			continue
		}
		srv := m.servers[s.ID]
		if srv == nil {
			// Back after a removal: its epochs go on from where they were.
			srv = &server{id: s.ID, state: masterpb.ServerState_STOPPED, epoch: m.forgotten[s.ID]}
			m.servers[s.ID] = srv
			delete(m.forgotten, s.ID)
		}
		// A registered server not in the config becomes the master's.
		srv.cfg, srv.configured, srv.added, srv.want = s, true, fromAdd, true
		srv.backoff, srv.nextTry, srv.autoStart = 0, time.Time{}, false
		delete(m.removed, s.ID)
		m.log.Info("server added", "server", s.ID, "type", s.Type, "host", s.Host, "port", s.Port)
		p.send(fmt.Sprintf("+ %s: %s on %s", s.ID, s.Type, net.JoinHostPort(s.Host, strconv.Itoa(s.Port))), false)
		since := srv.epoch
		if srv.hasProc() || srv.sess != nil {
			since = 0 // already running (registered of its own accord): fine as it is
		}
		ch := make(chan opResult, 1)
		waits[i] = ch
		go func() {
			ch <- m.await(ctx, s.ID, m.startTimeout()+launchTimeout, func(srv *server) (bool, string, error) {
				if since == 0 && srv.state == masterpb.ServerState_RUNNING {
					pid := int32(0)
					if srv.info != nil {
						pid = srv.info.GetPid()
					}
					return true, fmt.Sprintf("added: running on %s, pid %d", srv.cfg.Host, pid), nil
				}
				done, msg, err := m.startedCheck(since)(srv)
				if done && err == nil {
					msg = "added: " + msg
				}
				return done, msg, err
			})
		}()
	}
	m.notifyLocked()
	m.mu.Unlock()
	m.saveState()
	for i, ch := range waits {
		if ch != nil {
			results[i] = <-ch
		}
	}
	return results
}

// clashLocked says why s cannot join the running topology: its cluster or
// client address is another server's.
func (m *Master) clashLocked(s config.Server) error {
	for id, srv := range m.servers {
		if id == s.ID || !srv.configured {
			continue
		}
		c := srv.cfg
		if c.Host == s.Host && c.Port == s.Port {
			return fmt.Errorf("port %s:%d is %s's cluster port", s.Host, s.Port, id)
		}
		if s.ClientPort != 0 && c.ClientPort == s.ClientPort && c.ClientHost == s.ClientHost {
			return fmt.Errorf("client port %s:%d is %s's", s.ClientHost, s.ClientPort, id)
		}
		if s.MetricsPort != 0 && c.MetricsPort == s.MetricsPort && c.Host == s.Host {
			return fmt.Errorf("metrics port %s:%d is %s's", s.Host, s.MetricsPort, id)
		}
	}
	if srv := m.servers[s.ID]; srv != nil && srv.configured {
		return fmt.Errorf("%s is already in the cluster", s.ID)
	}
	return nil
}

// replace restarts a server whose entry changed with its new entry, and
// waits until the new instance runs.
func (m *Master) replace(ctx context.Context, id string, s config.Server, p *progress) opResult {
	m.mu.Lock()
	srv := m.servers[id]
	if srv == nil {
		m.mu.Unlock()
		return opResult{id: id, err: errors.New("gone meanwhile")}
	}
	old := srv.cfg
	p.send(fmt.Sprintf("~ %s: %s; restarting it", id, describeChange(old, s)), false)
	since := srv.epoch
	srv.cfg = s
	srv.want, srv.restartReq, srv.stopReason = true, true, "server restarting with a new configuration"
	srv.backoff, srv.nextTry, srv.autoStart, srv.killReq = 0, time.Time{}, false, false
	m.notifyLocked()
	m.mu.Unlock()
	r := m.await(ctx, id, termAfter+killAfter+m.startTimeout()+launchTimeout, m.startedCheck(since))
	if r.err == nil {
		r.msg = "restarted with its new entry: " + r.msg
	}
	return r
}

// describeChange names what differs between two entries of a server.
func describeChange(a, b config.Server) string {
	var d []string
	add := func(what string, x, y any) {
		if !reflect.DeepEqual(x, y) {
			d = append(d, fmt.Sprintf("%s %v → %v", what, x, y))
		}
	}
	add("type", a.Type, b.Type)
	add("host", a.Host, b.Host)
	add("port", a.Port, b.Port)
	add("clientHost", a.ClientHost, b.ClientHost)
	add("clientPort", a.ClientPort, b.ClientPort)
	add("frontend", a.Frontend, b.Frontend)
	add("group", a.Group, b.Group)
	add("autoRestart", a.AutoRestart, b.AutoRestart)
	add("args", a.Args, b.Args)
	add("env", a.Env, b.Env)
	add("tlsCert", a.TLSCert, b.TLSCert)
	add("tlsKey", a.TLSKey, b.TLSKey)
	add("metricsPort", a.MetricsPort, b.MetricsPort)
	if len(d) == 0 {
		return "changed"
	}
	return strings.Join(d, ", ")
}

// removeServers drains the servers (the gate and placement offer them
// nothing new at once), waits until their sessions are gone or
// drainTimeout passed, stops them with reason and forgets them.
func (m *Master) removeServers(ctx context.Context, ids []string, reason string, p *progress) []opResult {
	results := make([]opResult, len(ids))
	if len(ids) == 0 {
		return results
	}
	drainFor := m.drainTimeout()
	m.mu.Lock()
	for _, id := range ids {
		srv := m.servers[id]
		if srv == nil {
			continue
		}
		m.drainLocked(srv, reason)
		p.send(fmt.Sprintf("- %s: draining (%d sessions; up to %s)", id, srv.conns, drainFor), false)
	}
	m.mu.Unlock()
	if err := m.waitDrained(ctx, ids, drainFor, reason, p); err != nil {
		for i, id := range ids {
			results[i] = opResult{id: id, err: err}
		}
		return results
	}
	byID := m.stopIDs(ctx, ids, reason)
	m.mu.Lock()
	for i, id := range ids {
		r, ok := byID[id]
		if !ok {
			r = opResult{id: id, msg: "was not in the cluster"}
		} else if r.err == nil {
			m.forgetLocked(id)
			r.msg = "removed: " + r.msg
		}
		results[i] = r
	}
	m.notifyLocked()
	m.mu.Unlock()
	return results
}

// waitDrained waits until the servers have no sessions left, or d passed
// (then their stop kicks the rest with reason), all together. It fails only
// when the master shuts down.
func (m *Master) waitDrained(ctx context.Context, ids []string, d time.Duration, reason string, p *progress) error {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	begin := time.Now()
	for {
		m.mu.Lock()
		left, unknown := 0, 0
		for _, id := range ids {
			srv := m.servers[id]
			switch {
			case srv == nil || srv.sess == nil:
				// Not registered: nobody is connected through it.
			case !srv.connsAt.After(begin):
				// No count since the drain began: a master that has just
				// adopted the server has none at all, and 0 would stop a
				// frontend full of players.
				unknown++
			default:
				left += int(srv.conns)
			}
		}
		ch := m.changed
		m.mu.Unlock()
		if left == 0 && unknown == 0 {
			if took := time.Since(begin); took > time.Second {
				p.send(fmt.Sprintf("drained after %s", took.Round(100*time.Millisecond)), false)
			}
			return nil
		}
		select {
		case <-ch:
			continue
		case <-deadline.C:
			p.send(fmt.Sprintf("%d sessions still there after drainTimeout (%s): stopping, they are kicked with %q", left, d, reason), false)
		case <-ctx.Done():
			p.send("the client went away; stopping anyway", true)
		case <-m.ctx.Done():
			return errMasterClosing
		}
		return nil
	}
}

// stopIDs stops the servers gracefully (clients kicked with reason),
// frontends first so that their session-close hooks still reach the
// backends, and returns how each went.
func (m *Master) stopIDs(ctx context.Context, ids []string, reason string) map[string]opResult {
	procs := map[string]procAt{}
	var ts []target
	m.mu.Lock()
	for _, id := range ids {
		if srv := m.servers[id]; srv != nil {
			srv.want, srv.hold, srv.restartReq, srv.autoStart, srv.stopReason = false, true, false, false, reason
			procs[id] = srv.procAt()
			_, _, front := srv.typeGroup()
			ts = append(ts, target{id: id, frontend: front})
		}
	}
	m.mu.Unlock()
	byID := map[string]opResult{}
	for _, phase := range stopPhases(ts) {
		m.mu.Lock()
		for _, t := range phase {
			if srv := m.servers[t.id]; srv != nil {
				srv.hold = false
			}
		}
		m.notifyLocked()
		m.mu.Unlock()
		ch := make(chan opResult, len(phase))
		for _, t := range phase {
			pa := procs[t.id]
			go func() {
				ch <- m.await(ctx, t.id, termAfter+killAfter+10*time.Second, stoppedCheck(pa.pid, pa.host))
			}()
		}
		for range phase {
			r := <-ch
			byID[r.id] = r
		}
	}
	return byID
}

// drainLocked tells a server to drain and publishes it as DRAINING at once
// (its own report follows).
func (m *Master) drainLocked(srv *server, reason string) {
	srv.draining = true
	if srv.sess != nil {
		m.sendLocked(srv, srv.sess, &masterpb.MasterMessage{Msg: &masterpb.MasterMessage_Command{Command: &masterpb.Command{
			Cmd: &masterpb.Command_Drain{Drain: &masterpb.DrainCommand{Reason: reason}}}}})
	}
	if srv.state == masterpb.ServerState_RUNNING || srv.state == masterpb.ServerState_STARTING {
		m.setStateLocked(srv, masterpb.ServerState_DRAINING, reason)
	}
	m.log.Info("draining server", "server", srv.id, "sessions", srv.conns, "reason", reason)
}

// forgetLocked drops a stopped server from the topology and the
// membership; its epoch is kept, so that a server added again with its id
// starts above it.
func (m *Master) forgetLocked(id string) {
	srv := m.servers[id]
	if srv == nil || srv.hasProc() || srv.sess != nil {
		return
	}
	delete(m.servers, id)
	m.removed[id] = true
	m.forgotten[id] = srv.epoch
	if srv.info != nil {
		m.broadcastLocked(&masterpb.MasterMessage{Msg: &masterpb.MasterMessage_Removed{Removed: id}}, nil)
	}
	m.log.Info("server removed", "server", id)
}
