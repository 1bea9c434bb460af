package master

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shaddock/shaddock/proto/masterpb"
	"github.com/shaddock/shaddock/tools/client"
)

// rewrite replaces the cluster's servers.toml servers with entries.
func (c *cluster) rewrite(t *testing.T, game string, rolling, entries string) {
	t.Helper()
	text := fmt.Sprintf("[test]\nbinary = %q\n%s\n[test.master]\nid = \"master-server-1\"\nhost = \"127.0.0.1\"\nport = %d\n\n%s",
		game, rolling, c.env.Master.Port, entries)
	if err := os.WriteFile(c.path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func entry(typ, id string, port, clientPort int, extra string) string {
	s := fmt.Sprintf("[[test.%s]]\nid = %q\nhost = \"127.0.0.1\"\nport = %d\n", typ, id, port)
	if clientPort > 0 {
		s += fmt.Sprintf("clientPort = %d\nfrontend = true\n", clientPort)
	}
	return s + extra + "\n"
}

func pids(ss map[string]*masterpb.ServerStatus) map[string]int32 {
	out := map[string]int32{}
	for id, s := range ss {
		out[id] = s.GetInfo().GetPid()
	}
	return out
}

// Reload applies an edited servers.toml: added servers start, a changed one
// restarts, removed ones are drained and stopped, the rest are untouched;
// a broken file changes nothing.
func TestReload(t *testing.T) {
	t.Parallel()
	game, cli := bins(t)
	conn, connC, chat1, chat2, chat3 := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	c := newCluster(t, game, entry("connector", "connector-server-1", conn, connC, "")+entry("chat", "chat-server-1", chat1, 0, "")+
		entry("chat", "chat-server-2", chat2, 0, ""))
	runMaster(t, c)
	cl := dial(t, c)
	before := pids(waitList(t, cl, 30*time.Second, "every server running", allRunning))
	flags := []string{"--env=test", "--config", c.path}

	// Add chat-server-3, change chat-server-2 (an argument), keep the rest.
	rolling := "\n[test.rolling]\ndrainTimeout = \"2s\"\n"
	c.rewrite(t, game, rolling, entry("connector", "connector-server-1", conn, connC, "")+entry("chat", "chat-server-1", chat1, 0, "")+
		entry("chat", "chat-server-2", chat2, 0, `args = ["--log-level=debug"]`)+entry("chat", "chat-server-3", chat3, 0, ""))
	out, err := runCLI(t, cli, append([]string{"reload"}, flags...)...)
	t.Logf("reload:\n%s", out)
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	for _, want := range []string{"1 added (chat-server-3), 0 removed (-), 1 changed (chat-server-2), 2 unchanged",
		"+ chat-server-3: chat on 127.0.0.1:", "chat-server-3 added: running on 127.0.0.1, pid",
		"~ chat-server-2: args [] → [--log-level=debug]; restarting it", "chat-server-2 restarted with its new entry: running on 127.0.0.1"} {
		if !strings.Contains(out, want) {
			t.Errorf("reload output lacks %q", want)
		}
	}
	after := waitList(t, cl, 5*time.Second, "every server running", allRunning)
	if len(after) != 4 || after["chat-server-2"].GetInfo().GetPid() == before["chat-server-2"] || after["chat-server-2"].GetInfo().GetEpoch() != 2 {
		t.Errorf("after reload: %v", pids(after))
	}
	for _, id := range []string{"connector-server-1", "chat-server-1"} {
		if after[id].GetInfo().GetPid() != before[id] {
			t.Errorf("%s touched by the reload", id)
		}
	}
	if args, _ := cmdline(int(after["chat-server-2"].GetInfo().GetPid())); !strings.Contains(strings.Join(args, " "), "--log-level=debug") {
		t.Errorf("chat-server-2 runs %q, without its new argument", args)
	}

	// A broken edit (a duplicate id) changes nothing and says where.
	good, _ := os.ReadFile(c.path)
	broken := string(good) + entry("chat", "chat-server-1", freePort(t), 0, "")
	os.WriteFile(c.path, []byte(broken), 0o600)
	out, err = runCLI(t, cli, append([]string{"reload"}, flags...)...)
	if err == nil || !strings.Contains(out, c.path+":") || !strings.Contains(out, "chat-server-1") || !strings.Contains(out, "nothing changed") {
		t.Errorf("broken reload: %v\n%s", err, out)
	}
	if now := pids(waitList(t, cl, time.Second, "every server running", allRunning)); fmt.Sprint(now) != fmt.Sprint(pids(after)) {
		t.Errorf("a broken reload changed the cluster: %v → %v", pids(after), now)
	}
	// The master checks the file again itself.
	var lines []string
	if err := cl.Reload(context.Background(), progressLog(&lines)); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "nothing changed") {
		t.Errorf("master reload of a broken file: %v", err)
	}
	// While the file is broken the cluster can still be seen and handled:
	// the CLI reaches the master with the config it applied, and a server
	// restarted meanwhile reads that config, not the half-made edit.
	out, err = runCLI(t, cli, append([]string{"list"}, flags...)...)
	if err != nil || !strings.Contains(out, "warning: "+c.path+":") || !strings.Contains(out, "test.applied.toml") || !strings.Contains(out, "chat-server-3") {
		t.Errorf("list with a broken servers.toml: %v\n%s", err, out)
	}
	out, err = runCLI(t, cli, append([]string{"restart", "--id", "chat-server-1"}, flags...)...)
	if err != nil {
		t.Errorf("restart with a broken servers.toml: %v\n%s", err, out)
	}
	restarted := waitList(t, cl, 10*time.Second, "every server running", allRunning)
	pid := int(restarted["chat-server-1"].GetInfo().GetPid())
	if pid == int(after["chat-server-1"].GetInfo().GetPid()) {
		t.Errorf("chat-server-1 not restarted: %s", out)
	}
	if args, _ := cmdline(pid); !strings.Contains(strings.Join(args, " "), "--config "+c.dir+"/run/test.applied.toml") {
		t.Errorf("chat-server-1 restarted with %q, want the master's applied config", args)
	}
	if applied, _ := os.ReadFile(c.dir + "/run/test.applied.toml"); string(applied) != string(good) {
		t.Errorf("the applied config is not the last file the master applied:\n%s", applied)
	}
	after = restarted

	// Take the connector out while a client is on it: drained (not offered),
	// the client kicked after drainTimeout, then gone.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var kicked atomic.Value
	cc, err := client.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", connC), client.Options{OnKick: func(r string) { kicked.Store(r) }})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var enter struct{ Code int }
	if err := cc.RequestJSON(ctx, "connector.entryHandler.enter", map[string]string{"uid": "dora"}, &enter); err != nil || enter.Code != 200 {
		t.Fatalf("enter: %+v %v", enter, err)
	}
	waitList(t, cl, 5*time.Second, "the connector counts its client", func(ss map[string]*masterpb.ServerStatus) bool {
		return ss["connector-server-1"].GetConnections() == 1
	})
	c.rewrite(t, game, rolling, entry("chat", "chat-server-1", chat1, 0, "")+
		entry("chat", "chat-server-2", chat2, 0, `args = ["--log-level=debug"]`))
	connPid := after["connector-server-1"].GetInfo().GetPid()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- cl.Reload(context.Background(), progressLog(&lines)) }()
	waitList(t, cl, 2*time.Second, "connector-server-1 draining", func(ss map[string]*masterpb.ServerStatus) bool {
		return ss["connector-server-1"].GetState() == masterpb.ServerState_DRAINING
	})
	if err := <-done; err != nil {
		t.Fatalf("reload: %v\n%s", err, strings.Join(lines, "\n"))
	}
	took := time.Since(start)
	t.Logf("reload taking out two servers, one with a client, took %s:\n%s", took.Round(time.Millisecond), strings.Join(lines, "\n"))
	if took < 2*time.Second {
		t.Errorf("the connector went after %s, before drainTimeout with a client on it", took)
	}
	if r, _ := kicked.Load().(string); r != "server removed from the cluster" {
		t.Errorf("client kicked with %q", r)
	}
	final := waitList(t, cl, 2*time.Second, "two servers left", func(ss map[string]*masterpb.ServerStatus) bool { return len(ss) == 2 })
	if alive(int(connPid)) || final["chat-server-1"].GetInfo().GetPid() != after["chat-server-1"].GetInfo().GetPid() {
		t.Errorf("after taking out the connector: %v (its pid %d alive: %v)", pids(final), connPid, alive(int(connPid)))
	}
}

