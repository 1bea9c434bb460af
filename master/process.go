package master

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/proto/masterpb"
)

// SecretEnv is the environment variable that carries the cluster secret to
// the servers the master starts (app.SecretEnv reads it).
const SecretEnv = "SHADDOCK_CLUSTER_SECRET"

// recover re-adopts the servers an earlier master left running: those whose
// recorded pid still runs this server (by its command line), and those whose
// cluster port answers although no pid is known (found again when they
// register). Until they have re-registered, or settleGrace has passed, no
// membership snapshot is sent.
func (m *Master) recover() {
	st, err := readState(m.paths.StateFile(m.env.Name))
	if err != nil {
		m.log.Warn("ignoring the state file", "err", err)
	}
	now := time.Now()
	var probe []config.Server
	m.mu.Lock()
	m.settleBy = now.Add(settleGrace)
	m.settleWait = map[string]bool{}
	_, total := m.countsLocked()
	for _, id := range m.idsLocked() {
		srv := m.servers[id]
		if e, ok := st.Servers[id]; ok {
			bin := e.Binary
			if bin == "" {
				bin = m.binary
			}
			if isServerProcess(e.PID, bin, m.env.Name, id) {
				m.adoptLocked(srv, &proc{pid: e.PID, started: e.Started, adopted: true, binary: bin,
					env: m.env.Name, id: id, done: make(chan struct{})})
				m.settleWait[id] = true
				m.log.Info(fmt.Sprintf("adopted %s pid %d (%d/%d): still running", id, e.PID, m.withProcLocked(), total),
					"server", id, "pid", e.PID)
				continue
			}
		}
		if isLocalHost(srv.cfg.Host) {
			probe = append(probe, srv.cfg)
		}
	}
	for id := range st.Servers {
		if s := m.servers[id]; s == nil {
			m.log.Warn("the state file names a server that is not in the config; not adopted", "server", id, "pid", st.Servers[id].PID)
		}
	}
	m.mu.Unlock()

	busy := probePorts(probe)
	m.mu.Lock()
	for _, id := range sortedIDs(busy) {
		srv := m.servers[id]
		srv.state = masterpb.ServerState_STARTING
		srv.adoptBy = now.Add(adoptTimeout)
		m.settleWait[id] = true
		m.log.Warn(id+"'s cluster port is in use though no recorded process runs it: not starting it; waiting for it to register",
			"server", id, "addr", net.JoinHostPort(srv.cfg.Host, strconv.Itoa(srv.cfg.Port)))
	}
	if len(m.settleWait) == 0 {
		m.settled = true
	} else {
		m.log.Info(fmt.Sprintf("waiting up to %s for %d running servers to re-register before sending membership", settleGrace, len(m.settleWait)))
	}
	m.mu.Unlock()
	m.saveState()
}

