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

// TestInteropPomeloProtocol drives the echo connector with a Node client
// that encodes and decodes with NetEase's pomelo-protocol, over WebSocket
// (the ws package) and raw TCP (net), on the one port. See
// e2e/node/interop.js for the checks.
func TestInteropPomeloProtocol(t *testing.T) {
	t.Parallel()
	nodeDir := filepath.Join(repoRoot, "e2e", "node")
	for _, dep := range []string{"pomelo-protocol", "ws"} {
		if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", dep)); err != nil {
			t.Fatalf("e2e/node/node_modules/%s is missing: run `npm ci --prefix e2e/node` (make test does it)", dep)
		}
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed: %v", err)
	}

	// A 1 s heartbeat makes the silent-client check take 2 s, not 60.
	echo, addr := StartEcho(t, "-heartbeat", "1s")
	host, port, _ := strings.Cut(addr, ":")

	for _, transport := range []string{"ws", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, filepath.Join(nodeDir, "interop.js"), host, port, transport)
			cmd.Dir = nodeDir
			cmd.WaitDelay = 5 * time.Second
			start := time.Now()
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("node interop.js %s %s %s: %v (after %v)\n%s", host, port, transport, err, time.Since(start).Round(time.Millisecond), out)
			}
			t.Logf("node interop.js (%v):\n%s", time.Since(start).Round(time.Millisecond), out)
			if want := "heartbeat 1 s"; !strings.Contains(string(out), want) {
				t.Errorf("output lacks %q: the -heartbeat flag did not reach the handshake", want)
			}
		})
	}

	// Every silent client was closed for its heartbeat, and the kicks did
	// not read as errors.
	if _, ok := echo.Log.Find("heartbeat timeout; closing"); !ok {
		t.Errorf("server did not log the heartbeat timeout:\n%s", echo.Log)
	}
	for _, l := range echo.Log.Lines() {
		if strings.Contains(l.Text, "level=ERROR") || strings.Contains(l.Text, "protocol violation") {
			t.Errorf("server logged: %s", l.Text)
		}
	}
	if err := echo.Stop(); !isExit(err, 0) {
		t.Errorf("echo did not exit cleanly on SIGTERM: %v", err)
	}
}
