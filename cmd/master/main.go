// Command master runs and controls a shaddock cluster: it starts the master
// (the control plane, see package master) and talks to a running one.
//
//	master start --env=development [--config servers.toml] [--daemon] [--keep-going]
//	master start --id chat-server-1        # one server, through the running master
//	master list
//	master stop [--id ID|--type T|--group G] [--reason R]
//	master kill [--id ID|--type T|--group G]
//	master restart --id ID|--type T|--group G [--reason R]
//	master logs --id ID [-f] [-n N]
//	master reload
//	master add id=ID type=T host=H port=P [clientPort=C frontend=true ...]
//	master remove --id ID [--reason R]
//	master update --binary PATH [--group G] | --resume
//	master lb haproxy
//	master dashboard                       # the web dashboard's URL, with its token
//	master help
//
// From the repo root, `bin/master start --env=development --daemon` starts
// the demo cluster in the background and returns once every server runs;
// `bin/master stop` returns once every server and the master have exited.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/lb"
	"github.com/shaddock/shaddock/master"
	"github.com/shaddock/shaddock/proto/masterpb"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// command is one subcommand: its flags and what it does.
type command struct {
	name, usage, summary string
	flags                func(fs *flag.FlagSet, o *opts)
	run                  func(o *opts) error
	args                 bool // takes arguments after the flags
}

// opts are every command's flags (each command registers the ones it has).
type opts struct {
	env, config, reason, logLevel string
	daemon, keepGoing, follow     bool
	resume                        bool
	binary                        string
	lines, notifyFD               int
	timeout                       time.Duration
	ids, types, groups            listFlag
	args                          []string
	stdout, stderr                io.Writer
}

// listFlag is a repeatable, comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func common(fs *flag.FlagSet, o *opts, timeout time.Duration) {
	fs.StringVar(&o.env, "env", "development", "environment in the config file")
	fs.StringVar(&o.config, "config", "servers.toml", "path of servers.toml")
	fs.DurationVar(&o.timeout, "timeout", timeout, "give up after this long")
}

func selector(fs *flag.FlagSet, o *opts) {
	fs.Var(&o.ids, "id", "server id (repeatable, or comma-separated)")
	fs.Var(&o.types, "type", "server type (repeatable, or comma-separated)")
	fs.Var(&o.groups, "group", "server group, a or b (repeatable, or comma-separated)")
}

