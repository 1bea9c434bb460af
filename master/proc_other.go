//go:build !linux

package master

func alive(pid int) bool { return pidExists(pid) }
