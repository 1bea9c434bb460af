package master

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shaddock/shaddock/proto/masterpb"
	"github.com/shaddock/shaddock/tools/client"
)

// twoGroups: a connector and a chat server in each of groups a and b.
const twoGroups = `[test.rolling]
drainTimeout = "3s"
startTimeout = "10s"

[[test.connector]]
id = "connector-a"
host = "127.0.0.1"
port = %d
clientPort = %d
frontend = true
group = "a"

[[test.chat]]
id = "chat-a"
host = "127.0.0.1"
port = %d
group = "a"

[[test.connector]]
id = "connector-b"
host = "127.0.0.1"
port = %d
clientPort = %d
frontend = true
group = "b"

[[test.chat]]
id = "chat-b"
host = "127.0.0.1"
port = %d
group = "b"
`

// ownGame copies the test game for one cluster: the update replaces the
// binary a cluster runs, so each has its own.
func ownGame(t *testing.T, game string) string {
	t.Helper()
	own := filepath.Join(t.TempDir(), "game")
	if err := copyFileAtomic(game, own, 0o755); err != nil {
		t.Fatal(err)
	}
	return own
}

// variantBin builds the test game again as another build.
func variantBin(t *testing.T, v string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "testgame-"+v)
	cmd := exec.Command("go", "build", "-ldflags", "-X main.variant="+v, "-o", out, "./internal/testgame")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build variant %s: %v\n%s", v, err, b)
	}
	return out
}

// The rolling update moves group b, then group a, to the new build,
// keeping the previous binary; a client on group b's connector is kicked
// with the reason after drainTimeout; a broken build fails in group b,
// which goes back to the previous build, group a untouched.
func TestRollingUpdate(t *testing.T) {
	t.Parallel()
	game, cli := bins(t)
	own := ownGame(t, game)
	c := newCluster(t, own, twoGroups)
	runMaster(t, c)
	cl := dial(t, c)
	before := waitList(t, cl, 30*time.Second, "every server running", allRunning)
	oldSum, _ := fileSHA256(own)
	v2 := variantBin(t, "2")
	newSum, _ := fileSHA256(v2)
	flags := []string{"--env=test", "--config", c.path}

	// A player on group b's connector.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kicked := make(chan string, 1)
	cc, err := client.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", before["connector-b"].GetInfo().GetClientPort()),
		client.Options{OnKick: func(r string) { kicked <- r }})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var enter struct{ Code int }
	if err := cc.RequestJSON(ctx, "connector.entryHandler.enter", map[string]string{"uid": "ewa"}, &enter); err != nil || enter.Code != 200 {
		t.Fatalf("enter: %+v %v", enter, err)
	}
	waitList(t, cl, 5*time.Second, "connector-b counts its player", func(ss map[string]*masterpb.ServerStatus) bool {
		return ss["connector-b"].GetConnections() == 1
	})

	start := time.Now()
	out, err := runCLI(t, cli, append([]string{"update", "--binary", v2}, flags...)...)
	t.Logf("update took %s:\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	iB, iA := strings.Index(out, "group b runs build "+newSum[:12]), strings.Index(out, "group a runs build "+newSum[:12])
	if iB < 0 || iA < 0 || iB > iA || !strings.Contains(out, "done: every group runs build "+newSum[:12]) {
		t.Errorf("update output: want group b, then group a, then done")
	}
	select {
	case r := <-kicked:
		if r != "server updating: please reconnect" {
			t.Errorf("kicked with %q", r)
		}
	case <-time.After(5 * time.Second):
		t.Error("the player on group b was not kicked")
	}
	after := waitList(t, cl, 5*time.Second, "every server on the new build", func(ss map[string]*masterpb.ServerStatus) bool {
		for _, s := range ss {
			if s.GetState() != masterpb.ServerState_RUNNING || s.GetInfo().GetBuild() != newSum[:12] {
				return false
			}
		}
		return true
	})
	for id := range after {
		if after[id].GetInfo().GetPid() == before[id].GetInfo().GetPid() {
			t.Errorf("%s kept its process", id)
		}
	}
	if sum, _ := fileSHA256(own); sum != newSum {
		t.Error("the binary is not the new build")
	}
	if sum, _ := fileSHA256(own + ".prev"); sum != oldSum {
		t.Error("the previous build was not kept as .prev")
	}
	list, _ := runCLI(t, cli, append([]string{"list"}, flags...)...)
	if !strings.Contains(list, "update to build "+newSum[:12]) || !strings.Contains(list, "done") {
		t.Errorf("list does not tell the update:\n%s", list)
	}

	// A broken build: group b fails, goes back; group a is not touched.
	broken := filepath.Join(t.TempDir(), "broken")
	os.WriteFile(broken, []byte("#!/bin/sh\necho 'broken build: missing asset' >&2\nexit 3\n"), 0o755)
	mid := waitList(t, cl, time.Second, "running", allRunning)
	out, err = runCLI(t, cli, append([]string{"update", "--binary", broken}, flags...)...)
	t.Logf("broken update:\n%s", out)
	if err == nil || !strings.Contains(out, "group b") || !(strings.Contains(out, "connector-b") || strings.Contains(out, "chat-b")) ||
		!strings.Contains(out, "broken build: missing asset") || !strings.Contains(out, "back on build "+newSum[:12]) {
		t.Fatalf("broken update: %v", err)
	}
	final := waitList(t, cl, 10*time.Second, "every server back on the good build", func(ss map[string]*masterpb.ServerStatus) bool {
		for _, s := range ss {
			if s.GetState() != masterpb.ServerState_RUNNING || s.GetInfo().GetBuild() != newSum[:12] {
				return false
			}
		}
		return true
	})
	for _, id := range []string{"connector-a", "chat-a"} {
		if final[id].GetInfo().GetPid() != mid[id].GetInfo().GetPid() {
			t.Errorf("%s of group a was touched by group b's failed update", id)
		}
	}
	if sum, _ := fileSHA256(own); sum != newSum {
		t.Error("the binary was not put back after the failed update")
	}
}

