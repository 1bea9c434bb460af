//go:build !unix

package master

import (
	"errors"
	"os"
	"syscall"
)

var errUnsupported = errors.New("the master supervises processes on Unix systems only")

func serverAttr() *syscall.SysProcAttr { return nil }
func daemonAttr() *syscall.SysProcAttr { return nil }

func signalPid(pid int, sig syscall.Signal) error { return errUnsupported }

var errNotChild = errors.New("not a child of this process")

func reap(pid int) (bool, string, error) { return false, "", errUnsupported }

func pidExists(pid int) bool { return false }

func lockFile(path string) (*os.File, error) { return nil, errUnsupported }

func locked(path string) (bool, error) { return false, errUnsupported }
