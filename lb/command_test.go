package lb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shaddock/shaddock/config"
)

var groupB = []Gate{{ID: "gate-b1", Host: "10.0.0.12", Port: 3014}, {ID: "gate-b2", Host: "10.0.0.13", Port: 3014}}

// fakeCloud writes scripts that act as a cloud balancer's CLI: drain and
// enable record their environment in dir/calls and set each gate's state
// in dir/state; status prints the latest state of each gate.
func fakeCloud(t *testing.T) (dir string, cfg config.LB) {
	t.Helper()
	dir = t.TempDir()
	script := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte("#!/bin/sh\nset -e\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
		return "'" + path + "'"
	}
	record := `printf '%s|%s|%s|%s\n' "$SHADDOCK_LB_ACTION" "$SHADDOCK_GROUP" "$SHADDOCK_GATES" "$SHADDOCK_GATE_ADDRS" >> "` + dir + `/calls"` + "\n"
	set := func(state string) string {
		return record + `for g in $SHADDOCK_GATES; do echo "$g ` + state + `" >> "` + dir + `/state"; done` + "\n"
	}
	cfg = config.LB{
		Driver:        config.LBCommand,
		DrainCommand:  script("drain.sh", set("drain")),
		EnableCommand: script("enable.sh", set("ready")),
		StatusCommand: script("status.sh", record+
			`echo "# id state, as the cloud says it"`+"\n"+
			`[ -f "`+dir+`/state" ] || exit 0`+"\n"+
			`awk '{s[$1] = $2} END {for (g in s) print g, s[g], "(extra words are ignored)"}' "`+dir+`/state"`+"\n"),
	}
	return dir, cfg
}

