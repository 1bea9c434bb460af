// Command master runs and controls a shaddock cluster: it starts the master
// (the control plane, see package master) and talks to a running one.
//
//	master start --env=development [--config servers.toml] [--daemon]
//	master start --id chat-server-1        # one server, through the running master
//	master list
//	master stop [--id ID|--type T|--group G] [--reason R]
//	master kill [--id ID|--type T|--group G]
//	master help
//
// From the repo root, `bin/master start --env=development --daemon` starts
// the demo cluster in the background and returns once every server runs;
// `bin/master stop` returns once every server and the master have exited.
package main

import (
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
	"github.com/shaddock/shaddock/master"
	"github.com/shaddock/shaddock/proto/masterpb"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// command is one subcommand: its flags and what it does.
type command struct {
	name, usage, summary string
	flags                func(fs *flag.FlagSet, o *opts)
	run                  func(o *opts) error
}

// opts are every command's flags (each command registers the ones it has).
type opts struct {
	env, config, reason, logLevel string
	daemon                        bool
	timeout                       time.Duration
	ids, types, groups            listFlag
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
		name: "start", usage: "start --env=ENV [--config servers.toml] [--daemon] [--timeout 60s] | start [--type T] [--id ID]",
		summary: "start the master (which starts every server); with --daemon in the background, returning once " +
			"every server runs. With --type or --id, ask the running master to start those servers.",
		flags: func(fs *flag.FlagSet, o *opts) {
			common(fs, o, 60*time.Second)
			fs.BoolVar(&o.daemon, "daemon", false, "run the master in the background (log: logs/master-ENV.log) and wait until the cluster is up")
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
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "master %s: unexpected arguments %q\n", name, fs.Args())
		return 2
	}
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

func (o *opts) context() (context.Context, context.CancelFunc) {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel2 := context.WithTimeout(ctx, o.timeout)
	return ctx, func() { cancel2(); cancel() }
}

func (o *opts) selector() *masterpb.Selector {
	return &masterpb.Selector{Ids: o.ids, Types: o.types, Groups: o.groups}
}

func (o *opts) dial(ctx context.Context) (*master.Client, error) {
	abs, env, err := o.load()
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
		return fmt.Errorf("a master for env %s is already running (pid %d); `master list` shows it", env.Name, pid)
	}
	if o.daemon {
		return daemon(o, abs, env, paths)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(o.stderr, &slog.HandlerOptions{Level: level}))
	m, err := master.New(master.Config{Env: env, ConfigPath: abs, RunDir: paths.RunDir, LogDir: paths.LogDir, Logger: log})
	if err != nil {
		return err
	}
	// SIGINT/SIGTERM stop the master only: the servers keep serving.
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	return m.Run(ctx)
}

// daemon starts this program again as a detached master and waits until
// every server runs.
func daemon(o *opts, abs string, env *config.Env, paths master.Paths) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	logPath := paths.MasterLog(env.Name)
	cmd, err := master.StartDaemon(exe, []string{"start", "--env", env.Name, "--config", abs, "--log-level", o.logLevel}, logPath)
	if err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fmt.Fprintf(o.stdout, "master of env %s started in the background (pid %d, log %s)\n", env.Name, cmd.Process.Pid, logPath)
	ctx, cancel := o.context()
	defer cancel()
	if err := master.WaitUp(ctx, env, paths, o.stdout, exited); err != nil {
		return fmt.Errorf("%w\nlast lines of %s:\n%s", err, logPath, master.Tail(logPath, 30))
	}
	return nil
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
