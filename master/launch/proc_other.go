//go:build !linux

package launch

import (
	"errors"
	"syscall"
)

var errNoProc = errors.New("process identity needs /proc (Linux)")

func identity(int) (string, uint64, error) { return "", 0, errNoProc }

func cmdline(int) ([]string, error) { return nil, errNoProc }

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// waitPidfd is Linux only; elsewhere Local polls.
func waitPidfd(int, <-chan struct{}) bool { return false }
