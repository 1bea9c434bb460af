package config

import (
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// example is DESIGN.md §3 verbatim (comments dropped).
const example = `[development]
binary = "bin/chat"
base = "."

[development.master]
id = "master-server-1"
host = "127.0.0.1"
port = 3005

[[development.gate]]
id = "gate-server-1"
host = "127.0.0.1"
port = 3100
clientPort = 3014
frontend = true

[[development.connector]]
host = "127.0.0.1"
port = "3150++"
clientHost = "127.0.0.1"
clientPort = "3050++"
frontend = true
clusterCount = 2

[[development.chat]]
id = "chat-server-1"
host = "127.0.0.1"
port = 6050
`

func TestParseExample(t *testing.T) {
	env, err := Parse("servers.toml", []byte(example), "development")
	if err != nil {
		t.Fatal(err)
	}
	want := &Env{
		Name:    "development",
		Binary:  "bin/chat",
		Base:    ".",
		Master:  Master{ID: "master-server-1", Host: "127.0.0.1", Port: 3005, AdminHost: "127.0.0.1"},
		SSH:     SSH{Port: 22},
		Rolling: Rolling{DrainTimeout: 60 * time.Second, StartTimeout: 30 * time.Second},
		Servers: []Server{
			{ID: "chat-server-1", Type: "chat", Host: "127.0.0.1", Port: 6050, Line: 25},
			{ID: "cluster-server-connector-0", Type: "connector", Host: "127.0.0.1", Port: 3150,
				ClientHost: "127.0.0.1", ClientPort: 3050, Frontend: true, Line: 17},
			{ID: "cluster-server-connector-1", Type: "connector", Host: "127.0.0.1", Port: 3151,
				ClientHost: "127.0.0.1", ClientPort: 3051, Frontend: true, Line: 17},
			{ID: "gate-server-1", Type: "gate", Host: "127.0.0.1", Port: 3100,
				ClientHost: "127.0.0.1", ClientPort: 3014, Frontend: true, Line: 10},
		},
	}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("got\n%+v\nwant\n%+v", env, want)
	}

	if s, ok := env.Server("cluster-server-connector-1"); !ok || s.Port != 3151 {
		t.Errorf("Server(cluster-server-connector-1) = %+v, %v", s, ok)
	}
	if _, ok := env.Server("connector-server-1"); ok {
		t.Error("Server(connector-server-1) found a server that does not exist")
	}
	if got := ids(env.ServersOfType("connector")); !slices.Equal(got, []string{"cluster-server-connector-0", "cluster-server-connector-1"}) {
		t.Errorf("ServersOfType(connector) = %v", got)
	}
	if got := env.ServersOfType("area"); got != nil {
		t.Errorf("ServersOfType(area) = %v, want nil", got)
	}
	if got := env.Types(); !slices.Equal(got, []string{"chat", "connector", "gate"}) {
		t.Errorf("Types() = %v", got)
	}
}

func ids(ss []Server) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.ID)
	}
	return out
}

