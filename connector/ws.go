package connector

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/gobwas/ws"
)

// WebSocket support: gobwas/ws does the HTTP upgrade and the unmasking; the
// frame header is parsed here from peeked bytes so that reading allocates
// nothing and a partly received frame holds no buffer (docs/websocket.md).

var (
	errBadFrame       = errors.New("websocket: protocol error")
	errClientClosedWS = errors.New("websocket: client sent close")
)

const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// wsFrame is the reader's position inside the current frame.
type wsFrame struct {
	remaining  int64   // payload bytes still to read
	mask       [4]byte // client frames are always masked
	maskOff    int     // offset into the mask for the next payload byte
	fragmented bool    // inside a message split over continuation frames
}

// readerPool holds the buffered readers WebSocket connections borrow while
// bytes are available.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufSize) }}

// upgrade answers the HTTP upgrade whose first bytes the sniffer read. It
// returns the reader holding any bytes the client sent after its request
// (nil when there are none), which the caller must consume and release.
func (s *Session) upgrade(first []byte) (*bufio.Reader, error) {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(io.MultiReader(bytes.NewReader(first), s.nc))
	rw := struct {
		io.Reader
		io.Writer
	}{&headerReader{br: br}, s.nc}
	u := ws.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 512}
	if _, err := u.Upgrade(rw); err != nil {
		br.Reset(nil)
		readerPool.Put(br)
		return nil, fmt.Errorf("websocket upgrade: %w", err)
	}
	s.ws = true
	if br.Buffered() == 0 {
		br.Reset(nil)
		readerPool.Put(br)
		return nil, nil
	}
	return br, nil
}

// headerReader gives ws.Upgrader the HTTP request and nothing after it: the
// upgrader reads through a buffer of its own that it discards, so bytes past
// the blank line (a frame pipelined behind the request) would be lost.
// Stopping there leaves them in br.
type headerReader struct {
	br      *bufio.Reader
	matched int // bytes of "\r\n\r\n" seen so far
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
	h.br.Discard(n)
	return n, nil
}

func (s *Session) readWS() error {
	for {
		if err := s.waitReadable(); err != nil {
			return err
		}
		br := readerPool.Get().(*bufio.Reader)
		br.Reset(s.nc)
		err := s.readFrames(br)
		br.Reset(nil)
		readerPool.Put(br)
		if err != nil {
			return err
		}
	}
}

// readFrames consumes what one read brought in. It returns with the reader
// empty; a frame whose payload is still arriving continues at the next call.
// Only a split frame header or control frame makes it wait for more bytes
// (both are at most 14 and 125 bytes; the read deadline bounds the wait).
func (s *Session) readFrames(br *bufio.Reader) error {
	if _, err := br.Peek(1); err != nil {
		return err
	}
	s.touch()
	f := &s.frame
	for br.Buffered() > 0 {
		if f.remaining == 0 {
			if err := s.readFrameHeader(br); err != nil {
				return err
			}
			continue
		}
		n := int(min(f.remaining, int64(br.Buffered())))
		p, _ := br.Peek(n)
		ws.Cipher(p, f.mask, f.maskOff)
		f.maskOff = (f.maskOff + n) % 4
		f.remaining -= int64(n)
		err := s.dec.Feed(p, s.onPackage)
		br.Discard(n)
		if err != nil {
			return err
		}
	}
	return nil
}

// readFrameHeader parses one frame header (RFC 6455 §5.2) and handles
// control frames whole.
func (s *Session) readFrameHeader(br *bufio.Reader) error {
	h, err := br.Peek(2)
	if err != nil {
		return err
	}
	fin, rsv, op := h[0]&0x80 != 0, h[0]&0x70, h[0]&0x0f
	masked, length := h[1]&0x80 != 0, int64(h[1]&0x7f)
	size := 2
	switch length {
	case 126:
		size += 2
	case 127:
		size += 8
	}
	if !masked {
		return fmt.Errorf("%w: unmasked client frame", errBadFrame)
	}
	size += 4
	if rsv != 0 {
		return fmt.Errorf("%w: reserved bits 0x%x without an extension", errBadFrame, rsv)
	}
	if h, err = br.Peek(size); err != nil {
		return err
	}
	switch length {
	case 126:
		length = int64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		u := binary.BigEndian.Uint64(h[2:10])
		if u > 1<<62 {
			return fmt.Errorf("%w: frame length %d", errBadFrame, u)
		}
		length = int64(u)
	}
	var mask [4]byte
	copy(mask[:], h[size-4:size])
	br.Discard(size)

	f := &s.frame
	switch op {
	case opBinary, opContinuation:
		if (op == opContinuation) != f.fragmented {
			return fmt.Errorf("%w: opcode 0x%x out of sequence", errBadFrame, op)
		}
		f.fragmented = !fin
		f.remaining, f.mask, f.maskOff = length, mask, 0
		return nil
	case opClose, opPing, opPong:
		if !fin || length > 125 {
			return fmt.Errorf("%w: control frame fragmented or longer than 125 bytes", errBadFrame)
		}
		p, err := br.Peek(int(length))
		if err != nil {
			return err
		}
		ws.Cipher(p, mask, 0)
		switch op {
		case opPing:
			s.enqueueWrite(outbound{b: wsControlFrame(opPong, p), raw: true}, false)
		case opClose:
			code := []byte{0x03, 0xe8} // 1000 normal closure
			if len(p) >= 2 {
				code = p[:2]
			}
			// Echo the close and let the writer end the connection once it is
			// out (or the write deadline passes).
			s.enqueueWrite(outbound{b: wsControlFrame(opClose, code), raw: true}, true)
			br.Discard(int(length))
			return errClientClosedWS
		}
		br.Discard(int(length))
		return nil
	case opText:
		return fmt.Errorf("%w: text frame (Pomelo clients send binary)", errBadFrame)
	default:
		return fmt.Errorf("%w: opcode 0x%x", errBadFrame, op)
	}
}

// wsControlFrame builds an unmasked server control frame.
func wsControlFrame(op byte, payload []byte) []byte {
	return append([]byte{0x80 | op, byte(len(payload))}, payload...)
}

// appendWSHeader appends the header of an unmasked, final binary frame
// carrying n bytes.
func appendWSHeader(dst []byte, n int) []byte {
	switch {
	case n < 126:
		return append(dst, 0x80|opBinary, byte(n))
	case n <= 0xffff:
		return append(dst, 0x80|opBinary, 126, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, 0x80|opBinary, 127), uint64(n))
	}
}
