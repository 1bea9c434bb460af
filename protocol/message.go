package protocol

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// MessageType is the kind of message carried in a data package.
type MessageType byte

// Message types of the Pomelo protocol.
const (
	Request  MessageType = 0 // client → server, has id and route
	Notify   MessageType = 1 // client → server, route only, no answer
	Response MessageType = 2 // server → client, id only (the client remembers the route)
	Push     MessageType = 3 // server → client, route only
)

func (t MessageType) String() string {
	switch t {
	case Request:
		return "request"
	case Notify:
		return "notify"
	case Response:
		return "response"
	case Push:
		return "push"
	}
	return fmt.Sprintf("message-type(%d)", byte(t))
}

// HasID reports whether messages of type t carry an id.
func (t MessageType) HasID() bool { return t == Request || t == Response }

// HasRoute reports whether messages of type t carry a route.
func (t MessageType) HasRoute() bool { return t == Request || t == Notify || t == Push }

// Flag byte layout: bit 0 route compressed, bits 1-3 type, bit 4 gzip body.
// Bits 5-7 are unused by Pomelo; a message with them set is rejected rather
// than guessed at.
const (
	flagRouteCompressed = 0x01
	flagTypeShift       = 1
	flagTypeMask        = 0x07
	flagGzip            = 0x10
	flagReserved        = 0xe0

	maxIDBytes     = 10 // a uint64 in base-128
	maxRouteLen    = 255
	routeCodeBytes = 2
)

// Errors returned by the message codec, wrapped with details.
var (
	ErrMessageType  = errors.New("protocol: invalid message type")
	ErrMessageFlag  = errors.New("protocol: reserved message flag bits set")
	ErrTruncated    = errors.New("protocol: truncated message")
	ErrIDOverflow   = errors.New("protocol: message id overflows 64 bits")
	ErrRouteCode    = errors.New("protocol: unknown route code")
	ErrRouteTooLong = errors.New("protocol: route longer than 255 bytes")
	ErrBodyTooLarge = errors.New("protocol: body too large")
)

// Message is the content of a data package.
//
// On decode, Route is resolved through the dictionary when the route came
// compressed (RouteCode is then non-zero), and Body aliases the input. When
// Gzip is set the body is still compressed: call Gunzip with a size limit.
type Message struct {
	Type      MessageType
	ID        uint64
	Route     string
	RouteCode uint16 // dictionary code the route travelled as, 0 if it travelled as a string
	Gzip      bool   // the body is gzip-compressed (flag bit 4)
	Body      []byte
}

// DecodeMessage parses a data package body. dict may be nil when no
// dictionary is in use; a compressed route then fails with ErrRouteCode.
func DecodeMessage(b []byte, dict *Dictionary) (Message, error) {
	var m Message
	if len(b) < 1 {
		return m, fmt.Errorf("%w: empty message", ErrTruncated)
	}
	flag := b[0]
	if flag&flagReserved != 0 {
		return m, fmt.Errorf("%w: flag 0x%02x", ErrMessageFlag, flag)
	}
	m.Type = MessageType(flag >> flagTypeShift & flagTypeMask)
	if m.Type > Push {
		return m, fmt.Errorf("%w %d", ErrMessageType, m.Type)
	}
	m.Gzip = flag&flagGzip != 0
	compressed := flag&flagRouteCompressed != 0
	off := 1
	if m.Type.HasID() {
		var shift uint
		for i := 0; ; i++ {
			if off >= len(b) {
				return m, fmt.Errorf("%w: in message id", ErrTruncated)
			}
			c := b[off]
			off++
			if i == maxIDBytes-1 && c > 1 {
				return m, ErrIDOverflow
			}
			m.ID |= uint64(c&0x7f) << shift
			if c < 0x80 {
				break
			}
			shift += 7
		}
	}
	if m.Type.HasRoute() {
		if compressed {
			if off+routeCodeBytes > len(b) {
				return m, fmt.Errorf("%w: in route code", ErrTruncated)
			}
			m.RouteCode = uint16(b[off])<<8 | uint16(b[off+1])
			off += routeCodeBytes
			r, ok := dict.Route(m.RouteCode)
			if !ok {
				return m, fmt.Errorf("%w %d", ErrRouteCode, m.RouteCode)
			}
			m.Route = r
		} else {
			if off >= len(b) {
				return m, fmt.Errorf("%w: in route length", ErrTruncated)
			}
			n := int(b[off])
			off++
			if off+n > len(b) {
				return m, fmt.Errorf("%w: route of %d bytes", ErrTruncated, n)
			}
			m.Route = dict.intern(b[off : off+n])
			off += n
		}
	} else if compressed {
		// Pomelo never sets the bit on responses; a set bit means a confused peer.
		return m, fmt.Errorf("%w: route-compressed flag on a %s", ErrMessageFlag, m.Type)
	}
	m.Body = b[off:]
	return m, nil
}

