package pomelopb

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

	"github.com/shaddock/shaddock/internal/jsjson"
)

// Decode appends to dst the JSON object that pomelo-protobuf's decoder
// makes of b with proto m: keys in the order their fields first appear, a
// repeated field's values from all its occurrences in one array, the last
// value of a field that occurs more than once. Like that decoder it reads
// each field by its proto's type (the wire type is not checked); a tag
// with no field in m, a truncated value or a float that is not a number is
// an error.
func (m *Message) Decode(dst, b []byte) ([]byte, error) {
	out, err := decodeMessage(dst, m, b, 0)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// occurrence is one field found in a message body: where its value lies,
// and the next occurrence of the same field (-1 for none).
type occurrence struct {
	f          *field
	start, end int32
	next       int32
}

func decodeMessage(dst []byte, m *Message, b []byte, depth int) ([]byte, error) {
	if depth >= maxDepth {
		return dst, ErrDepth
	}
	// First pass: where each field's values are, so that a field that
	// occurs several times is written once, as JavaScript's object holds it.
	var occBuf [16]occurrence
	occs := occBuf[:0]
	var firstBuf, lastBuf [16]int32
	first, last := firstBuf[:0], lastBuf[:0]
	if len(m.fields) > len(firstBuf) {
		first, last = make([]int32, len(m.fields)), make([]int32, len(m.fields))
	} else {
		first, last = first[:len(m.fields)], last[:len(m.fields)]
	}
	for i := range first {
		first[i] = -1
	}
	for p := 0; p < len(b); {
		head, n := uvarint(b[p:])
		if n <= 0 {
			return dst, fmt.Errorf("%w: %s: bad field key at byte %d", ErrWire, m.name, p)
		}
		p += n
		f := m.byTag[uint32(head>>3)]
		if head>>3 > maxTag || f == nil {
			return dst, fmt.Errorf("%w: %s has no field with tag %d", ErrWire, m.name, head>>3)
		}
		end, err := valueEnd(f, b, p)
		if err != nil {
			return dst, err
		}
		idx := f.idx
		cur := int32(len(occs))
		occs = append(occs, occurrence{f: f, start: int32(p), end: int32(end), next: -1})
		if first[idx] < 0 {
			first[idx] = cur
		} else {
			occs[last[idx]].next = cur
		}
		last[idx] = cur
		p = end
	}

	dst = append(dst, '{')
	wrote := false
	for i, o := range occs {
		idx := o.f.idx
		if first[idx] != int32(i) {
			continue // written with the field's first occurrence
		}
		if wrote {
			dst = append(dst, ',')
		}
		wrote = true
		dst = jsjson.AppendString(dst, o.f.name)
		dst = append(dst, ':')
		var err error
		if o.f.option == "repeated" {
			dst = append(dst, '[')
			n := 0
			for j := int32(i); j >= 0; j = occs[j].next {
				oj := occs[j]
				if dst, n, err = appendRepeated(dst, oj.f, b[oj.start:oj.end], n, depth); err != nil {
					return dst, err
				}
			}
			dst = append(dst, ']')
		} else {
			ol := occs[last[idx]]
			if dst, _, err = appendValue(dst, ol.f, b[ol.start:ol.end], depth); err != nil {
				return dst, err
			}
		}
	}
	return append(dst, '}'), nil
}

// valueEnd returns where the value of f starting at b[p] ends.
func valueEnd(f *field, b []byte, p int) (int, error) {
	if f.option == "repeated" && f.kind.simple() {
		count, n := uvarint(b[p:])
		if n <= 0 {
			return 0, fmt.Errorf("%w: %s: bad element count", ErrWire, f.name)
		}
		p += n
		if count > uint64(len(b)) {
			return 0, fmt.Errorf("%w: %s: %d elements in a %d-byte body", ErrWire, f.name, count, len(b))
		}
		for range count {
			end, err := scalarEnd(f, b, p)
			if err != nil {
				return 0, err
			}
			p = end
		}
		return p, nil
	}
	return scalarEnd(f, b, p)
}

// scalarEnd returns where one value of f's type starting at b[p] ends.
func scalarEnd(f *field, b []byte, p int) (int, error) {
	switch f.kind {
	case kindUInt32, kindSInt32:
		if _, n := uvarint(b[p:]); n > 0 {
			return p + n, nil
		}
	case kindFloat:
		if p+4 <= len(b) {
			return p + 4, nil
		}
	case kindDouble:
		if p+8 <= len(b) {
			return p + 8, nil
		}
	default: // string, message: length-delimited
		l, n := uvarint(b[p:])
		if n > 0 && l <= uint64(len(b)-p-n) {
			return p + n + int(l), nil
		}
	}
	return 0, fmt.Errorf("%w: %s: truncated %s", ErrWire, f.name, f.typ)
}

// appendRepeated appends the elements one occurrence of a repeated field
// holds (after n already written), returning the new count.
func appendRepeated(dst []byte, f *field, b []byte, n, depth int) ([]byte, int, error) {
	if !f.kind.simple() {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst, _, err := appendValue(dst, f, b, depth)
		return dst, n + 1, err
	}
	count, k := uvarint(b)
	b = b[k:]
	for range count {
		if n > 0 {
			dst = append(dst, ',')
		}
		var err error
		var used int
		if dst, used, err = appendValue(dst, f, b, depth); err != nil {
			return dst, n, err
		}
		b = b[used:]
		n++
	}
	return dst, n, nil
}

// appendValue appends one value of f's type read from the start of b
// (bounds already checked by valueEnd), and returns the bytes it used.
func appendValue(dst []byte, f *field, b []byte, depth int) ([]byte, int, error) {
	switch f.kind {
	case kindUInt32:
		v, n := uvarint(b)
		return strconv.AppendUint(dst, v, 10), n, nil
	case kindSInt32:
		v, n := uvarint(b)
		return strconv.AppendInt(dst, int64(v>>1)^-int64(v&1), 10), n, nil
	case kindFloat:
		return appendFloat(dst, float64(math.Float32frombits(binary.LittleEndian.Uint32(b))), f, 4)
	case kindDouble:
		return appendFloat(dst, math.Float64frombits(binary.LittleEndian.Uint64(b)), f, 8)
	}
	l, n := uvarint(b)
	body := b[n : n+int(l)]
	if f.kind == kindString {
		return jsjson.AppendBytes(dst, body), n + int(l), nil
	}
	dst, err := decodeMessage(dst, f.msg, body, depth+1)
	return dst, n + int(l), err
}

func appendFloat(dst []byte, v float64, f *field, n int) ([]byte, int, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return dst, n, fmt.Errorf("%w: %s: %v is not a JSON number", ErrValue, f.name, v)
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64), n, nil
}

// uvarint reads a base-128 varint of at most 10 bytes; n <= 0 means
// truncated or too long.
func uvarint(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		c := b[i]
		if i == 9 && c > 1 {
			return 0, -1
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}
