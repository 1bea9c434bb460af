package lb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// HAProxy's srv_admin_state bits (include/haproxy/server-t.h, enum
// srv_admin; the same values from 1.6 to 3.x).
const (
	admFMaint = 0x01 // forced into maintenance (set server ... state maint, or "disabled" in the config)
	admIMaint = 0x02 // maintenance inherited from a tracked server
	admCMaint = 0x04 // "disabled" in the config; comes with FMAINT, which is what counts
	admFDrain = 0x08 // forced into drain (set server ... state drain)
	admIDrain = 0x10 // drain inherited from a tracked server
	admRMaint = 0x20 // maintenance because its address did not resolve
	// 0x40 (HMAINT in 2.6, FQDN_CHANGED later) marks a changed FQDN, not a state.

	admMaint = admFMaint | admIMaint | admRMaint // SRV_ADMF_MAINT: any of these is maintenance
	admDrain = admFDrain | admIDrain             // SRV_ADMF_DRAIN
)

// HAProxy's srv_op_state values (enum srv_state).
const (
	opStopped  = 0 // down: failing its health check (or set down)
	opStarting = 1 // up, warming up under slowstart
	opRunning  = 2 // up
	opStopping = 3 // up but soft-stopping (a check or agent asked for it): no new connections
)

// srvState is one server's line of "show servers state".
type srvState struct {
	op, admin, weight int // srv_op_state, srv_admin_state, srv_uweight
}

// state folds HAProxy's admin and operational states into what happens to
// new connections. An administrative drain or maintenance is reported even
// when the gate is also down: it says what the master asked for, and it
// outlives the health check.
func (s srvState) state() State {
	switch {
	case s.admin&admMaint != 0:
		return Maint
	case s.admin&admDrain != 0:
		return Drain
	case s.op == opStopped:
		return Down
	case s.op == opStopping || s.weight == 0:
		return Drain // takes no new connections, for its own reasons
	default:
		return Ready
	}
}

// haproxy drives HAProxy through its runtime API (the stats socket), one
// command per connection: HAProxy answers and closes (its non-interactive
// mode), so no connection state is kept between calls.
type haproxy struct {
	socket  string // as configured, for messages
	network string // "unix" or "tcp"
	address string
	backend string
	log     *slog.Logger
}

func newHAProxy(socket, backend string, log *slog.Logger) (*haproxy, error) {
	network, address, err := parseSocket(socket)
	if err != nil {
		return nil, err
	}
	if backend == "" {
		return nil, errors.New("lb haproxy: haproxyBackend is empty")
	}
	if !validName(backend) {
		return nil, fmt.Errorf("lb haproxy: haproxyBackend %q is not an haproxy proxy name (letters, digits, '-', '_', '.', ':')", backend)
	}
	return &haproxy{socket: socket, network: network, address: address, backend: backend, log: log}, nil
}

// parseSocket splits a haproxySocket value: "unix:PATH" or "HOST:PORT".
func parseSocket(s string) (network, address string, err error) {
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		if path == "" {
			return "", "", fmt.Errorf("lb haproxy: haproxySocket %q has an empty path", s)
		}
		return "unix", path, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return "", "", fmt.Errorf("lb haproxy: haproxySocket %q must be \"unix:PATH\" or \"HOST:PORT\"", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("lb haproxy: haproxySocket %q must be \"unix:PATH\" or \"HOST:PORT\"", s)
	}
	return "tcp", s, nil
}

// validName reports whether s can be sent as an HAProxy proxy or server
// name. HAProxy allows these characters in names; checking them also keeps
// a name from smuggling a second runtime API command (';', spaces, newlines).
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

func (h *haproxy) Drain(ctx context.Context, group string, gates []Gate) error {
	// FDRAIN is what "state drain" sets; the gate may also be in
	// maintenance by inheritance, which takes no new connections either.
	return h.set(ctx, "drain", "drain", group, gates, func(s srvState) bool { return s.admin&admFDrain != 0 })
}

