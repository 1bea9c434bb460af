package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/proto/masterpb"
)

// Timing of the control plane. The registry client's side of these is in
// rpc/registry.go (heartbeat every second, reconnect backoff up to 1 s).
const (
	heartbeatTimeout = 5 * time.Second  // a server silent this long is lost
	settleGrace      = 2 * time.Second  // longest wait for live servers to re-register
	adoptTimeout     = 10 * time.Second // a re-adopted server must re-register by then
	stopTimeout      = 10 * time.Second // in-flight work a stopping server is given
	termAfter        = 15 * time.Second // SIGTERM a server this long after the stop command
	killAfter        = 5 * time.Second  // SIGKILL it this long after SIGTERM
	startWait        = 30 * time.Second // Admin.Start waits this long for RUNNING
	restartMin       = time.Second      // auto-restart backoff, doubling...
	restartMax       = 30 * time.Second // ...up to this
	restartReset     = 60 * time.Second // uptime after which the backoff starts over
	pollInterval     = 100 * time.Millisecond
	shutdownGrace    = 5 * time.Second // gRPC graceful stop before a hard stop
)

// envNameRE is what an environment name must look like to name files.
var envNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Config configures a Master.
type Config struct {
	Env        *config.Env // the environment to run, loaded
	ConfigPath string      // absolute path of servers.toml, passed to every server
	RunDir     string      // secret, token, state and pid files (created 0700)
	LogDir     string      // servers' logs (created 0700)
	Logger     *slog.Logger
}

// Master is the control plane of one environment: registry, supervisor and
// admin API on the master's host:port. Create it with New and call Run.
type Master struct {
	env    *config.Env
	paths  Paths
	cfgAbs string
	log    *slog.Logger
	base   string // absolute working directory of every server
	binary string // absolute path of the game binary
	addr   string // control plane host:port

	secret, token string
	running       atomic.Bool

	ctx      context.Context // ends when Run starts shutting down
	wg       sync.WaitGroup  // every goroutine the master starts, besides gRPC handlers
	stopOnce sync.Once
	stopReq  chan struct{} // closed when an admin Stop asks the master to exit
	stateMu  sync.Mutex    // serialises state-file writes

	mu         sync.Mutex
	servers    map[string]*server
	closing    bool
	settled    bool
	settleWait map[string]bool // alive servers the first snapshot waits for
	settleBy   time.Time
	changed    chan struct{} // closed and replaced at every change, for waiters
}

