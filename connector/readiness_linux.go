package connector

import (
	"syscall"
	"unsafe"
)

// waitReadable parks the reader until the socket has data (or EOF, or an
// error), without holding a buffer: the Go netpoller does the waiting and a
// zero-copy peek checks readiness. This is what keeps an idle connection at
// its goroutine stack and a few hundred bytes.
func (s *Session) waitReadable() error {
	if s.rc == nil {
		return nil
	}
	return s.rc.Read(peekReadable)
}

// peekReadable reports whether a read would not block. It is a static
// function (no closure) so the wait allocates nothing.
func peekReadable(fd uintptr) bool {
	var b [1]byte
	_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	// Data, EOF (0 bytes, no error) and real errors all mean "go read now";
	// only EAGAIN means "park until the netpoller says so".
	return errno != syscall.EAGAIN
}
