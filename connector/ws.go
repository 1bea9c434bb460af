package connector

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/gobwas/ws"

	"github.com/shaddock/shaddock/protocol"
)

// WebSocket support: gobwas/ws does the HTTP upgrade and the unmasking;
// frames are parsed here, incrementally, from whatever each read brought:
// no buffered reader, no allocation, and a frame split anywhere (even inside
// its header) holds only the few bytes carried in wsFrame (docs/websocket.md).

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

	maxFrameHeader = 14 // 2 + 8 (length) + 4 (mask)
	maxControl     = 125
)

// wsFrame is the reader's position in the client's frame stream.
type wsFrame struct {
	remaining int64  // payload bytes of the current data frame still to come
	msgLen    int64  // payload bytes of the current (possibly fragmented) message so far
	ctrl      []byte // the control frame's payload so far (at most 125 bytes)
	maskOff   int    // offset into the mask for the next payload byte
	hdrLen    int
	ctrlNeed  int

	mask       [4]byte              // client frames are always masked
	ctrlMask   [4]byte              // the control frame's mask
	hdr        [maxFrameHeader]byte // a header split across reads
	fragmented bool                 // inside a message split over continuation frames
	ctrlOp     byte                 // control frame being collected (0: none)
}

// between reports whether the reader is between frames (always, on a raw
// TCP connection).
func (f *wsFrame) between() bool {
	return f.remaining == 0 && f.hdrLen == 0 && f.ctrlNeed == 0
}

// upgradeReaders buffer HTTP upgrades: a connection needs one only until
// its upgrade is answered.
var upgradeReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// prefixedReader reads first, then r: the sniffed bytes, then the rest of
// the request.
type prefixedReader struct {
	first []byte
	r     io.Reader
}

