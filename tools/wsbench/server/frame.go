package main

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"

	"github.com/gobwas/ws"
)

var errFrameTooLarge = errors.New("frame too large")

// headerLen returns the full header length announced by the second byte of
// a WebSocket frame.
func headerLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// parseHeader decodes a complete header (len(b) == headerLen(b[1])).
// Unlike ws.ReadHeader it works on bytes already buffered and never
// allocates.
func parseHeader(b []byte) (h ws.Header) {
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] >> 4) & 0x7
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	n := 2
	switch l := b[1] & 0x7f; l {
	case 126:
		h.Length = int64(binary.BigEndian.Uint16(b[2:4]))
		n = 4
	case 127:
		h.Length = int64(binary.BigEndian.Uint64(b[2:10]) &^ (1 << 63))
		n = 10
	default:
		h.Length = int64(l)
	}
	if b[1]&0x80 != 0 {
		h.Masked = true
		copy(h.Mask[:], b[n:n+4])
	}
	return h
}

// putHeader encodes an unmasked server frame header into b (len(b) >=
// ws.MaxHeaderSize) and returns its length. Unlike ws.WriteHeader it does
// not allocate.
func putHeader(b []byte, fin bool, op ws.OpCode, length int) int {
	b[0] = byte(op)
	if fin {
		b[0] |= 0x80
	}
	switch {
	case length <= 125:
		b[1] = byte(length)
		return 2
	case length <= 0xffff:
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:4], uint16(length))
		return 4
	default:
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:10], uint64(length))
		return 10
	}
}

// copyMax is the largest payload writeFrame copies next to its header.
const copyMax = 1024

// outFrame is a pooled header buffer, copy buffer and writev vector.
type outFrame struct {
	hdr  [ws.MaxHeaderSize]byte
	buf  []byte
	vec  [2][]byte
	bufs net.Buffers
}

var outPool = sync.Pool{New: func() any { return &outFrame{buf: make([]byte, 0, 256)} }}

// writeFrame writes an unmasked frame (header + payload) with one system
// call: small payloads are copied behind the header in a pooled buffer and
// written with write(2); large ones (or all, with writev) go out with
// writev(2) without a copy. The plain write has a shallower call path: an
// idle goroutine that has only ever used it keeps a 2 KiB stack, whereas
// net.Buffers.WriteTo grows it to 4 KiB for good (see zbSession.run).
func writeFrame(c net.Conn, writev, fin bool, op ws.OpCode, payload []byte) error {
	f := outPool.Get().(*outFrame)
	n := putHeader(f.hdr[:], fin, op, len(payload))
	var err error
	if writev || len(payload) > copyMax {
		f.vec[0], f.vec[1] = f.hdr[:n], payload
		f.bufs = f.vec[:]
		_, err = f.bufs.WriteTo(c)
		f.vec[0], f.vec[1], f.bufs = nil, nil, nil
	} else {
		f.buf = append(append(f.buf[:0], f.hdr[:n]...), payload...)
		_, err = c.Write(f.buf)
	}
	outPool.Put(f)
	return err
}

// bigPool holds payload buffers for frames larger than the read buffer.
var bigPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}