var commands = []*command{
	{
		name: "start", usage: "start --env=ENV [--config servers.toml] [--daemon] [--keep-going] [--timeout 2m] | start [--type T] [--id ID]",
		summary: "start the master, which starts every server (on this machine by exec, on other hosts over SSH) and " +
			"reports each as it registers; with --daemon in the background, returning once every server runs. If a " +
			"server fails to start, it says why and stops what it started, unless --keep-going. With --type or --id, " +
			"ask the running master to start those servers.",
		flags: func(fs *flag.FlagSet, o *opts) {
			common(fs, o, 2*time.Minute)
			fs.BoolVar(&o.daemon, "daemon", false, "run the master in the background (log: logs/master-ENV.log) and wait until the cluster is up")
			fs.BoolVar(&o.keepGoing, "keep-going", false, "when some servers fail to start, keep the master and the others running")
			fs.IntVar(&o.notifyFD, "notify-fd", 0, "(internal) report the start's progress on this file descriptor, for start --daemon")
			fs.StringVar(&o.logLevel, "log-level", "info", "master log level: debug, info, warn or error")
			fs.Var(&o.ids, "id", "start this configured server through the running master (repeatable)")
			fs.Var(&o.types, "type", "start the servers of this type through the running master (repeatable)")
		},
		run: start,
	},
	{
		name: "list", usage: "list [--env ENV] [--config servers.toml]",
		summary: "show every server: id, type, address, state, pid, uptime, connections, build",
		flags:   func(fs *flag.FlagSet, o *opts) { common(fs, o, 10*time.Second) },
		run:     list,
	},
	{
		name: "stop", usage: "stop [--env ENV] [--config servers.toml] [--id ID|--type T|--group G] [--reason R]",
		summary: "stop servers gracefully, frontends first; without a selector every server and then the master. " +
			"Returns once they have exited.",
		flags: func(fs *flag.FlagSet, o *opts) {
			common(fs, o, 90*time.Second)
			selector(fs, o)
			fs.StringVar(&o.reason, "reason", "server stopping", "kick reason sent to clients")
		},
		run: stop,
	},
	{
		name: "kill", usage: "kill [--env ENV] [--config servers.toml] [--id ID|--type T|--group G]",
		summary: "kill servers at once (SIGKILL, by pid; only processes the master started). Killed servers are " +
			"not restarted; the master keeps running.",
		flags: func(fs *flag.FlagSet, o *opts) {
			common(fs, o, 30*time.Second)
			selector(fs, o)
		},
		run: kill,
	},
	{
		name: "restart", usage: "restart [--env ENV] [--config servers.toml] --id ID|--type T|--group G [--reason R]",
		summary: "restart servers one after another: each is stopped gracefully and started again, and the next " +
			"waits until it has registered; stops at the first failure.",
		flags: func(fs *flag.FlagSet, o *opts) {
			common(fs, o, 5*time.Minute)
			selector(fs, o)
			fs.StringVar(&o.reason, "reason", "server restarting", "kick reason sent to clients")
		},
		run: restart,
	},
	{
		name: "reload", usage: "reload [--env ENV] [--config servers.toml]",
		summary: "re-read servers.toml and apply the difference: start added servers, drain then stop removed ones " +
			"(their clients are kicked after drainTimeout), restart changed ones, leave the others alone; a line per " +
			"change. An invalid file changes nothing.",
		flags: func(fs *flag.FlagSet, o *opts) { common(fs, o, 10*time.Minute) },
		run:   reload,
	},
	{
		name: "add", usage: "add [--env ENV] [--config servers.toml] id=ID type=T host=H port=P [KEY=VALUE...]",
		summary: "add one server that is not in servers.toml and start it (keys as in a servers.toml entry; args as " +
			"a comma-separated list; env.NAME=VALUE). It runs until removed; a later reload removes it unless " +
			"servers.toml has it.",
		flags: func(fs *flag.FlagSet, o *opts) { common(fs, o, 2*time.Minute) },
		run:   add,
		args:  true,
	},
	{
		name: "remove", usage: "remove [--env ENV] [--config servers.toml] --id ID|--type T|--group G [--reason R]",
		summary: "drain servers (not offered to new clients), stop them once their sessions are gone or after " +
			"drainTimeout, and take them out of the cluster until a reload (take them out of servers.toml to make it last).",
		flags: func(fs *flag.FlagSet, o *opts) {
			common(fs, o, 10*time.Minute)
			selector(fs, o)
			fs.StringVar(&o.reason, "reason", "server removed from the cluster", "kick reason sent to clients")
		},
		run: remove,
	},
	{
		name: "update", usage: "update [--env ENV] [--config servers.toml] --binary PATH [--group G] | --resume",
		summary: "two-group rolling update to the build at PATH: for group b, then a, drain the group's gates at the " +
			"load balancer and its frontends, wait for their players to leave (drainTimeout; the rest are kicked), stop the " +
			"group, install PATH (keeping the previous binary as .prev), start it, wait until it registered, ready it at " +
			"the load balancer. A group that fails to come up goes back to the previous build; the command then exits " +
			"non-zero. --resume finishes an interrupted update.",
		flags: func(fs *flag.FlagSet, o *opts) {
			common(fs, o, 30*time.Minute)
			fs.StringVar(&o.binary, "binary", "", "the new build (a file on this machine)")
			fs.Var(&o.groups, "group", "update only this group (repeatable; default b, then a)")
			fs.BoolVar(&o.resume, "resume", false, "finish an update a master left half-way")
		},
		run: update,
	},
	{
		name: "lb", usage: "lb [--env ENV] [--config servers.toml] haproxy",
		summary: "print a haproxy.cfg fragment for the topology: the admin socket of [ENV.lb] haproxySocket, a TCP " +
			"frontend, and a backend with a server per gate (named by gate id, as the update expects).",
		flags: func(fs *flag.FlagSet, o *opts) { common(fs, o, 10*time.Second) },
		run:   lbConfig,
		args:  true,
	},
	{
		name: "dashboard", usage: "dashboard [--env ENV] [--config servers.toml]",
		summary: "print the URL of the running master's web dashboard (on [ENV.master] adminHost:adminPort), with its " +
			"login token (?token=, valid while this master runs): every server by host and group, live, with restart and stop.",
		flags: func(fs *flag.FlagSet, o *opts) { common(fs, o, 10*time.Second) },
		run:   dashboard,
	},
	{
		name: "logs", usage: "logs [--env ENV] [--config servers.toml] --id ID [-f] [-n N]",
		summary: "print a server's log, read on its host (over SSH for another machine); needs no running master.",
		flags: func(fs *flag.FlagSet, o *opts) {
			common(fs, o, 30*time.Second)
			fs.Var(&o.ids, "id", "server id")
			fs.BoolVar(&o.follow, "f", false, "follow: print what the server writes next, until interrupted")
			fs.IntVar(&o.lines, "n", 100, "print the last N lines (0: all)")
		},
		run: logs,
	},
}

