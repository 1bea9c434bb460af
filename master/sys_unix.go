//go:build unix

package master

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// serverAttr puts a server in its own process group, so a Ctrl-C at the
// master's terminal or the master's death does not reach it.
func serverAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// daemonAttr detaches a daemon master from the terminal's session.
func daemonAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

// signalPid sends sig to one process.
func signalPid(pid int, sig syscall.Signal) error {
	if pid <= 0 {
		return fmt.Errorf("signal pid %d: not a process", pid)
	}
	return syscall.Kill(pid, sig)
}

// errNotChild is reap's answer for a process this process did not start.
var errNotChild = errors.New("not a child of this process")

// reap collects a child without blocking: exited and its status once it has
// ended, errNotChild if pid is not a child of this process.
func reap(pid int) (exited bool, status string, err error) {
	var ws syscall.WaitStatus
	got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	switch {
	case errors.Is(err, syscall.EINTR):
		return false, "", nil
	case errors.Is(err, syscall.ECHILD):
		return false, "", errNotChild
	case err != nil:
		return false, "", err
	case got != pid:
		return false, "", nil
	}
	switch {
	case ws.Exited():
		return true, fmt.Sprintf("exit status %d", ws.ExitStatus()), nil
	case ws.Signaled():
		return true, "signal: " + ws.Signal().String(), nil
	}
	return true, "ended", nil
}

// pidExists reports whether a process with this pid exists (zombies
// included; see alive).
func pidExists(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// lockFile opens path, locks it exclusively without waiting and makes sure
// the locked file is still the one at path (a master that exits unlinks it).
// It returns errLocked when another process holds the lock.
func lockFile(path string) (*os.File, error) {
	for range 10 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, errLocked
			}
			return nil, err
		}
		held, err1 := f.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return f, nil
		}
		f.Close() // unlinked by its last owner meanwhile: try the new file
	}
	return nil, fmt.Errorf("lock %s: the file keeps changing", path)
}

// locked reports whether some process holds path's lock.
func locked(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false, nil
}
