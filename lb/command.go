package lb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/shaddock/shaddock/config"
)

// Environment variables the command driver sets for the user's commands
// (documented in the package doc).
const (
	envAction    = "SHADDOCK_LB_ACTION"  // "drain", "enable" or "status"
	envGroup     = "SHADDOCK_GROUP"      // the group, e.g. "b"
	envGates     = "SHADDOCK_GATES"      // the gate ids, space separated
	envGateAddrs = "SHADDOCK_GATE_ADDRS" // their client addresses, host:port, space separated, same order
)

// command drives a balancer through the user's shell commands: cloud load
// balancers have an API and a CLI, not a runtime socket.
type command struct {
	drain, enable, status string
	log                   *slog.Logger
}

func newCommand(cfg config.LB, log *slog.Logger) (*command, error) {
	if cfg.DrainCommand == "" || cfg.EnableCommand == "" {
		return nil, errors.New("lb command: drainCommand and enableCommand are both required")
	}
	return &command{drain: cfg.DrainCommand, enable: cfg.EnableCommand, status: cfg.StatusCommand, log: log}, nil
}

func (c *command) Drain(ctx context.Context, group string, gates []Gate) error {
	return c.set(ctx, "drain", "drainCommand", c.drain, group, gates, func(s State) bool { return s == Drain || s == Maint })
}

func (c *command) Enable(ctx context.Context, group string, gates []Gate) error {
	return c.set(ctx, "enable", "enableCommand", c.enable, group, gates, func(s State) bool { return s == Ready })
}

func (c *command) Status(ctx context.Context, group string, gates []Gate) (map[string]State, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	states, err := c.read(ctx, group, gates)
	if err != nil {
		return nil, fmt.Errorf("status of group %s: %w", group, err)
	}
	return states, nil
}

// read runs statusCommand and parses its output; without one, every gate
// is Unknown.
func (c *command) read(ctx context.Context, group string, gates []Gate) (map[string]State, error) {
	if c.status == "" {
		out := make(map[string]State, len(gates))
		for _, g := range gates {
			out[g.ID] = Unknown
		}
		return out, nil
	}
	stdout, err := c.run(ctx, "status", "statusCommand", c.status, group, gates)
	if err != nil {
		return nil, err
	}
	states, err := parseStatus(stdout, gates)
	if err != nil {
		return nil, fmt.Errorf("statusCommand %q: %w", c.status, err)
	}
	return states, nil
}

// set runs script for the gates, then, with a statusCommand, reads them
// back until want holds for every gate.
func (c *command) set(ctx context.Context, op, key, script, group string, gates []Gate, want func(State) bool) error {
	if len(gates) == 0 {
		return nil
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	start := time.Now()
	if _, err := c.run(ctx, op, key, script, group, gates); err != nil {
		return fmt.Errorf("%s group %s (%s): %w", op, group, strings.Join(gateIDs(gates), " "), err)
	}
	ran := time.Since(start)
	if c.status != "" {
		read := func(ctx context.Context) (map[string]State, error) { return c.read(ctx, group, gates) }
		states, err := waitFor(ctx, gates, read, want)
		if states == nil {
			return fmt.Errorf("%s group %s: read back: %w", op, group, err)
		}
		var pending []string
		for _, g := range gates {
			if !want(states[g.ID]) {
				pending = append(pending, g.ID)
			}
		}
		if len(pending) > 0 {
			msg := fmt.Sprintf("%s group %s: %s ran, but statusCommand still reports %s", op, group, key, describe(pending, states))
			if err != nil {
				return fmt.Errorf("%s: %w", msg, err)
			}
			return errors.New(msg)
		}
	}
	if op == "drain" {
		c.log.Info("gates drained at the balancer", "group", group, "gates", gateIDs(gates), "ran", ran, "took", time.Since(start))
	} else {
		c.log.Info("gates enabled at the balancer", "group", group, "gates", gateIDs(gates), "ran", ran, "took", time.Since(start))
	}
	return nil
}

// maxOutput bounds what is kept of a command's stdout and of its stderr.
const maxOutput = 1 << 20

// run runs script with "sh -c" in the master's working directory and
// environment plus the env* variables, and returns its stdout. A failure
// carries the command's stderr; ctx ending kills the command's whole
// process group.
func (c *command) run(ctx context.Context, action, key, script, group string, gates []Gate) ([]byte, error) {
	addrs := make([]string, len(gates))
	for i, g := range gates {
		addrs[i] = g.Addr()
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	cmd.Env = append(os.Environ(),
		envAction+"="+action,
		envGroup+"="+group,
		envGates+"="+strings.Join(gateIDs(gates), " "),
		envGateAddrs+"="+strings.Join(addrs, " "),
	)
	stdout := &capped{max: maxOutput}
	stderr := &capped{max: maxOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	ownProcessGroup(cmd)
	// A child that left the process group may still hold the pipes open
	// after the kill; do not wait for it past this.
	cmd.WaitDelay = time.Second
	start := time.Now()
	err := cmd.Run()
	c.log.Debug("lb command ran", "key", key, "group", group, "took", time.Since(start), "err", err)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %q did not finish in time and was killed: %w%s", key, script, context.Cause(ctx), stderr.suffix())
		}
		return nil, fmt.Errorf("%s %q: %w%s", key, script, err, stderr.suffix())
	}
	if stdout.dropped {
		return nil, fmt.Errorf("%s %q: more than %d bytes of output", key, script, maxOutput)
	}
	return stdout.buf.Bytes(), nil
}

// capped keeps the first max bytes written to it and drops the rest, so a
// chatty command cannot grow the master's memory.
type capped struct {
	buf     bytes.Buffer
	max     int
	dropped bool
}

func (w *capped) Write(p []byte) (int, error) {
	room := w.max - w.buf.Len()
	if len(p) > room {
		w.buf.Write(p[:max(room, 0)])
		w.dropped = true
		return len(p), nil
	}
	return w.buf.Write(p)
}

// suffix is ": stderr: ..." for an error message, or "" if there was none.
func (w *capped) suffix() string {
	s := strings.TrimSpace(w.buf.String())
	if s == "" {
		return ""
	}
	const keep = 2000 // the end says what went wrong
	if len(s) > keep {
		s = "..." + s[len(s)-keep:]
	}
	return ": stderr: " + s
}

// parseStatus reads statusCommand's output: one "ID STATE" line per gate,
// where STATE is ready, drain, maint, down or unknown (any case). Blank
// lines, lines starting with '#' and words after STATE are ignored; ids not
// among gates are ignored; a gate not listed is Unknown. A line naming the
// same gate twice, or a state not in the list, is an error.
func parseStatus(out []byte, gates []Gate) (map[string]State, error) {
	states := make(map[string]State, len(gates))
	for _, g := range gates {
		states[g.ID] = Unknown
	}
	seen := make(map[string]int)
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 4096), maxOutput)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("line %d %q: want \"ID STATE\"", n, line)
		}
		st, ok := parseState(f[1])
		if !ok {
			return nil, fmt.Errorf("line %d: gate %s: state %q is not ready, drain, maint, down or unknown", n, f[0], f[1])
		}
		if prev, dup := seen[f[0]]; dup {
			return nil, fmt.Errorf("line %d: gate %s listed again (first on line %d)", n, f[0], prev)
		}
		seen[f[0]] = n
		if _, asked := states[f[0]]; asked {
			states[f[0]] = st
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return states, nil
}
