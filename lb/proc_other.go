//go:build !unix

package lb

import "os/exec"

// ownProcessGroup leaves cancellation to exec's default (kill the shell);
// WaitDelay then closes the pipes a surviving child may hold.
func ownProcessGroup(cmd *exec.Cmd) {}
