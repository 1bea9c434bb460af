package lb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shaddock/shaddock/config"
)

// rig is a real haproxy in front of test gates: a unix admin socket, a TCP
// admin socket, a unix operator-level socket, and a TCP frontend.
type rig struct {
	gates    []*testGate
	front    string // frontend address
	unix     string // "unix:PATH", level admin
	tcp      string // "127.0.0.1:PORT", level admin
	operator string // "unix:PATH", level operator
	proc     *haproxyProc
}

// startRig starts haproxy with backend "gates" holding the given gates.
// Checks every 100 ms, down after 3 failures (a busy machine may delay
// one), up after 1 success.
func startRig(t testing.TB, gates ...*testGate) *rig {
	t.Helper()
	dir := shortDir(t)
	r := &rig{
		gates:    gates,
		front:    fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		unix:     "unix:" + filepath.Join(dir, "admin.sock"),
		tcp:      fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		operator: "unix:" + filepath.Join(dir, "operator.sock"),
	}
	var b strings.Builder
	// noreuseport: a port that another test's HAProxy took meanwhile
	// (freePort can only say it was free) fails the start instead of
	// silently sharing connections with it. Each connection is logged as
	// soon as it has a server, into the output a failed test prints.
	fmt.Fprintf(&b, `global
    noreuseport
    log stderr format raw local0 info
    stats socket %s mode 600 level admin
    stats socket %s level admin
    stats socket %s mode 600 level operator
defaults
    mode tcp
    log global
    option tcplog
    option logasap
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend front
    bind %s
    default_backend gates
backend gates
    balance leastconn
    default-server check inter 100ms fall 3 rise 1
`, strings.TrimPrefix(r.unix, "unix:"), r.tcp, strings.TrimPrefix(r.operator, "unix:"), r.front)
	for _, g := range gates {
		fmt.Fprintf(&b, "    server %s 127.0.0.1:%d\n", g.id, g.port)
	}
	r.proc = startHAProxy(t, dir, b.String(), r.unix)
	return r
}