func (p *prefixedReader) Read(b []byte) (int, error) {
	if len(p.first) > 0 {
		n := copy(b, p.first)
		p.first = p.first[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// upgrade answers the HTTP upgrade that br reads (the sniffed bytes first),
// and returns the bytes the client sent after its request (a first frame
// pipelined without waiting for the 101), which the caller must feed
// before br is reused.
func (s *Session) upgrade(br *bufio.Reader) ([]byte, error) {
	rw := struct {
		io.Reader
		io.Writer
	}{&headerReader{br: br}, s.nc}
	u := ws.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 512}
	if _, err := u.Upgrade(rw); err != nil {
		return nil, fmt.Errorf("websocket upgrade: %w", err)
	}
	s.ws = true
	rest, _ := br.Peek(br.Buffered())
	return rest, nil
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

// feedWS consumes one read's bytes. Payloads are unmasked in place (p is the
// reader's own buffer) and streamed into the package decoder, so several
// packages per frame and a package split over frames both work.
func (s *Session) feedWS(p []byte) error {
	if len(p) > 0 {
		s.touch()
	}
	f := &s.frame
	for len(p) > 0 {
		switch {
		case f.ctrlNeed > 0:
			k := min(f.ctrlNeed, len(p))
			f.ctrl = append(f.ctrl, p[:k]...)
			f.ctrlNeed -= k
			p = p[k:]
			if f.ctrlNeed == 0 {
				if err := s.control(); err != nil {
					return err
				}
			}
		case f.remaining > 0:
			k := int(min(f.remaining, int64(len(p))))
			ws.Cipher(p[:k], f.mask, f.maskOff)
			f.maskOff = (f.maskOff + k) % 4
			f.remaining -= int64(k)
			if err := s.dec.Feed(p[:k], s.onPackage); err != nil {
				return err
			}
			p = p[k:]
		default:
			k, err := s.frameHeader(p)
			if err != nil {
				return err
			}
			p = p[k:]
		}
	}
	return nil
}

// frameHeader parses the header at the start of p (after any carried bytes)
// and returns how many bytes of p it used; a header cut short is carried.
func (s *Session) frameHeader(p []byte) (int, error) {
	f := &s.frame
	h := p
	if f.hdrLen > 0 { // continue a carried header
		k := min(maxFrameHeader-f.hdrLen, len(p))
		copy(f.hdr[f.hdrLen:], p[:k])
		h = f.hdr[:f.hdrLen+k]
	}
	if len(h) < 2 {
		return s.carryHeader(h, p)
	}
	size := 2 + 4 // every client frame is masked
	switch h[1] & 0x7f {
	case 126:
		size += 2
	case 127:
		size += 8
	}
	if len(h) < size {
		return s.carryHeader(h, p)
	}
	used := size - f.hdrLen // bytes of p the header took
	f.hdrLen = 0

	fin, rsv, op := h[0]&0x80 != 0, h[0]&0x70, h[0]&0x0f
	if h[1]&0x80 == 0 {
		return 0, fmt.Errorf("%w: unmasked client frame", errBadFrame)
	}
	if rsv != 0 {
		return 0, fmt.Errorf("%w: reserved bits 0x%x without an extension", errBadFrame, rsv)
	}
	length := int64(h[1] & 0x7f)
	switch length {
	case 126:
		length = int64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		u := binary.BigEndian.Uint64(h[2:10])
		if u > 1<<62 {
			return 0, fmt.Errorf("%w: frame length %d", errBadFrame, u)
		}
		length = int64(u)
	}
	var mask [4]byte
	copy(mask[:], h[size-4:size])

	switch op {
	case opBinary, opContinuation:
		if (op == opContinuation) != f.fragmented {
			return 0, fmt.Errorf("%w: opcode 0x%x out of sequence", errBadFrame, op)
		}
		// A message carries packages of at most MaxPackageSize bytes of
		// body each; refuse one claiming more now, from its header, rather
		// than read on until the heartbeat timeout (a 2^62-byte claim).
		if op == opBinary {
			f.msgLen = 0
		}
		f.msgLen += length
		if limit := s.maxWSMessage(); f.msgLen > limit {
			return 0, fmt.Errorf("%w: message of %d bytes, over the package limit (%d)", errBadFrame, f.msgLen, limit)
		}
		f.fragmented = !fin
		f.remaining, f.mask, f.maskOff = length, mask, 0
		return used, nil
	case opClose, opPing, opPong:
		if !fin || length > maxControl {
			return 0, fmt.Errorf("%w: control frame fragmented or longer than 125 bytes", errBadFrame)
		}
		f.ctrlOp, f.ctrlMask, f.ctrl = op, mask, f.ctrl[:0]
		f.ctrlNeed = int(length)
		if length == 0 {
			return used, s.control()
		}
		return used, nil
	case opText:
		return 0, fmt.Errorf("%w: text frame (Pomelo clients send binary)", errBadFrame)
	default:
		return 0, fmt.Errorf("%w: opcode 0x%x", errBadFrame, op)
	}
}

// maxWSMessage is the largest WebSocket message accepted: one package of the
// largest body allowed, with its header. Several small packages may share a
// message (DESIGN §4); together they stay under the same bound.
func (s *Session) maxWSMessage() int64 {
	return int64(s.srv.cfg.MaxPackageSize) + protocol.HeaderLen
}

// carryHeader keeps the bytes of an incomplete header for the next read.
func (s *Session) carryHeader(h, p []byte) (int, error) {
	f := &s.frame
	if f.hdrLen == 0 {
		copy(f.hdr[:], h)
	}
	f.hdrLen = len(h)
	return len(p), nil
}

// control acts on a complete control frame.
func (s *Session) control() error {
	f := &s.frame
	op, payload := f.ctrlOp, f.ctrl
	f.ctrlOp = 0
	ws.Cipher(payload, f.ctrlMask, 0)
	switch op {
	case opPing:
		s.enqueueWrite(outbound{b: wsControlFrame(opPong, payload), raw: true}, false)
	case opClose:
		code := []byte{0x03, 0xe8} // 1000 normal closure
		if len(payload) >= 2 {
			code = payload[:2]
		}
		// Echo the close and let the writer end the connection once it is
		// out (or the write deadline passes).
		s.enqueueWrite(outbound{b: wsControlFrame(opClose, code), raw: true}, true)
		return errClientClosedWS
	}
	if cap(f.ctrl) > maxControl {
		f.ctrl = nil
	}
	return nil
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