// A master killed in the middle of an update: the next one finishes it.
func TestRollingUpdateResumesAfterMasterKill(t *testing.T) {
	t.Parallel()
	game, cli := bins(t)
	own := ownGame(t, game)
	c := newCluster(t, own, strings.Replace(twoGroups, `drainTimeout = "3s"`, `drainTimeout = "20s"`, 1))
	flags := []string{"--env=test", "--config", c.path}
	if out, err := runCLI(t, cli, append([]string{"start", "--daemon"}, flags...)...); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	cl := dial(t, c)
	before := waitList(t, cl, 30*time.Second, "every server running", allRunning)
	v3 := variantBin(t, "3")
	newSum, _ := fileSHA256(v3)

	// A player holds group b in its drain phase while the master dies.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cc, err := client.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", before["connector-b"].GetInfo().GetClientPort()), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var enter struct{ Code int }
	if err := cc.RequestJSON(ctx, "connector.entryHandler.enter", map[string]string{"uid": "fred"}, &enter); err != nil || enter.Code != 200 {
		t.Fatalf("enter: %+v %v", enter, err)
	}
	waitList(t, cl, 5*time.Second, "connector-b counts its player", func(ss map[string]*masterpb.ServerStatus) bool {
		return ss["connector-b"].GetConnections() == 1
	})
	done := make(chan string, 1)
	go func() {
		out, _ := runCLI(t, cli, append([]string{"update", "--binary", v3}, flags...)...)
		done <- out
	}()
	waitList(t, cl, 10*time.Second, "connector-b draining", func(ss map[string]*masterpb.ServerStatus) bool {
		return ss["connector-b"].GetState() == masterpb.ServerState_DRAINING
	})
	pid, err := c.paths.MasterPID("test")
	if err != nil || pid <= 0 {
		t.Fatal(err)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Logf("update, cut short by kill -9 of the master:\n%s", <-done)
	cl.Close()

	out, err := runCLI(t, cli, append([]string{"start", "--daemon"}, flags...)...)
	t.Logf("second start:\n%s", out)
	if err != nil {
		t.Fatalf("start again: %v", err)
	}
	cl = dial(t, c)
	waitList(t, cl, 60*time.Second, "the update finished: every server on the new build", func(ss map[string]*masterpb.ServerStatus) bool {
		for _, s := range ss {
			if s.GetState() != masterpb.ServerState_RUNNING || s.GetInfo().GetBuild() != newSum[:12] {
				return false
			}
		}
		return true
	})
	// The last group's servers run the new build a moment before the
	// update records its outcome (it first moves the build into place).
	var list string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		list, _ = runCLI(t, cli, append([]string{"list"}, flags...)...)
		if strings.Contains(list, "done: every group runs build "+newSum[:12]) {
			break
		}
		if time.Now().After(deadline) {
			t.Logf("list:\n%s", list)
			t.Errorf("list does not say the update is done")
			break
		}
	}
	if out, err := runCLI(t, cli, append([]string{"stop"}, flags...)...); err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
}

