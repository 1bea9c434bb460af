// Command robot is shaddock's load robot: bounded workloads that drive a
// shaddock (or Pomelo) cluster through the Pomelo protocol with the
// tools/client library and report throughput, latency quantiles, push
// delivery, CPU and memory.
//
//	robot chat -gate 127.0.0.1:3014 -users 200 -rooms 10 -duration 20s [-target all|peer] [-rate R]
//	robot echo -addr 127.0.0.1:3010 -clients 100 -duration 10s [-size 64]
//	robot idle -addr 127.0.0.1:3010 -sessions 15000 -server-pid PID [-hold 30s] [-rooms N | -handshake-only]
//
// chat is the chatofpomelo workload (DESIGN.md §6): every user asks the gate
// for its connector, enters its room there, then sends chat messages to the
// whole room or to one peer; the robot counts onChat pushes against the
// number the sends must produce. echo measures request round trips against
// examples/echo. idle opens sessions and holds them to measure the server's
// memory per idle session (with -rooms, sessions entered in chat rooms).
//
// Every run is bounded in count and time and stops by itself (a watchdog
// exits with status 3 if a run overstays its bound); a progress line goes to
// stderr once a second; the summary goes to stdout (to stderr when -json -
// puts the JSON result on stdout). The exit status is 1 when the run counted
// errors, unless -allow-errors; 2 for a usage error.
//
// It is a measuring tool, not a test of the protocol: it trusts the client
// library and checks only what the workloads promise (replies, push counts).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/shaddock/shaddock/tools/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := robot(ctx, os.Args[1:], os.Stdout, os.Stderr, true)
	stop()
	os.Exit(code)
}

const usage = `usage: robot chat|echo|idle [flags]   (robot CMD -h for the flags)

  chat  the chatofpomelo workload through a gate (shaddock examples/chat or Pomelo)
  echo  closed-loop request round trips against examples/echo
  idle  memory per idle session of a connector (e.g. examples/echo)
`

// common holds the flags every workload has.
type common struct {
	ws          bool
	jsonPath    string
	allowErrors bool
	cpuPids     string
	cpuPidfiles string
	cpuProfile  string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.ws, "ws", true, "WebSocket; -ws=false for raw TCP")
	fs.StringVar(&c.jsonPath, "json", "", "write the result as JSON to `FILE` (- for stdout)")
	fs.BoolVar(&c.allowErrors, "allow-errors", false, "exit 0 even when the run counted errors")
	fs.StringVar(&c.cpuPids, "cpu-pids", "", "`PIDS` whose CPU is measured over the window: PID or NAME=PID, space or comma separated")
	fs.StringVar(&c.cpuPidfiles, "cpu-pidfiles", "", "`GLOB` of pid files whose processes' CPU is measured (e.g. /tmp/peers/pomelo-chat-run/run/*.pid)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write the robot's own CPU profile to `FILE` (to study its overhead)")
}

// startProfile starts the -cpuprofile; the returned function stops it.
func (c *common) startProfile() (func(), error) {
	if c.cpuProfile == "" {
		return func() {}, nil
	}
	f, err := os.Create(c.cpuProfile)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}

func (c *common) transport() string {
	if c.ws {
		return client.TransportWS
	}
	return client.TransportTCP
}

// robot is the whole command, minus the process; watchdog false (tests)
// leaves the process alone when a run overstays.
func robot(ctx context.Context, args []string, stdout, stderr io.Writer, watchdog bool) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var run func(ctx context.Context, args []string, stdout, stderr io.Writer, guard func(time.Duration)) int
	switch args[0] {
	case "chat":
		run = chatCmd
	case "echo":
		run = echoCmd
	case "idle":
		run = idleCmd
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "robot: unknown workload %q\n%s", args[0], usage)
		return 2
	}
	guard := func(bound time.Duration) {
		if !watchdog {
			return
		}
		time.AfterFunc(bound, func() {
			fmt.Fprintf(stderr, "robot %s: watchdog: the run overstayed its bound of %v; exiting\n", args[0], bound)
			os.Exit(3)
		})
	}
	return run(ctx, args[1:], stdout, stderr, guard)
}

