package launch

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A process that is already gone when the watcher first looks at it, its
// exit status not yet logged by its wrapper (a watch set up while the
// process was being stopped), is not reported "?" at once: the watcher
// waits two more ticks for the status line, as it does for a process it
// saw running. Run with the local /bin/sh, the shell the hosts use.
func TestWatcherWaitsForStatusOfProcessGoneAtFirstLook(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "chat-1.log")
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A pid that does not run: a child that has exited and been reaped.
	c := exec.Command("/bin/true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	pid := c.Process.Pid
	const ticks = 4242

	cmd := exec.Command("/bin/sh", "-c", remoteWatch, "sh", "60")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	out := bufio.NewScanner(stdout)
	// tick sends "t" and returns what the watcher reported before ".".
	tick := func() []string {
		t.Helper()
		if _, err := io.WriteString(stdin, "t\n"); err != nil {
			t.Fatal(err)
		}
		var got []string
		for out.Scan() {
			if out.Text() == "." {
				return got
			}
			got = append(got, out.Text())
		}
		t.Fatalf("watcher ended: %v", out.Err())
		return nil
	}
	fmt.Fprintf(stdin, "w 1 %d %d -\n/opt/chat/chat\nchat-1\n%s\n", pid, ticks, logPath)
	for i := range 2 {
		if got := tick(); len(got) != 0 {
			t.Fatalf("tick %d: %q before the status was logged, want nothing yet", i+1, got)
		}
	}
	line := fmt.Sprintf("=== 2026-12-06T09:42:35Z chat-1 pid %d exited: status 7 (start ticks %d)\n", pid, ticks)
	if err := os.WriteFile(logPath, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := tick(); strings.Join(got, "|") != "gone 1 7" {
		t.Fatalf("after the status was logged: %q, want gone 1 7", got)
	}

	// Never logged: "?" after the two ticks of waiting.
	fmt.Fprintf(stdin, "w 2 %d %d -\n/opt/chat/chat\nchat-2\n%s\n", pid, ticks+1, logPath)
	var got []string
	for range 3 {
		got = append(got, tick()...)
	}
	if strings.Join(got, "|") != "gone 2 ?" {
		t.Fatalf("a status never logged: %q, want gone 2 ? on the third tick", got)
	}
}
