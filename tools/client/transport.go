package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"

	"github.com/gobwas/ws"
)

// Transport names accepted by Options.Transport and DialRaw.
const (
	TransportTCP = "tcp"
	TransportWS  = "ws"
)

// readBufferSize is the per-connection read buffer. Responses and pushes are
// small, so 4 KiB holds dozens of them per read while keeping thousands of
// idle robot clients cheap; larger packages are assembled by the decoder.
const readBufferSize = 4 << 10

// errTextFrame ends a WebSocket connection whose server sends text frames:
// Pomelo packages are binary, so a text frame means a confused peer.
var errTextFrame = errors.New("client: websocket text frame (Pomelo packages travel in binary frames)")

// dialTransport connects to addr and returns the connection and a reader of
// the Pomelo byte stream (the connection itself on TCP, the concatenated
// binary-frame payloads on WebSocket). A "ws://" or "wss://" addr selects
// WebSocket whatever transport says.
//
// With tlsCfg the connection is TLS: raw TCP over TLS, or wss:// (a ws://
// address is upgraded to wss://).
func dialTransport(ctx context.Context, addr, transport string, tlsCfg *tls.Config) (net.Conn, *bufio.Reader, bool, error) {
	isWS := strings.HasPrefix(addr, "ws://") || strings.HasPrefix(addr, "wss://")
	switch transport {
	case "", TransportTCP:
		if isWS && transport == TransportTCP {
			return nil, nil, false, fmt.Errorf("transport %q with the websocket address %q", transport, addr)
		}
	case TransportWS:
		if !isWS {
			addr = "ws://" + addr + "/"
			isWS = true
		}
	default:
		return nil, nil, false, fmt.Errorf("unknown transport %q (want %q or %q)", transport, TransportTCP, TransportWS)
	}
	if !isWS {
		if tlsCfg != nil {
			d := tls.Dialer{Config: tlsCfg}
			conn, err := d.DialContext(ctx, "tcp", addr)
			return conn, nil, false, err
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		return conn, nil, false, err
	}
	wd := ws.Dialer{TLSConfig: tlsCfg}
	if tlsCfg != nil {
		addr = strings.Replace(addr, "ws://", "wss://", 1)
	}
	conn, br, _, err := wd.Dial(ctx, addr)
	if err != nil {
		return nil, nil, false, err
	}
	if br == nil {
		br = bufio.NewReaderSize(conn, readBufferSize)
	}
	return conn, br, true, nil
}

// newMask returns a frame mask. RFC 6455 wants masks an intermediary cannot
// predict; math/rand/v2's generator is randomly seeded and costs no lock.
func newMask() [4]byte {
	var m [4]byte
	binary.LittleEndian.PutUint32(m[:], rand.Uint32())
	return m
}

// appendFrameHeader appends the header of a final, masked client frame
// carrying n payload bytes.
func appendFrameHeader(dst []byte, op ws.OpCode, n int, mask [4]byte) []byte {
	dst = append(dst, 0x80|byte(op)) // FIN, no RSV bits
	switch {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, mask[:]...)
}

// appendFrame appends a complete masked client frame carrying payload.
func appendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	mask := newMask()
	dst = appendFrameHeader(dst, op, len(payload), mask)
	start := len(dst)
	dst = append(dst, payload...)
	ws.Cipher(dst[start:], mask, 0)
	return dst
}

// wsReader turns a stream of WebSocket frames into the stream of their binary
// payloads, so one protocol.Decoder sees the same bytes on both transports:
// several packages in one frame and a package split over fragments or frames
// both decode naturally. Control frames are handled on the way: control is
// called for pings (answer with a pong) and close frames.
//
// It parses frame headers itself from the bufio.Reader's buffer because
// ws.ReadHeader allocates on every frame.
type wsReader struct {
	br      *bufio.Reader
	control func(op ws.OpCode, payload []byte) error

	left   int64 // payload bytes left in the current data frame
	masked bool
	mask   [4]byte
	off    int // bytes of the current frame already unmasked
}

// Read returns payload bytes of binary (and continuation) frames.
func (r *wsReader) Read(p []byte) (int, error) {
	for r.left == 0 {
		h, hn, err := r.header()
		if err != nil {
			return 0, err
		}
		if h.OpCode.IsControl() {
			if h.Length > ws.MaxControlFramePayloadSize || !h.Fin {
				return 0, fmt.Errorf("client: invalid websocket %s control frame", opName(h.OpCode))
			}
			// Header and payload (at most 139 bytes) fit the buffer; nothing is
			// consumed until both are there, so a read deadline in between
			// leaves the stream intact.
			b, err := r.br.Peek(hn + int(h.Length))
			if err != nil {
				return 0, noEOF(err)
			}
			pl := b[hn:]
			if h.Masked {
				ws.Cipher(pl, h.Mask, 0)
			}
			err = r.control(h.OpCode, pl)
			_, _ = r.br.Discard(len(b))
			if err != nil {
				return 0, err
			}
			continue
		}
		_, _ = r.br.Discard(hn)
		switch h.OpCode {
		case ws.OpBinary, ws.OpContinuation:
		case ws.OpText:
			return 0, errTextFrame
		default:
			return 0, fmt.Errorf("client: websocket frame with reserved opcode %d", h.OpCode)
		}
		r.left, r.masked, r.mask, r.off = h.Length, h.Masked, h.Mask, 0
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.br.Read(p)
	if r.masked {
		ws.Cipher(p[:n], r.mask, r.off)
	}
	r.off += n
	r.left -= int64(n)
	if err == io.EOF && r.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// header parses the next frame header and returns it with its size, without
// consuming it.
func (r *wsReader) header() (ws.Header, int, error) {
	var h ws.Header
	b, err := r.br.Peek(2)
	if err != nil {
		if len(b) > 0 {
			err = noEOF(err)
		}
		return h, 0, err
	}
	if b[0]&0x70 != 0 {
		return h, 0, fmt.Errorf("client: websocket frame with RSV bits 0x%02x (no extension was negotiated)", b[0]&0x70)
	}
	h.Fin = b[0]&0x80 != 0
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	n := 2
	switch b[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if h.Masked {
		n += 4
	}
	if b, err = r.br.Peek(n); err != nil {
		return h, 0, noEOF(err)
	}
	switch l := b[1] & 0x7f; l {
	case 126:
		h.Length = int64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		v := binary.BigEndian.Uint64(b[2:])
		if v > 1<<62 {
			return h, 0, fmt.Errorf("client: websocket frame length %d", v)
		}
		h.Length = int64(v)
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		copy(h.Mask[:], b[n-4:n])
	}
	return h, n, nil
}

// noEOF turns an EOF in the middle of a frame into io.ErrUnexpectedEOF: only
// an EOF between frames is a clean end.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func opName(op ws.OpCode) string {
	switch op {
	case ws.OpPing:
		return "ping"
	case ws.OpPong:
		return "pong"
	case ws.OpClose:
		return "close"
	}
	return fmt.Sprintf("opcode-%d", op)
}

// closeError describes a close frame from the server. It wraps io.EOF: the
// server ended the connection in an orderly way.
func closeError(payload []byte) error {
	code, reason := ws.ParseCloseFrameData(payload)
	if code.Empty() {
		return fmt.Errorf("client: server closed the websocket: %w", io.EOF)
	}
	return fmt.Errorf("client: server closed the websocket (status %d %q): %w", code, reason, io.EOF)
}