func (h *haproxy) Enable(ctx context.Context, group string, gates []Gate) error {
	return h.set(ctx, "enable", "ready", group, gates, func(s srvState) bool { return s.state() == Ready })
}

func (h *haproxy) Status(ctx context.Context, group string, gates []Gate) (map[string]State, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if err := h.checkNames("status", gates); err != nil {
		return nil, err
	}
	srvs, err := h.servers(ctx, gates)
	if err != nil {
		return nil, fmt.Errorf("status of group %s at haproxy %s: %w", group, h.socket, err)
	}
	out := make(map[string]State, len(gates))
	for _, g := range gates {
		out[g.ID] = srvs[g.ID].state()
	}
	return out, nil
}

// set sends "set server BACKEND/ID state STATE" for every gate, then reads
// the backend back until took holds for every gate.
func (h *haproxy) set(ctx context.Context, op, state, group string, gates []Gate, took func(srvState) bool) error {
	if len(gates) == 0 {
		return nil
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if err := h.checkNames(op, gates); err != nil {
		return err
	}
	start := time.Now()
	// Check every gate is there before changing any: a misspelt gate must
	// not leave the others of its group drained.
	all, err := h.readServers(ctx)
	if err != nil {
		return fmt.Errorf("%s group %s at haproxy %s: %w", op, group, h.socket, err)
	}
	if missing := missingGates(all, gates); len(missing) > 0 {
		return fmt.Errorf("%s %s at haproxy %s: %w", op, strings.Join(missing, ", "), h.socket, h.unknownGates(missing))
	}
	for _, g := range gates {
		cmd := "set server " + h.backend + "/" + g.ID + " state " + state
		answer, err := h.call(ctx, cmd)
		if err == nil {
			err = h.answerError(g.ID, cmd, answer)
		}
		if err != nil {
			return fmt.Errorf("%s %s at haproxy %s: %w", op, g.ID, h.socket, err)
		}
	}
	applied := time.Since(start)

	// HAProxy applies the change before it answers (srv_update_status runs
	// in the command's handler), so the first read normally shows it. Enable
	// may then wait for a health check to pass. Flags HAProxy sets by
	// itself (inherited from a tracked server, a name that did not resolve)
	// cannot be cleared from here, so they end the wait at once.
	stuck := func(s srvState) bool { return s.admin&(admIMaint|admIDrain|admRMaint) != 0 }
	read := func(ctx context.Context) (map[string]srvState, error) { return h.servers(ctx, gates) }
	srvs, err := waitFor(ctx, gates, read, func(s srvState) bool { return took(s) || stuck(s) })
	if srvs == nil {
		return fmt.Errorf("%s group %s at haproxy %s: read back: %w", op, group, h.socket, err)
	}
	var pending []string
	for _, g := range gates {
		if !took(srvs[g.ID]) {
			pending = append(pending, g.ID)
		}
	}
	if len(pending) > 0 {
		return fmt.Errorf("%s %s at haproxy %s: %w", op, strings.Join(pending, ", "), h.socket, h.why(op, pending, srvs, err))
	}
	if op == "drain" {
		h.log.Info("gates drained at the balancer", "group", group, "gates", gateIDs(gates), "applied", applied, "took", time.Since(start))
	} else {
		h.log.Info("gates enabled at the balancer", "group", group, "gates", gateIDs(gates), "applied", applied, "took", time.Since(start))
	}
	return nil
}

// why explains why gates did not reach state; err is how the wait ended.
func (h *haproxy) why(op string, ids []string, srvs map[string]srvState, err error) error {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteString("; ")
		}
		s, ok := srvs[id]
		switch {
		case !ok:
			b.WriteString(id + ": not read back")
		case op == "drain":
			fmt.Fprintf(&b, "%s: drain did not take (srv_admin_state %#x)", id, s.admin)
		case s.admin&admIMaint != 0 || s.admin&admIDrain != 0:
			fmt.Fprintf(&b, "%s: %s inherited from the server it tracks; enable that one", id, s.state())
		case s.admin&admRMaint != 0:
			fmt.Fprintf(&b, "%s: in maintenance because its address does not resolve", id)
		case s.admin&admDrain != 0 || s.admin&admMaint != 0:
			fmt.Fprintf(&b, "%s: still %s (srv_admin_state %#x)", id, s.state(), s.admin)
		case s.op == opStopped:
			fmt.Fprintf(&b, "%s: enabled, but its health check says down, so it takes no new connections until the check passes", id)
		default:
			fmt.Fprintf(&b, "%s: enabled, but it takes no new connections (srv_op_state %d, weight %d)", id, s.op, s.weight)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", b.String(), err)
	}
	return errors.New(b.String())
}

