package config

import (
	"errors"
	"strings"
	"testing"
)

// head is a valid environment of 6 lines; cases append from line 7.
const head = `[dev]
binary = "bin/chat"
[dev.master]
id = "master-server-1"
host = "127.0.0.1"
port = 3005
`

// chat is a valid backend entry: header on line 7, id 8, host 9, port 10.
const chat = `[[dev.chat]]
id = "chat-server-1"
host = "127.0.0.1"
port = 6050
`

var errorCases = []struct {
	name string
	file string
	env  string // default "dev"
	want string
}{
	// TOML syntax and the top level.
	{"syntax", head + "[[dev.chat]]\nport = \n", "",
		`servers.toml:8: invalid TOML: expected value but found '\n' instead`},
	{"duplicate key", head + "port = 3006\n", "",
		`servers.toml:7: invalid TOML: Key 'dev.master.port' has already been defined.`},
	{"top-level key", "binary = \"bin/chat\"\n" + head, "",
		`servers.toml:1: binary: top-level keys must be environment tables like [binary], not a string`},
	{"environment not found", head, "production",
		`servers.toml: environment "production" not found (have: dev)`},
	{"empty file", "", "dev",
		`servers.toml: environment "dev" not found (the file has none)`},

	// The environment table.
	{"missing binary", "[dev]\nbase = \".\"\n[dev.master]\nid = \"m\"\nhost = \"h\"\nport = 1\n", "",
		`servers.toml:1: dev: missing binary`},
	{"binary type", "[dev]\nbinary = 1\n[dev.master]\nid = \"m\"\nhost = \"h\"\nport = 1\n", "",
		`servers.toml:2: dev: binary must be a string, not an integer`},
	{"missing master", "[dev]\nbinary = \"bin/chat\"\n" + strings.ReplaceAll(chat, "[[dev.chat]]", "\n[[dev.chat]]"), "",
		`servers.toml:1: dev: missing [dev.master] table`},
	{"unknown env key", head[:len("[dev]\n")] + "binnary = \"x\"\n" + head[len("[dev]\n"):], "",
		`servers.toml:2: dev: unknown key "binnary" (did you mean "binary"?)`},
	{"unknown env table", head + "[dev.gaet]\nid = \"gate-server-1\"\n", "",
		`servers.toml:7: dev: unknown table "gaet" (servers of a type are an array of tables: [[dev.gaet]])`},
	{"reserved name as server type", head + "[[dev.ssh]]\nuser = \"x\"\n", "",
		`servers.toml:7: dev: ssh must be a table ([dev.ssh]), not an array of tables`},
	{"type with a dot", head + "[[dev.\"chat.room\"]]\nid = \"c\"\nhost = \"h\"\nport = 1\n", "",
		`servers.toml:7: dev: server type "chat.room" must match [A-Za-z][A-Za-z0-9_-]* (routes are type.handler.method)`},
	{"array of non-tables", head[:len("[dev]\n")] + "chat = [1, 2]\n" + head[len("[dev]\n"):], "",
		`servers.toml:2: dev: chat must be an array of tables ([[dev.chat]]), but element 0 is an integer`},

	// The master.
	{"unknown master key", head + "adminport = 3006\n", "",
		`servers.toml:7: master: unknown key "adminport" (did you mean "adminPort"?)`},
	{"master missing id", "[dev]\nbinary = \"b\"\n[dev.master]\nhost = \"h\"\nport = 1\n", "",
		`servers.toml:3: master: missing id`},
	{"master missing host", "[dev]\nbinary = \"b\"\n[dev.master]\nid = \"m\"\nport = 1\n", "",
		`servers.toml:3: master: missing host`},
	{"master missing port", "[dev]\nbinary = \"b\"\n[dev.master]\nid = \"m\"\nhost = \"h\"\n", "",
		`servers.toml:3: master: missing port`},
	{"master port ++", strings.Replace(head, "3005", `"3005++"`, 1), "",
		`servers.toml:6: master: port "3005++": "N++" is only for port, clientPort and metricsPort of a server entry with clusterCount`},
	{"master adminHost alone", head + "adminHost = \"0.0.0.0\"\n", "",
		`servers.toml:7: master: adminHost is set but adminPort is not`},
	{"master host with port", strings.Replace(head, `"127.0.0.1"`, `"127.0.0.1:3005"`, 1), "",
		`servers.toml:5: master: host "127.0.0.1:3005" must not include a port`},

	// ssh, lb, rolling.
	{"unknown ssh key", head + "[dev.ssh]\nusr = \"deploy\"\n", "",
		`servers.toml:8: ssh: unknown key "usr" (did you mean "user"?)`},
	{"ssh port", head + "[dev.ssh]\nport = 0\n", "",
		`servers.toml:8: ssh: port 0 is not a port`},
	{"ssh uploadBinary type", head + "[dev.ssh]\nuploadBinary = \"yes\"\n", "",
		`servers.toml:8: ssh: uploadBinary must be a boolean, not a string`},
	{"unknown lb key", head + "[dev.lb]\nsocket = \"unix:/run/haproxy.sock\"\n", "",
		`servers.toml:8: lb: unknown key "socket"`},
	{"lb driver", head + "[dev.lb]\ndriver = \"nginx\"\n", "",
		`servers.toml:8: lb: driver "nginx" must be "haproxy" or "command"`},
	{"lb haproxy without backend", head + "[dev.lb]\ndriver = \"haproxy\"\nhaproxySocket = \"unix:/run/haproxy.sock\"\n", "",
		`servers.toml:7: lb: driver "haproxy" needs haproxyBackend`},
	{"lb socket", head + "[dev.lb]\ndriver = \"haproxy\"\nhaproxySocket = \"/run/haproxy.sock\"\nhaproxyBackend = \"gates\"\n", "",
		`servers.toml:9: lb: haproxySocket "/run/haproxy.sock" must be "unix:PATH" or "HOST:PORT"`},
	{"lb key of another driver", head + "[dev.lb]\ndrainCommand = \"lbctl drain\"\n", "",
		`servers.toml:8: lb: drainCommand is set but driver is not "command"`},
	{"unknown rolling key", head + "[dev.rolling]\ndrain = \"10s\"\n", "",
		`servers.toml:8: rolling: unknown key "drain"`},
	{"rolling duration", head + "[dev.rolling]\ndrainTimeout = \"soon\"\n", "",
		`servers.toml:8: rolling: drainTimeout "soon" is not a positive duration like "30s"`},
	{"rolling duration type", head + "[dev.rolling]\nstartTimeout = 30\n", "",
		`servers.toml:8: rolling: startTimeout must be a string, not an integer`},

	// Server entries.
	{"unknown server key", head + chat + "frontEnd = true\n", "",
		`servers.toml:11: chat: unknown key "frontEnd" (did you mean "frontend"?)`},
	{"server key type", head + chat + "frontend = \"yes\"\n", "",
		`servers.toml:11: chat: frontend must be a boolean, not a string`},
	{"missing host", head + "[[dev.chat]]\nid = \"chat-server-1\"\nport = 6050\n", "",
		`servers.toml:7: chat: missing host`},
	{"missing port", head + "[[dev.chat]]\nid = \"chat-server-1\"\nhost = \"127.0.0.1\"\n", "",
		`servers.toml:7: chat: missing port`},
	{"port out of range", head + strings.Replace(chat, "6050", "70000", 1), "",
		`servers.toml:10: chat: port 70000 is not a port`},
	{"port zero", head + strings.Replace(chat, "6050", `"0"`, 1), "",
		`servers.toml:10: chat: port "0" is not a port`},
	{"port type", head + strings.Replace(chat, "6050", "true", 1), "",
		`servers.toml:10: chat: port must be an integer or a string like "3150" or "3150++", not a boolean`},
	{"clientPort not a port (DESIGN example)", head + "[[dev.connector]]\nhost = \"127.0.0.1\"\nport = \"3150++\"\nclientPort = \"30x0++\"\nfrontend = true\nclusterCount = 2\n", "",
		`servers.toml:10: connector: clientPort "30x0++" is not a port`},
	{"missing id", head + "[[dev.chat]]\nhost = \"127.0.0.1\"\nport = 6050\n", "",
		`servers.toml:7: chat: missing id (required without clusterCount)`},
	{"bad id", head + strings.Replace(chat, "chat-server-1", "chat server", 1), "",
		`servers.toml:8: chat: id "chat server" must match [A-Za-z0-9][A-Za-z0-9._-]*`},
	{"duplicate id", head + chat + strings.Replace(chat, "6050", "6051", 1), "",
		`servers.toml:12: chat: duplicate id "chat-server-1" (also on line 8)`},
	{"duplicate id from clusterCount", head + "[[dev.chat]]\nid = \"chat\"\nhost = \"h\"\nport = \"6050++\"\nclusterCount = 2\n" +
		"[[dev.chat]]\nid = \"chat-1\"\nhost = \"h\"\nport = 7000\n", "",
		`servers.toml:13: chat: duplicate id "chat-1" (also on line 8)`},
	{"duplicate id with the master", head + strings.Replace(chat, "chat-server-1", "master-server-1", 1), "",
		`servers.toml:8: chat: duplicate id "master-server-1" (also on line 4)`},
	{"duplicate host:port", head + chat + strings.Replace(chat, "chat-server-1", "chat-server-2", 1), "",
		`servers.toml:14: chat: chat-server-2 port 127.0.0.1:6050 is already used by chat-server-1 port (line 10)`},
	{"duplicate host:port with the master", head + strings.Replace(chat, "6050", "3005", 1), "",
		`servers.toml:10: chat: chat-server-1 port 127.0.0.1:3005 is already used by master-server-1 port (line 6)`},
	{"duplicate clientPort and port", head + chat + "[[dev.gate]]\nid = \"gate-server-1\"\nhost = \"127.0.0.1\"\nport = 3100\nclientPort = 6050\nfrontend = true\n", "",
		`servers.toml:15: gate: gate-server-1 clientPort 127.0.0.1:6050 is already used by chat-server-1 port (line 10)`},
	{"duplicate host:port across clusters", head + "[[dev.chat]]\nhost = \"h\"\nport = \"6050++\"\nclusterCount = 3\n" +
		"[[dev.chat]]\nhost = \"H\"\nport = \"6052++\"\nclusterCount = 2\n", "",
		`servers.toml:13: chat: cluster-server-chat-3 port h:6052 is already used by cluster-server-chat-2 port (line 9)`},
	{"frontend without clientPort", head + strings.Replace(chat, "6050\n", "6050\nfrontend = true\n", 1), "",
		`servers.toml:7: chat: frontend server needs clientPort`},
	{"clientPort on a backend", head + chat + "clientPort = 3010\n", "",
		`servers.toml:11: chat: clientPort is set but frontend is not true`},
	{"clientHost on a backend", head + chat + "clientHost = \"example.com\"\nfrontend = false\n", "",
		`servers.toml:11: chat: clientHost is set but frontend is not true`},
	{"group", head + chat + "group = \"c\"\n", "",
		`servers.toml:11: chat: group "c" must be "a" or "b"`},
	{"clusterCount zero", head + "[[dev.chat]]\nhost = \"h\"\nport = \"6050++\"\nclusterCount = 0\n", "",
		`servers.toml:10: chat: clusterCount 0 must be at least 1`},
	{"clusterCount type", head + "[[dev.chat]]\nhost = \"h\"\nport = \"6050++\"\nclusterCount = \"2\"\n", "",
		`servers.toml:10: chat: clusterCount must be an integer, not a string`},
	{"N++ without clusterCount", head + strings.Replace(chat, "6050", `"6050++"`, 1), "",
		`servers.toml:10: chat: port "6050++" needs clusterCount`},
	{"clusterCount without N++", head + strings.Replace(chat, "6050\n", "6050\nclusterCount = 2\n", 1), "",
		`servers.toml:10: chat: port 6050 without "++": all 2 copies of clusterCount would use it`},
	{"N++ past 65535", head + "[[dev.chat]]\nhost = \"h\"\nport = \"65535++\"\nclusterCount = 2\n", "",
		`servers.toml:9: chat: port "65535++" with clusterCount 2 goes past 65535`},
	{"N++ on host", head + strings.Replace(chat, `"127.0.0.1"`, `"10.0.0.1++"`, 1), "",
		`servers.toml:9: chat: host "10.0.0.1++": "N++" is only for port, clientPort and metricsPort`},
	{"args type", head + chat + "args = [\"-v\", 2]\n", "",
		`servers.toml:11: chat: args must be an array of strings, but has an integer`},
	{"env value type", head + chat + "[dev.chat.env]\nGOGC = 200\n", "",
		`servers.toml:12: chat: env.GOGC must be a string, not an integer`},
	{"inline array entry", "[dev]\nbinary = \"b\"\nchat = [\n  { id = \"c1\", host = \"h\", port = 1 },\n  { id = \"c2\", host = \"h\", port = 1 },\n]\n" + head[len("[dev]\nbinary = \"bin/chat\"\n"):], "",
		`servers.toml:5: chat: c2 port h:1 is already used by c1 port (line 4)`},

	// TLS on the client port: frontends only, certificate and key together.
	{"tls on a backend", head + chat + "tlsCert = \"c.pem\"\ntlsKey = \"c.key\"\n", "",
		`servers.toml:11: chat: tlsCert is set but frontend is not true (TLS is for the client port)`},
	{"tls key without cert", head + "[[dev.gate]]\nid = \"g\"\nhost = \"h\"\nport = 1\nclientPort = 2\nfrontend = true\ntlsKey = \"g.key\"\n", "",
		`servers.toml:13: gate: tlsKey is set but tlsCert is not`},
	{"tls cert without key", head + "[[dev.gate]]\nid = \"g\"\nhost = \"h\"\nport = 1\nclientPort = 2\nfrontend = true\ntlsCert = \"g.pem\"\n", "",
		`servers.toml:13: gate: tlsCert is set but tlsKey is not`},
	{"tls empty and mistyped", head + "[[dev.gate]]\nid = \"g\"\nhost = \"h\"\nport = 1\nclientPort = 2\nfrontend = true\ntlsCert = \"\"\ntlsKey = 3\n", "",
		"servers.toml:13: gate: tlsCert is empty\n" +
			"servers.toml:14: gate: tlsKey must be a string, not an integer"},

	// metricsPort: a port like the others, "N++" with clusterCount, on no other server's address.
	{"metricsPort not a port", head + chat + "metricsPort = \"9x00\"\n", "",
		`servers.toml:11: chat: metricsPort "9x00" is not a port`},
	{"metricsPort out of range", head + chat + "metricsPort = 65536\n", "",
		`servers.toml:11: chat: metricsPort 65536 is not a port`},
	{"metricsPort type", head + chat + "metricsPort = true\n", "",
		`servers.toml:11: chat: metricsPort must be an integer or a string like "3150" or "3150++", not a boolean`},
	{"metricsPort N++ without clusterCount", head + chat + "metricsPort = \"9100++\"\n", "",
		`servers.toml:11: chat: metricsPort "9100++" needs clusterCount`},
	{"metricsPort without N++ with clusterCount", head + "[[dev.chat]]\nhost = \"h\"\nport = \"6050++\"\nmetricsPort = 9100\nclusterCount = 2\n", "",
		`servers.toml:10: chat: metricsPort 9100 without "++": all 2 copies of clusterCount would use it`},
	{"metricsPort N++ past 65535", head + "[[dev.chat]]\nhost = \"h\"\nport = \"6050++\"\nmetricsPort = \"65535++\"\nclusterCount = 2\n", "",
		`servers.toml:10: chat: metricsPort "65535++" with clusterCount 2 goes past 65535`},
	{"metricsPort is its own port", head + chat + "metricsPort = 6050\n", "",
		`servers.toml:11: chat: chat-server-1 metricsPort 127.0.0.1:6050 is already used by chat-server-1 port (line 10)`},
	{"metricsPort of two servers", head + chat + "metricsPort = 9100\n" + strings.Replace(strings.Replace(chat, "6050", "6051", 1), "chat-server-1", "chat-server-2", 1) + "metricsPort = 9100\n", "",
		`servers.toml:16: chat: chat-server-2 metricsPort 127.0.0.1:9100 is already used by chat-server-1 metricsPort (line 11)`},
	{"metricsPort across clusters", head + "[[dev.chat]]\nhost = \"h\"\nport = \"6050++\"\nmetricsPort = \"9100++\"\nclusterCount = 2\n" +
		"[[dev.connector]]\nid = \"connector\"\nhost = \"h\"\nport = \"9101\"\nclientPort = 3050\nfrontend = true\n", "",
		`servers.toml:15: connector: connector port h:9101 is already used by cluster-server-chat-1 metricsPort (line 10)`},
	{"metricsPort clashes with a later port", head + "[[dev.chat]]\nhost = \"h\"\nport = \"6050++\"\nmetricsPort = \"9100++\"\nclusterCount = 2\n" +
		"[[dev.gate]]\nid = \"gate\"\nhost = \"h\"\nport = 3100\nclientPort = 9101\nfrontend = true\n", "",
		`servers.toml:16: gate: gate clientPort h:9101 is already used by cluster-server-chat-1 metricsPort (line 10)`},
	{"metricsPort on the master", head + "metricsPort = 9100\n", "",
		`servers.toml:7: master: unknown key "metricsPort"`},
	{"logFormat", head[:len("[dev]\n")] + "logFormat = \"xml\"\n" + head[len("[dev]\n"):], "",
		`servers.toml:2: dev: logFormat "xml" must be "text" or "json"`},

	// Several problems: all of them, in file order.
	{"several", "[dev]\n[dev.master]\nid = \"m\"\n" + strings.Replace(chat, "6050", "0", 1) + "bogus = 1\n", "",
		"servers.toml:1: dev: missing binary\n" +
			"servers.toml:2: master: missing host\n" +
			"servers.toml:2: master: missing port\n" +
			"servers.toml:7: chat: port 0 is not a port\n" +
			"servers.toml:8: chat: unknown key \"bogus\""},
}

