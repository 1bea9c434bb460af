package launch

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// identity returns this machine's boot id and pid's start time in clock
// ticks since boot: together they name one process for good, where a pid
// alone is reused.
func identity(pid int) (bootID string, ticks uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, err
	}
	_, ticks, err = parseStat(b)
	if err != nil {
		return "", 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	bootID, err = readBootID()
	return bootID, ticks, err
}

// cmdline returns a process's arguments.
func cmdline(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil, fmt.Errorf("pid %d has no command line (a zombie or a kernel thread)", pid)
	}
	return strings.Split(string(b), "\x00"), nil
}

// alive reports whether pid is a live process: it exists and is not a
// zombie waiting for its parent.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	st, _, err := parseStat(b)
	return err != nil || (st != 'Z' && st != 'X')
}

// waitPidfd blocks until pid ends (true), or until stop is closed or no
// pidfd can be had (false). The pidfd sits in the runtime's poller, so the
// wait costs no thread and no polling, and closing it ends the wait.
func waitPidfd(pid int, stop <-chan struct{}) bool {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.PidfdOpen(pid, 0) // kernels before 5.10
		if err == nil {
			err = unix.SetNonblock(fd, true)
		}
	}
	if errors.Is(err, unix.ESRCH) {
		return true // already gone
	}
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ended := make(chan bool, 1)
	go func() {
		err := rc.Read(func(fd uintptr) bool {
			// Readable means ended. Ask the fd itself: the poller's edge
			// may have fired before this read armed it.
			p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(p, 0)
			return err == nil && n > 0 && p[0].Revents&unix.POLLIN != 0
		})
		ended <- err == nil
	}()
	select {
	case ok := <-ended:
		return ok
	case <-stop:
		f.Close() // wakes the read with an error
		<-ended
		return false
	}
}
