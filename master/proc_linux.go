package master

import (
	"bytes"
	"fmt"
	"os"
)

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