func (r *rig) driver(t testing.TB, socket string) Driver {
	t.Helper()
	d, err := New(config.LB{Driver: config.LBHAProxy, HAProxySocket: socket, HAProxyBackend: "gates"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestHAProxyDrainAndEnable is the rolling update's promise at the
// balancer, over both kinds of runtime API socket: after Drain, HAProxy
// reports the gate drained and sends every new connection to the other
// gate, even though leastconn would pick the drained one, while a
// connection already on the drained gate keeps working; after Enable, new
// connections reach it again.
func TestHAProxyDrainAndEnable(t *testing.T) {
	for _, kind := range []string{"unix", "tcp"} {
		t.Run(kind, func(t *testing.T) {
			a, b := startGate(t, "gate-a"), startGate(t, "gate-b")
			r := startRig(t, a, b)
			socket := map[string]string{"unix": r.unix, "tcp": r.tcp}[kind]
			d := r.driver(t, socket)
			waitState(t, d, a.gate(), Ready)
			waitState(t, d, b.gate(), Ready)

			// One established connection on gate-a (leastconn alternates
			// between two idle gates, so this takes at most a few tries).
			var established *client
			for i := 0; established == nil; i++ {
				if i == 10 {
					t.Fatal("no connection reached gate-a in 10 tries")
				}
				if c := dial(t, r.front); c.gate == "gate-a" {
					established = c
				}
			}

			if err := d.Drain(ctxTimeout(t, 5*time.Second), "a", []Gate{a.gate()}); err != nil {
				t.Fatal(err)
			}
			st, err := d.Status(ctxTimeout(t, 5*time.Second), "a", []Gate{a.gate(), b.gate()})
			if err != nil {
				t.Fatal(err)
			}
			if st["gate-a"] != Drain || st["gate-b"] != Ready {
				t.Fatalf("Status after Drain = %v", st)
			}
			raw := showServers(t, r, socket)
			if raw["gate-a"].admin&admFDrain == 0 || raw["gate-b"].admin != 0 {
				t.Fatalf("show servers state after Drain: %+v", raw)
			}

			// gate-a has 1 connection, gate-b at most 1: leastconn would send
			// new ones to gate-a, but it is drained.
			for i := 0; i < 6; i++ {
				if c := dial(t, r.front); c.gate != "gate-b" {
					t.Fatalf("new connection %d after Drain reached %s", i, c.gate)
				}
			}
			if err := established.ping(); err != nil {
				t.Fatalf("established connection to the drained gate: %v", err)
			}

			if err := d.Enable(ctxTimeout(t, 5*time.Second), "a", []Gate{a.gate()}); err != nil {
				t.Fatal(err)
			}
			st, err = d.Status(ctxTimeout(t, 5*time.Second), "a", []Gate{a.gate(), b.gate()})
			if err != nil {
				t.Fatal(err)
			}
			if st["gate-a"] != Ready || st["gate-b"] != Ready {
				t.Fatalf("Status after Enable = %v", st)
			}
			// gate-a has 1, gate-b 6 or 7: leastconn sends the next 4 to gate-a.
			for i := 0; i < 4; i++ {
				if c := dial(t, r.front); c.gate != "gate-a" {
					t.Fatalf("new connection %d after Enable reached %s", i, c.gate)
				}
			}
			if err := established.ping(); err != nil {
				t.Fatalf("established connection after Enable: %v", err)
			}
		})
	}
}

func showServers(t testing.TB, r *rig, socket string) map[string]srvState {
	t.Helper()
	h, err := newHAProxy(socket, "gates", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var gates []Gate
	for _, g := range r.gates {
		gates = append(gates, g.gate())
	}
	s, err := h.servers(ctxTimeout(t, 5*time.Second), gates)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHAProxyDrainIsImmediate measures what the master relies on: once
// HAProxy has answered "set server ... state drain", no new connection
// goes to the gate. gate-b holds 3 connections and gate-a none, so
// leastconn would send every new connection to gate-a unless the drain
// has taken.
func TestHAProxyDrainIsImmediate(t *testing.T) {
	a, b := startGate(t, "gate-a"), startGate(t, "gate-b")
	r := startRig(t, a, b)
	d := r.driver(t, r.unix)
	h := d.(*haproxy)
	waitState(t, d, a.gate(), Ready)
	waitState(t, d, b.gate(), Ready)
	if err := d.Drain(ctxTimeout(t, 5*time.Second), "a", []Gate{a.gate()}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		dial(t, r.front)
	}

	const rounds = 20
	var setRTT, drainCall, enableCall []time.Duration
	for i := 0; i < rounds; i++ {
		start := time.Now()
		if err := d.Enable(ctxTimeout(t, 5*time.Second), "a", []Gate{a.gate()}); err != nil {
			t.Fatal(err)
		}
		enableCall = append(enableCall, time.Since(start))

		// The raw command, then a connection at once: no read-back between.
		start = time.Now()
		ans, err := h.call(ctxTimeout(t, 5*time.Second), "set server gates/gate-a state drain")
		if err != nil || strings.TrimSpace(ans) != "" {
			t.Fatalf("set server: %q %v", ans, err)
		}
		setRTT = append(setRTT, time.Since(start))
		c := dial(t, r.front)
		if c.gate != "gate-b" {
			t.Fatalf("round %d: the first connection after the drain answer reached %s", i, c.gate)
		}
		c.conn.Close()

		// And the whole Drain call (set, then read back), for the figures.
		if err := d.Enable(ctxTimeout(t, 5*time.Second), "a", []Gate{a.gate()}); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		if err := d.Drain(ctxTimeout(t, 5*time.Second), "a", []Gate{a.gate()}); err != nil {
			t.Fatal(err)
		}
		drainCall = append(drainCall, time.Since(start))
	}
	t.Logf("unix socket, %d rounds: set server round trip median %v max %v; Drain (set + read back) median %v max %v; Enable (gate up) median %v max %v",
		rounds, median(setRTT), slices.Max(setRTT), median(drainCall), slices.Max(drainCall), median(enableCall), slices.Max(enableCall))
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestHAProxyEnableWaitsForHealthCheck: Enable returns only once the gate
// takes connections. A gate that is not listening is enabled at the admin
// level but down by its health check, so Enable fails with a message that
// says so when its context ends; once the gate listens, Enable returns.
// Drain works on a down gate.
func TestHAProxyEnableWaitsForHealthCheck(t *testing.T) {
	a, c := startGate(t, "gate-a"), startGate(t, "gate-c")
	r := startRig(t, a, c)
	d := r.driver(t, r.unix)
	port := c.port
	c.stop()
	waitState(t, d, c.gate(), Down)

	if err := d.Drain(ctxTimeout(t, 5*time.Second), "c", []Gate{c.gate()}); err != nil {
		t.Fatalf("Drain of a down gate: %v", err)
	}
	waitState(t, d, c.gate(), Drain)

	start := time.Now()
	err := d.Enable(ctxTimeout(t, 700*time.Millisecond), "c", []Gate{c.gate()})
	mustContain(t, err, "gate-c", "health check says down", r.unix)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v is not DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Enable took %v past a 700ms deadline", el)
	}
	waitState(t, d, c.gate(), Down) // enabled, still failing its check

	c.listen(t, fmt.Sprintf("127.0.0.1:%d", port))
	start = time.Now()
	if err := d.Enable(ctxTimeout(t, 10*time.Second), "c", []Gate{c.gate()}); err != nil {
		t.Fatal(err)
	}
	t.Logf("Enable returned %v after the gate listened again (check inter 100ms, rise 1)", time.Since(start))
	waitState(t, d, c.gate(), Ready)
}

// TestHAProxyErrors: every failure names what failed and why, and is
// bounded by the context.
func TestHAProxyErrors(t *testing.T) {
	a := startGate(t, "gate-a")
	r := startRig(t, a)
	d := r.driver(t, r.unix)
	unknown := Gate{ID: "gate-x", Host: "127.0.0.1", Port: 1}

	t.Run("unknown gate", func(t *testing.T) {
		err := d.Drain(ctxTimeout(t, 5*time.Second), "b", []Gate{unknown})
		mustContain(t, err, "drain gate-x at haproxy "+r.unix, `backend "gates" has no server "gate-x"`, "gate ids")
		if !errors.Is(err, ErrUnknownGate) {
			t.Errorf("%v is not ErrUnknownGate", err)
		}
		// Nothing is changed when one gate of the group is unknown.
		err = d.Drain(ctxTimeout(t, 5*time.Second), "b", []Gate{a.gate(), unknown})
		mustContain(t, err, "drain gate-x at haproxy", `no server "gate-x"`)
		if st, err := d.Status(ctxTimeout(t, 5*time.Second), "a", []Gate{a.gate()}); err != nil || st["gate-a"] != Ready {
			t.Errorf("gate-a after a failed Drain of its group: %v %v", st, err)
		}
		_, err = d.Status(ctxTimeout(t, 5*time.Second), "b", []Gate{a.gate(), unknown})
		mustContain(t, err, `"gate-x"`, "gate ids")
		if !errors.Is(err, ErrUnknownGate) {
			t.Errorf("%v is not ErrUnknownGate", err)
		}
	})
	t.Run("unknown backend", func(t *testing.T) {
		nd, err := New(config.LB{Driver: config.LBHAProxy, HAProxySocket: r.tcp, HAProxyBackend: "nope"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = nd.Drain(ctxTimeout(t, 5*time.Second), "a", []Gate{a.gate()})
		mustContain(t, err, `no backend "nope"`, "haproxyBackend", r.tcp)
		if !errors.Is(err, ErrUnknownBackend) {
			t.Errorf("%v is not ErrUnknownBackend", err)
		}
		_, err = nd.Status(ctxTimeout(t, 5*time.Second), "a", []Gate{a.gate()})
		if !errors.Is(err, ErrUnknownBackend) {
			t.Errorf("Status: %v is not ErrUnknownBackend", err)
		}
	})
	t.Run("permission", func(t *testing.T) {
		od := r.driver(t, r.operator)
		err := od.Drain(ctxTimeout(t, 5*time.Second), "a", []Gate{a.gate()})
		mustContain(t, err, "gate-a", "level admin", r.operator)
		if !errors.Is(err, ErrPermission) {
			t.Errorf("%v is not ErrPermission", err)
		}
		// Reading is allowed at operator level.
		if _, err := od.Status(ctxTimeout(t, 5*time.Second), "a", []Gate{a.gate()}); err != nil {
			t.Errorf("Status over an operator socket: %v", err)
		}
	})
	t.Run("no socket", func(t *testing.T) {
		missing := "unix:" + filepath.Join(shortDir(t), "missing.sock")
		err := r.driver(t, missing).Drain(ctxTimeout(t, 5*time.Second), "a", []Gate{a.gate()})
		mustContain(t, err, missing, "is haproxy running")
		refused := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		_, err = r.driver(t, refused).Status(ctxTimeout(t, 5*time.Second), "a", []Gate{a.gate()})
		mustContain(t, err, refused, "connection refused")
	})
	t.Run("timeout", func(t *testing.T) {
		// A socket that accepts and never answers, as a wedged haproxy.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		silent := ln.Addr().String()
		start := time.Now()
		err = r.driver(t, silent).Drain(ctxTimeout(t, 300*time.Millisecond), "a", []Gate{a.gate()})
		mustContain(t, err, silent, "in time")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%v is not DeadlineExceeded", err)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("Drain took %v past a 300ms deadline", el)
		}
		// Cancellation without a deadline ends it too.
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err = r.driver(t, silent).Status(ctx, "a", []Gate{a.gate()})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Status after cancel: %v", err)
		}
	})
	t.Run("not haproxy", func(t *testing.T) {
		// Something that reads the command and closes without a word.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				bufio.NewReader(c).ReadString('\n')
				c.Close()
			}
		}()
		_, err = r.driver(t, ln.Addr().String()).Status(ctxTimeout(t, 5*time.Second), "a", []Gate{a.gate()})
		mustContain(t, err, ln.Addr().String(), "no answer")
		err = r.driver(t, ln.Addr().String()).Drain(ctxTimeout(t, 5*time.Second), "a", []Gate{a.gate()})
		mustContain(t, err, "drain group a", "no answer")
	})
	t.Run("names", func(t *testing.T) {
		// A name with a space or ';' would be a second runtime API command.
		err := d.Drain(ctxTimeout(t, 5*time.Second), "a", []Gate{{ID: "gate-a; shutdown sessions server gates/gate-a"}})
		mustContain(t, err, "not an haproxy server name")
		if _, err := New(config.LB{Driver: config.LBHAProxy, HAProxySocket: r.unix, HAProxyBackend: "a b"}, nil); err == nil {
			t.Error("New accepted backend \"a b\"")
		}
	})
	t.Run("no gates", func(t *testing.T) {
		if err := r.driver(t, "unix:/nonexistent").Drain(ctxTimeout(t, time.Second), "a", nil); err != nil {
			t.Errorf("Drain of no gates: %v", err)
		}
	})
}

// BenchmarkRuntimeAPI measures one runtime API round trip (connect, "show
// servers state", read to EOF) on each socket kind.
func BenchmarkRuntimeAPI(b *testing.B) {
	for _, kind := range []string{"unix", "tcp"} {
		b.Run(kind, func(b *testing.B) {
			r := startRig(b, startGate(b, "gate-a"))
			h, err := newHAProxy(map[string]string{"unix": r.unix, "tcp": r.tcp}[kind], "gates", slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				if _, err := h.call(ctx, "show servers state gates"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