// run is the whole CLI; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" || name == "-help" {
		if len(args) > 1 {
			if c := lookup(args[1]); c != nil {
				fs, _ := c.flagSet(stdout)
				fs.Usage()
				return 0
			}
		}
		usage(stdout)
		return 0
	}
	c := lookup(name)
	if c == nil {
		fmt.Fprintf(stderr, "master: unknown command %q\n\n", name)
		usage(stderr)
		return 2
	}
	fs, o := c.flagSet(stderr)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 && !c.args {
		fmt.Fprintf(stderr, "master %s: unexpected arguments %q\n", name, fs.Args())
		return 2
	}
	o.args = fs.Args()
	o.stdout, o.stderr = stdout, stderr
	if err := c.run(o); err != nil {
		fmt.Fprintf(stderr, "master %s: %v\n", name, err)
		return 1
	}
	return 0
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (c *command) flagSet(w io.Writer) (*flag.FlagSet, *opts) {
	o := &opts{}
	fs := flag.NewFlagSet("master "+c.name, flag.ContinueOnError)
	fs.SetOutput(w)
	c.flags(fs, o)
	fs.Usage = func() {
		fmt.Fprintf(w, "usage: master %s\n\n%s\n\nflags:\n", c.usage, c.summary)
		fs.PrintDefaults()
	}
	return fs, o
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "master controls a shaddock cluster (servers.toml).\n\nusage:")
	for _, c := range commands {
		fmt.Fprintf(w, "  master %s\n      %s\n", c.usage, c.summary)
	}
	fmt.Fprintln(w, "  master help [COMMAND]\n      this help, or a command's flags (also: master COMMAND -h)")
}

// load reads the config and returns its absolute path and the environment.
func (o *opts) load() (string, *config.Env, error) {
	abs, err := filepath.Abs(o.config)
	if err != nil {
		return "", nil, err
	}
	env, err := config.Load(abs, o.env)
	if err != nil {
		return "", nil, err
	}
	return abs, env, nil
}

// loadRunning is load for commands that only talk to the running master
// (list, stop, kill, restart, logs): while servers.toml does not parse (an
// edit under way), the master's copy of the config it runs serves to reach
// it, with a warning; the operator can still see and stop the cluster.
func (o *opts) loadRunning() (string, *config.Env, error) {
	abs, env, err := o.load()
	if err == nil {
		return abs, env, nil
	}
	absCfg, aerr := filepath.Abs(o.config)
	if aerr != nil {
		return "", nil, err
	}
	applied := master.DefaultPaths(absCfg).AppliedConfig(o.env)
	env2, err2 := config.Load(applied, o.env)
	if err2 != nil {
		return "", nil, err
	}
	fmt.Fprintf(o.stderr, "warning: %v\nwarning: using the config the running master applied (%s)\n", err, applied)
	return absCfg, env2, nil
}

func (o *opts) context() (context.Context, context.CancelFunc) {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel2 := context.WithTimeout(ctx, o.timeout)
	return ctx, func() { cancel2(); cancel() }
}

func (o *opts) selector() *masterpb.Selector {
	return &masterpb.Selector{Ids: o.ids, Types: o.types, Groups: o.groups}
}