func TestExpansion(t *testing.T) {
	const file = `[dev]
binary = "/usr/local/bin/game"
[dev.master]
id = "m"
host = "10.0.0.1"
port = "3005"
adminPort = 3006

[[dev.area]]
host = "10.0.0.2"
port = "4000++"
clusterCount = 2
args = ["-v", "--zone=1"]
env = { GOGC = "200", ZONE = "1" }

[[dev.area]]
id = "area-x"
host = "10.0.0.2"
port = 4100
group = "b"
autoRestart = true

[[dev.area]]   # seq continues after the first id-less entry
host = "10.0.0.3"
port = "4000++"
clusterCount = 3

[[dev.area]]
id = "named"
host = "10.0.0.3"
port = "4010++"
clusterCount = 1
`
	env, err := Parse("servers.toml", []byte(file), "dev")
	if err != nil {
		t.Fatal(err)
	}
	if env.Base != "." || env.Binary != "/usr/local/bin/game" {
		t.Errorf("Base, Binary = %q, %q", env.Base, env.Binary)
	}
	if want := (Master{ID: "m", Host: "10.0.0.1", Port: 3005, AdminHost: "10.0.0.1", AdminPort: 3006}); env.Master != want {
		t.Errorf("Master = %+v, want %+v", env.Master, want)
	}
	type short struct {
		id, host string
		port     int
		line     int
	}
	var got []short
	for _, s := range env.Servers {
		got = append(got, short{s.ID, s.Host, s.Port, s.Line})
	}
	want := []short{
		{"area-x", "10.0.0.2", 4100, 16},
		{"cluster-server-area-0", "10.0.0.2", 4000, 9},
		{"cluster-server-area-1", "10.0.0.2", 4001, 9},
		{"cluster-server-area-2", "10.0.0.3", 4000, 23},
		{"cluster-server-area-3", "10.0.0.3", 4001, 23},
		{"cluster-server-area-4", "10.0.0.3", 4002, 23},
		{"named-0", "10.0.0.3", 4010, 28},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("servers\ngot  %v\nwant %v", got, want)
	}
	a0, _ := env.Server("cluster-server-area-0")
	a1, _ := env.Server("cluster-server-area-1")
	if !slices.Equal(a0.Args, []string{"-v", "--zone=1"}) || !reflect.DeepEqual(a0.Env, map[string]string{"GOGC": "200", "ZONE": "1"}) {
		t.Errorf("area-0 Args, Env = %q, %v", a0.Args, a0.Env)
	}
	// Copies do not share memory: changing one leaves the other alone.
	a0.Args[0] = "changed"
	a0.Env["GOGC"] = "changed"
	if a1.Args[0] != "-v" || a1.Env["GOGC"] != "200" {
		t.Error("clusterCount copies share Args or Env")
	}
	x, _ := env.Server("area-x")
	if x.Group != "b" || !x.AutoRestart || x.Frontend || x.ClientHost != "" || x.ClientPort != 0 || x.Args != nil || x.Env != nil {
		t.Errorf("area-x = %+v", x)
	}
}

func TestOptionalTables(t *testing.T) {
	const file = `[dev]
binary = "bin/chat"
base = "/srv/chat"
master = { id = "m", host = "127.0.0.1", port = 3005 }
ssh = { user = "deploy", port = "2222", identityFile = "id", knownHosts = "kh", uploadBinary = true }
lb.driver = "command"
lb.drainCommand = "lbctl drain"
lb.enableCommand = "lbctl enable"
lb.statusCommand = "lbctl status"
rolling = { drainTimeout = "1m30s", startTimeout = "10s" }
`
	env, err := Parse("servers.toml", []byte(file), "dev")
	if err != nil {
		t.Fatal(err)
	}
	if env.Base != "/srv/chat" {
		t.Errorf("Base = %q", env.Base)
	}
	if want := (SSH{User: "deploy", Port: 2222, IdentityFile: "id", KnownHosts: "kh", UploadBinary: true}); env.SSH != want {
		t.Errorf("SSH = %+v, want %+v", env.SSH, want)
	}
	if want := (LB{Driver: "command", DrainCommand: "lbctl drain", EnableCommand: "lbctl enable", StatusCommand: "lbctl status"}); env.LB != want {
		t.Errorf("LB = %+v, want %+v", env.LB, want)
	}
	if want := (Rolling{DrainTimeout: 90 * time.Second, StartTimeout: 10 * time.Second}); env.Rolling != want {
		t.Errorf("Rolling = %+v, want %+v", env.Rolling, want)
	}
	if len(env.Servers) != 0 || env.Types() != nil {
		t.Errorf("Servers = %v, Types = %v", env.Servers, env.Types())
	}

	const hap = `[dev]
binary = "bin/chat"
master = { id = "m", host = "127.0.0.1", port = 3005 }
lb = { driver = "haproxy", haproxySocket = "127.0.0.1:9999", haproxyBackend = "gates" }
`
	env, err = Parse("servers.toml", []byte(hap), "dev")
	if err != nil {
		t.Fatal(err)
	}
	if want := (LB{Driver: "haproxy", HAProxySocket: "127.0.0.1:9999", HAProxyBackend: "gates"}); env.LB != want {
		t.Errorf("LB = %+v, want %+v", env.LB, want)
	}
}

