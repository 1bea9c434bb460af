package lb

import (
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/shaddock/shaddock/config"
)

// Defaults HAProxyConfig uses when servers.toml has no haproxy [ENV.lb]:
// Debian's haproxy package has its admin socket at this path.
const (
	DefaultHAProxySocket  = "unix:/run/haproxy/admin.sock"
	DefaultHAProxyBackend = "shaddock_gates"
)

// HAProxyConfig writes an haproxy.cfg fragment for env's gates: a global
// section with the stats socket the "haproxy" driver talks to (level
// admin), a TCP frontend on the gates' client port, and a backend named
// haproxyBackend with one server per gate, named by its id. The fragment
// sets its own mode and timeouts, so it needs no defaults section, and
// HAProxy merges a second global section into the first, so it can be
// appended to an existing haproxy.cfg. Without a haproxy [ENV.lb] it uses
// DefaultHAProxySocket and DefaultHAProxyBackend and says so.
func HAProxyConfig(w io.Writer, env *config.Env) error {
	gates := Gates(env, "")
	if len(gates) == 0 {
		return fmt.Errorf("haproxy config for environment %s: no gates (servers of type %q)", env.Name, GateType)
	}
	socket, backend := env.LB.HAProxySocket, env.LB.HAProxyBackend
	if socket == "" {
		socket = DefaultHAProxySocket
	}
	if backend == "" {
		backend = DefaultHAProxyBackend
	}
	network, address, err := parseSocket(socket)
	if err != nil {
		return fmt.Errorf("haproxy config for environment %s: %w", env.Name, err)
	}
	if !validName(backend) {
		return fmt.Errorf("haproxy config for environment %s: haproxyBackend %q is not an haproxy proxy name (letters, digits, '-', '_', '.', ':')", env.Name, backend)
	}
	for _, g := range gates {
		if !validName(g.ID) {
			return fmt.Errorf("haproxy config for environment %s: gate id %q is not an haproxy server name", env.Name, g.ID)
		}
	}

	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# haproxy.cfg fragment for the gates of shaddock environment %q,", env.Name)
	p("# written by `master lb haproxy`. Add it to haproxy.cfg (HAProxy merges a")
	p("# second global section into the first). The server names below are the")
	p("# gate ids: the master drains and enables gates by these names during")
	p("# `master update`, so keep them as they are.")
	if env.LB.Driver != config.LBHAProxy {
		p("#")
		p("# servers.toml has no haproxy load balancer for this environment; for")
		p("# `master update` to drain these gates, add to it:")
		p("#   [%s.lb]", env.Name)
		p("#   driver = %q", config.LBHAProxy)
		p("#   haproxySocket = %q", socket)
		p("#   haproxyBackend = %q", backend)
	}
	p("")
	p("global")
	p("    # The runtime API the master drives (haproxySocket %q).", socket)
	p("    # \"level admin\" is what \"set server ... state\" needs.")
	if network == "unix" {
		p("    # The master's user must be able to write the socket: with mode 660,")
		p("    # make it a member of haproxy's group (Debian: haproxy).")
		p("    stats socket %s mode 660 level admin", address)
	} else {
		p("    # Anyone who can connect to it controls HAProxy (no password):")
		p("    # keep it on loopback or a private interface.")
		p("    stats socket %s level admin", address)
	}
	p("    # A drain is runtime state: a reload or restart forgets it and every")
	p("    # gate is ready again. To keep it across reloads, save the state just")
	p("    # before each reload (echo \"show servers state\" | socat STATS-SOCKET -")
	p("    # > /var/lib/haproxy/server-state) and uncomment this line and the")
	p("    # load-server-state-from-file line of the backend:")
	p("    # server-state-file /var/lib/haproxy/server-state")
	p("")

	port, ports := bindPort(gates)
	p("frontend %s_front", backend)
	p("    mode tcp")
	p("    # Clients connect to the balancer on this port instead of to a gate.")
	if len(ports) > 1 {
		p("    # The gates' client ports differ (%s): this is the port most", strings.Join(ports, "; "))
		p("    # gates use, so clients keep the port they know; each server line")
		p("    # below still connects to its own gate's port.")
	}
	if taken, by := localPort(env, port); taken {
		// HAProxy reaches loopback servers only from their own host, so it
		// would be binding a port a server of this file already has.
		free := port + 1
		for t, _ := localPort(env, free); t; t, _ = localPort(env, free) {
			free++
		}
		p("    # %s has port %d on loopback, so on HAProxy's own host: the", by, port)
		p("    # balancer takes the next port no server of servers.toml uses.")
		port = free
	} else {
		p("    # If a gate listens on this port on HAProxy's own host, bind another;")
		p("    # the server lines need not change.")
	}
	p("    bind :%d", port)
	p("    # Idle limits, not session limits: a client may stay as long as it")
	p("    # talks. The gate closes silent clients itself (its heartbeat timeout);")
	p("    # these only reap connections nobody closed, so they must stay above")
	p("    # any heartbeat interval.")
	p("    timeout client 10m")
	p("    timeout client-fin 30s")
	p("    default_backend %s", backend)
	p("")
	p("backend %s", backend)
	p("    mode tcp")
	p("    # leastconn: connections last long and unevenly, so counting them")
	p("    # balances better than taking turns; and when a drained group is")
	p("    # enabled again, its empty gates get the new clients first.")
	p("    balance leastconn")
	p("    timeout connect 5s")
	p("    timeout server 10m")
	p("    timeout server-fin 30s")
	p("    # load-server-state-from-file global")
	p("    # Health checks are TCP connects to the client port. They go on while")
	p("    # a gate is drained: a stopped gate shows down within about 2.5 s")
	p("    # (inter, then fastinter), and a restarted one is up again within")
	p("    # about 1.5 s of listening (downinter, then fastinter): the master's")
	p("    # enable waits for that before it drains the other group.")
	p("    default-server inter 2s fastinter 500ms downinter 1s rise 2 fall 2")
	for _, g := range gates {
		group := "no group"
		if s, ok := env.Server(g.ID); ok && s.Group != "" {
			group = "group " + s.Group
		}
		p("    server %s %s check  # %s", g.ID, g.Addr(), group)
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// localPort reports whether a server of env on a loopback address uses
// port (as its cluster or client port), and which.
func localPort(env *config.Env, port int) (bool, string) {
	for _, s := range env.Servers {
		for _, h := range []struct {
			host string
			port int
		}{{s.Host, s.Port}, {s.ClientHost, s.ClientPort}} {
			if h.port == port && loopback(h.host) {
				return true, s.ID
			}
		}
	}
	m := env.Master
	if loopback(m.Host) && m.Port == port || loopback(m.AdminHost) && m.AdminPort == port {
		return true, m.ID
	}
	return false, ""
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// bindPort returns the client port most gates use (the lowest of equals)
// and, when they differ, each port with its gates, for the comment.
func bindPort(gates []Gate) (int, []string) {
	byPort := make(map[int][]string)
	for _, g := range gates {
		byPort[g.Port] = append(byPort[g.Port], g.ID)
	}
	ports := make([]int, 0, len(byPort))
	for p := range byPort {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	best := ports[0]
	for _, p := range ports {
		if len(byPort[p]) > len(byPort[best]) {
			best = p
		}
	}
	var desc []string
	if len(ports) > 1 {
		for _, p := range ports {
			desc = append(desc, strconv.Itoa(p)+": "+strings.Join(byPort[p], ", "))
		}
	}
	return best, desc
}
