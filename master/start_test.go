package master

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shaddock/shaddock/proto/masterpb"
)

// brokenTopology: chat-server-2 exits at once with its own error (an
// argument the game does not know).
const brokenTopology = `[[test.connector]]
id = "connector-server-1"
host = "127.0.0.1"
port = %d
clientPort = %d
frontend = true

[[test.chat]]
id = "chat-server-1"
host = "127.0.0.1"
port = %d
autoRestart = true

[[test.chat]]
id = "chat-server-2"
host = "127.0.0.1"
port = %d
autoRestart = true
args = ["--bogus-flag"]
`

// gameProcs returns the live processes running game for the cluster in
// dir (their command line names its config), by pid.
func gameProcs(game, dir string) map[int]string {
	out := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		args, err := cmdline(pid)
		line := strings.Join(args, " ")
		if err == nil && alive(pid) && strings.Contains(line, game) && strings.Contains(line, dir) {
			out[pid] = line
		}
	}
	return out
}

// killCluster ends, when the test ends, whatever still runs of the
// cluster in c.dir: its servers and its master (by pid, checked by
// command line).
func killCluster(t *testing.T, game string, c *cluster) {
	t.Cleanup(func() {
		if pid, err := c.paths.MasterPID("test"); err == nil && pid > 0 {
			signalPid(pid, syscall.SIGKILL)
		}
		for pid, line := range gameProcs(game, c.dir) {
			t.Logf("killing leftover pid %d: %s", pid, line)
			signalPid(pid, syscall.SIGKILL)
		}
	})
}

