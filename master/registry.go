package master

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shaddock/shaddock/proto/masterpb"
)

// helloTimeout bounds the wait for a new stream's first message.
const helloTimeout = 10 * time.Second

// sessionQueue is how many messages may wait for a slow server before the
// master drops its stream (it reconnects and gets a fresh snapshot).
const sessionQueue = 1024

// session is one server's registry stream. Its fields are guarded by
// Master.mu; out is written only under it.
type session struct {
	id     string
	out    chan *masterpb.MasterMessage
	cancel context.CancelFunc
	synced bool   // has had its membership snapshot
	ended  bool   // the master ended it; why says why
	why    string // set when ended by the master
}

type registryService struct {
	masterpb.UnimplementedRegistryServer
	m *Master
}

// Register is a server's registration stream: Hello, then heartbeats; the
// master sends the membership (once settled), its changes and commands.
func (r registryService) Register(st grpc.BidiStreamingServer[masterpb.ServerMessage, masterpb.MasterMessage]) error {
	m := r.m
	ctx, cancel := context.WithCancel(st.Context())
	defer cancel()
	s := &session{out: make(chan *masterpb.MasterMessage, sessionQueue), cancel: cancel}
	defer m.sessionEnded(s)

	// The receiver runs beside the handler: the handler owns Send and
	// returns when the stream or the master ends the session; the receiver's
	// Recv then fails and it exits.
	helloed := make(chan error, 1)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer cancel()
		first := true
		for {
			msg, err := st.Recv()
			if err != nil {
				if first {
					helloed <- err
				}
				return
			}
			if first {
				first = false
				h := msg.GetHello()
				if h == nil || h.GetInfo().GetId() == "" {
					helloed <- status.Error(codes.InvalidArgument, "the first message must be a Hello with the server's id")
					return
				}
				helloed <- m.hello(s, h)
				continue
			}
			if hb := msg.GetHeartbeat(); hb != nil {
				m.heartbeat(s, hb)
			}
		}
	}()
	t := time.NewTimer(helloTimeout)
	defer t.Stop()
	select {
	case err := <-helloed:
		if err != nil {
			return err
		}
	case <-t.C:
		return status.Errorf(codes.DeadlineExceeded, "no Hello within %s", helloTimeout)
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
	for {
		select {
		case <-ctx.Done():
			m.mu.Lock()
			why := s.why
			m.mu.Unlock()
			if why != "" {
				return status.Error(codes.Unavailable, why)
			}
			return status.FromContextError(ctx.Err()).Err()
		case msg := <-s.out:
			if err := st.Send(msg); err != nil {
				return err
			}
		}
	}
}

// hello registers a session for the server it names.
func (m *Master) hello(s *session, h *masterpb.Hello) error {
	adopted, err := m.helloLocked(s, h)
	if adopted {
		m.saveState()
	}
	return err
}

func (m *Master) helloLocked(s *session, h *masterpb.Hello) (adopted bool, err error) {
	info := h.GetInfo()
	id := info.GetId()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return false, status.Error(codes.Unavailable, "master shutting down")
	}
	srv := m.servers[id]
	if srv == nil {
		srv = &server{id: id, state: masterpb.ServerState_STOPPED}
		m.servers[id] = srv
		m.log.Info(id+" registered; it is not in the config", "server", id, "type", info.GetType(), "addr", fmt.Sprintf("%s:%d", info.GetHost(), info.GetPort()))
	} else if c := srv.cfg; srv.configured && (c.Type != info.GetType() || c.Host != info.GetHost() || int32(c.Port) != info.GetPort()) {
		m.log.Warn(id+" registered with a type or address that differs from the config", "server", id,
			"config", fmt.Sprintf("%s %s:%d", c.Type, c.Host, c.Port), "hello", fmt.Sprintf("%s %s:%d", info.GetType(), info.GetHost(), info.GetPort()))
	}
	if srv.sess != nil {
		m.endSessionLocked(srv, "replaced by a new registration")
	}
	pid := int(info.GetPid())
	prev := 0 // the process the master knows for this server
	if srv.proc != nil {
		prev = srv.proc.pid
	} else if srv.info != nil {
		prev = int(srv.info.GetPid())
	}
	sameProcess := pid > 0 && pid == prev
	if srv.stopping && !sameProcess && srv.proc == nil {
		srv.stopping = false // stopped earlier, and started again by someone else
	}
	s.id = id
	srv.sess, srv.info, srv.lastSeen, srv.adoptBy = s, info, time.Now(), time.Time{}
	switch {
	case srv.proc == nil && !srv.spawning && srv.configured && pid > 0 && isLocalHost(srv.cfg.Host) &&
		isServerProcess(pid, m.binary, m.env.Name, id):
		// Running, but with no pid on record (the state file was lost):
		// supervise it from now on.
		started := time.Now()
		if ms := info.GetStartedUnixMs(); ms > 0 {
			started = time.UnixMilli(ms)
		}
		m.adoptLocked(srv, &proc{pid: pid, started: started, adopted: true, binary: m.binary, env: m.env.Name, id: id, done: make(chan struct{})})
		srv.adoptBy = time.Time{}
		m.log.Info(fmt.Sprintf("adopted %s pid %d: found running when it registered", id, pid), "server", id, "pid", pid)
		adopted = true
	case srv.proc != nil && pid != srv.proc.pid:
		m.log.Warn(id+" registered from a process the master did not start", "server", id, "pid", pid, "started_pid", srv.proc.pid)
	}
	if srv.stopping && sameProcess {
		// Asked to stop before its stream broke: ask again (a server acts
		// on the first stop command only).
		m.sendLocked(srv, s, stopCommand(srv.stopReason))
	}
	st := h.GetState()
	if st == masterpb.ServerState_SERVER_STATE_UNSPECIFIED {
		st = masterpb.ServerState_STARTING
	}
	old := srv.state
	srv.state = st
	m.log.Debug(id+" registered", "server", id, "pid", pid, "state", st)
	if m.settled {
		m.sendLocked(srv, s, m.snapshotLocked())
		s.synced = true
		m.broadcastLocked(&masterpb.MasterMessage{Msg: &masterpb.MasterMessage_Upsert{Upsert: srv.member()}}, s)
	} else {
		delete(m.settleWait, id)
		if len(m.settleWait) == 0 {
			m.settleLocked("every running server re-registered")
		}
	}
	if st == masterpb.ServerState_RUNNING && old != st {
		m.runningLocked(srv)
	}
	m.notifyLocked()
	return adopted, nil
}