// adoptLocked makes p the server's process and watches it.
func (m *Master) adoptLocked(srv *server, p *proc) {
	srv.proc = p
	srv.adoptBy = time.Now().Add(adoptTimeout)
	if srv.sess == nil {
		srv.state = masterpb.ServerState_STARTING
	}
	m.wg.Add(1)
	go m.watch(srv, p)
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

// startAll starts every configured server that is not running.
func (m *Master) startAll() {
	m.mu.Lock()
	var ids []string
	for _, id := range m.idsLocked() {
		if srv := m.servers[id]; srv.configured && srv.proc == nil && srv.adoptBy.IsZero() {
			ids = append(ids, id)
		}
	}
	m.mu.Unlock()
	for _, id := range ids {
		if _, err := m.spawn(id, false); err != nil {
			m.log.Error("server not started", "server", id, "err", err)
		}
	}
}

// spawn starts a configured server that has no process and returns the
// process (nil if one was already running or starting). restart counts it
// as an automatic restart.
func (m *Master) spawn(id string, restart bool) (*proc, error) {
	m.mu.Lock()
	srv := m.servers[id]
	switch {
	case srv == nil || !srv.configured:
		m.mu.Unlock()
		return nil, fmt.Errorf("start %s: not in the config (env %s)", id, m.env.Name)
	case m.closing:
		m.mu.Unlock()
		return nil, fmt.Errorf("start %s: the master is shutting down", id)
	case srv.proc != nil || srv.spawning:
		m.mu.Unlock()
		return nil, nil
	}
	srv.spawning = true
	m.wg.Add(1) // the watcher's, given back if the start fails
	c := srv.cfg
	m.mu.Unlock()

	p, err := m.startProcess(c)

	m.mu.Lock()
	srv.spawning = false
	if err != nil {
		m.wg.Done()
		srv.lastErr = err.Error()
		m.setStateLocked(srv, masterpb.ServerState_LOST)
		if srv.want && c.AutoRestart && !m.closing {
			m.scheduleRestartLocked(srv, 0)
		}
		m.notifyLocked()
		m.mu.Unlock()
		return nil, fmt.Errorf("start %s: %w", id, err)
	}
	srv.proc, srv.stopping, srv.stopReason, srv.lastErr, srv.conns, srv.adoptBy = p, false, "", "", 0, time.Time{}
	if restart {
		srv.restarts++
	}
	m.setStateLocked(srv, masterpb.ServerState_STARTING)
	m.notifyLocked()
	n, total := m.withProcLocked(), len(m.env.Servers)
	stopNow := !srv.want // stopped while it was starting
	if stopNow {
		srv.stopping, srv.stopReason = true, "server stopping"
	}
	m.mu.Unlock()
	go m.watch(srv, p)
	m.log.Info(fmt.Sprintf("started %s pid %d (%d/%d)", id, p.pid, n, total), "server", id, "pid", p.pid)
	m.saveState()
	if stopNow {
		p.signal(syscall.SIGTERM)
	}
	return p, nil
}

// startProcess execs one server: the game binary with the server's id, in
// its own process group, output appended to its log file.
func (m *Master) startProcess(c config.Server) (*proc, error) {
	if !isLocalHost(c.Host) {
		return nil, fmt.Errorf("host %s is not this machine, and starting servers over SSH is not supported yet", c.Host)
	}
	logPath := m.paths.ServerLog(c.ID)
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer f.Close()
	args := []string{"--env", m.env.Name, "--id", c.ID, "--config", m.cfgAbs, "--master", m.addr}
	args = append(args, c.Args...)
	cmd := exec.Command(m.binary, args...)
	cmd.Dir = m.base
	cmd.Env = append(os.Environ(), envList(c.Env)...)
	cmd.Env = append(cmd.Env, SecretEnv+"="+m.secret)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = serverAttr()
	fmt.Fprintf(f, "=== %s master: starting %s: %s %s\n", time.Now().Format(time.RFC3339), c.ID, m.binary, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(f, "=== start failed: %v\n", err)
		return nil, err
	}
	p := &proc{pid: cmd.Process.Pid, started: time.Now(), binary: m.binary, env: m.env.Name, id: c.ID, done: make(chan struct{})}
	// The process is watched by pid (reap, see proc.poll), so that Run can
	// return while it keeps running; release the handle.
	cmd.Process.Release()
	return p, nil
}

// envList turns a server's env table into KEY=VALUE pairs, sorted.
func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// watch polls a process until it ends or the master shuts down.
func (m *Master) watch(srv *server, p *proc) {
	defer m.wg.Done()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		if p.poll() {
			m.exited(srv, p)
			return
		}
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// exited records a process's end: STOPPED if it was asked to stop, else
// LOST, and restarted if it should run and has autoRestart.
func (m *Master) exited(srv *server, p *proc) {
	status := p.exitStatus()
	m.mu.Lock()
	defer close(p.done)
	if srv.proc != p {
		m.mu.Unlock()
		return
	}
	srv.proc, srv.conns, srv.lastErr, srv.adoptBy = nil, 0, status, time.Time{}
	if srv.sess != nil {
		m.endSessionLocked(srv, "process ended")
	}
	if srv.stopping {
		m.log.Info(fmt.Sprintf("%s stopped (%s)", srv.id, status), "server", srv.id, "pid", p.pid)
		m.setStateLocked(srv, masterpb.ServerState_STOPPED)
	} else {
		m.log.Warn(fmt.Sprintf("%s lost: pid %d exited unasked (%s); see %s", srv.id, p.pid, status, m.paths.ServerLog(srv.id)),
			"server", srv.id, "pid", p.pid)
		m.setStateLocked(srv, masterpb.ServerState_LOST)
		if srv.want && srv.cfg.AutoRestart && !m.closing {
			m.scheduleRestartLocked(srv, time.Since(p.started))
		}
	}
	m.notifyLocked()
	m.mu.Unlock()
	m.saveState()
}

// scheduleRestartLocked restarts srv after its backoff: 1 s, doubling up to
// 30 s, back to 1 s after a run of 60 s or more.
func (m *Master) scheduleRestartLocked(srv *server, uptime time.Duration) {
	if uptime >= restartReset {
		srv.backoff = 0
	}
	delay := max(srv.backoff, restartMin)
	srv.backoff = min(2*delay, restartMax)
	gen := srv.gen
	m.log.Info(fmt.Sprintf("restarting %s in %s", srv.id, delay), "server", srv.id)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		ok := srv.gen == gen && srv.want && srv.proc == nil && !srv.spawning
		m.mu.Unlock()
		if ok {
			if _, err := m.spawn(srv.id, true); err != nil {
				m.log.Error("auto-restart failed", "server", srv.id, "err", err)
			}
		}
	}()
}

// saveState records the processes the master runs.
func (m *Master) saveState() {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	st := State{Env: m.env.Name, Servers: map[string]StateEntry{}}
	m.mu.Lock()
	for id, srv := range m.servers {
		if p := srv.proc; p != nil {
			st.Servers[id] = StateEntry{PID: p.pid, Binary: p.binary, Started: p.started}
		}
	}
	m.mu.Unlock()
	if err := writeState(m.paths.StateFile(m.env.Name), st); err != nil {
		m.log.Error("state file not saved: a restarted master may not re-adopt the servers", "err", err)
	}
}

// isLocalHost reports whether host is this machine: loopback, unspecified,
// one of its interface addresses, "localhost" or its host name.
func isLocalHost(host string) bool {
	if host == "localhost" {
		return true
	}
	if name, err := os.Hostname(); err == nil && strings.EqualFold(host, name) {
		return true
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}
