package connector

import (
	"syscall"
	"unsafe"
)

// sockRead and sockWrite are read(2) and write(2) of a connected socket,
// made as recvfrom(2) and sendto(2) without an address. For a socket the
// kernel does the same work, minus the file layer that read and write pass
// through first (the VFS checks and the socket's read_iter/write_iter
// glue): a few percent of a connector's CPU, which spends most of its time
// in these two calls. A descriptor that is not a socket gets read and
// write.
func sockRead(fd int, p []byte) (int, error) {
	n, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(bufPtr(p)), uintptr(len(p)), 0, 0, 0)
	if e != 0 {
		if e == syscall.ENOTSOCK {
			return syscall.Read(fd, p)
		}
		return 0, e
	}
	return int(n), nil
}

// sockWrite: see sockRead. MSG_NOSIGNAL: a write to a connection the
// client closed fails with EPIPE and raises no SIGPIPE (which the Go
// runtime would only catch and ignore).
func sockWrite(fd int, p []byte) (int, error) {
	n, _, e := syscall.Syscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(bufPtr(p)), uintptr(len(p)), syscall.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		if e == syscall.ENOTSOCK {
			return syscall.Write(fd, p)
		}
		return 0, e
	}
	return int(n), nil
}

func bufPtr(p []byte) unsafe.Pointer {
	if len(p) == 0 {
		return nil
	}
	return unsafe.Pointer(&p[0])
}