// While one group moves to the new build, a server of the other group that
// restarts keeps the build its group runs: the update puts the new build
// beside the binary and replaces it only once every group runs it.
func TestRollingUpdateOtherGroupKeepsItsBuild(t *testing.T) {
	t.Parallel()
	game, cli := bins(t)
	own := ownGame(t, game)
	topo := strings.Replace(twoGroups, `drainTimeout = "3s"`, `drainTimeout = "6s"`, 1)
	topo = strings.Replace(topo, "id = \"chat-a\"\n", "id = \"chat-a\"\nautoRestart = true\n", 1)
	c := newCluster(t, own, topo)
	runMaster(t, c)
	cl := dial(t, c)
	before := waitList(t, cl, 30*time.Second, "every server running", allRunning)
	oldSum, _ := fileSHA256(own)
	v4 := variantBin(t, "4")
	newSum, _ := fileSHA256(v4)
	flags := []string{"--env=test", "--config", c.path}

	// A player on group a's connector holds group a's drain for 6 s.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cc, err := client.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", before["connector-a"].GetInfo().GetClientPort()), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var enter struct{ Code int }
	if err := cc.RequestJSON(ctx, "connector.entryHandler.enter", map[string]string{"uid": "gil"}, &enter); err != nil || enter.Code != 200 {
		t.Fatalf("enter: %+v %v", enter, err)
	}
	done := make(chan string, 1)
	go func() {
		out, err := runCLI(t, cli, append([]string{"update", "--binary", v4}, flags...)...)
		done <- fmt.Sprintf("%v\n%s", err, out)
	}()
	waitList(t, cl, 30*time.Second, "group b on the new build", func(ss map[string]*masterpb.ServerStatus) bool {
		return ss["chat-b"].GetState() == masterpb.ServerState_RUNNING && ss["chat-b"].GetInfo().GetBuild() == newSum[:12]
	})
	// Group b runs the new build; group a is still on the old one. Its chat
	// server dies and is restarted (autoRestart) meanwhile.
	chatA := before["chat-a"].GetInfo().GetPid()
	if err := syscall.Kill(int(chatA), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	again := waitList(t, cl, 5*time.Second, "chat-a restarted", func(ss map[string]*masterpb.ServerStatus) bool {
		s := ss["chat-a"]
		return s.GetState() == masterpb.ServerState_RUNNING && s.GetInfo().GetPid() != chatA
	})
	if b := again["chat-a"].GetInfo().GetBuild(); b != oldSum[:12] {
		t.Errorf("chat-a restarted during group b's update on build %s, want its group's %s", b, oldSum[:12])
	}
	if args, _ := cmdline(int(again["chat-a"].GetInfo().GetPid())); len(args) == 0 || args[0] != own {
		t.Errorf("chat-a restarted from %q, want %s", args, own)
	}
	out := <-done
	t.Logf("update:\n%s", out)
	if !strings.HasPrefix(out, "<nil>") {
		t.Fatalf("update failed")
	}
	waitList(t, cl, 10*time.Second, "every server on the new build", func(ss map[string]*masterpb.ServerStatus) bool {
		for _, s := range ss {
			if s.GetState() != masterpb.ServerState_RUNNING || s.GetInfo().GetBuild() != newSum[:12] {
				return false
			}
		}
		return true
	})
	if sum, _ := fileSHA256(own); sum != newSum {
		t.Error("the binary is not the new build after the update")
	}
	if sum, _ := fileSHA256(own + ".prev"); sum != oldSum {
		t.Error("the previous build was not kept as .prev")
	}
}
