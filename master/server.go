package master

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/master/launch"
	"github.com/shaddock/shaddock/proto/masterpb"
)

// server is the master's view of one server id: what should be (desired
// state, set by the config and by commands) and what is (its process,
// seen through a launcher, and its registry stream). The reconcile loop
// (supervise.go) moves the second towards the first. Fields are guarded by
// Master.mu.
//
// Published states, as `master list` and the cluster see them:
//
//	STOPPED  ─ start ─►  STARTING ─ registers ─► what it reports (RUNNING,
//	   ▲                    │                     DRAINING, STOPPING)
//	   │                    └─ exec error, exit or no registration ─► FAILED
//	   └── exit after a stop or kill
//	LOST: exited unasked, stream ended, silent for 5 s, or a re-adopted
//	server that did not come back. A lost server whose process lives on
//	(a cut-off host) is never started a second time; one whose process
//	ended is restarted with backoff if autoRestart.
type server struct {
	id         string
	cfg        config.Server // zero for a server not in the config
	configured bool          // the master starts it: from servers.toml, or added
	added      bool          // by `master add`, not from servers.toml: started with its description
	draining   bool          // told to drain: published DRAINING until it stops

	// Desired state.
	want       bool   // it should run
	hold       bool   // not now: a stop of several servers has yet to reach it
	killReq    bool   // stop it with SIGKILL, not gracefully
	restartReq bool   // stop the instance, then start a new one
	stopReason string // kick reason for its clients
	autoStart  bool   // the next start is an automatic restart

	// Observed: the process.
	inst     *instance // the process this master started or adopted, nil if none
	starting bool      // a launcher start is in flight
	epoch    uint64    // highest epoch given to, or seen from, an instance of this id

	// Observed: the registry.
	sess     *session             // current registry stream, nil when not connected
	info     *masterpb.ServerInfo // from the last Hello; nil until registered
	lastSeen time.Time
	conns    int32
	connsAt  time.Time // when conns was reported (a heartbeat); zero until then
	stopSent bool      // the stop command went to a server that is not ours
	waitReg  time.Time // its port answered with no known process: wait until then for it to register

	state    masterpb.ServerState // published
	reason   string               // why it is lost, failed or stopped
	tail     string               // last lines of its log when it failed
	restarts int32
	backoff  time.Duration
	nextTry  time.Time // no automatic restart before then
}

// instance is one process of a server: started by this master, or adopted
// (from the state file, or when it registered).
type instance struct {
	epoch      uint64
	h          launch.Handle
	l          launch.Launcher
	adopted    bool
	started    time.Time
	registerBy time.Time // deadline for its first registration; zero once past or met
	registered bool      // a Hello from this instance arrived
	stopping   bool      // a stop or kill is under way: its end is STOPPED, not LOST
	killing    bool
	doneOnce   sync.Once
	done       chan struct{} // closed once its end is recorded
}

func newInstance(epoch uint64, h launch.Handle, l launch.Launcher, adopted bool, registerBy time.Time) *instance {
	return &instance{epoch: epoch, h: h, l: l, adopted: adopted, started: time.Now(), registerBy: registerBy, done: make(chan struct{})}
}

// hasProc reports whether the server has, or is getting, a process.
func (s *server) hasProc() bool { return s.inst != nil || s.starting }

// typeGroup returns the type, group and frontend flag selectors match on.
func (s *server) typeGroup() (typ, group string, frontend bool) {
	if !s.configured && s.info != nil {
		return s.info.GetType(), s.info.GetGroup(), s.info.GetFrontend()
	}
	return s.cfg.Type, s.cfg.Group, s.cfg.Frontend
}

// host is where the server runs.
func (s *server) host() string {
	if s.configured {
		return s.cfg.Host
	}
	return s.info.GetHost()
}

// notifyLocked wakes everyone waiting for a change, and the reconcile loop.
func (m *Master) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
	m.kick()
}

