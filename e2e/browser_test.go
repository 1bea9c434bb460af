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

// chromiumPath is Debian's Chromium, the browser the page test drives
// (playwright-core cannot download its own here).
const chromiumPath = "/usr/bin/chromium"

// TestChatPageInChromium opens the chat demo's page in headless Chromium
// (e2e/node/browser.js, with playwright-core) against a whole cluster: three
// users in one room see each other arrive, chat to everyone and privately,
// see a closed page leave, and every page talks to the gate and then to one
// of the cluster's connectors. Screenshots of two pages are kept in
// e2e/artifacts/.
func TestChatPageInChromium(t *testing.T) {
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
	shots := []string{filepath.Join(artifacts, "chat-page-a.png"), filepath.Join(artifacts, "chat-page-b.png")}
	for _, s := range shots { // a stale file must not pass for this run's
		if err := os.Remove(s); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}

	c := StartChatCluster(t)

	// browser.js bounds itself at 60 s; this is the backstop.
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(nodeDir, "browser.js"),
		"http://"+c.WebAddr+"/", artifacts, strings.Join(c.Connectors, ","))
	cmd.Dir = nodeDir
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		t.Fatalf("node browser.js: %v (after %v)\n%s\ncluster logs:\n%s", err, took, out, c.Logs())
	}
	t.Logf("node browser.js (%v):\n%s", took, out)

	for _, s := range shots {
		fi, err := os.Stat(s)
		if err != nil {
			t.Errorf("screenshot missing: %v", err)
			continue
		}
		if fi.Size() <= 5<<10 {
			t.Errorf("screenshot %s is only %d bytes: the page did not render", s, fi.Size())
			continue
		}
		t.Logf("screenshot (artifact): %s (%d bytes)", s, fi.Size())
	}
}
