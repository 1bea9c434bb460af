package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/shaddock/shaddock/backend"
	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/connector"
	"github.com/shaddock/shaddock/metrics"
	"github.com/shaddock/shaddock/protocol"
	"github.com/shaddock/shaddock/rpc"
)

// options are Run's command line: what the master passes.
type options struct {
	env, id, configPath, master, level string
	logFormat                          string // "", config.LogText or config.LogJSON
	metricsPort                        int    // for a server not in the config
	// A server added at runtime (not in servers.toml) describes itself.
	typ, host, clientHost, group string
	port, clientPort             int
	frontend                     bool
	stopTimeout                  time.Duration
	cpuProfile                   string
	memProfile                   string
	trimMemory                   bool
}

func (a *App) parse(args []string) (*options, error) {
	o := &options{}
	fs := a.flags
	fs.StringVar(&o.env, "env", "development", "environment in the config file")
	fs.StringVar(&o.id, "id", "", "server id (required)")
	fs.StringVar(&o.configPath, "config", "servers.toml", "servers.toml path")
	fs.StringVar(&o.master, "master", "", "master control address host:port (default: from the config)")
	fs.StringVar(&o.level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "", "text or json (default: servers.toml's logFormat, else text)")
	fs.IntVar(&o.metricsPort, "metrics-port", 0, "Prometheus metrics port, for a server not in the config")
	fs.StringVar(&o.typ, "type", "", "server type, for a server not in the config")
	fs.StringVar(&o.host, "host", "", "cluster host, for a server not in the config")
	fs.IntVar(&o.port, "port", 0, "cluster port, for a server not in the config")
	fs.StringVar(&o.clientHost, "client-host", "", "client host, for a frontend not in the config")
	fs.IntVar(&o.clientPort, "client-port", 0, "client port, for a frontend not in the config")
	fs.BoolVar(&o.frontend, "frontend", false, "frontend, for a server not in the config")
	fs.StringVar(&o.group, "group", "", "group, for a server not in the config")
	fs.DurationVar(&o.stopTimeout, "stop-timeout", 10*time.Second, "time in-flight work gets on a graceful stop")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.BoolVar(&o.trimMemory, "trim-memory", true, "return the heap's free memory to the system once the server goes quiet after a burst (app/memtrim.go)")
	fs.StringVar(&o.memProfile, "memprofile", "", "on each SIGUSR1, log the runtime's memory classes and write a heap profile (after a GC) to this file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.id == "" {
		return nil, errors.New("--id is required")
	}
	return o, nil
}

// self finds the server in the config, or builds it from flags.
func (o *options) self(env *config.Env) (rpc.Member, error) {
	if s, ok := env.Server(o.id); ok {
		return rpc.Member{ID: s.ID, Type: s.Type, Host: s.Host, Port: s.Port, ClientHost: s.ClientHost,
			ClientPort: s.ClientPort, Frontend: s.Frontend, Group: s.Group}, nil
	}
	if o.typ == "" || o.host == "" || o.port == 0 || (o.frontend && o.clientPort == 0) {
		return rpc.Member{}, fmt.Errorf("server %q is not in %s (%s); give --type, --host, --port (and --frontend --client-port)", o.id, o.configPath, env.Name)
	}
	return rpc.Member{ID: o.id, Type: o.typ, Host: o.host, Port: o.port, ClientHost: o.clientHost,
		ClientPort: o.clientPort, Frontend: o.frontend, Group: o.group}, nil
}

