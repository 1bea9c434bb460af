package lb

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shaddock/shaddock/config"
)

// topology returns servers.toml text with two gates (groups a and b) at
// the given client ports on 127.0.0.1, a connector (a frontend that is not
// a gate) and a backend server, plus lb.
func topology(portA, portB int, lb string) string {
	return fmt.Sprintf(`[test]
binary = "bin/chat"

[test.master]
id = "master"
host = "127.0.0.1"
port = 3005
%s
[[test.gate]]
id = "gate-a"
host = "127.0.0.1"
port = 3100
clientPort = %d
frontend = true
group = "a"

[[test.gate]]
id = "gate-b"
host = "127.0.0.1"
port = 3101
clientPort = %d
frontend = true
group = "b"

[[test.connector]]
id = "connector-a"
host = "127.0.0.1"
port = 3150
clientPort = 3050
frontend = true
group = "a"

[[test.chat]]
id = "chat-1"
host = "127.0.0.1"
port = 6050
`, lb, portA, portB)
}

// onTwoHosts moves gate-b to 127.0.0.2, so both gates may use one port.
func onTwoHosts(toml string) string {
	return strings.Replace(toml, "host = \"127.0.0.1\"\nport = 3101", "host = \"127.0.0.2\"\nport = 3101", 1)
}

