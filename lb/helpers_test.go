package lb

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// haproxyBin returns the haproxy binary; the tests need the real one.
func haproxyBin(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	const debian = "/usr/sbin/haproxy" // not on a non-root user's PATH
	if _, err := os.Stat(debian); err == nil {
		return debian
	}
	t.Fatal("haproxy is not installed (Debian: apt-get install haproxy); the lb tests run the real one")
	return ""
}

// shortDir returns a temporary directory whose paths fit in a unix socket
// address (108 bytes); t.TempDir names can be long.
func shortDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir) < 60 {
		return dir
	}
	dir, err := os.MkdirTemp("", "lb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// freePort returns a loopback port nobody listened on a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// testGate is a stand-in for a gate's client port: it greets every
// connection with its id on a line, then echoes lines, so a client can
// tell which gate HAProxy sent it to and whether the connection still
// works.
type testGate struct {
	id   string
	port int

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startGate(t testing.TB, id string) *testGate {
	t.Helper()
	g := &testGate{id: id, conns: make(map[net.Conn]bool)}
	g.listen(t, "127.0.0.1:0")
	t.Cleanup(g.close)
	return g
}

// listen starts accepting on addr (again, after stop, on the same port).
func (g *testGate) listen(t testing.TB, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	g.ln = ln
	g.port = ln.Addr().(*net.TCPAddr).Port
	g.mu.Unlock()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g.mu.Lock()
			g.conns[c] = true
			g.mu.Unlock()
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				defer func() {
					g.mu.Lock()
					delete(g.conns, c)
					g.mu.Unlock()
					c.Close()
				}()
				// Health checks connect and close at once; errors here
				// are theirs.
				if _, err := fmt.Fprintf(c, "%s\n", g.id); err != nil {
					return
				}
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// stop closes the listener and every connection, and waits for them.
func (g *testGate) stop() {
	g.mu.Lock()
	if g.ln != nil {
		g.ln.Close()
		g.ln = nil
	}
	for c := range g.conns {
		c.Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
}

func (g *testGate) close() { g.stop() }

func (g *testGate) gate() Gate { return Gate{ID: g.id, Host: "127.0.0.1", Port: g.port} }

// haproxyProc is an haproxy started by a test, in the foreground (-db).
type haproxyProc struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
}

// startHAProxy runs haproxy -f cfg -db with cfg written to dir, and
// returns once the runtime API at socket ("unix:PATH" or "HOST:PORT")
// answers. It is stopped (by its pid) when the test ends.
func startHAProxy(t testing.TB, dir, cfg, socket string) *haproxyProc {
	t.Helper()
	bin := haproxyBin(t)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &haproxyProc{out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "-f", path, "-db")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = dieWithParent()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("haproxy output:\n%s", p.out.String())
		}
	})

	h, err := newHAProxy(socket, "probe", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := h.call(ctx, "show info")
		cancel()
		if err == nil {
			return p
		}
		select {
		case <-p.exited:
			t.Fatalf("haproxy exited at start: %v\n%s", p.cmd.ProcessState, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy runtime API %s not answering after 10s: %v\n%s", socket, err, p.out.String())
		}
		time.Sleep(10 * time.Millisecond) // polling for start-up, with a deadline
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// client is a connection through HAProxy's frontend and the gate it
// reached.
type client struct {
	conn net.Conn
	r    *bufio.Reader
	gate string
}

// dial connects to the frontend and reads the gate's greeting. The
// connection is closed when the test ends.
func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("no greeting through %s: %v", addr, err)
	}
	c.SetDeadline(time.Time{})
	return &client{conn: c, r: r, gate: strings.TrimSpace(line)}
}

// ping checks the connection still carries data both ways.
func (c *client) ping() error {
	c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.conn.SetDeadline(time.Time{})
	if _, err := c.conn.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return fmt.Errorf("echo %q", line)
	}
	return nil
}

// waitState polls d.Status until gate id is in state want.
func waitState(t testing.TB, d Driver, g Gate, want State) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := d.Status(ctx, "test", []Gate{g})
		cancel()
		if err == nil && st[g.ID] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not %s after 10s: %v %v", g.ID, want, st, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a state with a deadline
	}
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustContain(t testing.TB, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}
