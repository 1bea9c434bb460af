//go:build unix

package lb

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// ownProcessGroup runs cmd in a process group of its own and makes
// cancellation kill that whole group: "sh -c 'lbctl drain ...'" forks, and
// killing sh alone would leave its children running (and holding the
// output pipes open). The group holds only processes the command started.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
}