// Add starts a server that is not in servers.toml, described on the command
// line; it survives a master restart; remove drains and stops it; a
// reload makes the cluster follow the file again.
func TestAddRemove(t *testing.T) {
	t.Parallel()
	game, cli := bins(t)
	c := newCluster(t, game, topology)
	_, stop, _, _ := runMaster(t, c)
	cl := dial(t, c)
	waitList(t, cl, 30*time.Second, "every server running", allRunning)
	flags := []string{"--env=test", "--config", c.path}
	port, clientPort := freePort(t), freePort(t)
	out, err := runCLI(t, cli, append(append([]string{"add"}, flags...), "id=connector-extra", "type=connector", "host=127.0.0.1",
		fmt.Sprintf("port=%d", port), fmt.Sprintf("clientPort=%d", clientPort), "frontend=true")...)
	t.Logf("add:\n%s", out)
	if err != nil || !strings.Contains(out, "connector-extra added: running on 127.0.0.1") {
		t.Fatalf("add: %v", err)
	}
	// A client through it reaches a chat server.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cc, err := client.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", clientPort), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var echo struct{ Msg string }
	if err := cc.RequestJSON(ctx, "chat.chatHandler.echo", map[string]string{"msg": "via extra"}, &echo); err != nil || echo.Msg != "via extra" {
		t.Fatalf("echo through the added connector: %+v %v", echo, err)
	}
	cc.Close()
	// Mistakes are refused with the field named.
	if out, err := runCLI(t, cli, append(append([]string{"add"}, flags...), "id=connector-extra", "type=connector", "host=127.0.0.1",
		fmt.Sprintf("port=%d", freePort(t)), fmt.Sprintf("clientPort=%d", freePort(t)), "frontend=true")...); err == nil || !strings.Contains(out, "already in the cluster") {
		t.Errorf("adding an id twice: %v\n%s", err, out)
	}
	if out, err := runCLI(t, cli, append(append([]string{"add"}, flags...), "id=x", "type=chat", "host=127.0.0.1", "port=nope")...); err == nil || !strings.Contains(out, `port "nope" is not a port`) {
		t.Errorf("a bad port: %v\n%s", err, out)
	}

	// A new master keeps it.
	pid := waitList(t, cl, time.Second, "running", allRunning)["connector-extra"].GetInfo().GetPid()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	runMaster(t, c)
	cl = dial(t, c)
	ss := waitList(t, cl, 15*time.Second, "every server running again", func(ss map[string]*masterpb.ServerStatus) bool { return len(ss) == 4 && allRunning(ss) })
	if ss["connector-extra"].GetInfo().GetPid() != pid {
		t.Errorf("connector-extra pid %d after the master restart, want %d (adopted)", ss["connector-extra"].GetInfo().GetPid(), pid)
	}

	// Remove: drained and stopped (no session: at once), and not started
	// again.
	out, err = runCLI(t, cli, append([]string{"remove", "--id", "connector-extra"}, flags...)...)
	t.Logf("remove:\n%s", out)
	if err != nil || !strings.Contains(out, "- connector-extra: draining") || !strings.Contains(out, "connector-extra removed: ") {
		t.Fatalf("remove: %v", err)
	}
	if _, listed := waitList(t, cl, 2*time.Second, "three servers", func(ss map[string]*masterpb.ServerStatus) bool { return len(ss) == 3 })["connector-extra"]; listed {
		t.Error("connector-extra still listed after remove")
	}
	if alive(int(pid)) {
		t.Errorf("connector-extra pid %d alive after remove", pid)
	}
	// Removing a server of servers.toml lasts until a reload.
	if out, err := runCLI(t, cli, append([]string{"remove", "--id", "chat-server-2"}, flags...)...); err != nil {
		t.Fatalf("remove chat-server-2: %v\n%s", err, out)
	}
	waitList(t, cl, 2*time.Second, "two servers", func(ss map[string]*masterpb.ServerStatus) bool { return len(ss) == 2 })
	out, err = runCLI(t, cli, append([]string{"reload"}, flags...)...)
	t.Logf("reload:\n%s", out)
	if err != nil || !strings.Contains(out, "1 added (chat-server-2)") {
		t.Fatalf("reload after remove: %v", err)
	}
	ss = waitList(t, cl, 10*time.Second, "the file's three servers", func(ss map[string]*masterpb.ServerStatus) bool { return len(ss) == 3 && allRunning(ss) })
	if e := ss["chat-server-2"].GetInfo().GetEpoch(); e != 2 {
		t.Errorf("chat-server-2 back with epoch %d, want 2", e)
	}
}
