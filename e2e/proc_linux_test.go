package e2e

import "syscall"

// sysProcAttr makes the kernel kill a child if the test binary dies without
// stopping it (a panic, a timeout, SIGKILL), so no server outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
