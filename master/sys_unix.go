//go:build unix

package master

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// daemonAttr detaches a daemon master from the terminal's session.
func daemonAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

// signalPid sends sig to one process.
func signalPid(pid int, sig syscall.Signal) error {
	if pid <= 0 {
		return fmt.Errorf("signal pid %d: not a process", pid)
	}
	return syscall.Kill(pid, sig)
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