// TestShippedTopology loads the demo topology the repository ships.
func TestShippedTopology(t *testing.T) {
	data, err := os.ReadFile("testdata/servers.toml")
	if err != nil {
		t.Fatal(err)
	}
	envs, err := Environments("testdata/servers.toml", data)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(envs, []string{"development", "production"}) {
		t.Errorf("Environments = %v", envs)
	}

	dev, err := Load("testdata/servers.toml", "development")
	if err != nil {
		t.Fatal(err)
	}
	if dev.Binary != "bin/chat" || dev.Base != "." {
		t.Errorf("Binary, Base = %q, %q", dev.Binary, dev.Base)
	}
	if want := (Master{ID: "master-server-1", Host: "127.0.0.1", Port: 3005, AdminHost: "127.0.0.1"}); dev.Master != want {
		t.Errorf("Master = %+v", dev.Master)
	}
	lo := "127.0.0.1"
	want := []Server{
		{ID: "chat-server-1", Type: "chat", Host: lo, Port: 6050, Line: 34},
		{ID: "chat-server-2", Type: "chat", Host: lo, Port: 6051, Line: 39},
		{ID: "connector-server-1", Type: "connector", Host: lo, Port: 3150, ClientHost: lo, ClientPort: 3050, Frontend: true, Line: 20},
		{ID: "connector-server-2", Type: "connector", Host: lo, Port: 3151, ClientHost: lo, ClientPort: 3051, Frontend: true, Line: 27},
		{ID: "gate-server-1", Type: "gate", Host: lo, Port: 3100, ClientHost: lo, ClientPort: 3014, Frontend: true, Line: 13},
	}
	if !reflect.DeepEqual(dev.Servers, want) {
		t.Errorf("development servers\ngot  %+v\nwant %+v", dev.Servers, want)
	}

	prod, err := Load("testdata/servers.toml", "production")
	if err != nil {
		t.Fatal(err)
	}
	if prod.LB.Driver != LBHAProxy || prod.Rolling.DrainTimeout != 2*time.Minute || !prod.SSH.UploadBinary || prod.SSH.Port != 22 {
		t.Errorf("production LB, Rolling, SSH = %+v, %+v, %+v", prod.LB, prod.Rolling, prod.SSH)
	}
	groups := map[string][]string{}
	for _, s := range prod.Servers {
		groups[s.Group] = append(groups[s.Group], s.ID)
	}
	wantGroups := map[string][]string{
		"a": {"cluster-server-chat-0", "cluster-server-chat-1", "cluster-server-chat-2",
			"connector-a-0", "connector-a-1", "connector-a-2", "connector-a-3", "gate-a"},
		"b": {"cluster-server-chat-3", "cluster-server-chat-4", "cluster-server-chat-5",
			"connector-b-0", "connector-b-1", "connector-b-2", "connector-b-3", "gate-b"},
	}
	if !reflect.DeepEqual(groups, wantGroups) {
		t.Errorf("production groups = %v", groups)
	}
	checkInvariants(t, prod)

	if _, err := Load("testdata/servers.toml", "staging"); !errors.Is(err, ErrUnknownEnv) ||
		err.Error() != `testdata/servers.toml: environment "staging" not found (have: development, production)` {
		t.Errorf("Load(staging) = %v", err)
	}
	if _, err := Load("testdata/missing.toml", "development"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing file) = %v", err)
	}
}

