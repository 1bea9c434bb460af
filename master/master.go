package master

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	"github.com/shaddock/shaddock/master/launch"
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
	launchTimeout    = 30 * time.Second // bounds one launcher start (upload included)
	restartMin       = time.Second      // auto-restart backoff, doubling...
	restartMax       = 30 * time.Second // ...up to this
	restartReset     = 60 * time.Second // uptime after which the backoff starts over
	tick             = 100 * time.Millisecond
	shutdownGrace    = 5 * time.Second // gRPC graceful stop before a hard stop
)

// envNameRE is what an environment name must look like to name files.
var envNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Config configures a Master.
type Config struct {
	Env        *config.Env // the environment to run, loaded
	ConfigPath string      // absolute path of servers.toml, passed to every server
	RunDir     string      // secret, token, state and pid files (created 0700)
	LogDir     string      // local servers' logs (created 0700)
	Logger     *slog.Logger
	// Progress receives the start's progress as lines: uploads, a line per
	// server as it registers or fails, then a summary. Nil discards them.
	Progress io.Writer
	// Ready, if not nil, is called once when the start has finished: with
	// nil when every configured server runs, else with why not.
	Ready func(error)
	// KeepGoing keeps the master and the servers that did start running
	// when others fail to start. Without it a failed start stops what it
	// started and Run returns the error.
	KeepGoing bool
	// Launchers replaces the launchers by driver name ("local", "ssh"),
	// for tests; by default the master makes its own.
	Launchers map[string]launch.Launcher
}

// Master is the control plane of one environment: registry, supervisor and
// admin API on the master's host:port. Create it with New and call Run.
type Master struct {
	// env's name, binary, base, master and ssh tables never change; its
	// servers are m.servers' cfg from New on, its rolling timeouts
	// m.rolling (a reload changes those).
	env     *config.Env
	paths   Paths
	cfgAbs  string
	log     *slog.Logger
	base    string                         // absolute working directory of every server, on every host
	binary  string                         // absolute path of the game binary, on every host
	addr    string                         // control plane host:port
	rolling atomic.Pointer[config.Rolling] // timeouts; a reload may change them
	lbCfg   atomic.Pointer[config.LB]      // the load balancer; a reload may change it
	// groupBin is, during a rolling update, the binary each group that has
	// moved to the new build starts from (binary.next); the other groups,
	// and servers of no group, start from binary, which the update leaves
	// alone until every group is done. nil outside an update.
	groupBin  atomic.Pointer[map[string]string]
	keepGoing bool
	ready     func(error)

	hosts *hosts     // launchers, uploads, host errors
	stats *dashStats // the dashboard's figures, scraped from the servers

	secret, token string
	running       atomic.Bool

	ctx      context.Context // ends when Run starts shutting down
	wg       sync.WaitGroup  // every goroutine the master starts, besides gRPC handlers
	stopOnce sync.Once
	stopReq  chan struct{} // closed when an admin Stop (or a failed start) asks the master to exit
	stopErr  error         // why, when it is a failure; set before stopReq closes
	stateMu  sync.Mutex    // serialises state-file writes
	initial  atomic.Bool   // the start is under way: failures are final, nothing auto-restarts
	wake     chan struct{} // wakes the reconcile loop

	progress *lines                   // the start's progress, for Config.Progress
	progMu   sync.Mutex               // guards watchers
	watchers map[chan string]struct{} // admin calls following the master's notes

	changing sync.Mutex // one reload, add or remove at a time

	mu         sync.Mutex
	servers    map[string]*server
	removed    map[string]bool   // taken out by `master remove`: not started again until a reload
	updateNote string            // the rolling update, as List shows it
	forgotten  map[string]uint64 // epochs of servers taken out, kept for when they come back
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
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	env := cfg.Env
	base, binary := ServerPaths(env, cfg.ConfigPath)
	m := &Master{
		env:       env,
		paths:     Paths{RunDir: cfg.RunDir, LogDir: cfg.LogDir},
		cfgAbs:    cfg.ConfigPath,
		log:       cfg.Logger.With("env", env.Name),
		base:      base,
		binary:    binary,
		addr:      net.JoinHostPort(env.Master.Host, strconv.Itoa(env.Master.Port)),
		keepGoing: cfg.KeepGoing,
		ready:     cfg.Ready,
		stopReq:   make(chan struct{}),
		wake:      make(chan struct{}, 1),
		progress:  newLines(cfg.Progress),
		watchers:  map[chan string]struct{}{},
		servers:   make(map[string]*server),
		removed:   map[string]bool{},
		forgotten: map[string]uint64{},
		changed:   make(chan struct{}),
	}
	m.setRolling(env.Rolling)
	lbc := env.LB
	m.lbCfg.Store(&lbc)
	m.hosts = newHosts(m, cfg.Launchers)
	m.stats = newDashStats()
	for _, s := range env.Servers {
		m.servers[s.ID] = &server{id: s.ID, cfg: s, configured: true, state: masterpb.ServerState_STOPPED, want: true}
	}
	return m, nil
}