// parse parses a workload's flags; it returns a non-negative exit code when
// the command must end (help or usage error).
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) int {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "robot %s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return 2
	}
	return -1
}

// finish writes the JSON and the summary and picks the exit status.
func finish(c *common, result any, errCount int64, summary func(io.Writer), stdout, stderr io.Writer) int {
	out := stdout
	if c.jsonPath == "-" {
		out = stderr
	}
	summary(out)
	if c.jsonPath != "" {
		if err := writeJSON(c.jsonPath, stdout, result); err != nil {
			fmt.Fprintln(stderr, "robot:", err)
			return 1
		}
	}
	if errCount > 0 && !c.allowErrors {
		fmt.Fprintf(stderr, "robot: %d errors (exit status 1; -allow-errors to accept them)\n", errCount)
		return 1
	}
	return 0
}

func chatCmd(ctx context.Context, args []string, stdout, stderr io.Writer, guard func(time.Duration)) int {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	var c common
	c.register(fs)
	cfg := chatConfig{Progress: stderr}
	fs.StringVar(&cfg.Gate, "gate", "127.0.0.1:3014", "gate `HOST:PORT`")
	fs.IntVar(&cfg.Users, "users", 200, "users u0..uN-1")
	fs.IntVar(&cfg.Rooms, "rooms", 10, "rooms: user i is in room r<i % rooms>")
	fs.DurationVar(&cfg.Duration, "duration", 20*time.Second, "measured window")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "load before the measured window (not counted)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "total sends per second, open loop; 0 = closed loop (send, wait for the reply, send again)")
	fs.StringVar(&cfg.Target, "target", "all", "all: send to the whole room; peer: to the next user of the room (one push per send)")
	fs.IntVar(&cfg.LoginConcurrency, "login-concurrency", 50, "logins in flight at once")
	fs.DurationVar(&cfg.LoginTimeout, "login-timeout", 60*time.Second, "bound on the whole login phase")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "how long a send may still be answered after the window")
	fs.DurationVar(&cfg.Drain, "drain", 5*time.Second, "how long to wait for missing pushes after the last reply")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: robot chat [flags]\n\nThe chatofpomelo workload: users log in through the gate, then send\nchat.chatHandler.send in a closed (or open, -rate) loop; onChat pushes are\ncounted against the number expected.\n\n")
		fs.PrintDefaults()
	}
	if code := parse(fs, args, stderr); code >= 0 {
		return code
	}
	cfg.Transport = c.transport()
	pids, err := resolvePids(c.cpuPids, c.cpuPidfiles)
	if err != nil {
		fmt.Fprintln(stderr, "robot chat:", err)
		return 2
	}
	cfg.Pids = pids
	stopProfile, err := c.startProfile()
	if err != nil {
		fmt.Fprintln(stderr, "robot:", err)
		return 2
	}
	defer stopProfile()
	guard(cfg.LoginTimeout + cfg.Warmup + cfg.Duration + cfg.Timeout + cfg.Drain + 2*time.Minute)
	res, err := runChat(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "robot:", err)
		return 2
	}
	return finish(&c, res, res.ErrorCount, func(w io.Writer) { writeChatSummary(w, res) }, stdout, stderr)
}

