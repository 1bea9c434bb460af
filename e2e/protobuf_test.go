package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nodeDeps fails the test unless the pinned npm packages are installed.
func nodeDeps(t *testing.T, deps ...string) (node, dir string) {
	t.Helper()
	dir = filepath.Join(repoRoot, "e2e", "node")
	for _, dep := range deps {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", dep)); err != nil {
			t.Fatalf("e2e/node/node_modules/%s is missing: run `npm ci --prefix e2e/node` (make test does it)", dep)
		}
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed: %v", err)
	}
	return node, dir
}

// runNode runs a script of e2e/node and fails the test on a non-zero exit.
func runNode(t *testing.T, timeout time.Duration, env []string, args ...string) string {
	t.Helper()
	node, dir := nodeDeps(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %s: %v (after %v)\n%s", strings.Join(args, " "), err, time.Since(start).Round(time.Millisecond), out)
	}
	t.Logf("node %s (%v):\n%s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), out)
	return string(out)
}

// TestProtobufChatInterop runs the chat scenario with Pomelo protobuf
// bodies against the demo with --protobuf, from Node: NetEase's
// pomelo-protobuf 0.4.0 encodes and decodes every body with the protos the
// handshake carries (checked against its own parse of the shipped files),
// NetEase's pomelo-nodejsclient-websocket is the second user on WebSocket.
// enter, send, onAdd, onChat (room and private) and onLeave round-trip, and
// a second connection offering the protos version is not sent them again.
// TestPomeloPeerParity runs the same script against Pomelo 2.2.7.
func TestProtobufChatInterop(t *testing.T) {
	t.Parallel()
	nodeDeps(t, "pomelo-protocol", "pomelo-protobuf", "pomelo-nodejsclient-websocket", "ws")
	c := StartChatClusterWith(t, ClusterOptions{Protobuf: true})
	host, port, _ := strings.Cut(c.GateAddr, ":")
	protos := filepath.Join(repoRoot, "examples", "chat", "protos")
	for _, tr := range []string{"ws", "tcp"} {
		t.Run(tr, func(t *testing.T) {
			out := runNode(t, 90*time.Second, nil, "protobuf.js", host, port, tr, protos)
			if !strings.Contains(out, "PASS ["+tr+"]") {
				t.Fatalf("protobuf.js did not pass:\n%s", out)
			}
		})
	}
}

// TestPomeloJSClientInChromium: NetEase's browser client,
// pomelo-jsclient-websocket 0.1.1, in headless Chromium with
// pomelo-protocol's and pomelo-protobuf's browser builds (as
// chatofpomelo-websocket's page loads them), chats through the demo: gate,
// enter, onAdd, onChat, onLeave; unmodified with JSON bodies, and with
// protobuf bodies (plus the decodeStr alias its npm release lacks), where
// the protos come from the gate, are kept by the client and offered to the
// connector, which does not send them again (e2e/node/jsclient.js).
func TestPomeloJSClientInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing (%v): apt-get install -y chromium", chromiumPath, err)
	}
	nodeDeps(t, "playwright-core", "pomelo-jsclient-websocket", "pomelo-protocol", "pomelo-protobuf")
	for _, mode := range []string{"json", "protobuf"} {
		t.Run(mode, func(t *testing.T) {
			c := StartChatClusterWith(t, ClusterOptions{Protobuf: mode == "protobuf"})
			host, port, _ := strings.Cut(c.GateAddr, ":")
			if out := runNode(t, 120*time.Second, nil, "jsclient.js", host, port, mode); !strings.Contains(out, "PASS") {
				t.Fatalf("jsclient.js did not pass:\n%s", out)
			}
		})
	}
}