func TestErrors(t *testing.T) {
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			if env == "" {
				env = "dev"
			}
			got, err := Parse("servers.toml", []byte(tc.file), env)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v\nfile:\n%s", got, tc.file)
			}
			if err.Error() != tc.want {
				t.Errorf("error\ngot:  %s\nwant: %s\nfile:\n%s", err, tc.want, numbered(tc.file))
			}
			var e *Error
			if !errors.As(err, &e) || e.File != "servers.toml" {
				t.Errorf("error %v is not a *Error for servers.toml", err)
			}
		})
	}
}

func numbered(s string) string {
	var b strings.Builder
	for i, l := range strings.Split(s, "\n") {
		b.WriteString(strings.Repeat(" ", 3-len(itoa(i+1))) + itoa(i+1) + " | " + l + "\n")
	}
	return b.String()
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

func TestErrorCaps(t *testing.T) {
	var b strings.Builder
	b.WriteString(head)
	for range 30 {
		b.WriteString("[[dev.chat]]\nhost = \"h\"\nport = 1\n")
	}
	_, err := Parse("servers.toml", []byte(b.String()), "dev")
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxErrors+1 || lines[maxErrors] != "servers.toml: 10 more errors" {
		t.Errorf("got %d lines, last %q", len(lines), lines[len(lines)-1])
	}
}

func TestUnsafeEnvironmentName(t *testing.T) {
	_, err := Parse("servers.toml", []byte("[\"../x\"]\nbinary = \"b\"\n"), "../x")
	if err == nil || err.Error() != `servers.toml:1: environment name "../x" must match ^[A-Za-z][A-Za-z0-9_-]*$` {
		t.Fatalf("err = %v", err)
	}
}
