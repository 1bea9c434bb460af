package master

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shaddock/shaddock/master/launch"
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
				err := m.hello(s, h)
				if sup, ok := err.(errSuperseded); ok {
					// The stream is not the server's session: send the stop
					// here, then refuse.
					st.Send(stopCommand(fmt.Sprintf("superseded: this is epoch %d of %s, the master runs epoch %d", sup.epoch, sup.id, sup.have)))
					err = status.Error(codes.FailedPrecondition, sup.Error())
				}
				helloed <- err
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

// errSuperseded refuses the registration of an instance older than the
// one the master runs for its id.
type errSuperseded struct {
	id          string
	epoch, have uint64
}

func (e errSuperseded) Error() string {
	return fmt.Sprintf("%s epoch %d is superseded by epoch %d", e.id, e.epoch, e.have)
}

// hello registers a session for the server it names.
func (m *Master) hello(s *session, h *masterpb.Hello) error {
	adopt, err := m.helloLocked(s, h)
	if adopt != nil {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			adopt()
		}()
	}
	return err
}

func (m *Master) helloLocked(s *session, h *masterpb.Hello) (adopt func(), err error) {
	info := h.GetInfo()
	id, epoch, pid := info.GetId(), info.GetEpoch(), int(info.GetPid())
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return nil, status.Error(codes.Unavailable, "master shutting down")
	}
	srv := m.servers[id]
	if srv == nil {
		// Running of its own accord: wanted until someone stops it.
		srv = &server{id: id, state: masterpb.ServerState_STOPPED, want: true}
		m.servers[id] = srv
		m.log.Info("server registered; it is not in the config", "server", id, "type", info.GetType(), "addr", fmt.Sprintf("%s:%d", info.GetHost(), info.GetPort()))
	} else if c := srv.cfg; srv.configured && (c.Type != info.GetType() || c.Host != info.GetHost() || int32(c.Port) != info.GetPort()) {
		m.log.Warn("server registered with a type or address that differs from the config", "server", id,
			"config", fmt.Sprintf("%s %s:%d", c.Type, c.Host, c.Port), "hello", fmt.Sprintf("%s %s:%d", info.GetType(), info.GetHost(), info.GetPort()))
	}
	inst := srv.inst
	if inst != nil && epoch != 0 && inst.epoch != 0 && epoch < inst.epoch {
		m.log.Warn("a superseded instance registered; asking it to stop", "server", id, "epoch", epoch, "current", inst.epoch, "pid", pid)
		return nil, errSuperseded{id, epoch, inst.epoch}
	}
	if srv.sess != nil {
		m.endSessionLocked(srv, "replaced by a new registration")
	}
	s.id = id
	srv.sess, srv.info, srv.lastSeen, srv.waitReg = s, info, time.Now(), time.Time{}
	srv.epoch = max(srv.epoch, epoch)
	switch {
	case inst != nil && ((epoch != 0 && epoch == inst.epoch) || (pid > 0 && pid == inst.h.PID)):
		inst.registered, inst.registerBy = true, time.Time{}
		if inst.stopping && !inst.killing {
			// Asked to stop before its stream broke: ask again (a server
			// acts on the first stop command only).
			m.sendLocked(srv, s, stopCommand(srv.stopReason))
		}
	case inst == nil && srv.configured && !srv.starting && pid > 0:
		adopt = m.adoptRegistered(srv, s, info)
	case inst != nil:
		m.log.Warn("server registered from a process the master did not start", "server", id, "pid", pid, "epoch", epoch,
			"started_pid", inst.h.PID, "started_epoch", inst.epoch)
	}
	if !srv.want && inst == nil {
		srv.stopSent = false // asked to stop, and back: ask again (the reconcile loop does)
	}
	st := h.GetState()
	if st == masterpb.ServerState_SERVER_STATE_UNSPECIFIED {
		st = masterpb.ServerState_STARTING
	}
	if srv.draining {
		// Told to drain before its stream broke: tell it again.
		m.sendLocked(srv, s, &masterpb.MasterMessage{Msg: &masterpb.MasterMessage_Command{Command: &masterpb.Command{
			Cmd: &masterpb.Command_Drain{Drain: &masterpb.DrainCommand{Reason: srv.stopReason}}}}})
		if st == masterpb.ServerState_RUNNING {
			st = masterpb.ServerState_DRAINING
		}
	}
	old := srv.state
	srv.state, srv.reason = st, ""
	m.log.Debug("server registered", "server", id, "pid", pid, "epoch", epoch, "state", st)
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
	return adopt, nil
}