func (o *opts) dial(ctx context.Context) (*master.Client, error) {
	abs, env, err := o.loadRunning()
	if err != nil {
		return nil, err
	}
	c, err := master.DialEnv(ctx, env, master.DefaultPaths(abs))
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (o *opts) printProgress(p *masterpb.Progress) {
	if p.GetError() {
		fmt.Fprintln(o.stdout, "error: "+p.GetMessage())
		return
	}
	fmt.Fprintln(o.stdout, p.GetMessage())
}

func start(o *opts) error {
	if len(o.ids) > 0 || len(o.types) > 0 {
		ctx, cancel := o.context()
		defer cancel()
		c, err := o.dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Start(ctx, o.selector(), o.printProgress)
	}
	abs, env, err := o.load()
	if err != nil {
		return err
	}
	paths := master.DefaultPaths(abs)
	if pid, err := paths.MasterPID(env.Name); err == nil {
		return alreadyRunning(o, env, paths, pid)
	}
	if o.daemon {
		return daemon(o, abs, env, paths)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	// The master logs in the environment's format, as its servers do, and
	// names itself on every line ("server" is the subject of its lines).
	var handler slog.Handler = slog.NewTextHandler(o.stderr, &slog.HandlerOptions{Level: level})
	if env.LogFormat == config.LogJSON {
		handler = slog.NewJSONHandler(o.stderr, &slog.HandlerOptions{Level: level})
	}
	log := slog.New(handler).With("id", env.Master.ID, "type", "master")
	cfg := master.Config{Env: env, ConfigPath: abs, RunDir: paths.RunDir, LogDir: paths.LogDir, Logger: log,
		KeepGoing: o.keepGoing, Progress: o.stdout}
	if o.notifyFD > 0 {
		// Started by start --daemon: the progress goes to the parent (and
		// to this master's log), then the outcome, then the pipe closes.
		notify := os.NewFile(uintptr(o.notifyFD), "notify")
		cfg.Progress = teeWriter{notify, o.stderr}
		cfg.Ready = func(err error) {
			if err != nil {
				fmt.Fprintf(notify, "%s%s\n", notifyFailed, err)
			} else {
				fmt.Fprintln(notify, notifyReady)
			}
			notify.Close()
		}
	}
	m, err := master.New(cfg)
	if err != nil {
		return err
	}
	// SIGINT/SIGTERM stop the master only: the servers keep serving.
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	return m.Run(ctx)
}

// The last line a daemon master writes on its notify pipe.
const (
	notifyReady  = "\x00ready"
	notifyFailed = "\x00failed "
)

// teeWriter writes to every writer, whatever the others do (a parent that
// went away must not silence the log).
type teeWriter []io.Writer

func (t teeWriter) Write(p []byte) (int, error) {
	for _, w := range t {
		w.Write(p)
	}
	return len(p), nil
}

// alreadyRunning answers a start for an environment whose master runs: it
// starts nothing and says what runs.
func alreadyRunning(o *opts, env *config.Env, paths master.Paths, pid int) error {
	ctx, cancel := o.context()
	defer cancel()
	c, err := master.DialEnv(ctx, env, paths)
	if err != nil {
		return fmt.Errorf("a master for env %s is already running (pid %d) but does not answer: %w", env.Name, pid, err)
	}
	defer c.Close()
	lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
	rep, err := c.List(lctx)
	lcancel()
	if err != nil {
		return fmt.Errorf("a master for env %s is already running (pid %d) but does not answer: %w", env.Name, pid, err)
	}
	var down []string
	running := 0
	for _, s := range rep.GetServers() {
		if s.GetState() == masterpb.ServerState_RUNNING {
			running++
			continue
		}
		d := s.GetInfo().GetId() + " (" + strings.ToLower(s.GetState().String())
		if r := s.GetReason(); r != "" {
			d += ": " + strings.SplitN(r, "\n", 2)[0]
		}
		down = append(down, d+")")
	}
	if len(down) == 0 {
		fmt.Fprintf(o.stdout, "env %s is already running (master pid %d, all %d servers running); nothing started\n", env.Name, pid, running)
		return nil
	}
	return fmt.Errorf("env %s is already running (master pid %d), nothing started; %d of %d servers are not running: %s; "+
		"start them with `master start --id ID`", env.Name, pid, len(down), len(rep.GetServers()), strings.Join(down, ", "))
}

// daemon starts this program again as a detached master and prints the
// start's progress, which the master sends back on a pipe, until the
// cluster is up or the start failed.
func daemon(o *opts, abs string, env *config.Env, paths master.Paths) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	defer r.Close()
	logPath := paths.MasterLog(env.Name)
	args := []string{"start", "--env", env.Name, "--config", abs, "--log-level", o.logLevel, "--notify-fd", "3"}
	if o.keepGoing {
		args = append(args, "--keep-going")
	}
	cmd, err := master.StartDaemon(exe, args, logPath, w)
	w.Close() // the child holds the write end now: EOF when it closes or dies
	if err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fmt.Fprintf(o.stdout, "master of env %s started in the background (pid %d, log %s)\n", env.Name, cmd.Process.Pid, logPath)

	outcome := make(chan string, 1) // the marker line, or "" at EOF without one
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "\x00") {
				outcome <- line
				return
			}
			fmt.Fprintln(o.stdout, line)
		}
		outcome <- ""
	}()
	ctx, cancel := o.context()
	defer cancel()
	select {
	case line := <-outcome:
		switch {
		case line == notifyReady:
			return nil
		case strings.HasPrefix(line, notifyFailed):
			why := strings.TrimPrefix(line, notifyFailed)
			if o.keepGoing {
				return fmt.Errorf("%s; the master (pid %d) and the servers that started keep running", why, cmd.Process.Pid)
			}
			// The master stops what it started and exits: wait for it, so
			// that nothing is left running when this returns.
			select {
			case <-exited:
			case <-ctx.Done():
				return fmt.Errorf("%s; the master (pid %d) has not exited yet", why, cmd.Process.Pid)
			}
			return fmt.Errorf("%s; stopped what it started", why)
		}
		err := <-exited
		return fmt.Errorf("master of env %s exited before the cluster was up (%v); last lines of %s:\n%s", env.Name, err, logPath, master.Tail(logPath, 20))
	case <-ctx.Done():
		return fmt.Errorf("cluster of env %s not up after %s (%w); the master (pid %d) keeps trying: see `master list`", env.Name, o.timeout, ctx.Err(), cmd.Process.Pid)
	}
}

