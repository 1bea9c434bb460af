package protocol

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecoder checks that any byte stream, split anywhere, decodes to the same
// packages (or the same failure) as when fed whole, and never panics.
func FuzzDecoder(f *testing.F) {
	f.Add(stream, uint16(3))
	f.Add([]byte{0x04, 0xff, 0xff, 0xff}, uint16(1))
	f.Add([]byte{0x01, 0x00, 0x00, 0x02, '{', '}', 0x02, 0x00}, uint16(5))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		whole, errWhole := feedAll(&Decoder{MaxBody: 1024}, data)
		cut := int(split) % (len(data) + 1)
		parts, errParts := feedAll(&Decoder{MaxBody: 1024}, data[:cut], data[cut:])
		if (errWhole == nil) != (errParts == nil) {
			t.Fatalf("whole err %v, split err %v", errWhole, errParts)
		}
		if !reflect.DeepEqual(whole, parts) {
			t.Fatalf("whole %v != split at %d %v", whole, cut, parts)
		}
	})
}

func feedAll(d *Decoder, chunks ...[]byte) ([]seen, error) {
	var out []seen
	for _, c := range chunks {
		if err := d.Feed(c, func(p Package) error {
			if len(p.Body) > 1024 {
				panic("body over the limit")
			}
			out = append(out, seen{p.Type, string(p.Body)})
			return nil
		}); err != nil {
			return out, err
		}
	}
	return out, nil
}

// FuzzDecodeMessage checks that decoding never panics and that whatever
// decodes re-encodes to a message that decodes the same.
func FuzzDecodeMessage(f *testing.F) {
	for _, w := range [][]byte{
		{0x00, 0x01, 0x05, 'a', '.', 'b', '.', 'c', '{', '}'},
		{0x01, 0x05, 0x00, 0x02, '{', '}'},
		{0x07, 0x00, 0x04, '{', '}'},
		{0x14, 0x03, 0x1f, 0x8b},
		{0x04, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		f.Add(w)
	}
	dict := testDict(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMessage(data, dict)
		if err != nil {
			return
		}
		m.Body = bytes.Clone(m.Body)
		enc, err := AppendMessage(nil, &m, dict)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", m, err)
		}
		m2, err := DecodeMessage(enc, dict)
		if err != nil {
			t.Fatalf("decode re-encoded % x: %v", enc, err)
		}
		m.RouteCode, m2.RouteCode = 0, 0 // the dictionary, not the input, decides compression
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %+v != %+v", m, m2)
		}
	})
}
