//go:build unix

package launch

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// detachAttr starts a server in a session of its own.
func detachAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

var errNotChild = errors.New("not a child of this process")

// reap collects a child without blocking: ended and its exit once it has
// ended, errNotChild if pid is not a child of this process.
func reap(pid int) (ended bool, exit Exit, err error) {
	var ws syscall.WaitStatus
	got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	switch {
	case errors.Is(err, syscall.EINTR):
		return false, Exit{}, nil
	case errors.Is(err, syscall.ECHILD):
		return false, Exit{}, errNotChild
	case err != nil:
		return false, Exit{}, fmt.Errorf("wait4 %d: %w", pid, err)
	case got != pid:
		return false, Exit{}, nil
	}
	now := time.Now()
	switch {
	case ws.Exited():
		return true, Exit{Code: ws.ExitStatus(), Status: fmt.Sprintf("exit status %d", ws.ExitStatus()), At: now}, nil
	case ws.Signaled():
		return true, Exit{Code: -1, Status: "signal: " + ws.Signal().String(), At: now}, nil
	}
	return true, Exit{Code: -1, Status: "ended", At: now}, nil
}