// checkNames rejects gate ids HAProxy could not have as server names.
func (h *haproxy) checkNames(op string, gates []Gate) error {
	for _, g := range gates {
		if !validName(g.ID) {
			return fmt.Errorf("%s %q at haproxy %s: not an haproxy server name (letters, digits, '-', '_', '.', ':')", op, g.ID, h.socket)
		}
	}
	return nil
}

// answerError turns a runtime API answer to a "set" command into an error;
// success is an empty answer.
func (h *haproxy) answerError(id, cmd, answer string) error {
	a := strings.TrimSpace(answer)
	switch {
	case a == "":
		return nil
	case strings.HasPrefix(a, "No such server"):
		return fmt.Errorf("backend %q has no server %q: %w", h.backend, id, ErrUnknownGate)
	case strings.HasPrefix(a, "No such backend"), strings.HasPrefix(a, "Can't find backend"):
		return fmt.Errorf("haproxy has no backend %q (haproxyBackend in servers.toml): %w", h.backend, ErrUnknownBackend)
	case strings.HasPrefix(a, "Permission denied"):
		return fmt.Errorf("%q: %w: the stats socket needs \"level admin\" on its haproxy.cfg line", cmd, ErrPermission)
	default:
		return fmt.Errorf("%q: haproxy answered %q", cmd, a)
	}
}

// servers reads the backend's servers with "show servers state" and
// returns them by name, with an ErrUnknownGate error if a gate is not
// among them.
func (h *haproxy) servers(ctx context.Context, gates []Gate) (map[string]srvState, error) {
	all, err := h.readServers(ctx)
	if err != nil {
		return nil, err
	}
	if missing := missingGates(all, gates); len(missing) > 0 {
		return nil, h.unknownGates(missing)
	}
	return all, nil
}

// readServers reads every server of the backend, by name.
func (h *haproxy) readServers(ctx context.Context) (map[string]srvState, error) {
	cmd := "show servers state " + h.backend
	answer, err := h.call(ctx, cmd)
	if err != nil {
		return nil, err
	}
	all, err := parseServersState(answer, h.backend)
	if errors.Is(err, errNotState) {
		if err := h.answerError("", cmd, answer); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%q: no answer (is %s haproxy's stats socket?)", cmd, h.socket)
	}
	if err != nil {
		return nil, fmt.Errorf("%q: %w", cmd, err)
	}
	return all, nil
}

func missingGates(all map[string]srvState, gates []Gate) []string {
	var missing []string
	for _, g := range gates {
		if _, ok := all[g.ID]; !ok {
			missing = append(missing, g.ID)
		}
	}
	return missing
}

func (h *haproxy) unknownGates(ids []string) error {
	return fmt.Errorf("backend %q has no server %s: %w", h.backend, quoteAll(ids), ErrUnknownGate)
}

func quoteAll(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = strconv.Quote(id)
	}
	return strings.Join(q, ", ")
}

// errNotState: the answer is not a "show servers state" dump (HAProxy
// answered with a message instead).
var errNotState = errors.New("not a servers state dump")

