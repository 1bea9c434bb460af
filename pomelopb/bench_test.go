package pomelopb

import (
	"encoding/hex"
	"testing"
)

// The chat's hot messages: an onChat push encoded once per broadcast, a
// send request decoded per message.
func BenchmarkEncodeOnChat(b *testing.B) {
	m := testProtos(b).Server("onChat")
	body := []byte(`{"msg":"hello everyone in the room","from":"alice","target":"*","route":"onChat"}`)
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = m.Encode(buf[:0], body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeOnChat(b *testing.B) {
	m := testProtos(b).Server("onChat")
	wire, _ := hex.DecodeString("0a0a68c3a96c6c6f202278221201611a012a")
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = m.Decode(buf[:0], wire); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeRich(b *testing.B) {
	m := testProtos(b).Server("rich")
	body := []byte(vectors[1].json)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = m.Encode(buf[:0], body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRich(b *testing.B) {
	m := testProtos(b).Server("rich")
	wire, _ := hex.DecodeString(vectors[1].hex)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = m.Decode(buf[:0], wire); err != nil {
			b.Fatal(err)
		}
	}
}
