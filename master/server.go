package master

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/proto/masterpb"
)

// server is the master's view of one server: configured, registered, or
// both. Its fields are guarded by Master.mu.
//
// States as the master sees them:
//
//	STOPPED  ── start ──► STARTING ── Hello/heartbeat ──► (what it reports:
//	   ▲                                                    STARTING, RUNNING,
//	   │ exit after a stop/kill                             DRAINING, STOPPING)
//	   └─────────────────────────────────────────────────────────┘
//	LOST: its process exited unasked, its stream ended while it was not
//	stopping, it was silent for 5 s, or a re-adopted server never came back.
//	A LOST server that registers again takes the state it reports; one whose
//	process exited is restarted (with backoff) if autoRestart.
type server struct {
	id         string
	cfg        config.Server // zero for a server not in the config
	configured bool

	info     *masterpb.ServerInfo // from the last Hello; nil until registered
	state    masterpb.ServerState
	conns    int32
	sess     *session // current registry stream, nil when not connected
	lastSeen time.Time

	proc       *proc // the process this master started or adopted, nil if none
	spawning   bool  // a start is in progress
	want       bool  // it should run: an unasked exit is restarted (if autoRestart)
	stopping   bool  // asked to stop or killed: its exit is STOPPED, not LOST
	stopReason string
	restarts   int32
	backoff    time.Duration
	gen        int       // bumped by start/stop; a pending auto-restart of an older gen is void
	adoptBy    time.Time // found running at start: must re-register by then
	lastErr    string    // why the last start failed or how the process ended
}

// proc is a server process the master started or adopted. Only pids held
// here are ever signalled.
type proc struct {
	pid      int
	started  time.Time
	adopted  bool // not our child: watched by polling /proc
	binary   string
	env, id  string
	done     chan struct{} // closed once its end has been recorded (Master.exited)
	mu       sync.Mutex
	ended    bool
	status   string // how it ended
	notChild bool   // reap said so: poll by pid
}

var errEnded = errors.New("process has ended")

// signal sends sig if the process is still the one we started: a reaped
// child's pid may be reused, and an adopted pid is checked against its
// command line first.
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return errEnded
	}
	if (p.adopted || p.notChild) && !isServerProcess(p.pid, p.binary, p.env, p.id) {
		return errEnded
	}
	if err := signalPid(p.pid, sig); err != nil {
		return fmt.Errorf("signal %s pid %d: %w", p.id, p.pid, err)
	}
	return nil
}

// poll checks, without blocking, whether the process has ended, and closes
// done if so.
func (p *proc) poll() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return true
	}
	var ended bool
	var status string
	if !p.adopted && !p.notChild {
		var err error
		ended, status, err = reap(p.pid)
		if errors.Is(err, errNotChild) {
			p.notChild = true // reaped elsewhere, or a child of an earlier master in this process
		} else if err != nil {
			ended, status = !alive(p.pid), "ended (status unknown: "+err.Error()+")"
		}
	}
	if p.adopted || p.notChild {
		if !isServerProcess(p.pid, p.binary, p.env, p.id) {
			ended, status = true, "exited (adopted: exit status unknown)"
		}
	}
	if ended {
		p.ended, p.status = true, status
	}
	return ended
}

// exitStatus is how the process ended; call after poll reported it.
func (p *proc) exitStatus() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// notifyLocked wakes everyone waiting for a change.
func (m *Master) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// setStateLocked changes a server's state, tells the cluster if the server
// is a member, and logs start-up progress.
func (m *Master) setStateLocked(srv *server, st masterpb.ServerState) {
	if srv.state == st {
		return
	}
	srv.state = st
	if srv.info != nil {
		m.broadcastLocked(&masterpb.MasterMessage{Msg: &masterpb.MasterMessage_Upsert{Upsert: srv.member()}}, nil)
	}
	if st == masterpb.ServerState_RUNNING {
		m.runningLocked(srv)
	}
	m.notifyLocked()
}

// runningLocked logs start-up progress when a server reaches RUNNING.
func (m *Master) runningLocked(srv *server) {
	running, total := m.countsLocked()
	m.log.Info(fmt.Sprintf("%s running (%d/%d)", srv.id, running, total), "server", srv.id)
	if srv.configured && running == total {
		m.log.Info(fmt.Sprintf("all %d servers running", total))
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

// withProcLocked counts configured servers that have a process.
func (m *Master) withProcLocked() (n int) {
	for _, srv := range m.servers {
		if srv.configured && srv.proc != nil {
			n++
		}
	}
	return n
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
	case srv.proc != nil:
		info.Pid, started = int32(srv.proc.pid), srv.proc.started
	case srv.sess != nil && srv.info != nil:
		info.Pid = srv.info.Pid
	}
	if srv.info != nil && info.Pid != 0 && info.Pid == srv.info.Pid {
		info.Build = srv.info.Build
		if ms := srv.info.StartedUnixMs; ms > 0 {
			started = time.UnixMilli(ms)
		}
	}
	st := &masterpb.ServerStatus{Info: info, State: srv.state, Restarts: srv.restarts}
	if info.Pid != 0 {
		st.Connections = srv.conns
		if !started.IsZero() {
			info.StartedUnixMs = started.UnixMilli()
			st.UptimeMs = max(0, now.Sub(started).Milliseconds())
		}
	}
	return st
}