// Run serves as the server named by --id until SIGTERM/SIGINT, a stop from
// the master, or ctx's end, then stops gracefully. args are the command
// line without the program name.
func (a *App) Run(ctx context.Context, args []string) error {
	o, err := a.parse(args)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	env, err := config.Load(o.configPath, o.env)
	if err != nil {
		return err
	}
	self, err := o.self(env)
	if err != nil {
		return err
	}
	log, err := newLogger(os.Stderr, o.logFormat, env.LogFormat, level)
	if err != nil {
		return err
	}
	metricsPort := o.metricsPort
	if s, ok := env.Server(o.id); ok {
		metricsPort = s.MetricsPort
	}
	var tlsCfg *tls.Config
	if s, ok := env.Server(o.id); ok && self.Frontend {
		if tlsCfg, err = clientTLS(o.configPath, s); err != nil {
			return err
		}
	}
	secret := os.Getenv(SecretEnv)
	if secret == "" {
		return fmt.Errorf("%s is not set: servers are started by the master (master start --id %s)", SecretEnv, o.id)
	}
	os.Unsetenv(SecretEnv) // not inherited by anything the game starts
	if v := os.Getenv(EpochEnv); v != "" {
		if self.Epoch, err = strconv.ParseUint(v, 10, 64); err != nil {
			return fmt.Errorf("%s=%q: %w", EpochEnv, v, err)
		}
		os.Unsetenv(EpochEnv)
	}
	master := o.master
	if master == "" {
		master = net.JoinHostPort(env.Master.Host, strconv.Itoa(env.Master.Port))
	}
	self.PID, self.Started = os.Getpid(), time.Now()
	if self.Build = os.Getenv(BuildEnv); self.Build == "" {
		self.Build = buildID()
	}
	os.Unsetenv(BuildEnv)
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if o.memProfile != "" {
		defer watchMemProfile(o.memProfile, log.With("server", self.ID))()
	}
	// Every line names its server, so that logs gathered from many
	// processes (JSON in production) group by server and by type. The
	// node, backend and connector add "server" themselves: they get the
	// logger without it, so that no line has the key twice.
	typed := log.With("type", self.Type)
	r := &runner{a: a, o: o, self: self, log: typed.With("server", self.ID), roleLog: typed, tls: tlsCfg, metricsPort: metricsPort}
	return r.run(ctx, secret, master)
}

// runner holds one Run's moving parts.
type runner struct {
	a    *App
	o    *options
	self rpc.Member
	log  *slog.Logger
	// roleLog is log without "server", for the packages that add it.
	roleLog *slog.Logger
	tls     *tls.Config // client-port TLS of a frontend, nil for none
	// metricsPort serves /metrics on the cluster host; 0 for none, and then
	// met is nil and nothing is measured.
	metricsPort int
	met         *metrics.Server

	node     *rpc.Node
	registry *rpc.Registry
	back     *backend.Server
	front    *connector.Server
	fe       *frontend
	stopOnce sync.Once
	stopped  chan stopRequest
}

type stopRequest struct {
	reason  string
	timeout time.Duration
}