func list(o *opts) error {
	ctx, cancel := o.context()
	defer cancel()
	c, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	rep, err := c.List(ctx)
	if err != nil {
		return err
	}
	return master.WriteTable(o.stdout, rep)
}

func stop(o *opts) error {
	ctx, cancel := o.context()
	defer cancel()
	c, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	sel := o.selector()
	if len(sel.Ids)+len(sel.Types)+len(sel.Groups) == 0 {
		if err := c.StopAll(ctx, o.reason, o.printProgress); err != nil {
			return err
		}
		fmt.Fprintf(o.stdout, "env %s stopped: every server and the master have exited\n", c.Env.Name)
		return nil
	}
	return c.StopServers(ctx, sel, o.reason, o.printProgress)
}

func restart(o *opts) error {
	sel := o.selector()
	if len(sel.Ids)+len(sel.Types)+len(sel.Groups) == 0 {
		return errors.New("say which servers: --id, --type or --group")
	}
	ctx, cancel := o.context()
	defer cancel()
	c, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Restart(ctx, sel, o.reason, o.printProgress)
}

func reload(o *opts) error {
	// The file is checked here first: a broken edit never reaches the
	// master, and the error names the file, line and key.
	if _, _, err := o.load(); err != nil {
		return fmt.Errorf("%w\nnothing changed", err)
	}
	ctx, cancel := o.context()
	defer cancel()
	c, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Reload(ctx, o.printProgress)
}

func add(o *opts) error {
	fields := map[string]string{}
	for _, a := range o.args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return fmt.Errorf("%q is not KEY=VALUE", a)
		}
		if _, dup := fields[k]; dup {
			return fmt.Errorf("%s given twice", k)
		}
		fields[k] = v
	}
	if len(fields) == 0 {
		return errors.New("describe the server: id=ID type=T host=H port=P [clientPort=C frontend=true ...]")
	}
	ctx, cancel := o.context()
	defer cancel()
	c, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Add(ctx, fields, o.printProgress)
}

func remove(o *opts) error {
	sel := o.selector()
	if len(sel.Ids)+len(sel.Types)+len(sel.Groups) == 0 {
		return errors.New("say which servers: --id, --type or --group")
	}
	ctx, cancel := o.context()
	defer cancel()
	c, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Remove(ctx, sel, o.reason, o.printProgress)
}

func update(o *opts) error {
	if (o.binary == "") == !o.resume {
		return errors.New("give the new build (--binary PATH), or --resume")
	}
	bin := o.binary
	if bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return err
		}
		bin = abs
	}
	ctx, cancel := o.context()
	defer cancel()
	c, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Update(ctx, &masterpb.UpdateRequest{Binary: bin, Groups: o.groups, Resume: o.resume}, o.printProgress)
}

func lbConfig(o *opts) error {
	if len(o.args) != 1 || o.args[0] != "haproxy" {
		return errors.New("say which balancer: master lb haproxy")
	}
	_, env, err := o.load()
	if err != nil {
		return err
	}
	return lb.HAProxyConfig(o.stdout, env)
}

func dashboard(o *opts) error {
	abs, env, err := o.loadRunning()
	if err != nil {
		return err
	}
	u, err := master.DashboardURL(env, master.DefaultPaths(abs))
	if err != nil {
		return err
	}
	fmt.Fprintln(o.stdout, u)
	return nil
}

func logs(o *opts) error {
	if len(o.ids) != 1 {
		return errors.New("say which server: --id ID (one)")
	}
	abs, env, err := o.loadRunning()
	if err != nil {
		return err
	}
	var ctx context.Context
	var cancel context.CancelFunc
	if o.follow {
		ctx, cancel = signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	} else {
		ctx, cancel = o.context()
	}
	defer cancel()
	return master.Logs(ctx, env, abs, o.ids[0], o.lines, o.follow, o.stdout)
}

func kill(o *opts) error {
	ctx, cancel := o.context()
	defer cancel()
	c, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Kill(ctx, o.selector(), o.printProgress)
}