func calls(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "calls"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// TestCommandDrainEnableStatus: the commands get the action, the group and
// its gates in their environment; Drain and Enable read the result back
// with statusCommand; Status parses its lines.
func TestCommandDrainEnableStatus(t *testing.T) {
	dir, cfg := fakeCloud(t)
	d, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := d.Status(ctxTimeout(t, 5*time.Second), "b", groupB)
	if err != nil {
		t.Fatal(err)
	}
	if st["gate-b1"] != Unknown || st["gate-b2"] != Unknown {
		t.Errorf("Status before anything = %v, want unknown (not listed)", st)
	}

	if err := d.Drain(ctxTimeout(t, 5*time.Second), "b", groupB); err != nil {
		t.Fatal(err)
	}
	const env = "b|gate-b1 gate-b2|10.0.0.12:3014 10.0.0.13:3014"
	got := calls(t, dir)
	if got[1] != "drain|"+env || got[2] != "status|"+env {
		t.Errorf("calls = %q, want drain then its read-back status, with %q", got, env)
	}
	st, err = d.Status(ctxTimeout(t, 5*time.Second), "b", groupB)
	if err != nil || st["gate-b1"] != Drain || st["gate-b2"] != Drain {
		t.Errorf("Status after Drain = %v %v", st, err)
	}

	if err := d.Enable(ctxTimeout(t, 5*time.Second), "b", groupB); err != nil {
		t.Fatal(err)
	}
	if got := calls(t, dir); got[4] != "enable|"+env {
		t.Errorf("calls = %q", got)
	}
	st, err = d.Status(ctxTimeout(t, 5*time.Second), "b", groupB)
	if err != nil || st["gate-b1"] != Ready || st["gate-b2"] != Ready {
		t.Errorf("Status after Enable = %v %v", st, err)
	}
}

// TestCommandWithoutStatus: no statusCommand means Status cannot tell, and
// Drain and Enable trust the exit status.
func TestCommandWithoutStatus(t *testing.T) {
	dir, cfg := fakeCloud(t)
	cfg.StatusCommand = ""
	d, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Drain(ctxTimeout(t, 5*time.Second), "b", groupB); err != nil {
		t.Fatal(err)
	}
	if got := calls(t, dir); len(got) != 1 {
		t.Errorf("calls = %q, want the drain alone", got)
	}
	st, err := d.Status(ctxTimeout(t, 5*time.Second), "b", groupB)
	if err != nil || len(st) != 2 || st["gate-b1"] != Unknown || st["gate-b2"] != Unknown {
		t.Errorf("Status = %v %v, want every gate unknown", st, err)
	}
}

// TestCommandErrors: a failing command's stderr is in the error; a status
// that never agrees ends with the context and says what it reported; bad
// status output names its line.
func TestCommandErrors(t *testing.T) {
	t.Run("failing command", func(t *testing.T) {
		d, err := New(config.LB{Driver: config.LBCommand,
			DrainCommand:  `echo "lbctl: target group tg-chat not found" >&2; exit 3`,
			EnableCommand: "true"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = d.Drain(ctxTimeout(t, 5*time.Second), "b", groupB)
		mustContain(t, err, "drain group b (gate-b1 gate-b2)", "drainCommand", "exit status 3", "stderr: lbctl: target group tg-chat not found")
	})
	t.Run("status disagrees", func(t *testing.T) {
		d, err := New(config.LB{Driver: config.LBCommand, DrainCommand: "true", EnableCommand: "true",
			StatusCommand: `echo "gate-b1 ready"; echo "gate-b2 drain"`}, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = d.Drain(ctxTimeout(t, 500*time.Millisecond), "b", groupB)
		mustContain(t, err, "drainCommand ran, but statusCommand still reports gate-b1 (ready)")
		if strings.Contains(err.Error(), "gate-b2 (") {
			t.Errorf("error names gate-b2, which is drained: %v", err)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%v is not DeadlineExceeded", err)
		}
	})
	t.Run("bad status output", func(t *testing.T) {
		d, err := New(config.LB{Driver: config.LBCommand, DrainCommand: "true", EnableCommand: "true",
			StatusCommand: `echo "gate-b1 ready"; echo "gate-b2 healthy"`}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.Status(ctxTimeout(t, 5*time.Second), "b", groupB)
		mustContain(t, err, "statusCommand", "line 2", "gate-b2", `"healthy"`)
	})
}

// TestCommandTimeoutKills: a command still running when the context ends
// is killed with everything it started, and the call returns at once.
func TestCommandTimeoutKills(t *testing.T) {
	dir := t.TempDir()
	childFile := filepath.Join(dir, "child")
	d, err := New(config.LB{Driver: config.LBCommand,
		DrainCommand:  `sleep 30 & echo $! > '` + childFile + `'; wait`,
		EnableCommand: "true"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = d.Drain(ctxTimeout(t, 300*time.Millisecond), "b", groupB)
	mustContain(t, err, "drainCommand", "did not finish in time and was killed")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v is not DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 900*time.Millisecond {
		t.Errorf("Drain returned %v after a 300ms deadline; the process group was not killed", el)
	}
	b, err := os.ReadFile(childFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "linux" {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the command's child %d (sleep 30) outlived it", pid)
		}
		time.Sleep(10 * time.Millisecond) // polling for the kill, with a deadline
	}
}

// alive reports whether pid runs (a zombie has ended).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestParseStatus(t *testing.T) {
	out := `
# gate state
gate-b1 READY
gate-b2   drain   deregistering since 12:00

gate-zz down    (not ours: ignored)
`
	st, err := parseStatus([]byte(out), append(groupB, Gate{ID: "gate-b3"}))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]State{"gate-b1": Ready, "gate-b2": Drain, "gate-b3": Unknown}
	if len(st) != len(want) {
		t.Errorf("got %v, want %v", st, want)
	}
	for id, s := range want {
		if st[id] != s {
			t.Errorf("%s = %s, want %s", id, st[id], s)
		}
	}
	for _, s := range []State{Ready, Drain, Maint, Down, Unknown} {
		if st, err := parseStatus([]byte("gate-b1 "+string(s)), groupB); err != nil || st["gate-b1"] != s {
			t.Errorf("state %s: %v %v", s, st, err)
		}
	}
	for _, bad := range []struct{ in, want string }{
		{"gate-b1", `line 1 "gate-b1": want "ID STATE"`},
		{"gate-b1 ready\ngate-b1 drain", "line 2: gate gate-b1 listed again (first on line 1)"},
		{"\ngate-b1 up", `line 2: gate gate-b1: state "up" is not ready, drain, maint, down or unknown`},
	} {
		_, err := parseStatus([]byte(bad.in), groupB)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("parseStatus(%q) = %v, want %q", bad.in, err, bad.want)
		}
	}
}