func (r *runner) run(ctx context.Context, secret, master string) error {
	a, self := r.a, r.self
	r.stopped = make(chan stopRequest, 1)
	dict, err := protocol.NewDictionary(append(a.handlers.Routes(), a.dict...))
	if err != nil {
		return fmt.Errorf("route dictionary: %w", err)
	}
	a.handlers.Seal()
	a.remotes.Seal()
	for typ, st := range a.stateful {
		if st.setting == "" {
			return fmt.Errorf("app: Holds(%q) without Stateful(%q, setting)", typ, typ)
		}
		if a.routes[typ] != nil {
			return fmt.Errorf("app: %q is both routed (Route) and stateful (Stateful): a stateful type is routed by its placement", typ)
		}
	}

	// Construct everything first and serve last: once the node serves,
	// peers may push into the frontend and call the backend at once.
	mem := a.mem
	mem.SetGroup(self.Group) // a grouped server routes within its group (rolling updates)
	node, err := rpc.NewNode(rpc.Config{Self: self, Secret: secret, Membership: mem, Logger: r.roleLog})
	if err != nil {
		return err
	}
	r.node = node
	if r.metricsPort != 0 {
		r.met = metrics.New(metrics.Config{ID: self.ID, Type: self.Type, Group: self.Group, Build: self.Build,
			Routes: append(a.handlers.Routes(), a.remotes.Routes()...),
			KickReasons: map[string]string{ReasonServerRestarted: "server_restarted", ReasonServerStopped: "server_stopped",
				rpc.ReasonUndelivered: "undelivered"}})
	}
	back := backend.New(backend.Config{ID: self.ID, Handlers: a.handlers, Remotes: a.remotes, Cluster: node, Logger: r.roleLog})
	r.back = back
	handlers := rpc.Handlers{Call: measured(r.met, back.Call), Gone: back.Gone}
	if st, ok := a.stateful[self.Type]; ok {
		handlers.Holds = back.Holds
		if st.holds != nil {
			handlers.Holds = func(key string) (int64, error) { return back.HoldsWith(key, st.holds) }
		}
	}
	var fe *frontend
	// abort releases what was built when the server cannot start.
	abort := func() {
		if r.front != nil {
			r.front.Close()
		}
		if fe != nil {
			fe.close()
		}
		back.Close()
		node.Close()
	}
	if self.Frontend {
		fe = newFrontend(self.Type, node, a.handlers, a.routes, a.stateful, r.log)
		fe.met, fe.pins.met = r.met, r.met
		r.fe = fe
		ccfg := connector.Config{ID: self.ID, Type: self.Type, Epoch: self.Epoch, Handler: r.met.Wrap(fe.serve),
			AsyncHandler: r.met.WrapAsync(fe.start), Dictionary: dict, Logger: r.roleLog,
			OnSessionClosed: r.sessionClosed, Protos: a.protos, TLS: r.tls}
		if r.met != nil {
			ccfg.OnRefused = r.met.Refused
		}
		for _, fn := range a.frontendFn {
			fn(self.Type, &ccfg)
		}
		front, err := connector.New(ccfg)
		if err != nil {
			abort()
			return err
		}
		fe.srv, r.front = front, front
		handlers.Frontend = fe
		if r.met != nil {
			r.met.CountSessions(front.Len)
		}
	} else {
		handlers.Forward = measured(r.met, back.Forward)
		handlers.ForwardNonBlocking = back.NonBlocking
	}

	a.mu.Lock()
	a.info = Info{ID: self.ID, Type: self.Type, Env: r.o.env, Frontend: self.Frontend, Group: self.Group, TLS: r.tls}
	a.node, a.backend, a.front, a.fe, a.log = node, back, r.front, fe, r.log
	a.mu.Unlock()

	var metricsLn net.Listener
	if r.met != nil {
		addr := net.JoinHostPort(self.Host, strconv.Itoa(r.metricsPort))
		if metricsLn, err = net.Listen("tcp", addr); err != nil {
			abort()
			return fmt.Errorf("listen for metrics on %s: %w", addr, err)
		}
	}
	clusterLn, err := net.Listen("tcp", self.Addr())
	if err != nil {
		if metricsLn != nil {
			metricsLn.Close()
		}
		abort()
		return fmt.Errorf("listen for the cluster on %s: %w", self.Addr(), err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	// Metrics are served until the very end, so a scrape sees the drain.
	metricsCtx, stopMetrics := context.WithCancel(context.Background())
	defer stopMetrics()
	if metricsLn != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.met.Serve(metricsCtx, metricsLn); err != nil {
				r.log.Error("metrics stopped serving", "addr", metricsLn.Addr().String(), "err", err)
			}
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); node.Serve(clusterLn, handlers) }()

	regCtx, stopRegistry := context.WithCancel(context.Background())
	defer stopRegistry()
	r.registry = rpc.NewRegistry(rpc.RegistryConfig{Master: master, Secret: secret, Self: self, Membership: mem,
		Connections: r.connections, OnStop: func(reason string, timeout time.Duration) { r.stop(reason, timeout) },
		Logger: r.log})
	wg.Add(1)
	go func() { defer wg.Done(); r.registry.Run(regCtx) }()
	select {
	case <-r.registry.Synced():
	case <-time.After(5 * time.Second):
		r.log.Warn("no membership from the master yet; starting with an empty cluster view")
	case <-ctx.Done():
	}

	serveErr := make(chan error, 2)
	if r.front != nil {
		addr := net.JoinHostPort(clientListenHost(self), strconv.Itoa(self.ClientPort))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			stopRegistry()
			abort()
			return fmt.Errorf("listen for clients on %s: %w", addr, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.front.Serve(ln); err != nil && !errors.Is(err, connector.ErrServerClosed) {
				serveErr <- err
			}
		}()
	}
	hookCtx, stopHooks := context.WithCancel(context.Background())
	defer stopHooks()
	if r.o.trimMemory {
		wg.Add(1)
		go func() { defer wg.Done(); trimMemory(hookCtx, r.log) }()
	}
	info := a.Info()
	for _, fn := range a.onServe {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(hookCtx, info); err != nil {
				serveErr <- fmt.Errorf("serve hook: %w", err)
			}
		}()
	}
	r.registry.SetState(rpc.StateRunning)
	r.log.Info("server running", "cluster", self.Addr(), "client_port", self.ClientPort, "metrics_port", r.metricsPort, "pid", self.PID, "build", self.Build)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	req := stopRequest{reason: "server shutting down", timeout: r.o.stopTimeout}
	var runErr error
	select {
	case <-ctx.Done():
	case s := <-sig:
		r.log.Info("signal received; stopping", "signal", s.String())
	case req = <-r.stopped:
		r.log.Info("master asked to stop", "reason", req.reason)
	case runErr = <-serveErr:
		r.log.Error("stopping after a failure", "err", runErr)
	}
	r.shutdown(req)
	stopHooks()
	stopRegistry()
	stopMetrics()
	return runErr
}