// MessageLen is the encoded size of m with dict (nil for none).
func MessageLen(m *Message, dict *Dictionary) int {
	n := 1 + len(m.Body)
	if m.Type.HasID() {
		n += uvarintLen(m.ID)
	}
	if m.Type.HasRoute() {
		if _, ok := dict.Code(m.Route); ok {
			n += routeCodeBytes
		} else {
			n += 1 + len(m.Route)
		}
	}
	return n
}

// AppendMessage appends m, encoded as a data package body, to dst. The route
// travels as its dictionary code when dict has it, as a string otherwise; a
// non-zero RouteCode on m is ignored (the dictionary decides). m.Gzip only sets
// the flag: the body must already be compressed.
func AppendMessage(dst []byte, m *Message, dict *Dictionary) ([]byte, error) {
	if m.Type > Push {
		return dst, fmt.Errorf("%w %d", ErrMessageType, m.Type)
	}
	flag := byte(m.Type) << flagTypeShift
	if m.Gzip {
		flag |= flagGzip
	}
	var code uint16
	compressed := false
	if m.Type.HasRoute() {
		code, compressed = dict.Code(m.Route)
		if !compressed && len(m.Route) > maxRouteLen {
			return dst, fmt.Errorf("%w: %q", ErrRouteTooLong, m.Route)
		}
		if compressed {
			flag |= flagRouteCompressed
		}
	}
	dst = append(dst, flag)
	if m.Type.HasID() {
		dst = appendUvarint(dst, m.ID)
	}
	if m.Type.HasRoute() {
		if compressed {
			dst = append(dst, byte(code>>8), byte(code))
		} else {
			dst = append(dst, byte(len(m.Route)))
			dst = append(dst, m.Route...)
		}
	}
	return append(dst, m.Body...), nil
}

// AppendDataPackage appends a complete data package (header and message) to
// dst. The header is filled in after the message, so the route is looked up
// in the dictionary once.
func AppendDataPackage(dst []byte, m *Message, dict *Dictionary) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	out, err := AppendMessage(dst, m, dict)
	if err != nil {
		return dst[:start], err
	}
	n := len(out) - start - HeaderLen
	if n > MaxBodyLen {
		return out[:start], fmt.Errorf("%w: message of %d bytes", ErrBodyTooLarge, n)
	}
	PutHeader(out[start:], Data, n)
	return out, nil
}

// EncodeDataPackage returns a new, exactly sized buffer holding a data package.
func EncodeDataPackage(m *Message, dict *Dictionary) ([]byte, error) {
	return AppendDataPackage(make([]byte, 0, HeaderLen+MessageLen(m, dict)), m, dict)
}

// Gunzip inflates a gzip-flagged body, failing with ErrBodyTooLarge beyond
// max bytes so a small compressed package cannot expand without bound.
func Gunzip(body []byte, max int) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("protocol: gzip body: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("protocol: gzip body: %w", err)
	}
	if len(out) > max {
		return nil, fmt.Errorf("%w: gzip body inflates past %d bytes", ErrBodyTooLarge, max)
	}
	return out, nil
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// appendUvarint writes v low 7 bits first, high bit meaning "more", exactly as
// pomelo-protocol's encodeMsgId does.
func appendUvarint(dst []byte, v uint64) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}
