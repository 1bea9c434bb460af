package lb

import "syscall"

// dieWithParent makes a child the test starts die with the test binary,
// even when it is killed by a timeout before its cleanups run.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
