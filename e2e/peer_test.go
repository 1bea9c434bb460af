package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shaddock/shaddock/connector"
	"github.com/shaddock/shaddock/handler"
	"github.com/shaddock/shaddock/pomelopb"
	"github.com/shaddock/shaddock/protocol"
)

// The Pomelo 2.2.7 reference peer (shared/peers/pomelo-chat beside the
// repository, as CI lays it out; POMELO_PEER_DIR overrides) and the folder
// it is installed and run in. The folder outlives the test so that npm
// installs pomelo once per machine, not once per run.
func peerDirs(t *testing.T) (dir, run string) {
	t.Helper()
	dir = os.Getenv("POMELO_PEER_DIR")
	if dir == "" {
		dir = filepath.Join(repoRoot, "..", "shared", "peers", "pomelo-chat")
	}
	if _, err := os.Stat(filepath.Join(dir, "start.sh")); err != nil {
		t.Fatalf("the Pomelo peer is not at %s (%v): CI lays shared/ beside the repository; set POMELO_PEER_DIR", dir, err)
	}
	return dir, filepath.Join(os.TempDir(), "shaddock-e2e-pomelo-peer")
}

// peerPorts are the peer's fixed ports (servers.json, master.json).
var peerPorts = []int{3005, 3014, 3050, 3051, 4050, 4051, 6050, 6051}

// peerScript runs one of the peer's scripts with env.
func peerScript(t *testing.T, dir, run, script string, timeout time.Duration, env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(dir, script))
	cmd.Env = append(append(os.Environ(), "POMELO_CHAT_RUN="+run), env...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
}

// startPeer starts the peer (protobuf bodies or not) and stops it when the
// returned function or the test's cleanup runs, whichever is first.
func startPeer(t *testing.T, dir, run string, protobuf bool) (stop func()) {
	t.Helper()
	for _, p := range peerPorts {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second); err == nil {
			c.Close()
			t.Fatalf("port %d is in use: the Pomelo peer needs its fixed ports %v (is a demo or the peer running?)", p, peerPorts)
		}
	}
	flag := "PEER_PROTOBUF=0"
	if protobuf {
		flag = "PEER_PROTOBUF=1"
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			peerScript(t, dir, run, "stop.sh", 60*time.Second)
		}
	}
	t.Cleanup(stop)
	peerScript(t, dir, run, "start.sh", 90*time.Second, flag)
	return stop
}

// helloCases are the client handshakes compared: what pomelo-jsclient,
// libpomelo2 (first and later connections) and others send, cached
// dictionary and protos, and refusals. DV and PV stand for the server's
// dictionary and protos versions.
var helloCases = []struct{ name, hello string }{
	{"jsclient-new", `{"sys":{"type":"js-websocket","version":"0.0.1","protoVersion":0,"rsa":{}},"user":{}}`},
	{"libpomelo2-new", `{"sys":{"type":"linux","version":"0.3.5"}}`},
	{"cached-dict", `{"sys":{"type":"linux","version":"0.3.5","dictVersion":"DV"}}`},
	{"cached-protos", `{"sys":{"type":"js-websocket","version":"0.0.1","protoVersion":"PV","rsa":{}},"user":{}}`},
	{"cached-both", `{"sys":{"protoVersion":"PV","dictVersion":"DV","type":"linux","version":"0.3.5"},"user":{"token":"x"}}`},
	{"stale-dict", `{"sys":{"dictVersion":"stale=="}}`},
	{"no-sys", `{"user":{}}`},
	{"not-json", `hello`},
}

// handshakeAnswers collects the answer body to every hello case from each
// frontend over TCP and WebSocket, keyed "frontend/transport/case".
func handshakeAnswers(t *testing.T, frontends map[string]string, dv, pv string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, addr := range frontends {
		for _, tr := range []string{"tcp", "ws"} {
			for _, c := range helloCases {
				hello := strings.NewReplacer("DV", dv, "PV", pv).Replace(c.hello)
				out[name+"/"+tr+"/"+c.name] = fetchHandshakeAnswer(t, addr, tr, hello)
			}
		}
	}
	return out
}

func fetchHandshakeAnswer(t *testing.T, addr, tr, hello string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr, tr, DialOptions{})
	if err != nil {
		t.Fatalf("dial %s %s: %v", tr, addr, err)
	}
	defer c.Close()
	c.NetConn().SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.WritePackage(protocol.Handshake, []byte(hello)); err != nil {
		t.Fatalf("%s %s: send handshake: %v", tr, addr, err)
	}
	p, err := c.ReadPackage()
	if err != nil || p.Type != protocol.Handshake {
		t.Fatalf("%s %s: handshake %s: answer %v %v", tr, addr, hello, p.Type, err)
	}
	return string(p.Body)
}

// versions reads the dictionary and protos versions from an answer.
func versions(t *testing.T, answer string) (dv, pv string) {
	t.Helper()
	var a struct {
		Sys struct {
			DictVersion string `json:"dictVersion"`
			Protos      struct {
				Version string `json:"version"`
			} `json:"protos"`
		} `json:"sys"`
	}
	if err := json.Unmarshal([]byte(answer), &a); err != nil || a.Sys.DictVersion == "" {
		t.Fatalf("answer %s has no dictVersion: %v", answer, err)
	}
	return a.Sys.DictVersion, a.Sys.Protos.Version
}

