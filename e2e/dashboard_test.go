package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDashboardInChromium drives the master's dashboard in headless
// Chromium (e2e/node/dashboard.js) against the chat demo under a light
// load: no server data without the token; with the URL `master dashboard`
// prints, every server by host and group, running, with request rate and
// p99; a kill shown within 5 s, live; a restart from the page, confirmed.
// Screenshots are kept in e2e/artifacts/.
func TestDashboardInChromium(t *testing.T) {
	const hint = "run .ci/run or: apt-get install -y chromium && npm ci --prefix e2e/node"
	nodeDir := filepath.Join(repoRoot, "e2e", "node")
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing (%v): %s", chromiumPath, err, hint)
	}
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("e2e/node/node_modules/playwright-core is missing: %s", hint)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed (%v): %s", err, hint)
	}
	artifacts := filepath.Join(repoRoot, "e2e", "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	shots := []string{"dashboard-no-token.png", "dashboard.png", "dashboard-killed.png", "dashboard-restarted.png"}
	for _, s := range shots { // a stale file must not pass for this run's
		if err := os.Remove(filepath.Join(artifacts, s)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}

	cl := StartChatClusterWith(t, ClusterOptions{Metrics: true})
	out, err := cl.Master(10*time.Second, "dashboard")
	if err != nil {
		t.Fatalf("master dashboard: %v\n%s", err, out)
	}
	url := strings.TrimSpace(out)
	if !strings.HasPrefix(url, "http://"+cl.AdminAddr+"/?token=") {
		t.Fatalf("master dashboard printed %q, want http://%s/?token=…", url, cl.AdminAddr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	users := make([]*chatUser, 6)
	for i := range users {
		users[i], _ = login(t, ctx, cl, fmt.Sprintf("viewer-%d", i), "room-1", false)
	}
	load := startChatLoad(ctx, users, 250*time.Millisecond)
	defer load.close()

	ids := []string{"chat-server-1", "chat-server-2", "connector-server-1", "connector-server-2", "gate-server-1"}
	// dashboard.js bounds itself at 150 s; this is the backstop.
	nctx, ncancel := context.WithTimeout(ctx, 200*time.Second)
	defer ncancel()
	cmd := exec.CommandContext(nctx, node, filepath.Join(nodeDir, "dashboard.js"),
		url, artifacts, strings.Join(ids, ","), "chat-server-2", "--",
		binPath("master"), "kill", "--env", cl.env(), "--config", cl.Config, "--id", "chat-server-2")
	cmd.Dir = nodeDir
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	nout, err := cmd.CombinedOutput()
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		t.Fatalf("node dashboard.js: %v (after %v)\n%s", err, took, nout)
	}
	t.Logf("node dashboard.js (%v):\n%s", took, nout)
	for _, s := range shots {
		fi, err := os.Stat(filepath.Join(artifacts, s))
		if err != nil {
			t.Errorf("screenshot missing: %v", err)
			continue
		}
		if fi.Size() <= 5<<10 {
			t.Errorf("screenshot %s is only %d bytes: the page did not render", s, fi.Size())
		}
	}
}
