package pomelopb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Errors of the codec, wrapped with details; branch with errors.Is.
var (
	ErrJSON     = errors.New("pomelopb: invalid JSON body")
	ErrValue    = errors.New("pomelopb: value does not fit its proto")
	ErrRequired = errors.New("pomelopb: required field missing")
	ErrWire     = errors.New("pomelopb: malformed protobuf body")
	ErrDepth    = errors.New("pomelopb: messages nested too deep")
)

// maxDepth bounds the nesting of objects and messages, so a hostile body
// cannot recurse without limit.
const maxDepth = 64

// maxSafeInt is the largest integer JavaScript numbers hold exactly; beyond
// it pomelo-protobuf's arithmetic is not exact, so larger values are refused.
const maxSafeInt = 1<<53 - 1

// Encode appends to dst the encoding of body, a JSON object, with proto m:
// what pomelo-protobuf's encoder writes for the same object. Keys without a
// field in m are skipped, and null stands for a missing value (Go encodes
// nil slices and pointers as null). A required field that is missing, a
// value of the wrong JSON type, or a number its type cannot hold is an
// error: pomelo-protobuf would then send an empty body or throw.
func (m *Message) Encode(dst, body []byte) ([]byte, error) {
	e := encoder{in: body, out: dst}
	e.ws()
	if err := e.object(m, 0); err != nil {
		return dst, err
	}
	e.ws()
	if e.i != len(e.in) {
		return dst, fmt.Errorf("%w: data after the object at byte %d", ErrJSON, e.i)
	}
	return e.out, nil
}

type encoder struct {
	in  []byte
	i   int
	out []byte
}

func (e *encoder) ws() {
	for e.i < len(e.in) {
		switch e.in[e.i] {
		case ' ', '\t', '\n', '\r':
			e.i++
		default:
			return
		}
	}
}

func (e *encoder) peek() byte {
	if e.i < len(e.in) {
		return e.in[e.i]
	}
	return 0
}

func (e *encoder) syntax(what string) error {
	if e.i >= len(e.in) {
		return fmt.Errorf("%w: unexpected end, want %s", ErrJSON, what)
	}
	return fmt.Errorf("%w: %q at byte %d, want %s", ErrJSON, e.in[e.i], e.i, what)
}

// object encodes a JSON object with m, the message's fields only.
func (e *encoder) object(m *Message, depth int) error {
	if depth >= maxDepth {
		return ErrDepth
	}
	if e.peek() != '{' {
		return fmt.Errorf("%w: %s needs a JSON object", ErrValue, m.name)
	}
	e.i++
	var seen uint64 // required fields present (the first 64)
	var seenMore []bool
	if m.required > 64 {
		seenMore = make([]bool, m.required)
	}
	e.ws()
	if e.peek() == '}' {
		e.i++
	} else {
		for {
			e.ws()
			if e.peek() != '"' {
				return e.syntax("a key")
			}
			key, esc, err := e.stringToken()
			if err != nil {
				return err
			}
			var f *field
			if esc {
				f = m.byName[string(unescape(nil, key))]
			} else {
				f = m.byName[string(key)] // no allocation for a map lookup
			}
			e.ws()
			if e.peek() != ':' {
				return e.syntax("':'")
			}
			e.i++
			e.ws()
			switch {
			case f == nil:
				if err := e.skip(depth + 1); err != nil {
					return err
				}
			case e.null():
			default:
				if err := e.field(f, depth); err != nil {
					return err
				}
				if f.req >= 0 {
					if f.req < 64 {
						seen |= 1 << f.req
					} else {
						seenMore[f.req] = true
					}
				}
			}
			e.ws()
			if c := e.peek(); c == ',' {
				e.i++
				continue
			} else if c == '}' {
				e.i++
				break
			}
			return e.syntax("',' or '}'")
		}
	}
	if m.required == 0 {
		return nil
	}
	for _, f := range m.fields {
		if f.req < 0 {
			continue
		}
		if f.req < 64 && seen&(1<<f.req) == 0 || f.req >= 64 && !seenMore[f.req] {
			return fmt.Errorf("%w: %s.%s", ErrRequired, m.name, f.name)
		}
	}
	return nil
}

// null consumes a null literal if one is next.
func (e *encoder) null() bool {
	if len(e.in)-e.i >= 4 && string(e.in[e.i:e.i+4]) == "null" {
		e.i += 4
		return true
	}
	return false
}