// adoptRegistered returns what supervises a configured server that
// registered while the master knew no process of it (its state file was
// lost, say): once its launcher confirms the pid runs this server, it is
// the server's instance.
func (m *Master) adoptRegistered(srv *server, s *session, info *masterpb.ServerInfo) func() {
	c := srv.cfg
	l, err := m.hosts.launcher(c.Host)
	if err != nil {
		return nil
	}
	driver := launch.DriverSSH
	if isLocalHost(c.Host) {
		driver = launch.DriverLocal
	}
	h := launch.Handle{Driver: driver, Host: c.Host, ID: c.ID, PID: int(info.GetPid()), Binary: m.binary, Log: m.logPath(c)}
	if ms := info.GetStartedUnixMs(); ms > 0 {
		h.Started = time.UnixMilli(ms)
	}
	epoch := info.GetEpoch()
	return func() {
		ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
		defer cancel()
		if err := l.Recover(ctx, h); err != nil {
			m.log.Warn("registered server not adopted: its process cannot be confirmed", "server", c.ID, "pid", h.PID, "host", c.Host, "err", err)
			return
		}
		m.mu.Lock()
		if srv.inst != nil || srv.starting || srv.sess != s {
			m.mu.Unlock()
			return
		}
		inst := newInstance(epoch, h, l, true, time.Time{})
		inst.registered = true
		srv.inst = inst
		m.notifyLocked()
		m.mu.Unlock()
		m.log.Info("adopted server: found running when it registered", "server", c.ID, "pid", h.PID, "host", c.Host)
		m.saveState()
		m.watch(srv, inst)
	}
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
	srv.conns, srv.connsAt = hb.GetConnections(), srv.lastSeen
	if srv.draining {
		m.notifyLocked() // a drain waits on this server's session count
	}
	st := hb.GetState()
	if srv.draining && st == masterpb.ServerState_RUNNING {
		st = masterpb.ServerState_DRAINING // sent before it heard the drain command
	}
	if st != masterpb.ServerState_SERVER_STATE_UNSPECIFIED && st != srv.state {
		m.setStateLocked(srv, st, srv.reason)
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
	stopping := (srv.inst != nil && srv.inst.stopping) || srv.state == masterpb.ServerState_STOPPING || srv.stopSent
	switch {
	case stopping && !srv.hasProc():
		// No process to watch: the stream was its only sign of life.
		m.setStateLocked(srv, masterpb.ServerState_STOPPED, "stopped (its stream ended; this master did not start it)")
		if !srv.configured {
			delete(m.servers, srv.id)
			m.broadcastLocked(&masterpb.MasterMessage{Msg: &masterpb.MasterMessage_Removed{Removed: srv.id}}, nil)
		}
	case stopping:
		// its process's end follows
	default:
		m.log.Warn("server lost: its registry stream ended", "server", srv.id)
		m.setStateLocked(srv, masterpb.ServerState_LOST, "its registry stream ended")
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
	// Those still missing go out as lost (their last registration came
	// from the state file): every server then knows not to route to them
	// until they are back.
	for id := range m.settleWait {
		if srv := m.servers[id]; srv != nil && srv.sess == nil {
			srv.state, srv.reason = masterpb.ServerState_LOST, fmt.Sprintf("did not re-register within %s of the master's start", settleGrace)
		}
	}
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