// parseServersState parses the answer to "show servers state BACKEND":
//
//	1
//	# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight ...
//	3 gates 1 gate-a 127.0.0.1 2 0 1 1 4 6 3 4 6 0 0 0 - 3014 - 0 0 - - 0
//
// Columns are found by the header's names, so versions that add columns
// parse the same. Servers of other backends are skipped.
func parseServersState(answer, backend string) (map[string]srvState, error) {
	sc := bufio.NewScanner(strings.NewReader(answer))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var cols map[string]int
	out := make(map[string]srvState)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		if cols == nil {
			if line == 1 && text != "" && strings.Trim(text, "0123456789") == "" {
				continue // format version
			}
			names, ok := strings.CutPrefix(text, "#")
			if !ok {
				return nil, errNotState
			}
			cols = make(map[string]int)
			for i, name := range strings.Fields(names) {
				cols[name] = i
			}
			for _, need := range []string{"be_name", "srv_name", "srv_op_state", "srv_admin_state", "srv_uweight"} {
				if _, ok := cols[need]; !ok {
					return nil, fmt.Errorf("header has no column %s", need)
				}
			}
			continue
		}
		if strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Fields(text)
		get := func(name string) (string, error) {
			i := cols[name]
			if i >= len(f) {
				return "", fmt.Errorf("line %d has no column %s: %q", line, name, text)
			}
			return f[i], nil
		}
		num := func(name string) (int, error) {
			v, err := get(name)
			if err != nil {
				return 0, err
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return 0, fmt.Errorf("line %d: %s %q is not a number", line, name, v)
			}
			return n, nil
		}
		be, err := get("be_name")
		if err != nil {
			return nil, err
		}
		if be != backend {
			continue
		}
		name, err := get("srv_name")
		if err != nil {
			return nil, err
		}
		var s srvState
		if s.op, err = num("srv_op_state"); err != nil {
			return nil, err
		}
		if s.admin, err = num("srv_admin_state"); err != nil {
			return nil, err
		}
		if s.weight, err = num("srv_uweight"); err != nil {
			return nil, err
		}
		out[name] = s
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cols == nil {
		return nil, errNotState
	}
	return out, nil
}

// maxAnswer bounds what is read from the runtime API: a "show servers
// state" line is about 120 bytes, so this is far beyond any backend.
const maxAnswer = 8 << 20

// call sends one command to the runtime API and returns the answer. It
// connects, writes the command, and reads until HAProxy closes.
func (h *haproxy) call(ctx context.Context, cmd string) (string, error) {
	start := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, h.network, h.address)
	if err != nil {
		return "", h.connError(ctx, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Cancellation without a deadline must also unblock the read.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", h.ioError(ctx, cmd, err)
	}
	b, err := io.ReadAll(io.LimitReader(conn, maxAnswer+1))
	if err != nil {
		return "", h.ioError(ctx, cmd, err)
	}
	if len(b) > maxAnswer {
		return "", fmt.Errorf("%q: answer longer than %d bytes", cmd, maxAnswer)
	}
	h.log.Debug("haproxy runtime API call", "command", cmd, "took", time.Since(start))
	return string(b), nil
}

// connError explains a failed connection to the runtime API.
func (h *haproxy) connError(ctx context.Context, err error) error {
	if cause := ctxCause(ctx, err); cause != nil {
		return fmt.Errorf("no connection to haproxy runtime API %s in time: %w", h.socket, cause)
	}
	hint := ""
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		hint = " (is haproxy running, with this socket on a \"stats socket\" line of its global section?)"
	case errors.Is(err, fs.ErrPermission):
		hint = " (the master's user needs write access to the socket: see mode, user and group on haproxy's \"stats socket\" line)"
	}
	return fmt.Errorf("connect to haproxy runtime API %s: %w%s", h.socket, err, hint)
}

// ioError explains a failed exchange; an expired context is reported as
// such, not as the deadline error it caused on the connection.
func (h *haproxy) ioError(ctx context.Context, cmd string, err error) error {
	if cause := ctxCause(ctx, err); cause != nil {
		return fmt.Errorf("haproxy runtime API %s did not answer %q in time: %w", h.socket, cmd, cause)
	}
	return fmt.Errorf("haproxy runtime API %s, %q: %w", h.socket, cmd, err)
}

// ctxCause returns why ctx ended if err is due to it, or nil. The
// connection's deadline is the context's, and may fire a moment before the
// context's own timer: an I/O timeout is then the context's deadline.
func ctxCause(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return nil
}
