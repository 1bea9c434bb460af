package protocol

import (
	"errors"
	"fmt"
)

// PackageType is the first byte of every package.
type PackageType byte

// Package types of the Pomelo protocol.
const (
	Handshake    PackageType = 1 // client hello (JSON) and the server's answer (JSON)
	HandshakeAck PackageType = 2 // client confirms the handshake; data may flow after it
	Heartbeat    PackageType = 3 // empty body, both directions
	Data         PackageType = 4 // body is a Message
	Kick         PackageType = 5 // server closes the session; body is {"reason": "..."}
)

func (t PackageType) String() string {
	switch t {
	case Handshake:
		return "handshake"
	case HandshakeAck:
		return "handshake-ack"
	case Heartbeat:
		return "heartbeat"
	case Data:
		return "data"
	case Kick:
		return "kick"
	}
	return fmt.Sprintf("package-type(%d)", byte(t))
}

const (
	// HeaderLen is the size of a package header: type + 3-byte length.
	HeaderLen = 4
	// MaxBodyLen is the largest body the 3-byte length field can express.
	MaxBodyLen = 1<<24 - 1
	// DefaultMaxBodyLen is the default limit a Decoder enforces (64 KiB).
	DefaultMaxBodyLen = 64 << 10

	// partialStart is the first allocation for a package split over reads.
	partialStart = 1 << 10
)

// Errors returned by the package decoder. They are wrapped with details;
// test with errors.Is.
var (
	ErrPackageType     = errors.New("protocol: unknown package type")
	ErrPackageTooLarge = errors.New("protocol: package too large")
)

// Package is one decoded package. Body aliases the decoder's input and is
// only valid until the callback it was passed to returns.
type Package struct {
	Type PackageType
	Body []byte
}

// AppendPackage appends a package of type t carrying body to dst.
func AppendPackage(dst []byte, t PackageType, body []byte) ([]byte, error) {
	if len(body) > MaxBodyLen {
		return dst, fmt.Errorf("%w: body of %d bytes exceeds %d", ErrPackageTooLarge, len(body), MaxBodyLen)
	}
	dst = appendHeader(dst, t, len(body))
	return append(dst, body...), nil
}

// EncodePackage returns a new buffer holding a package of type t carrying body.
func EncodePackage(t PackageType, body []byte) ([]byte, error) {
	return AppendPackage(make([]byte, 0, HeaderLen+len(body)), t, body)
}

func appendHeader(dst []byte, t PackageType, n int) []byte {
	return append(dst, byte(t), byte(n>>16), byte(n>>8), byte(n))
}

// PutHeader writes a package header for a body of n bytes into b[:HeaderLen].
// n must not exceed MaxBodyLen.
func PutHeader(b []byte, t PackageType, n int) {
	_ = b[3]
	b[0], b[1], b[2], b[3] = byte(t), byte(n>>16), byte(n>>8), byte(n)
}

// ParseHeader reads a package header. It checks the type but not the length
// against any limit.
func ParseHeader(b []byte) (PackageType, int, error) {
	if len(b) < HeaderLen {
		return 0, 0, fmt.Errorf("protocol: short header (%d bytes)", len(b))
	}
	t := PackageType(b[0])
	if t < Handshake || t > Kick {
		return 0, 0, fmt.Errorf("%w %d", ErrPackageType, b[0])
	}
	return t, int(b[1])<<16 | int(b[2])<<8 | int(b[3]), nil
}

// Decoder splits a byte stream into packages. It handles several packages in
// one input and one package split over many inputs. The zero value is ready
// to use and enforces DefaultMaxBodyLen.
//
// A Decoder holds memory only while a package is incomplete, so an idle
// connection's decoder costs nothing beyond its own few words.
type Decoder struct {
	// MaxBody is the largest body accepted; 0 means DefaultMaxBodyLen.
	// A larger length is rejected as soon as its header arrives.
	MaxBody int

	partial []byte // carried bytes of an incomplete package (header included)
	need    int    // total size of the incomplete package once its header is known, else 0
}

// Buffered reports how many bytes of an incomplete package the decoder holds.
func (d *Decoder) Buffered() int { return len(d.partial) }

// Reset discards any incomplete package.
func (d *Decoder) Reset() { d.partial, d.need = nil, 0 }

func (d *Decoder) max() int {
	if d.MaxBody > 0 {
		return d.MaxBody
	}
	return DefaultMaxBodyLen
}

// header validates a complete header and returns the package's total size.
func (d *Decoder) header(h []byte) (PackageType, int, error) {
	t, n, err := ParseHeader(h)
	if err != nil {
		return 0, 0, err
	}
	if n > d.max() {
		return 0, 0, fmt.Errorf("%w: %s body of %d bytes exceeds limit %d", ErrPackageTooLarge, t, n, d.max())
	}
	return t, HeaderLen + n, nil
}

// Feed decodes every package completed by p and calls fn for each, in order.
// Bodies passed to fn alias p or the decoder's own buffer and are valid only
// during the call. Feed stops at the first error, from decoding or from fn;
// after a decoding error the stream is unusable and the connection should be
// closed.
func (d *Decoder) Feed(p []byte, fn func(Package) error) error {
	if len(d.partial) > 0 {
		n, err := d.fill(p)
		if err != nil {
			return err
		}
		p = p[n:]
		if d.need == 0 || len(d.partial) < d.need {
			return nil // still incomplete; all of p was consumed
		}
		pkg := Package{Type: PackageType(d.partial[0]), Body: d.partial[HeaderLen:d.need]}
		err = fn(pkg)
		d.partial, d.need = nil, 0 // release: idle connections keep no buffer
		if err != nil {
			return err
		}
	}
	for len(p) >= HeaderLen {
		t, total, err := d.header(p)
		if err != nil {
			return err
		}
		if len(p) < total {
			break
		}
		if err := fn(Package{Type: t, Body: p[HeaderLen:total]}); err != nil {
			return err
		}
		p = p[total:]
	}
	if len(p) > 0 {
		_, err := d.fill(p)
		return err
	}
	return nil
}

// fill moves bytes from p into the partial package, at most up to the end of
// that package, and returns how many it took.
func (d *Decoder) fill(p []byte) (int, error) {
	taken := 0
	if d.need == 0 {
		k := min(HeaderLen-len(d.partial), len(p))
		if d.partial == nil {
			d.partial = make([]byte, 0, HeaderLen)
		}
		d.partial = append(d.partial, p[:k]...)
		taken = k
		if len(d.partial) < HeaderLen {
			return taken, nil
		}
		_, total, err := d.header(d.partial)
		if err != nil {
			return taken, err
		}
		d.need = total
		// Grow with the bytes that arrive, not to the announced size: a
		// client that sends a header and stalls must not cost a full
		// package of memory.
		grown := make([]byte, HeaderLen, min(total, partialStart))
		copy(grown, d.partial)
		d.partial = grown
	}
	k := min(d.need-len(d.partial), len(p)-taken)
	d.partial = append(d.partial, p[taken:taken+k]...)
	return taken + k, nil
}