// TestDocListsEveryKey keeps the package documentation in step with the keys
// the parser accepts.
func TestDocListsEveryKey(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	// The format block in the package doc is a working configuration.
	var block []string
	for _, l := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(l, "//\t") {
			block = append(block, strings.TrimPrefix(l, "//\t"))
		}
		if strings.HasPrefix(l, "// Reserved names") {
			break
		}
	}
	env, err := Parse("doc.go", []byte(strings.Join(block, "\n")), "development")
	if err != nil {
		t.Fatalf("the example in doc.go does not parse: %v", err)
	}
	if got := ids(env.Servers); !slices.Equal(got, []string{"connector-server-0", "connector-server-1"}) {
		t.Errorf("doc.go example servers = %v", got)
	}

	for _, keys := range [][]string{envKeys, masterKeys, sshKeys, lbKeys, rollingKeys, serverKeys} {
		for _, k := range keys {
			if !strings.Contains(string(doc), "\t"+k+" = ") && !strings.Contains(string(doc), "# "+k+" = ") &&
				!strings.Contains(string(doc), "[development."+k+"]") {
				t.Errorf("doc.go does not document key %q", k)
			}
		}
	}
}

// The servers.toml shipped at the repository root must always load.
func TestRepositoryServersTOML(t *testing.T) {
	for _, env := range []string{"development", "production"} {
		e, err := Load("../servers.toml", env)
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		if env == "development" {
			gate, ok := e.Server("gate-server-1")
			if !ok || gate.ClientPort != 3014 || len(gate.Args) != 1 || len(e.ServersOfType("connector")) != 2 || len(e.ServersOfType("chat")) != 2 {
				t.Fatalf("development topology changed: %+v", e.Servers)
			}
		}
	}
}

// TLS keys reach every copy of a clusterCount entry.
func TestTLSFiles(t *testing.T) {
	env, err := Parse("servers.toml", []byte(`[dev]
binary = "b"
[dev.master]
id = "m"
host = "127.0.0.1"
port = 3005
[[dev.connector]]
id = "c"
host = "127.0.0.1"
port = "3150++"
clientPort = "3050++"
frontend = true
clusterCount = 2
tlsCert = "certs/c.pem"
tlsKey = "certs/c.key"
`), "dev")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range env.Servers {
		if s.TLSCert != "certs/c.pem" || s.TLSKey != "certs/c.key" {
			t.Errorf("%s: TLS %q %q", s.ID, s.TLSCert, s.TLSKey)
		}
	}
}

func TestMetricsPortAndLogFormat(t *testing.T) {
	file := `[dev]
binary = "bin/chat"
logFormat = "json"
[dev.master]
id = "m"
host = "127.0.0.1"
port = 3005
[[dev.connector]]
id = "connector"
host = "127.0.0.1"
port = "3150++"
clientPort = "3050++"
frontend = true
metricsPort = "9150++"
clusterCount = 2
[[dev.chat]]
id = "chat"
host = "127.0.0.1"
port = 6050
metricsPort = "9200"
[[dev.area]]
id = "area"
host = "127.0.0.1"
port = 6060
`
	env, err := Parse("servers.toml", []byte(file), "dev")
	if err != nil {
		t.Fatal(err)
	}
	if env.LogFormat != LogJSON {
		t.Errorf("LogFormat = %q, want %q", env.LogFormat, LogJSON)
	}
	want := map[string]int{"connector-0": 9150, "connector-1": 9151, "chat": 9200, "area": 0}
	for id, port := range want {
		s, ok := env.Server(id)
		if !ok || s.MetricsPort != port {
			t.Errorf("%s: MetricsPort = %d (found %v), want %d", id, s.MetricsPort, ok, port)
		}
	}
	s, err := ServerFromFields(map[string]string{"type": "chat", "id": "chat-9", "host": "h", "port": "6099", "metricsPort": "9299"})
	if err != nil || s.MetricsPort != 9299 {
		t.Errorf("ServerFromFields metricsPort: %+v, %v", s, err)
	}
}