func parseEnv(t testing.TB, toml string) *config.Env {
	t.Helper()
	env, err := config.Parse("servers.toml", []byte(toml), "test")
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// TestHAProxyConfigRuns: the fragment, as written, passes haproxy -c; run
// with only its bind address changed (the test's gates share HAProxy's
// host and port range, which the fragment's comment says to do), it
// proxies to both gates, and the "haproxy" driver configured from the
// same servers.toml drains a gate over its stats socket.
func TestHAProxyConfigRuns(t *testing.T) {
	bin := haproxyBin(t)
	a, b := startGate(t, "gate-a"), startGate(t, "gate-b")
	dir := shortDir(t)
	socket := "unix:" + filepath.Join(dir, "admin.sock")
	env := parseEnv(t, topology(a.port, b.port, fmt.Sprintf(`
[test.lb]
driver = "haproxy"
haproxySocket = %q
haproxyBackend = "game_gates"
`, socket)))

	var out strings.Builder
	if err := HAProxyConfig(&out, env); err != nil {
		t.Fatal(err)
	}
	frag := out.String()
	for _, want := range []string{
		"stats socket " + filepath.Join(dir, "admin.sock") + " mode 660 level admin\n",
		"frontend game_gates_front\n",
		"default_backend game_gates\n",
		"backend game_gates\n",
		"balance leastconn\n",
		fmt.Sprintf("server gate-a 127.0.0.1:%d check  # group a\n", a.port),
		fmt.Sprintf("server gate-b 127.0.0.1:%d check  # group b\n", b.port),
	} {
		if !strings.Contains(frag, want) {
			t.Errorf("fragment lacks %q:\n%s", want, frag)
		}
	}
	if strings.Contains(frag, "connector") || strings.Contains(frag, "chat-1") {
		t.Errorf("fragment names a server that is not a gate:\n%s", frag)
	}
	if strings.Contains(frag, "defaults") {
		t.Errorf("fragment has a defaults section; it should stand without one")
	}

	path := filepath.Join(dir, "check.cfg")
	if err := os.WriteFile(path, []byte(frag), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil || strings.Contains(string(out), "WARNING") {
		t.Fatalf("haproxy -c rejects or warns about the fragment: %v\n%s\n%s", err, out, frag)
	}

	front := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	bind := regexp.MustCompile(`(?m)^    bind :\d+$`)
	if !bind.MatchString(frag) {
		t.Fatalf("no bind line in:\n%s", frag)
	}
	startHAProxy(t, dir, bind.ReplaceAllString(frag, "    bind "+front), socket)

	seen := map[string]bool{}
	for i := 0; i < 4; i++ { // leastconn over two gates, connections held
		seen[dial(t, front).gate] = true
	}
	if !seen["gate-a"] || !seen["gate-b"] {
		t.Fatalf("connections through the fragment's frontend reached %v, want both gates", seen)
	}

	d, err := New(env.LB, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Drain(ctxTimeout(t, 5*time.Second), "b", Gates(env, "b")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if c := dial(t, front); c.gate != "gate-a" {
			t.Fatalf("connection %d after draining group b reached %s", i, c.gate)
		}
	}
}

// remote moves the topology's servers off loopback, where HAProxy does not
// share their host.
func remote(toml string) string {
	return strings.NewReplacer(`"127.0.0.1"`, `"10.0.0.1"`, `"127.0.0.2"`, `"10.0.0.2"`).Replace(toml)
}

// TestHAProxyConfigText covers the choices the fragment makes for
// topologies the running test does not: a TCP stats socket, no [ENV.lb],
// gates on different client ports, gates on HAProxy's host, a gate
// listening on 0.0.0.0, no gates.
func TestHAProxyConfigText(t *testing.T) {
	t.Run("tcp socket", func(t *testing.T) {
		env := parseEnv(t, remote(onTwoHosts(topology(3014, 3014, "[test.lb]\ndriver = \"haproxy\"\nhaproxySocket = \"127.0.0.1:9999\"\nhaproxyBackend = \"gates\"\n"))))
		frag := write(t, env)
		mustHave(t, frag, "    stats socket 127.0.0.1:9999 level admin\n", "    bind :3014\n", "no password")
		if !strings.Contains(frag, "gate-a 10.0.0.1:3014") || strings.Contains(frag, "ports differ") {
			t.Errorf("one shared port:\n%s", frag)
		}
	})
	t.Run("no lb", func(t *testing.T) {
		frag := write(t, parseEnv(t, remote(topology(3014, 3015, ""))))
		mustHave(t, frag,
			"stats socket /run/haproxy/admin.sock mode 660 level admin",
			"backend "+DefaultHAProxyBackend+"\n",
			"[test.lb]", `driver = "haproxy"`, `haproxySocket = "unix:/run/haproxy/admin.sock"`,
			// Ports differ and tie: the lower is bound, and the comment says why.
			"ports differ (3014: gate-a; 3015: gate-b)", "    bind :3014\n",
			"server gate-b 10.0.0.1:3015 check")
	})
	t.Run("on haproxy's host", func(t *testing.T) {
		// Loopback gates share HAProxy's host: binding their port would fail.
		frag := write(t, parseEnv(t, topology(3014, 3015, "")))
		mustHave(t, frag, "gate-a has port 3014 on loopback", "    bind :3016\n", "server gate-a 127.0.0.1:3014 check")
	})
	t.Run("most common port", func(t *testing.T) {
		port, desc := bindPort([]Gate{{ID: "g1", Port: 4000}, {ID: "g2", Port: 3014}, {ID: "g3", Port: 3014}})
		if port != 3014 || len(desc) != 2 {
			t.Errorf("bindPort = %d %v", port, desc)
		}
	})
	t.Run("unspecified client host", func(t *testing.T) {
		toml := strings.Replace(onTwoHosts(topology(3014, 3014, "")), "port = 3100\n", "port = 3100\nclientHost = \"0.0.0.0\"\n", 1)
		env := parseEnv(t, toml)
		mustHave(t, write(t, env), "server gate-a 127.0.0.1:3014 check")
		if g := Gates(env, "a"); len(g) != 1 || g[0] != (Gate{ID: "gate-a", Host: "127.0.0.1", Port: 3014}) {
			t.Errorf("Gates(a) = %+v", g)
		}
	})
	t.Run("no gates", func(t *testing.T) {
		toml := regexp.MustCompile(`(?s)\[\[test\.gate\]\].*?\n\n`).ReplaceAllString(topology(3014, 3015, ""), "")
		err := HAProxyConfig(&strings.Builder{}, parseEnv(t, toml))
		mustContain(t, err, "no gates", `"gate"`)
	})
}

func write(t *testing.T, env *config.Env) string {
	t.Helper()
	var b strings.Builder
	if err := HAProxyConfig(&b, env); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func mustHave(t *testing.T, text string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(text, p) {
			t.Errorf("lacks %q:\n%s", p, text)
		}
	}
}

// TestGates: the gates of a group are the servers of type "gate" in it;
// connectors and other frontends are not gates.
func TestGates(t *testing.T) {
	env := parseEnv(t, topology(3014, 3015, ""))
	for group, want := range map[string][]Gate{
		"":  {{"gate-a", "127.0.0.1", 3014}, {"gate-b", "127.0.0.1", 3015}},
		"a": {{"gate-a", "127.0.0.1", 3014}},
		"b": {{"gate-b", "127.0.0.1", 3015}},
		"c": nil,
	} {
		got := Gates(env, group)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Gates(%q) = %v, want %v", group, got, want)
		}
	}
	if got := (Gate{"g", "::1", 3014}).Addr(); got != "[::1]:3014" {
		t.Errorf("Addr = %s", got)
	}
}