// field encodes the value of one field (not null).
func (e *encoder) field(f *field, depth int) error {
	if f.option != "repeated" {
		e.out = append(e.out, f.key...)
		return e.value(f, depth)
	}
	if e.peek() != '[' {
		return fmt.Errorf("%w: repeated field %s needs an array", ErrValue, f.name)
	}
	e.i++
	e.ws()
	if e.peek() == ']' { // pomelo-protobuf writes nothing for an empty array
		e.i++
		return nil
	}
	start := len(e.out)
	var count uint64
	if f.kind.simple() {
		// tag, element count, values: pomelo-protobuf's packed form.
		e.out = append(e.out, f.key...)
		e.out = append(e.out, 0)
		start = len(e.out)
	}
	for {
		e.ws()
		if !f.kind.simple() {
			e.out = append(e.out, f.key...)
		}
		if err := e.value(f, depth); err != nil {
			return err
		}
		count++
		e.ws()
		if c := e.peek(); c == ',' {
			e.i++
			continue
		} else if c == ']' {
			e.i++
			break
		}
		return e.syntax("',' or ']'")
	}
	if f.kind.simple() {
		e.out = putLength(e.out, start, count)
	}
	return nil
}

// value encodes one value of f's type (an array element for repeated f).
func (e *encoder) value(f *field, depth int) error {
	switch f.kind {
	case kindString:
		if e.peek() != '"' {
			return fmt.Errorf("%w: %s needs a string", ErrValue, f.name)
		}
		s, esc, err := e.stringToken()
		if err != nil {
			return err
		}
		e.out = append(e.out, 0)
		start := len(e.out)
		if esc {
			e.out = unescape(e.out, s)
		} else {
			e.out = append(e.out, s...)
		}
		e.out = putLength(e.out, start, uint64(len(e.out)-start))
		return nil
	case kindMessage:
		e.out = append(e.out, 0)
		start := len(e.out)
		if err := e.object(f.msg, depth+1); err != nil {
			return err
		}
		e.out = putLength(e.out, start, uint64(len(e.out)-start))
		return nil
	}
	v, err := e.number(f)
	if err != nil {
		return err
	}
	switch f.kind {
	case kindUInt32, kindSInt32:
		t := math.Trunc(v) // parseInt
		if math.Abs(t) > maxSafeInt {
			return fmt.Errorf("%w: %s: %v is beyond what pomelo-protobuf encodes exactly", ErrValue, f.name, v)
		}
		if f.kind == kindUInt32 {
			if t < 0 {
				return fmt.Errorf("%w: %s: %v is negative for uInt32", ErrValue, f.name, v)
			}
			e.out = appendUvarint(e.out, uint64(t))
		} else {
			n := int64(t)
			e.out = appendUvarint(e.out, uint64(n<<1)^uint64(n>>63))
		}
	case kindFloat:
		e.out = binary.LittleEndian.AppendUint32(e.out, math.Float32bits(float32(v)))
	case kindDouble:
		e.out = binary.LittleEndian.AppendUint64(e.out, math.Float64bits(v))
	}
	return nil
}

// number reads a JSON number, or a string holding one (pomelo-protobuf
// runs parseInt over whatever it gets).
func (e *encoder) number(f *field) (float64, error) {
	var tok []byte
	if e.peek() == '"' {
		s, _, err := e.stringToken()
		if err != nil {
			return 0, err
		}
		tok = s
	} else {
		start := e.i
		for e.i < len(e.in) {
			c := e.in[e.i]
			if c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
				e.i++
				continue
			}
			break
		}
		tok = e.in[start:e.i]
	}
	if v, ok := smallInt(tok); ok {
		return v, nil
	}
	v, err := strconv.ParseFloat(string(tok), 64)
	if err != nil || len(tok) == 0 {
		return 0, fmt.Errorf("%w: %s needs a number, not %q", ErrValue, f.name, tok)
	}
	return v, nil
}

// smallInt parses the common case, an integer of up to 15 digits, without
// strconv (which would need a string).
func smallInt(b []byte) (float64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 15 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return float64(n), true
}