// heartbeat records a server's liveness, state and connection count.
func (m *Master) heartbeat(s *session, hb *masterpb.Heartbeat) {
	m.mu.Lock()
	defer m.mu.Unlock()
	srv := m.servers[s.id]
	if srv == nil || srv.sess != s {
		return // the master ended this session
	}
	srv.lastSeen = time.Now()
	srv.conns = hb.GetConnections()
	if st := hb.GetState(); st != masterpb.ServerState_SERVER_STATE_UNSPECIFIED {
		m.setStateLocked(srv, st)
	}
}

// sessionEnded runs when a registration stream ends. If the server was not
// stopping, it is lost; its process, if the master has it, is watched
// separately.
func (m *Master) sessionEnded(s *session) {
	m.mu.Lock()
	defer m.mu.Unlock()
	srv := m.servers[s.id]
	if srv == nil || srv.sess != s {
		return // never registered, or ended by the master
	}
	srv.sess = nil
	s.ended = true
	if m.closing {
		return
	}
	if srv.stopping || srv.state == masterpb.ServerState_STOPPING {
		if srv.proc == nil && !srv.spawning {
			// No process to watch: the stream was its only sign of life.
			m.setStateLocked(srv, masterpb.ServerState_STOPPED)
			if !srv.configured {
				delete(m.servers, srv.id)
				m.broadcastLocked(&masterpb.MasterMessage{Msg: &masterpb.MasterMessage_Removed{Removed: srv.id}}, nil)
			}
		}
	} else {
		m.log.Warn(srv.id+" lost: its registry stream ended", "server", srv.id)
		m.setStateLocked(srv, masterpb.ServerState_LOST)
	}
	m.notifyLocked()
}

// endSessionLocked ends a server's current stream from the master's side.
func (m *Master) endSessionLocked(srv *server, why string) {
	s := srv.sess
	if s == nil {
		return
	}
	srv.sess = nil
	s.ended, s.why = true, why
	s.cancel()
}

// sendLocked queues a message for one session; a session that cannot keep
// up is dropped (the server reconnects and resynchronises).
func (m *Master) sendLocked(srv *server, s *session, msg *masterpb.MasterMessage) {
	if s.ended {
		return
	}
	select {
	case s.out <- msg:
	default:
		m.log.Warn(srv.id+"'s registry stream is not keeping up; dropping it", "server", srv.id)
		m.endSessionLocked(srv, "too slow")
	}
}

// broadcastLocked sends msg to every server that has its snapshot, except
// skip.
func (m *Master) broadcastLocked(msg *masterpb.MasterMessage, skip *session) {
	for _, srv := range m.servers {
		if s := srv.sess; s != nil && s != skip && s.synced {
			m.sendLocked(srv, s, msg)
		}
	}
}

// settleLocked ends the settling period: every connected server gets its
// snapshot, and changes flow from now on.
func (m *Master) settleLocked(why string) {
	if m.settled {
		return
	}
	m.settled = true
	m.settleWait = nil
	snap := m.snapshotLocked()
	n := 0
	for _, srv := range m.servers {
		if s := srv.sess; s != nil && !s.synced {
			m.sendLocked(srv, s, snap)
			s.synced = true
			n++
		}
	}
	m.log.Info("membership settled: "+why, "members", len(snap.GetMembership().GetMembers()), "sent_to", n)
}