// ServerPaths returns the absolute working directory (base) and game binary
// of env's servers, as every host sees them: base relative to the config
// file's directory, the binary relative to base. Pomelo's rule holds: the
// same paths on every host.
func ServerPaths(env *config.Env, configPath string) (base, binary string) {
	base = env.Base
	if base == "" {
		base = config.DefaultBase
	}
	if !filepath.IsAbs(base) {
		base = filepath.Join(filepath.Dir(configPath), base)
	}
	binary = env.Binary
	if !filepath.IsAbs(binary) {
		binary = filepath.Join(base, binary)
	}
	return filepath.Clean(base), filepath.Clean(binary)
}

// setRolling sets the timeouts, defaults filled in.
func (m *Master) setRolling(r config.Rolling) {
	if r.StartTimeout <= 0 {
		r.StartTimeout = config.DefaultStartTimeout
	}
	if r.DrainTimeout <= 0 {
		r.DrainTimeout = config.DefaultDrainTimeout
	}
	m.rolling.Store(&r)
}

// startTimeout is how long a started server has to register.
func (m *Master) startTimeout() time.Duration { return m.rolling.Load().StartTimeout }

// drainTimeout is how long a drained server's sessions may take to leave.
func (m *Master) drainTimeout() time.Duration { return m.rolling.Load().DrainTimeout }

// Addr is the control plane's address, host:port.
func (m *Master) Addr() string { return m.addr }

// Run serves the registry and the admin API, re-adopts the servers still
// running from an earlier master and starts the others, and supervises them
// until ctx ends or an admin Stop asks the master to exit. Ending ctx stops
// the master only: the servers keep serving. Run can be called once. It
// returns an error if the start failed (and KeepGoing was not set).
func (m *Master) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("master: Run called twice")
	}
	defer m.hosts.close()
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
	if err := copyFileAtomic(m.cfgAbs, m.appliedConfig(), 0o600); err != nil {
		return fmt.Errorf("master: keep a copy of the config: %w", err)
	}
	ln, err := net.Listen("tcp", m.addr)
	if err != nil {
		return fmt.Errorf("master: listen on %s: %w", m.addr, err)
	}
	httpLn, err := m.listenAdminHTTP()
	if err != nil {
		ln.Close()
		return err
	}

	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.ctx = runCtx
	m.recover()
	m.loadUpdateBinaries() // before anything is started: a group half-way keeps its build

	auth := newAuthorizer(m.secret, m.token, m.log)
	opts := append(auth.serverOptions(),
		grpc.WaitForHandlers(true),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	gs := grpc.NewServer(opts...)
	masterpb.RegisterRegistryServer(gs, registryService{m: m})
	masterpb.RegisterAdminServer(gs, adminService{m: m})
	served := make(chan error, 1)
	// The settling grace runs from now, when servers can reach us, not
	// from the start of recover (which may wait on unreachable hosts).
	m.mu.Lock()
	m.settleBy = time.Now().Add(settleGrace)
	m.mu.Unlock()
	go func() { served <- gs.Serve(ln) }()
	m.log.Info("master listening", "addr", m.addr, "pid", os.Getpid(), "servers", len(m.env.Servers),
		"config", m.cfgAbs, "run_dir", m.paths.RunDir, "log_dir", m.paths.LogDir)

	m.initial.Store(true)
	go m.progress.run() // ends when the start is over (finishStart)
	m.wg.Add(2)
	go m.reconcile()
	go m.firstStart()
	if httpLn != nil {
		m.wg.Add(2)
		go func() { defer m.wg.Done(); m.serveAdminHTTP(runCtx, httpLn) }()
		go func() { defer m.wg.Done(); m.runStats(runCtx) }()
	}

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
	return m.stopErr
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

// requestStop makes Run return, once, with err (nil for an asked stop).
func (m *Master) requestStop(err error) {
	m.stopOnce.Do(func() {
		m.stopErr = err
		close(m.stopReq)
	})
}

// note passes a progress line to the start's progress writer while the
// start is under way, and to the admin calls following the master. It
// never blocks, and may be called with m.mu held (progMu is always taken
// after it).
func (m *Master) note(msg string, isErr bool) {
	if m.initial.Load() {
		line := msg
		if isErr {
			line = "error: " + msg
		}
		m.progress.add(line)
	}
	m.progMu.Lock()
	defer m.progMu.Unlock()
	for ch := range m.watchers {
		select {
		case ch <- msg:
		default: // a slow admin client misses a note rather than slowing the master
		}
	}
}

// follow subscribes to the master's notes until the returned func is called.
func (m *Master) follow() (<-chan string, func()) {
	ch := make(chan string, 64)
	m.progMu.Lock()
	m.watchers[ch] = struct{}{}
	m.progMu.Unlock()
	return ch, func() {
		m.progMu.Lock()
		delete(m.watchers, ch)
		m.progMu.Unlock()
	}
}
