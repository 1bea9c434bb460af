package main

import (
	"syscall"
	"unsafe"
)

// waitReadable blocks until the socket has data, has been closed by the peer
// or has failed, without reading anything and without holding a buffer: the
// callback does a non-blocking recv(fd, 1 byte, MSG_PEEK|MSG_DONTWAIT) and
// returns false on EAGAIN, which makes the runtime park the goroutine in the
// netpoller until the fd becomes readable. Read deadlines apply as usual.
func waitReadable(rc syscall.RawConn) error {
	return rc.Read(peekReady)
}

// peekReady is a plain function (not a closure), so passing it to
// RawConn.Read does not allocate.
func peekReady(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd,
			uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default: // data, EOF (0 bytes) or a real error: let the reader see it
			return true
		}
	}
}