// kick wakes the reconcile loop.
func (m *Master) kick() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// setStateLocked changes a server's state and reason, and tells the
// cluster if the server is a member.
func (m *Master) setStateLocked(srv *server, st masterpb.ServerState, reason string) {
	if srv.state == st {
		if srv.reason != reason {
			srv.reason = reason
			m.notifyLocked()
		}
		return
	}
	srv.state, srv.reason = st, reason
	if srv.info != nil {
		m.broadcastLocked(&masterpb.MasterMessage{Msg: &masterpb.MasterMessage_Upsert{Upsert: srv.member()}}, nil)
	}
	if st == masterpb.ServerState_RUNNING {
		m.runningLocked(srv)
	}
	m.notifyLocked()
}

// runningLocked reports a server reaching RUNNING.
func (m *Master) runningLocked(srv *server) {
	running, total := m.countsLocked()
	pid := 0
	if srv.inst != nil {
		pid = srv.inst.h.PID
	} else if srv.info != nil {
		pid = int(srv.info.GetPid())
	}
	msg := srv.id + " running"
	if h := srv.host(); h != "" {
		msg += " on " + h
	}
	m.log.Info("server running", "server", srv.id, "pid", pid, "running", running, "of", total)
	if m.initial.Load() {
		m.note(fmt.Sprintf("%s, pid %d (%d/%d)", msg, pid, running, total), false)
	}
}

// countsLocked returns how many configured servers run, of how many.
func (m *Master) countsLocked() (running, total int) {
	for _, srv := range m.servers {
		if srv.configured {
			total++
			if srv.state == masterpb.ServerState_RUNNING {
				running++
			}
		}
	}
	return running, total
}

// member is the server as the registry publishes it.
func (s *server) member() *masterpb.Member {
	return &masterpb.Member{Info: s.info, State: s.state}
}

// snapshotLocked is the whole membership: every server that has registered,
// in every state, sorted by id.
func (m *Master) snapshotLocked() *masterpb.MasterMessage {
	var members []*masterpb.Member
	for _, id := range m.idsLocked() {
		if srv := m.servers[id]; srv.info != nil {
			members = append(members, srv.member())
		}
	}
	return &masterpb.MasterMessage{Msg: &masterpb.MasterMessage_Membership{Membership: &masterpb.Membership{Members: members}}}
}

// idsLocked returns every server id, sorted byte-wise.
func (m *Master) idsLocked() []string {
	ids := make([]string, 0, len(m.servers))
	for id := range m.servers {
		ids = append(ids, id)
	}
	return sortedIDs(ids)
}

func sortedIDs(ids []string) []string {
	slices.Sort(ids)
	return ids
}

// statusLocked is a server's line in List.
func (m *Master) statusLocked(srv *server, now time.Time) *masterpb.ServerStatus {
	info := &masterpb.ServerInfo{Id: srv.id}
	if srv.configured {
		c := srv.cfg
		info.Type, info.Host, info.Port = c.Type, c.Host, int32(c.Port)
		info.ClientHost, info.ClientPort, info.Frontend, info.Group = c.ClientHost, int32(c.ClientPort), c.Frontend, c.Group
	} else if srv.info != nil {
		i := srv.info
		info.Type, info.Host, info.Port = i.Type, i.Host, i.Port
		info.ClientHost, info.ClientPort, info.Frontend, info.Group = i.ClientHost, i.ClientPort, i.Frontend, i.Group
	}
	var started time.Time
	switch {
	case srv.inst != nil:
		info.Pid, info.Epoch, started = int32(srv.inst.h.PID), srv.inst.epoch, srv.inst.h.Started
	case srv.sess != nil && srv.info != nil:
		info.Pid, info.Epoch = srv.info.Pid, srv.info.Epoch
	}
	if srv.info != nil && info.Pid != 0 && info.Pid == srv.info.Pid {
		info.Build = srv.info.Build
		if ms := srv.info.StartedUnixMs; ms > 0 {
			started = time.UnixMilli(ms)
		}
	}
	st := &masterpb.ServerStatus{Info: info, State: srv.state, Restarts: srv.restarts}
	switch srv.state {
	case masterpb.ServerState_LOST, masterpb.ServerState_FAILED, masterpb.ServerState_STOPPED, masterpb.ServerState_STARTING:
		st.Reason = srv.reason
	}
	if info.Pid != 0 {
		st.Connections = srv.conns
		if !started.IsZero() {
			info.StartedUnixMs = started.UnixMilli()
			st.UptimeMs = max(0, now.Sub(started).Milliseconds())
		}
	}
	return st
}
