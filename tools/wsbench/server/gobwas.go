package main

import (
	"bufio"
	"io"
	"net"
	"time"

	"github.com/gobwas/ws"
)

// runGobwas serves the echo with gobwas/ws's low-level API: the upgrade runs
// on the sniffed connection, then an idle connection holds only its
// goroutine: no read buffer (see waitReadable) and no write buffer.
func runGobwas(ln net.Listener, cfg config) error {
	s := &sniffer{
		onWS:  func(c net.Conn, br *bufio.Reader) { serveGobwas(c, br, cfg) },
		onTCP: closeConn,
	}
	return s.serve(ln)
}

// upgradeRW lets ws.Upgrader read the request through the sniffing reader
// (which holds the peeked bytes) and write the response to the socket.
type upgradeRW struct {
	io.Reader
	io.Writer
}

// headerReader hands ws.Upgrader the handshake request and nothing after it.
// ws.Upgrader reads through its own pooled bufio.Reader and puts that back in
// the pool when it returns, so bytes it read past the request (a first frame
// pipelined behind the request by a client that did not wait for the 101)
// would be silently lost. Stopping at the blank line leaves them in br.
type headerReader struct {
	br      *bufio.Reader
	matched int // bytes of "\r\n\r\n" matched so far
}

func (h *headerReader) Read(p []byte) (int, error) {
	if h.matched == 4 {
		return 0, io.EOF
	}
	if h.br.Buffered() == 0 {
		if _, err := h.br.Peek(1); err != nil {
			return 0, err
		}
	}
	b, _ := h.br.Peek(min(h.br.Buffered(), len(p)))
	n := 0
	for n < len(b) && h.matched < 4 {
		switch {
		case b[n] == "\r\n\r\n"[h.matched]:
			h.matched++
		case b[n] == '\r':
			h.matched = 1
		default:
			h.matched = 0
		}
		n++
	}
	copy(p, b[:n])
	_, _ = h.br.Discard(n)
	return n, nil
}

var wsUpgrader = ws.Upgrader{}

func serveGobwas(c net.Conn, br *bufio.Reader, cfg config) {
	s, err := newZBSession(c, cfg, wsEchoFrame)
	if err == nil {
		_, err = wsUpgrader.Upgrade(upgradeRW{&headerReader{br: br}, c})
	}
	if err != nil {
		putReader(br)
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	sessions.Add(1)
	cfg.spawn(func() { s.run(br) })
}

// wsEchoFrame reads one client frame from br and echoes it. Payloads that fit
// in the reader are unmasked in place in its buffer (no copy, no allocation).
func wsEchoFrame(s *zbSession, br *bufio.Reader) error {
	p, err := br.Peek(2)
	if err != nil {
		return err
	}
	p, err = br.Peek(headerLen(p[1]))
	if err != nil {
		return err
	}
	h := parseHeader(p)
	_, _ = br.Discard(len(p))
	if !h.Masked || h.Rsv != 0 {
		return ws.ErrProtocolMaskRequired
	}
	if h.Length > s.maxPayload {
		return errFrameTooLarge
	}
	n := int(h.Length)
	var payload []byte
	var big *[]byte
	if n <= br.Size() {
		if payload, err = br.Peek(n); err != nil {
			return err
		}
		defer br.Discard(n)
	} else {
		big = bigPool.Get().(*[]byte)
		defer bigPool.Put(big)
		payload = (*big)[:n]
		if _, err := io.ReadFull(br, payload); err != nil {
			return err
		}
	}
	ws.Cipher(payload, h.Mask, 0)

	switch h.OpCode {
	case ws.OpClose:
		_ = writeFrame(s.c, s.writev, true, ws.OpClose, payload)
		return io.EOF
	case ws.OpPing:
		return writeFrame(s.c, s.writev, true, ws.OpPong, payload)
	case ws.OpPong:
		return nil
	default: // data and continuation frames are echoed as they came
		return writeFrame(s.c, s.writev, h.Fin, h.OpCode, payload)
	}
}