// stop asks run to stop, once.
func (r *runner) stop(reason string, timeout time.Duration) {
	if timeout <= 0 {
		timeout = r.o.stopTimeout
	}
	if reason == "" {
		reason = "server shutting down"
	}
	r.stopOnce.Do(func() { r.stopped <- stopRequest{reason: reason, timeout: timeout} })
}

// shutdown stops gracefully: leave routing, let the clients' in-flight
// messages finish and kick them, let peers' requests finish, close.
func (r *runner) shutdown(req stopRequest) {
	start := time.Now()
	r.registry.SetState(rpc.StateStopping)
	ctx, cancel := context.WithTimeout(context.Background(), req.timeout)
	defer cancel()
	if r.front != nil {
		r.front.SetShutdownReason(req.reason)
		if err := r.front.Shutdown(ctx); err != nil {
			r.log.Warn("clients did not all finish in time", "err", err)
		}
	} else {
		// Give peers a moment to see us leave routing before waiting for
		// what they already sent.
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	if err := r.node.Shutdown(ctx); err != nil {
		r.log.Warn("cluster requests did not all finish in time", "err", err)
	}
	r.back.Close()
	if r.fe != nil {
		r.fe.close()
	}
	r.log.Info("server stopped", "took", time.Since(start).Round(time.Millisecond))
}

// connections is what the server reports to the master as its
// connections: a frontend's client sessions, a backend's sessions it holds
// state for (channel members), which reach 0 once a draining backend is
// empty.
func (r *runner) connections() int {
	if r.front == nil {
		return r.back.Channels().Sessions()
	}
	return r.front.Len()
}

// sessionClosed runs the game's close hooks, then forgets where the
// session was placed (the hooks may still call the servers it was placed
// on: CallFor).
func (r *runner) sessionClosed(s *connector.Session) {
	defer r.fe.pins.forget(s.ID())
	if len(r.a.onClosed) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, fn := range r.a.onClosed {
		fn(ctx, s)
	}
}

// clientListenHost is where a frontend accepts clients: its clientHost when
// that is an address of this machine, else every interface, as Pomelo does
// (clientHost is then what clients are told, e.g. a public name in front of
// NAT, and not something this machine can bind).
func clientListenHost(m rpc.Member) string {
	host := m.ClientHost
	if host == "" {
		return m.Host
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return ""
	}
	if ip.IsLoopback() {
		return host
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return host
		}
	}
	return ""
}
