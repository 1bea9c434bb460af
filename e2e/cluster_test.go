package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/shaddock/shaddock/master"
	"github.com/shaddock/shaddock/proto/masterpb"
)

// Cluster is the chat demo (1 gate, 2 connectors, 2 chat servers) started
// through the real master CLI as separate processes, on free ports, in a
// directory of its own.
type Cluster struct {
	t          testing.TB
	Dir        string // holds servers.toml, run/ and logs/
	Config     string // servers.toml path
	Env        string // environment; "" is development
	GateAddr   string // the gate's client address
	WebAddr    string // the chat page
	Connectors []string
	// With ClusterOptions.Metrics: the master's admin HTTP address
	// (/metrics, /sd, the dashboard) and each server's metrics address.
	AdminAddr    string
	MetricsAddrs map[string]string
}

var clusterTOML = template.Must(template.New("servers").Parse(`
[development]
binary = "{{.Binary}}"
base = "."
{{if .LogFormat}}logFormat = "{{.LogFormat}}"{{end}}

[development.master]
id = "master-server-1"
host = "127.0.0.1"
port = {{.Master}}
{{if .Admin}}adminPort = {{.Admin}}{{end}}
{{if .DrainTimeout}}
[development.rolling]
drainTimeout = "{{.DrainTimeout}}"
{{end}}
[[development.gate]]
id = "gate-server-1"
host = "127.0.0.1"
port = {{index .Ports 0}}
clientPort = {{.Gate}}
frontend = true
{{if .Admin}}metricsPort = {{index .Metrics 0}}{{end}}
{{.Restart}}
args = ["--web=127.0.0.1:{{.Web}}"{{if .Protobuf}}, "--protobuf"{{end}}]
{{.TLS}}

[[development.connector]]
id = "connector-server-1"
host = "127.0.0.1"
port = {{index .Ports 1}}
clientPort = {{index .Clients 0}}
frontend = true
{{if .Admin}}metricsPort = {{index .Metrics 1}}{{end}}
{{.Restart}}
{{if .Protobuf}}args = ["--protobuf"]{{end}}
{{.TLS}}

[[development.connector]]
id = "connector-server-2"
host = "127.0.0.1"
port = {{index .Ports 2}}
clientPort = {{index .Clients 1}}
frontend = true
{{if .Admin}}metricsPort = {{index .Metrics 2}}{{end}}
{{.Restart}}
{{if .Protobuf}}args = ["--protobuf"]{{end}}
{{.TLS}}

[[development.chat]]
id = "chat-server-1"
host = "127.0.0.1"
port = {{index .Ports 3}}
{{if .Admin}}metricsPort = {{index .Metrics 3}}{{end}}
{{.Restart}}

[[development.chat]]
id = "chat-server-2"
host = "127.0.0.1"
port = {{index .Ports 4}}
{{if .Admin}}metricsPort = {{index .Metrics 4}}{{end}}
{{.Restart}}
`))

func freePort(t testing.TB) int {
	_, p, _ := net.SplitHostPort(freeAddr(t))
	n, _ := strconv.Atoi(p)
	return n
}

// ClusterOptions vary the chat demo a test starts.
type ClusterOptions struct {
	Protobuf        bool   // --protobuf on the frontends: Pomelo protobuf bodies for the chat routes
	TLSCert, TLSKey string // PEM files: TLS and wss:// on the gate's and connectors' client ports, https for the page
	AutoRestart     bool   // autoRestart = true on every server
	DrainTimeout    string // [development.rolling] drainTimeout, e.g. "3s"; default the master's
	Metrics         bool   // adminPort on the master and metricsPort on every server (free ports)
	LogFormat       string // logFormat of the environment: "", "text" or "json"
}

// StartChatCluster writes a servers.toml and runs `master start --daemon`.
// The cluster is stopped with `master stop` when the test ends, and the
// test fails if any of its processes outlives that.
func StartChatCluster(t testing.TB) *Cluster { return StartChatClusterWith(t, ClusterOptions{}) }

