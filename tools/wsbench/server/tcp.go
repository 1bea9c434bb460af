package main

import (
	"bufio"
	"net"
	"time"
)

// runTCP is the floor: a raw Pomelo-style package echo (1 type byte + 3-byte
// big-endian body length) with the same zero-buffer idle wait as gobwas.
func runTCP(ln net.Listener, cfg config) error {
	s := &sniffer{
		onWS:  closeConn,
		onTCP: func(c net.Conn, br *bufio.Reader) { serveTCP(c, br, cfg) },
	}
	return s.serve(ln)
}

const pkgHeadLen = 4

func serveTCP(c net.Conn, br *bufio.Reader, cfg config) {
	s, err := newZBSession(c, cfg, tcpEchoPackage)
	if err != nil {
		putReader(br)
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	sessions.Add(1)
	cfg.spawn(func() { s.run(br) })
}

func tcpEchoPackage(s *zbSession, br *bufio.Reader) error {
	h, err := br.Peek(pkgHeadLen)
	if err != nil {
		return err
	}
	n := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
	if int64(n) > s.maxPayload || n+pkgHeadLen > br.Size() {
		return errFrameTooLarge
	}
	pkg, err := br.Peek(pkgHeadLen + n)
	if err != nil {
		return err
	}
	_, err = s.c.Write(pkg) // the echo is the package itself
	_, _ = br.Discard(len(pkg))
	return err
}