// TestPomeloPeerParity compares shaddock with Pomelo 2.2.7 itself, the
// reference peer, run here (npm installs pomelo on first use):
//
//   - every handshake answer of the chat demo's gate and connector, over
//     TCP and WebSocket, byte for byte, for new, cached and stale
//     dictionaries and protos and for refused handshakes, with JSON bodies
//     and with protobuf bodies (the peer's PEER_PROTOBUF=1, the demo's
//     --protobuf; their protos are the same files);
//   - the Node protobuf chat scenario (protobuf.js), which must pass against
//     the peer as it does against shaddock (TestProtobufChatInterop), so
//     that its expectations are Pomelo's;
//   - Pomelo's own handshake command (handshake_ref.js) for what the peer
//     is not configured to show (client check 501, user data, no dictionary
//     or heartbeat), replayed against shaddock's connector in this process.
func TestPomeloPeerParity(t *testing.T) {
	nodeDeps(t, "pomelo-protocol", "pomelo-protobuf", "pomelo-nodejsclient-websocket", "ws")
	dir, run := peerDirs(t)
	peerScript(t, dir, run, "setup.sh", 5*time.Minute)

	t.Run("handshake-command", func(t *testing.T) { replayHandshakeCommand(t, filepath.Join(run, "node_modules")) })

	for _, mode := range []struct {
		name     string
		protobuf bool
	}{{"json", false}, {"protobuf", true}} {
		t.Run(mode.name, func(t *testing.T) {
			stop := startPeer(t, dir, run, mode.protobuf)
			peerFrontends := map[string]string{"gate": "127.0.0.1:3014", "connector": "127.0.0.1:3050"}
			dv, pv := versions(t, fetchHandshakeAnswer(t, peerFrontends["connector"], "tcp", helloCases[0].hello))
			if mode.protobuf && pv == "" {
				t.Fatal("the peer offered no protos with PEER_PROTOBUF=1")
			}
			want := handshakeAnswers(t, peerFrontends, dv, pv)
			if mode.protobuf {
				for _, tr := range []string{"ws", "tcp"} {
					runNode(t, 90*time.Second, nil, "protobuf.js", "127.0.0.1", "3014", tr, filepath.Join(dir, "protos"))
				}
			}
			stop()

			c := StartChatClusterWith(t, ClusterOptions{Protobuf: mode.protobuf})
			got := handshakeAnswers(t, map[string]string{"gate": c.GateAddr, "connector": c.Connectors[0]}, dv, pv)
			n := 0
			for k, w := range want {
				if got[k] != w {
					t.Errorf("%s:\nshaddock %s\nPomelo   %s", k, got[k], w)
				}
				n++
			}
			t.Logf("%d handshake answers byte-identical to Pomelo 2.2.7's (dictVersion %s, protos version %q)", n, dv, pv)
		})
	}
}

// refCase is one case of handshake_ref.js.
type refCase struct {
	Name string `json:"name"`
	Opts struct {
		Heartbeat      int             `json:"heartbeat"`
		UseDict        bool            `json:"useDict"`
		UseProtobuf    bool            `json:"useProtobuf"`
		RequireVersion string          `json:"requireVersion"`
		User           json.RawMessage `json:"user"`
		UserError      bool            `json:"userError"`
	} `json:"opts"`
	Hello  string `json:"hello"`
	Answer string `json:"answer"`
}

// replayHandshakeCommand runs handshake_ref.js and sends each case's hello
// to a shaddock connector configured as the case's Pomelo connector.
func replayHandshakeCommand(t *testing.T, pomeloModules string) {
	out := runNode(t, 60*time.Second, nil, "handshake_ref.js", pomeloModules)
	var ref struct {
		Routes []string        `json:"routes"`
		Server json.RawMessage `json:"server"`
		Client json.RawMessage `json:"client"`
		Cases  []refCase       `json:"cases"`
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), `{"routes"`) {
			if err := json.Unmarshal(sc.Bytes(), &ref); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(ref.Cases) == 0 {
		t.Fatalf("handshake_ref.js printed no cases:\n%s", out)
	}
	dict, err := protocol.NewDictionary(ref.Routes)
	if err != nil {
		t.Fatal(err)
	}
	protos, err := pomelopb.Parse(ref.Server, ref.Client)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ref.Cases {
		cfg := connector.Config{
			ID: "ref", Heartbeat: time.Duration(c.Opts.Heartbeat) * time.Second,
			Handler: func(context.Context, handler.Request) ([]byte, error) { return nil, nil },
			Logger:  slog.New(slog.DiscardHandler),
		}
		if c.Opts.Heartbeat == 0 {
			cfg.Heartbeat = -1 // Pomelo without a heartbeat option
		}
		if c.Opts.UseDict {
			cfg.Dictionary = dict
		}
		if c.Opts.UseProtobuf {
			cfg.Protos = protos
		}
		if v := c.Opts.RequireVersion; v != "" {
			cfg.CheckClient = func(_, version string) bool { return version == v }
		}
		if c.Opts.User != nil || c.Opts.UserError {
			user := c.Opts.User
			cfg.UserHandshake = func(context.Context, *connector.Session, json.RawMessage) (any, error) {
				if c.Opts.UserError {
					return nil, errors.New("refused")
				}
				return user, nil
			}
		}
		srv, err := connector.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(ln)
		got := fetchHandshakeAnswer(t, ln.Addr().String(), "tcp", c.Hello)
		srv.Close()
		if got != c.Answer {
			t.Errorf("%s: hello %s\nshaddock %s\nPomelo   %s", c.Name, c.Hello, got, c.Answer)
		}
	}
	t.Logf("%d cases of Pomelo's handshake command answered identically", len(ref.Cases))
}