// StartChatClusterWith is StartChatCluster with options.
func StartChatClusterWith(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	dir := t.TempDir()
	v := struct {
		Binary            string
		Master, Gate, Web int
		Ports             [5]int
		Clients           [2]int
		Protobuf          bool
		TLS               string
		Restart           string
		DrainTimeout      string
		Admin             int
		Metrics           [5]int
		LogFormat         string
	}{Binary: binPath("chat"), Master: freePort(t), Gate: freePort(t), Web: freePort(t), Protobuf: o.Protobuf, DrainTimeout: o.DrainTimeout,
		LogFormat: o.LogFormat}
	if o.AutoRestart {
		v.Restart = "autoRestart = true"
	}
	if o.TLSCert != "" {
		v.TLS = fmt.Sprintf("tlsCert = %q\ntlsKey = %q", o.TLSCert, o.TLSKey)
	}
	for i := range v.Ports {
		v.Ports[i] = freePort(t)
	}
	for i := range v.Clients {
		v.Clients[i] = freePort(t)
	}
	if o.Metrics {
		v.Admin = freePort(t)
		for i := range v.Metrics {
			v.Metrics[i] = freePort(t)
		}
	}
	var buf bytes.Buffer
	if err := clusterTOML.Execute(&buf, v); err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, Dir: dir, Config: filepath.Join(dir, "servers.toml"),
		GateAddr: fmt.Sprintf("127.0.0.1:%d", v.Gate), WebAddr: fmt.Sprintf("127.0.0.1:%d", v.Web),
		Connectors: []string{fmt.Sprintf("127.0.0.1:%d", v.Clients[0]), fmt.Sprintf("127.0.0.1:%d", v.Clients[1])}}
	if o.Metrics {
		c.AdminAddr = fmt.Sprintf("127.0.0.1:%d", v.Admin)
		c.MetricsAddrs = map[string]string{}
		for i, id := range []string{"gate-server-1", "connector-server-1", "connector-server-2", "chat-server-1", "chat-server-2"} {
			c.MetricsAddrs[id] = fmt.Sprintf("127.0.0.1:%d", v.Metrics[i])
		}
	}
	if err := os.WriteFile(c.Config, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.stopAndCheck() })
	if out, err := c.Master(90*time.Second, "start", "--daemon"); err != nil {
		t.Fatalf("master start: %v\n%s\n%s", err, out, c.Logs())
	}
	return c
}

// Master runs the master CLI against this cluster's config.
func (c *Cluster) Master(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath("master"), append([]string{args[0], "--env=" + c.env(), "--config", c.Config}, args[1:]...)...)
	cmd.Dir = c.Dir
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *Cluster) env() string {
	if c.Env == "" {
		return "development"
	}
	return c.Env
}

// List asks the running master for the servers.
func (c *Cluster) List() *masterpb.ListReply {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := master.Dial(ctx, c.env(), c.Config)
	if err != nil {
		c.t.Fatalf("dial master: %v", err)
	}
	defer cl.Close()
	rep, err := cl.List(ctx)
	if err != nil {
		c.t.Fatalf("master list: %v", err)
	}
	return rep
}

// Pids returns every server's pid, by id.
func (c *Cluster) Pids() map[string]int {
	out := map[string]int{}
	for _, s := range c.List().Servers {
		out[s.Info.Id] = int(s.Info.Pid)
	}
	return out
}

// Logs returns the master's and every server's log, for failure messages.
func (c *Cluster) Logs() string {
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(c.Dir, "logs", "*.log"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		fmt.Fprintf(&b, "==> %s <==\n%s\n", filepath.Base(f), data)
	}
	return b.String()
}

// stopAndCheck runs `master stop` and fails if any server or master process
// is left. It is idempotent: a test that already stopped the cluster has
// nothing left to stop.
func (c *Cluster) stopAndCheck() {
	pids := c.knownPids()
	out, err := c.Master(60*time.Second, "stop")
	if err != nil && !strings.Contains(out, "not running") {
		c.t.Errorf("master stop: %v\n%s", err, out)
	}
	for name, pid := range pids {
		if alive(pid) {
			c.t.Errorf("%s (pid %d) still running after master stop", name, pid)
			syscall.Kill(pid, syscall.SIGKILL) // a failed test must not leak processes
		}
	}
	if c.t.Failed() {
		c.t.Logf("cluster logs:\n%s", c.Logs())
	}
}

// knownPids lists the master's and the servers' pids from the run files, so
// cleanup works even when the master is down.
func (c *Cluster) knownPids() map[string]int {
	pids := map[string]int{}
	if b, err := os.ReadFile(filepath.Join(c.Dir, "run", c.env()+".master.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			pids["master"] = pid
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if cl, err := master.Dial(ctx, c.env(), c.Config); err == nil {
		if rep, err := cl.List(ctx); err == nil {
			for _, s := range rep.Servers {
				if s.Info.Pid > 0 {
					pids[s.Info.Id] = int(s.Info.Pid)
				}
			}
		}
		cl.Close()
	}
	return pids
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}
