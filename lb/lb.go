package lb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/shaddock/shaddock/config"
)

// GateType is the server type of gates. The framework knows a gate only by
// its type name: gate.gateHandler.queryEntry routes to servers of type
// "gate", so those are the servers the balancer fronts.
const GateType = "gate"

// DefaultTimeout bounds a Drain, Enable or Status call whose context has no
// deadline. Enable may wait out HAProxy's health checks (the fragment
// HAProxyConfig writes takes a restarted gate back within about 1.5 s), so
// it is far more than a round trip needs.
const DefaultTimeout = 10 * time.Second

// Gate is a gate server as the balancer knows it.
type Gate struct {
	ID   string // server id in servers.toml; the balancer's name for it
	Host string // address the balancer connects to: clientHost, or host
	Port int    // the gate's client port
}

// Addr returns host:port, the address the balancer connects to.
func (g Gate) Addr() string { return net.JoinHostPort(g.Host, strconv.Itoa(g.Port)) }

// Gates returns the gates of env in group, sorted by id; group "" returns
// every gate. A gate without a group belongs to no group here: rolling
// updates never drain it.
func Gates(env *config.Env, group string) []Gate {
	var out []Gate
	for _, s := range env.ServersOfType(GateType) {
		if group != "" && s.Group != group {
			continue
		}
		out = append(out, Gate{ID: s.ID, Host: gateHost(s), Port: s.ClientPort})
	}
	return out
}

// gateHost is the address a balancer reaches a gate's client port on. A
// clientHost of 0.0.0.0 or :: is what the gate listens on, not an address
// anyone can connect to; host is then the one to use.
func gateHost(s config.Server) string {
	h := s.ClientHost
	if h == "" {
		return s.Host
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
		return s.Host
	}
	return h
}

// State of a gate at the balancer: what it does with new connections.
type State string

// States, in the order Status resolves them (the first that applies wins).
const (
	// Maint: in maintenance; no new connections and (HAProxy) no health
	// checks. Established connections stay.
	Maint State = "maint"
	// Drain: no new connections; established ones stay until they end.
	Drain State = "drain"
	// Down: the balancer would send new connections but its health check
	// says the gate is down, so it sends none.
	Down State = "down"
	// Ready: the gate takes new connections.
	Ready State = "ready"
	// Unknown: the driver cannot tell (command driver without a
	// statusCommand, or a gate the statusCommand left out).
	Unknown State = "unknown"
)

// Driver drains and enables a group's gates at the load balancer. The
// group names the gates for logs and the command driver's environment; the
// gates are what is acted on. An empty gates slice is no work. Drain and
// Enable are idempotent, so repeating one (after a balancer reload, or a
// master restart) is safe. Methods are safe for concurrent use, but callers
// are expected to act on one group at a time.
type Driver interface {
	// Drain stops new connections to the gates; established ones stay. It
	// returns once the balancer reports every gate Drain (or Maint). When
	// it fails, some gates may be drained (HAProxy: none, if a gate is
	// unknown); Enable undoes it.
	Drain(ctx context.Context, group string, gates []Gate) error
	// Enable lets new connections reach the gates again. It returns once
	// the balancer reports every gate Ready.
	Enable(ctx context.Context, group string, gates []Gate) error
	// Status returns each gate's state, keyed by gate id.
	Status(ctx context.Context, group string, gates []Gate) (map[string]State, error)
}

// Errors callers can branch on with errors.Is.
var (
	// ErrUnknownGate: the balancer has no server named after the gate's id.
	ErrUnknownGate = errors.New("the balancer's server names must be the gate ids")
	// ErrUnknownBackend: HAProxy has no backend named haproxyBackend.
	ErrUnknownBackend = errors.New("no such backend")
	// ErrPermission: the balancer refused the command (HAProxy: the stats
	// socket is not "level admin").
	ErrPermission = errors.New("permission denied")
)

// New returns the driver cfg asks for, or a nil Driver and nil error when
// cfg.Driver is "" (no balancer to drive). logger may be nil.
func New(cfg config.LB, logger *slog.Logger) (Driver, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch cfg.Driver {
	case "":
		return nil, nil
	case config.LBHAProxy:
		// Returned through explicit nils: a nil *haproxy in a Driver would
		// not be a nil Driver.
		h, err := newHAProxy(cfg.HAProxySocket, cfg.HAProxyBackend, logger.With("lb", config.LBHAProxy))
		if err != nil {
			return nil, err
		}
		return h, nil
	case config.LBCommand:
		c, err := newCommand(cfg, logger.With("lb", config.LBCommand))
		if err != nil {
			return nil, err
		}
		return c, nil
	default:
		return nil, fmt.Errorf("lb driver %q: must be %q or %q", cfg.Driver, config.LBHAProxy, config.LBCommand)
	}
}

// withDefaultTimeout gives ctx a deadline of DefaultTimeout if it has none:
// no call waits on a balancer for ever.
func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// gateIDs returns the gates' ids in order.
func gateIDs(gates []Gate) []string {
	ids := make([]string, len(gates))
	for i, g := range gates {
		ids[i] = g.ID
	}
	return ids
}

// parseState reads a State word, case-insensitively.
func parseState(s string) (State, bool) {
	switch st := State(strings.ToLower(s)); st {
	case Ready, Drain, Maint, Down, Unknown:
		return st, true
	}
	return "", false
}

// pollInterval is how often Drain and Enable read the balancer back while
// waiting for a state to show: short enough that Enable returns soon after
// a health check passes, long enough not to load a busy balancer.
const pollInterval = 100 * time.Millisecond

// waitFor reads the gates' states with read until done accepts every
// one, or ctx ends, or a read fails. It returns the last successful read
// (nil if none) and why it stopped early, if it did. A gate missing from a
// read is given to done as the zero T.
func waitFor[T any](ctx context.Context, gates []Gate, read func(context.Context) (map[string]T, error), done func(T) bool) (map[string]T, error) {
	t := time.NewTimer(0)
	defer t.Stop()
	var last map[string]T
	for {
		select {
		case <-ctx.Done():
			return last, context.Cause(ctx)
		case <-t.C:
		}
		states, err := read(ctx)
		if err != nil {
			return last, err
		}
		last = states
		if allDone(gates, states, done) {
			return last, nil
		}
		t.Reset(pollInterval)
	}
}

func allDone[T any](gates []Gate, states map[string]T, done func(T) bool) bool {
	for _, g := range gates {
		if !done(states[g.ID]) {
			return false
		}
	}
	return true
}

// describe lists ids with their states, for errors: "gate-b1 (down), gate-b2 (drain)".
func describe(ids []string, states map[string]State) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		st := states[id]
		if st == "" {
			st = Unknown
		}
		parts[i] = id + " (" + string(st) + ")"
	}
	return strings.Join(parts, ", ")
}
