package config

import (
	"os"
	"slices"
	"strings"
	"time"
)

// Load drivers for [LB.Driver].
const (
	LBHAProxy = "haproxy" // HAProxy runtime API (HAProxySocket, HAProxyBackend)
	LBCommand = "command" // user commands (DrainCommand, EnableCommand, StatusCommand)
)

// Log formats for [Env.LogFormat].
const (
	LogText = "text" // log/slog's key=value lines, for people (the default)
	LogJSON = "json" // one JSON object a line, for log collectors (production)
)

// Defaults filled in when the file leaves a value out.
const (
	DefaultBase         = "."
	DefaultSSHPort      = 22
	DefaultDrainTimeout = 60 * time.Second
	DefaultStartTimeout = 30 * time.Second
)

// Env is one environment of servers.toml, validated and expanded.
type Env struct {
	Name   string // environment name, the top-level table
	Binary string // game binary every server runs, relative to Base unless absolute
	Base   string // working directory on every host (default ".")
	// LogFormat is how every server of the environment writes its log:
	// "" (text), LogText or LogJSON; a server's --log-format overrides it.
	LogFormat string
	Master    Master   // [ENV.master]
	SSH       SSH      // [ENV.ssh]
	LB        LB       // [ENV.lb]
	Rolling   Rolling  // [ENV.rolling]
	Servers   []Server // every server after clusterCount expansion, sorted by ID (byte-wise)
}

// Master is the control plane's own address.
type Master struct {
	ID        string
	Host      string
	Port      int    // gRPC control plane
	AdminHost string // admin HTTP: /metrics, /sd and the dashboard; defaults to Host
	AdminPort int    // 0 when not configured
}

// SSH says how the master reaches hosts that are not local.
type SSH struct {
	User         string // empty: the SSH client's default
	Port         int    // default 22
	IdentityFile string
	KnownHosts   string
	UploadBinary bool // copy the binary to each host before starting (checksum-compared)
}

// LB configures the load-balancer driver used by rolling updates.
type LB struct {
	Driver         string // "", LBHAProxy or LBCommand
	HAProxySocket  string // runtime API address: "unix:/run/haproxy.sock" or "127.0.0.1:9999"
	HAProxyBackend string
	DrainCommand   string
	EnableCommand  string
	StatusCommand  string
}

// Rolling holds the timeouts of a two-group rolling update.
type Rolling struct {
	DrainTimeout time.Duration // default 60s
	StartTimeout time.Duration // default 30s
}

// Server is one server process of the cluster.
type Server struct {
	ID          string
	Type        string
	Host        string
	Port        int    // cluster (gRPC) port
	ClientHost  string // frontends only: defaults to Host; empty on backends
	ClientPort  int    // frontends only; 0 on backends
	Frontend    bool
	AutoRestart bool
	Group       string // "", "a" or "b"
	Args        []string
	Env         map[string]string
	// TLSCert and TLSKey are PEM files (relative to base) of the
	// certificate chain and key a frontend serves its client port with:
	// TLS over raw TCP and wss:// for WebSocket. Both or neither.
	TLSCert, TLSKey string
	// MetricsPort is where the server serves Prometheus metrics
	// (http://Host:MetricsPort/metrics); 0 for none.
	MetricsPort int
	Line        int // line of the [[ENV.type]] header (or inline entry) that defined it
}

// Load reads the file at path and returns its environment env. Errors name
// the file as given in path.
func Load(path, env string) (*Env, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, env)
}

// Parse is [Load] for a file already in memory; name is used in errors.
func Parse(name string, data []byte, env string) (*Env, error) {
	return parse(name, data, env)
}

// Environments returns the names of the environments in the file, sorted.
// It checks the TOML syntax and the top level only, not the environments.
func Environments(name string, data []byte) ([]string, error) {
	_, _, envs, err := top(name, data)
	return envs, err
}

// top decodes the file and checks its top level: every environment name.
func top(name string, data []byte) (*parser, map[string]any, []string, error) {
	p, root, err := decode(name, data)
	if err != nil {
		return nil, nil, nil, err
	}
	envs := p.environments(root)
	if err := p.err(); err != nil {
		return nil, nil, nil, err
	}
	return p, root, envs, nil
}

// Server returns the server with the given id.
func (e *Env) Server(id string) (Server, bool) {
	for _, s := range e.Servers {
		if s.ID == id {
			return s, true
		}
	}
	return Server{}, false
}

// ServersOfType returns the servers of one type, sorted by ID.
func (e *Env) ServersOfType(typ string) []Server {
	var out []Server
	for _, s := range e.Servers {
		if s.Type == typ {
			out = append(out, s)
		}
	}
	return out
}

// Types returns the server types that have at least one server, sorted.
func (e *Env) Types() []string {
	var out []string
	for _, s := range e.Servers {
		out = append(out, s.Type)
	}
	slices.SortFunc(out, strings.Compare)
	return slices.Compact(out)
}
