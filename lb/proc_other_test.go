//go:build !linux

package lb

import "syscall"

func dieWithParent() *syscall.SysProcAttr { return nil }