// New checks cfg and returns a master; call Run.
func New(cfg Config) (*Master, error) {
	if cfg.Env == nil {
		return nil, errors.New("master: Config.Env is nil")
	}
	if !envNameRE.MatchString(cfg.Env.Name) {
		return nil, fmt.Errorf("master: environment name %q cannot name files in the run directory (want [A-Za-z0-9][A-Za-z0-9._-]*)", cfg.Env.Name)
	}
	if !filepath.IsAbs(cfg.ConfigPath) {
		return nil, fmt.Errorf("master: ConfigPath %q is not absolute", cfg.ConfigPath)
	}
	def := DefaultPaths(cfg.ConfigPath)
	if cfg.RunDir == "" {
		cfg.RunDir = def.RunDir
	}
	if cfg.LogDir == "" {
		cfg.LogDir = def.LogDir
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	env := cfg.Env
	base := env.Base
	if base == "" {
		base = config.DefaultBase
	}
	if !filepath.IsAbs(base) {
		base = filepath.Join(filepath.Dir(cfg.ConfigPath), base)
	}
	binary := env.Binary
	if !filepath.IsAbs(binary) {
		binary = filepath.Join(base, binary)
	}
	m := &Master{
		env:     env,
		paths:   Paths{RunDir: cfg.RunDir, LogDir: cfg.LogDir},
		cfgAbs:  cfg.ConfigPath,
		log:     cfg.Logger.With("env", env.Name),
		base:    filepath.Clean(base),
		binary:  filepath.Clean(binary),
		addr:    net.JoinHostPort(env.Master.Host, strconv.Itoa(env.Master.Port)),
		stopReq: make(chan struct{}),
		servers: make(map[string]*server),
		changed: make(chan struct{}),
	}
	for _, s := range env.Servers {
		m.servers[s.ID] = &server{id: s.ID, cfg: s, configured: true, state: masterpb.ServerState_STOPPED, want: true}
	}
	return m, nil
}

// Addr is the control plane's address, host:port.
func (m *Master) Addr() string { return m.addr }

// Run serves the registry and the admin API, re-adopts the servers still
// running from an earlier master and starts the others, and supervises them
// until ctx ends or an admin Stop asks the master to exit. Ending ctx stops
// the master only: the servers keep serving. Run can be called once.
func (m *Master) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("master: Run called twice")
	}
	for _, dir := range []string{m.paths.RunDir, m.paths.LogDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("master: create %s: %w", dir, err)
		}
	}
	unlock, err := m.lockPidFile()
	if err != nil {
		return err
	}
	defer unlock()
	if m.secret, err = loadOrCreateSecret(m.paths.SecretFile(m.env.Name)); err != nil {
		return fmt.Errorf("master: %w", err)
	}
	m.token = randomHex(32)
	tokenFile := m.paths.TokenFile(m.env.Name)
	if err := writeFileAtomic(tokenFile, []byte(m.token+"\n")); err != nil {
		return fmt.Errorf("master: write admin token: %w", err)
	}
	defer os.Remove(tokenFile)
	ln, err := net.Listen("tcp", m.addr)
	if err != nil {
		return fmt.Errorf("master: listen on %s: %w", m.addr, err)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.ctx = runCtx
	m.recover()

	auth := authorizer{secret: m.secret, token: m.token}
	opts := append(auth.serverOptions(),
		grpc.WaitForHandlers(true),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	gs := grpc.NewServer(opts...)
	masterpb.RegisterRegistryServer(gs, registryService{m: m})
	masterpb.RegisterAdminServer(gs, adminService{m: m})
	served := make(chan error, 1)
	go func() { served <- gs.Serve(ln) }()
	m.log.Info("master listening", "addr", m.addr, "pid", os.Getpid(), "servers", len(m.env.Servers),
		"config", m.cfgAbs, "run_dir", m.paths.RunDir, "log_dir", m.paths.LogDir)

	m.wg.Add(1)
	go m.monitor()
	m.startAll()

	var serveErr error
	select {
	case <-ctx.Done():
		m.log.Info("master stopping; the servers keep running")
	case <-m.stopReq:
		m.log.Info("master stopping, as asked")
	case serveErr = <-served:
		m.log.Error("control plane failed", "err", serveErr)
	}

	// Shut down: no new work, end the registry streams (the servers keep
	// serving and reconnect to the next master), let the admin calls finish.
	m.mu.Lock()
	m.closing = true
	for _, srv := range m.servers {
		if srv.sess != nil {
			m.endSessionLocked(srv, "master shutting down")
		}
	}
	m.notifyLocked()
	m.mu.Unlock()
	cancel()
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(shutdownGrace):
		gs.Stop()
		<-stopped
	}
	if serveErr == nil {
		<-served // Serve returns once the server has stopped
	}
	m.wg.Wait()
	m.saveState()
	m.log.Info("master stopped")
	if serveErr != nil {
		return fmt.Errorf("master: serve %s: %w", m.addr, serveErr)
	}
	return nil
}

// lockPidFile makes this the only master of the environment; the returned
// func unlinks and unlocks the pid file.
func (m *Master) lockPidFile() (func(), error) {
	path := m.paths.PidFile(m.env.Name)
	f, err := lockFile(path)
	if errors.Is(err, errLocked) {
		b, _ := os.ReadFile(path)
		return nil, fmt.Errorf("master: a master for env %s is already running (pid %s, %s)", m.env.Name, strings.TrimSpace(string(b)), path)
	}
	if err != nil {
		return nil, fmt.Errorf("master: lock %s: %w", path, err)
	}
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("master: write %s: %w", path, err)
	}
	return func() {
		os.Remove(path) // while still locked: the next master locks a new file
		f.Close()
	}, nil
}

// requestStop makes Run return, once.
func (m *Master) requestStop() { m.stopOnce.Do(func() { close(m.stopReq) }) }

// monitor marks silent servers lost, ends the settling period and gives up
// on re-adopted servers that never re-register.
func (m *Master) monitor() {
	defer m.wg.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		m.mu.Lock()
		if !m.settled && !now.Before(m.settleBy) {
			var missing []string
			for id := range m.settleWait {
				missing = append(missing, id)
			}
			m.settleLocked(fmt.Sprintf("grace period over; not re-registered: %s", strings.Join(sortedIDs(missing), ", ")))
		}
		for _, srv := range m.servers {
			switch {
			case srv.sess != nil && now.Sub(srv.lastSeen) > heartbeatTimeout:
				m.log.Warn(srv.id+" lost: no heartbeat", "server", srv.id, "silent", now.Sub(srv.lastSeen).Round(time.Millisecond))
				m.endSessionLocked(srv, "heartbeat timeout")
				m.setStateLocked(srv, masterpb.ServerState_LOST)
			case srv.sess == nil && !srv.adoptBy.IsZero() && now.After(srv.adoptBy):
				srv.adoptBy = time.Time{}
				m.log.Warn(srv.id+" did not re-register", "server", srv.id, "waited", adoptTimeout)
				m.setStateLocked(srv, masterpb.ServerState_LOST)
			}
		}
		m.mu.Unlock()
	}
}
