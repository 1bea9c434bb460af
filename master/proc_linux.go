package master

import (
	"bytes"
	"fmt"
	"os"
	"strings"
)

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
	if !pidExists(pid) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...; comm may contain spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return true
	}
	st := b[i+2]
	return st != 'Z' && st != 'X'
}