// A start where one server fails says which and why (the server's own
// last words), stops what it started, and exits non-zero with nothing left
// running.
func TestFailedStartStopsWhatItStarted(t *testing.T) {
	t.Parallel()
	game, cli := bins(t)
	c := newCluster(t, game, brokenTopology)
	flags := []string{"--env=test", "--config", c.path}

	start := time.Now()
	out, err := runCLI(t, cli, append([]string{"start", "--daemon", "--timeout=60s"}, flags...)...)
	took := time.Since(start)
	t.Logf("start --daemon took %s:\n%s", took, out)
	if err == nil {
		t.Fatal("master start --daemon succeeded with a broken server")
	}
	for _, want := range []string{
		"error: chat-server-2 failed on 127.0.0.1: exited 1 before registering: testgame: flag provided but not defined: -bogus-flag",
		"1 of 3 servers did not start: chat-server-2",
		"stopped the 2 servers this start started",
		"master start: 1 of 3 servers did not start: chat-server-2; stopped what it started",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if took > 15*time.Second {
		t.Errorf("the failed start took %s", took)
	}
	if left := gameProcs(game, c.dir); len(left) > 0 {
		t.Errorf("processes left after the failed start: %v", left)
	}
	if _, err := c.paths.MasterPID("test"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("the master still runs after a failed start: %v", err)
	}
	// Its log says the same, and `master logs` reads it without a master.
	logs, err := runCLI(t, cli, append([]string{"logs", "--id", "chat-server-2", "-n", "3"}, flags...)...)
	if err != nil || !strings.Contains(logs, "flag provided but not defined: -bogus-flag") || !strings.Contains(logs, "exited: exit status 1") {
		t.Errorf("master logs: %v\n%s", err, logs)
	}
}

// With --keep-going the master and the healthy servers stay; the broken
// one is listed as failed with its reason, and is not restarted in a loop.
func TestFailedStartKeepGoing(t *testing.T) {
	t.Parallel()
	game, cli := bins(t)
	c := newCluster(t, game, brokenTopology)
	flags := []string{"--env=test", "--config", c.path}

	out, err := runCLI(t, cli, append([]string{"start", "--daemon", "--keep-going", "--timeout=60s"}, flags...)...)
	t.Logf("start --daemon --keep-going:\n%s", out)
	if err == nil || !strings.Contains(out, "keeping the 2 that run (--keep-going)") ||
		!strings.Contains(out, "the master (pid") || !strings.Contains(out, "keep running") {
		t.Fatalf("start --keep-going: %v", err)
	}
	cl := dial(t, c)
	time.Sleep(2500 * time.Millisecond) // longer than two restart backoffs
	ss := waitList(t, cl, 5*time.Second, "two running, one failed", func(ss map[string]*masterpb.ServerStatus) bool {
		return ss["connector-server-1"].GetState() == masterpb.ServerState_RUNNING &&
			ss["chat-server-1"].GetState() == masterpb.ServerState_RUNNING &&
			ss["chat-server-2"].GetState() == masterpb.ServerState_FAILED
	})
	if s := ss["chat-server-2"]; s.GetRestarts() != 0 || !strings.Contains(s.GetReason(), "exited 1 before registering: testgame: flag provided but not defined") {
		t.Errorf("chat-server-2: %d restarts, reason %q", s.GetRestarts(), s.GetReason())
	}
	list, err := runCLI(t, cli, append([]string{"list"}, flags...)...)
	if err != nil || !strings.Contains(list, "failed") || !strings.Contains(list, "REASON") || !strings.Contains(list, "exited 1 before registering") {
		t.Errorf("list: %v\n%s", err, list)
	}
	// A second start starts nothing, and says what does not run.
	again, err := runCLI(t, cli, append([]string{"start"}, flags...)...)
	if err == nil || !strings.Contains(again, "nothing started") || !strings.Contains(again, "chat-server-2 (failed: exited 1") {
		t.Errorf("second start: %v\n%s", err, again)
	}
	// Starting the broken one through the master fails the same way, with
	// its log's last lines.
	var lines []string
	err = cl.Start(context.Background(), &masterpb.Selector{Ids: []string{"chat-server-2"}}, progressLog(&lines))
	if status.Code(err) != codes.Aborted || !strings.Contains(strings.Join(lines, "\n"), "| testgame: flag provided but not defined: -bogus-flag") {
		t.Errorf("start --id chat-server-2: %v\n%s", err, strings.Join(lines, "\n"))
	}
	out, err = runCLI(t, cli, append([]string{"stop"}, flags...)...)
	if err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	if left := gameProcs(game, c.dir); len(left) > 0 {
		t.Errorf("processes left after stop: %v", left)
	}
}

// Restart gives a server a new process (and epoch) on its host, after the
// new one registered; the others are untouched.
func TestRestartByID(t *testing.T) {
	t.Parallel()
	game, cli := bins(t)
	c := newCluster(t, game, topology)
	runMaster(t, c)
	cl := dial(t, c)
	before := waitList(t, cl, 30*time.Second, "every server running", allRunning)
	for id, s := range before {
		if s.GetInfo().GetEpoch() != 1 {
			t.Errorf("%s: epoch %d, want 1", id, s.GetInfo().GetEpoch())
		}
	}
	flags := []string{"--env=test", "--config", c.path}
	out, err := runCLI(t, cli, append([]string{"restart", "--id", "chat-server-2"}, flags...)...)
	t.Logf("restart:\n%s", out)
	oldPid := before["chat-server-2"].GetInfo().GetPid()
	if err != nil || !strings.Contains(out, fmt.Sprintf("chat-server-2 restarted: pid %d → running on 127.0.0.1, pid", oldPid)) {
		t.Fatalf("restart: %v", err)
	}
	after := waitList(t, cl, 5*time.Second, "every server running", allRunning)
	for id, s := range after {
		b := before[id]
		switch id {
		case "chat-server-2":
			if s.GetInfo().GetPid() == b.GetInfo().GetPid() || s.GetInfo().GetEpoch() != 2 || alive(int(b.GetInfo().GetPid())) {
				t.Errorf("%s: pid %d epoch %d after restart (was %d): want a new pid, epoch 2, the old one gone",
					id, s.GetInfo().GetPid(), s.GetInfo().GetEpoch(), b.GetInfo().GetPid())
			}
		default:
			if s.GetInfo().GetPid() != b.GetInfo().GetPid() || s.GetInfo().GetEpoch() != 1 {
				t.Errorf("%s was touched by another server's restart", id)
			}
		}
	}
	if s := after["chat-server-2"]; s.GetRestarts() != 0 {
		t.Errorf("an asked restart counted as an automatic one: %d", s.GetRestarts())
	}
	// Restart needs a selector.
	if out, err := runCLI(t, cli, append([]string{"restart"}, flags...)...); err == nil || !strings.Contains(out, "say which servers") {
		t.Errorf("restart without a selector: %v %s", err, out)
	}
}

// A process of an older epoch that registers (a predecessor that was
// thought gone) is refused and told to stop.
func TestSupersededInstanceIsTurnedAway(t *testing.T) {
	t.Parallel()
	game, _ := bins(t)
	c := newCluster(t, game, topology)
	runMaster(t, c)
	cl := dial(t, c)
	ss := waitList(t, cl, 30*time.Second, "every server running", allRunning)
	// Make chat-server-1's current instance epoch 2.
	if err := cl.Restart(context.Background(), &masterpb.Selector{Ids: []string{"chat-server-1"}}, "", nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st := rawHello(t, c, ctx, &masterpb.ServerInfo{Id: "chat-server-1", Type: "chat", Host: "127.0.0.1",
		Port: int32(c.env.Servers[1].Port), Pid: ss["chat-server-1"].GetInfo().GetPid(), Epoch: 1})
	msg, err := st.Recv()
	if err != nil || msg.GetCommand().GetStop() == nil || !strings.Contains(msg.GetCommand().GetStop().GetReason(), "superseded") {
		t.Fatalf("first message to a superseded instance: %v, %v; want a stop command", msg, err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "epoch 1 is superseded by epoch 2") {
		t.Fatalf("then: %v, want FailedPrecondition", err)
	}
	// The real instance is unaffected.
	after := waitList(t, cl, 2*time.Second, "every server running", allRunning)
	if after["chat-server-1"].GetInfo().GetEpoch() != 2 {
		t.Errorf("chat-server-1 epoch %d, want 2", after["chat-server-1"].GetInfo().GetEpoch())
	}
}

// The state file keeps each instance's launcher handle and every epoch.
func TestStateFileHoldsHandlesAndEpochs(t *testing.T) {
	t.Parallel()
	game, _ := bins(t)
	c := newCluster(t, game, topology)
	_, stop, _, _ := runMaster(t, c)
	cl := dial(t, c)
	ss := waitList(t, cl, 30*time.Second, "every server running", allRunning)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	st, err := readState(filepath.Join(c.dir, "run", "test.state.json"))
	if err != nil {
		t.Fatal(err)
	}
	for id, s := range ss {
		e, ok := st.Servers[id]
		h := e.Handle
		if !ok || h.Driver != "local" || h.PID != int(s.GetInfo().GetPid()) || h.StartTicks == 0 || h.BootID == "" || e.Epoch != 1 || st.Epochs[id] != 1 {
			t.Errorf("%s: state %+v (epochs %v)", id, e, st.Epochs)
		}
	}
}