// stringToken reads a JSON string and returns its raw contents (between the
// quotes) and whether they hold escapes.
func (e *encoder) stringToken() ([]byte, bool, error) {
	e.i++ // the opening quote
	start, esc := e.i, false
	for e.i < len(e.in) {
		c := e.in[e.i]
		switch {
		case c == '"':
			s := e.in[start:e.i]
			e.i++
			return s, esc, nil
		case c == '\\':
			esc = true
			if e.i+1 >= len(e.in) {
				return nil, false, e.syntax("an escape")
			}
			switch e.in[e.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				e.i += 2
			case 'u':
				if e.i+6 > len(e.in) || !isHex4(e.in[e.i+2:e.i+6]) {
					return nil, false, fmt.Errorf("%w: bad \\u escape at byte %d", ErrJSON, e.i)
				}
				e.i += 6
			default:
				return nil, false, fmt.Errorf("%w: bad escape at byte %d", ErrJSON, e.i)
			}
		case c < 0x20:
			return nil, false, fmt.Errorf("%w: control character in a string at byte %d", ErrJSON, e.i)
		default:
			e.i++
		}
	}
	return nil, false, e.syntax("'\"'")
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// unescape appends the UTF-8 text of validated string contents s. A lone
// surrogate becomes U+FFFD, as Node's Buffer writes it.
func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch s[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(s[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				if r < 0xdc00 && i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if r2 := hex4(s[i+2 : i+6]); r2 >= 0xdc00 && r2 < 0xe000 {
						r = utf16.DecodeRune(r, r2)
						i += 6
						dst = utf8.AppendRune(dst, r)
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // " \ /
			dst = append(dst, s[i+1])
		}
		i += 2
	}
	return dst
}

// skip validates and skips one JSON value.
func (e *encoder) skip(depth int) error {
	if depth >= maxDepth {
		return ErrDepth
	}
	switch c := e.peek(); {
	case c == '"':
		_, _, err := e.stringToken()
		return err
	case c == '{' || c == '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		e.i++
		e.ws()
		if e.peek() == end {
			e.i++
			return nil
		}
		for {
			e.ws()
			if c == '{' {
				if e.peek() != '"' {
					return e.syntax("a key")
				}
				if _, _, err := e.stringToken(); err != nil {
					return err
				}
				e.ws()
				if e.peek() != ':' {
					return e.syntax("':'")
				}
				e.i++
				e.ws()
			}
			if err := e.skip(depth + 1); err != nil {
				return err
			}
			e.ws()
			if n := e.peek(); n == ',' {
				e.i++
				continue
			} else if n == end {
				e.i++
				return nil
			}
			return e.syntax("',' or the end of the " + map[byte]string{'}': "object", ']': "array"}[end])
		}
	case c == 't' && len(e.in)-e.i >= 4 && string(e.in[e.i:e.i+4]) == "true",
		c == 'n' && len(e.in)-e.i >= 4 && string(e.in[e.i:e.i+4]) == "null":
		e.i += 4
		return nil
	case c == 'f' && len(e.in)-e.i >= 5 && string(e.in[e.i:e.i+5]) == "false":
		e.i += 5
		return nil
	case c == '-' || c >= '0' && c <= '9':
		start := e.i
		for e.i < len(e.in) && (e.in[e.i] >= '0' && e.in[e.i] <= '9' || e.in[e.i] == '-' || e.in[e.i] == '+' ||
			e.in[e.i] == '.' || e.in[e.i] == 'e' || e.in[e.i] == 'E') {
			e.i++
		}
		if _, ok := smallInt(e.in[start:e.i]); ok {
			return nil
		}
		if _, err := strconv.ParseFloat(string(e.in[start:e.i]), 64); err != nil {
			return fmt.Errorf("%w: bad number at byte %d", ErrJSON, start)
		}
		return nil
	}
	return e.syntax("a value")
}

// putLength writes n as the base-128 varint that the byte reserved at
// out[start-1] stands for, moving what follows when it needs more bytes.
func putLength(out []byte, start int, n uint64) []byte {
	size := uvarintLen(n)
	if size > 1 {
		out = append(out, make([]byte, size-1)...)
		copy(out[start+size-1:], out[start:len(out)-size+1])
	}
	p := start - 1
	for n >= 0x80 {
		out[p] = byte(n) | 0x80
		n >>= 7
		p++
	}
	out[p] = byte(n)
	return out
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func appendUvarint(dst []byte, v uint64) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}