func echoCmd(ctx context.Context, args []string, stdout, stderr io.Writer, guard func(time.Duration)) int {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	var c common
	c.register(fs)
	cfg := echoConfig{Progress: stderr}
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:3010", "echo connector `HOST:PORT`")
	fs.IntVar(&cfg.Clients, "clients", 100, "connections, one closed loop each")
	fs.IntVar(&cfg.Size, "size", 64, "request body bytes (a JSON string)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured window")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "load before the measured window (not counted)")
	fs.IntVar(&cfg.ConnectConcurrency, "connect-concurrency", 200, "connections being set up at once")
	fs.DurationVar(&cfg.ConnectTimeout, "connect-timeout", 60*time.Second, "bound on the connect phase")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "how long a request may still be answered after the window")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: robot echo [flags]\n\nClosed-loop round trips of %s; %s.\n\n", routeEcho, echoRateNote)
		fs.PrintDefaults()
	}
	if code := parse(fs, args, stderr); code >= 0 {
		return code
	}
	cfg.Transport = c.transport()
	pids, err := resolvePids(c.cpuPids, c.cpuPidfiles)
	if err != nil {
		fmt.Fprintln(stderr, "robot echo:", err)
		return 2
	}
	cfg.Pids = pids
	stopProfile, err := c.startProfile()
	if err != nil {
		fmt.Fprintln(stderr, "robot:", err)
		return 2
	}
	defer stopProfile()
	guard(cfg.ConnectTimeout + cfg.Warmup + cfg.Duration + cfg.Timeout + 2*time.Minute)
	res, err := runEcho(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "robot:", err)
		return 2
	}
	return finish(&c, res, res.ErrorCount, func(w io.Writer) { writeEchoSummary(w, res) }, stdout, stderr)
}

func idleCmd(ctx context.Context, args []string, stdout, stderr io.Writer, guard func(time.Duration)) int {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	var c common
	c.register(fs)
	cfg := idleConfig{Progress: stderr}
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:3010", "connector `HOST:PORT` with the echo route (with -rooms: a chat connector)")
	fs.IntVar(&cfg.Rooms, "rooms", 0, "enter every session in a chat room (u<i> in room-<i % N>, "+routeEnter+") instead of the echo request; 0 = echo")
	fs.BoolVar(&cfg.HandshakeOnly, "handshake-only", false, "no request at all: sessions are only handshaken")
	fs.IntVar(&cfg.Sessions, "sessions", 15000, "sessions to open (the robot's open-file limit bounds this, 20,000 here)")
	fs.IntVar(&cfg.ServerPid, "server-pid", 0, "`PID` of the server whose RSS is measured (required)")
	fs.DurationVar(&cfg.Hold, "hold", 30*time.Second, "how long the sessions stay idle")
	fs.IntVar(&cfg.ConnectConcurrency, "connect-concurrency", 200, "sessions being set up (and closed) at once")
	fs.DurationVar(&cfg.ConnectTimeout, "connect-timeout", 45*time.Second, "bound on the connect phase")
	fs.DurationVar(&cfg.CloseTimeout, "close-timeout", 45*time.Second, "bound on closing every session")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: robot idle -server-pid PID [flags]\n\nOpens sessions (handshake, ack, one %s request each; or, with -rooms,\n%s into a chat room), holds them idle (the client heartbeats at the\nserver's interval), and reports the server's RSS per session, and the RSS of\nthe -cpu-pids processes (the chat servers, say).\n\n", routeEcho, routeEnter)
		fs.PrintDefaults()
	}
	if code := parse(fs, args, stderr); code >= 0 {
		return code
	}
	if cfg.ServerPid <= 0 {
		fmt.Fprintln(stderr, "robot idle: -server-pid is required")
		return 2
	}
	if cfg.Rooms < 0 || cfg.Rooms > 0 && cfg.HandshakeOnly {
		fmt.Fprintln(stderr, "robot idle: -rooms must be positive, and excludes -handshake-only")
		return 2
	}
	cfg.Transport = c.transport()
	pids, err := resolvePids(c.cpuPids, c.cpuPidfiles)
	if err != nil {
		fmt.Fprintln(stderr, "robot idle:", err)
		return 2
	}
	cfg.Pids = pids
	stopProfile, err := c.startProfile()
	if err != nil {
		fmt.Fprintln(stderr, "robot:", err)
		return 2
	}
	defer stopProfile()
	// Connect and close are bounded by their own timeouts (45 s each by
	// default), so the run ends within hold + 2 minutes, and the watchdog
	// makes sure of it.
	guard(cfg.ConnectTimeout + cfg.Hold + cfg.CloseTimeout + 30*time.Second)
	res, err := runIdle(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "robot:", err)
		return 2
	}
	return finish(&c, res, res.ErrorCount, func(w io.Writer) { writeIdleSummary(w, res) }, stdout, stderr)
}
