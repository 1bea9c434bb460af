package pomelopb

import (
	"encoding/hex"
	"encoding/json"
	"testing"
)

// FuzzDecode: any body decodes or fails cleanly; what decodes is valid JSON,
// and encoding and decoding it again reaches a fixed point (the first round
// may normalise: an empty packed array decodes to [] but encodes to
// nothing, as in pomelo-protobuf).
func FuzzDecode(f *testing.F) {
	p := testProtos(f)
	for _, v := range vectors {
		b, _ := hex.DecodeString(v.hex)
		f.Add(b)
	}
	f.Add([]byte{0x42, 0x80, 0x01})
	m := p.Server("rich")
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := m.Decode(nil, b)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("decode %x gave invalid JSON %s", b, out)
		}
		re, err := m.Encode(nil, out)
		if err != nil {
			// A decoded message may lack required fields (pomelo-protobuf's
			// decoder does not check them); the encoder refuses those.
			return
		}
		again, err := m.Decode(nil, re)
		if err != nil {
			t.Fatalf("%s encoded to %x, which does not decode: %v", out, re, err)
		}
		re2, err := m.Encode(nil, again)
		if err != nil || string(re2) != string(re) {
			t.Fatalf("round trip of %s: %x then %x %v", out, re, re2, err)
		}
	})
}

// FuzzEncode: any JSON text encodes or fails cleanly; what encodes decodes.
func FuzzEncode(f *testing.F) {
	p := testProtos(f)
	for _, v := range vectors {
		f.Add([]byte(v.json))
	}
	f.Add([]byte(`{"big":"\ud800\udc00","zz":[{"a":[[[]]]}]}`))
	m := p.Server("rich")
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := m.Encode(nil, body)
		if err != nil {
			return
		}
		if _, err := m.Decode(nil, b); err != nil {
			t.Fatalf("encode %s gave %x, which does not decode: %v", body, b, err)
		}
	})
}
