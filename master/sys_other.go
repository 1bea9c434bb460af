//go:build !unix

package master

import (
	"errors"
	"os"
	"syscall"
)

var errUnsupported = errors.New("the master supervises processes on Unix systems only")

func daemonAttr() *syscall.SysProcAttr { return nil }

func signalPid(pid int, sig syscall.Signal) error { return errUnsupported }

func pidExists(pid int) bool { return false }

func lockFile(path string) (*os.File, error) { return nil, errUnsupported }

func locked(path string) (bool, error) { return false, errUnsupported }
