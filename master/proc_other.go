//go:build !linux

package master

import "errors"

// cmdline is only available on Linux (/proc); elsewhere the master cannot
// recognise its servers after a restart and starts them again.
func cmdline(pid int) ([]string, error) {
	return nil, errors.New("reading a process's command line needs /proc (Linux)")
}

func alive(pid int) bool { return pidExists(pid) }
