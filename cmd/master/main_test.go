package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shaddock/shaddock/config"
	"github.com/shaddock/shaddock/master"
)

func runCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelpListsEveryCommandAndFlag(t *testing.T) {
	code, out, _ := runCLI("help")
	if code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for _, c := range commands {
		if !strings.Contains(out, "master "+c.name) {
			t.Errorf("help does not mention %q:\n%s", c.name, out)
		}
		code, _, errOut := runCLI(c.name, "-h")
		if code != 0 {
			t.Errorf("%s -h: exit %d", c.name, code)
		}
		fs, _ := c.flagSet(&bytes.Buffer{})
		fs.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(errOut, "-"+f.Name) {
				t.Errorf("%s -h does not list --%s:\n%s", c.name, f.Name, errOut)
			}
		})
		// The usage line names the flags a user needs (not the tuning or
		// internal ones); one-letter flags are written -f, as tail does.
		fs.VisitAll(func(f *flag.Flag) {
			dash := "--"
			if len(f.Name) == 1 {
				dash = "-"
			}
			if f.Name != "timeout" && f.Name != "log-level" && f.Name != "notify-fd" && !strings.Contains(c.usage, dash+f.Name) {
				t.Errorf("usage line of %s does not name --%s: %q", c.name, f.Name, c.usage)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"bogus"}, {"list", "--bogus"}, {"stop", "extra"}} {
		if code, _, _ := runCLI(args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

// testConfig writes a config with no servers and the master on a free port.
func testConfig(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	path := filepath.Join(t.TempDir(), "servers.toml")
	text := fmt.Sprintf("[test]\nbinary = \"bin/game\"\n\n[test.master]\nid = \"master-server-1\"\nhost = \"127.0.0.1\"\nport = %d\n", port)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCommandsWithoutAMaster(t *testing.T) {
	path := testConfig(t)
	for _, args := range [][]string{{"list"}, {"stop"}, {"kill", "--id", "x"}, {"start", "--id", "x"}} {
		code, _, errOut := runCLI(append(args, "--env=test", "--config", path)...)
		if code != 1 || !strings.Contains(errOut, "master is not running for env test") {
			t.Errorf("%q without a master: exit %d, %q", args, code, errOut)
		}
	}
}

func TestListAndStopAgainstAMaster(t *testing.T) {
	path := testConfig(t)
	env, err := config.Load(path, "test")
	if err != nil {
		t.Fatal(err)
	}
	m, err := master.New(master.Config{Env: env, ConfigPath: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background()) }()
	flags := []string{"--env=test", "--config", path}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out, errOut := runCLI(append([]string{"list"}, flags...)...)
		if code == 0 {
			if !strings.HasPrefix(out, "ID  ") || !strings.Contains(out, "env test, master master-server-1 pid") {
				t.Errorf("list output:\n%s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("list: exit %d: %s", code, errOut)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A second start starts nothing, and says so.
	if code, out, errOut := runCLI(append([]string{"start"}, flags...)...); code != 0 || !strings.Contains(out, "env test is already running") ||
		!strings.Contains(out, "nothing started") {
		t.Errorf("a second start: exit %d, %q %q; want 0 and a note that nothing started", code, out, errOut)
	}
	code, out, errOut := runCLI(append([]string{"stop"}, flags...)...)
	if code != 0 || !strings.Contains(out, "every server and the master have exited") {
		t.Fatalf("stop: exit %d\n%s%s", code, out, errOut)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the master did not stop")
	}
}
