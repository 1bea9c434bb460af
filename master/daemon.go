package master

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// StartDaemon starts exe with args detached from the terminal (a new
// session, stdin from /dev/null, stdout and stderr appended to logPath,
// extra as file descriptors 3, 4, ...) and returns the started command; the
// caller may Wait for it.
func StartDaemon(exe string, args []string, logPath string, extra ...*os.File) (*exec.Cmd, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start daemon: open log: %w", err)
	}
	defer f.Close()
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = f, f // stdin: nil is /dev/null
	cmd.ExtraFiles = extra
	cmd.SysProcAttr = daemonAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start daemon %s: %w", exe, err)
	}
	return cmd, nil
}

// Tail returns the last n lines of a file (for error messages), or a note
// saying why it could not be read.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)\n", path, err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n"))) + "\n"
}
