package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// Byte vectors written out by hand from the Pomelo package format:
// type (1 byte) | body length (3 bytes, big-endian) | body.
func TestEncodePackage(t *testing.T) {
	tests := []struct {
		name string
		typ  PackageType
		body []byte
		want []byte
	}{
		{"heartbeat", Heartbeat, nil, []byte{0x03, 0x00, 0x00, 0x00}},
		{"handshake ack", HandshakeAck, nil, []byte{0x02, 0x00, 0x00, 0x00}},
		{"data hello", Data, []byte("hello"), []byte{0x04, 0x00, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o'}},
		{"kick", Kick, []byte(`{}`), []byte{0x05, 0x00, 0x00, 0x02, '{', '}'}},
		{"length 258", Handshake, make([]byte, 258), append([]byte{0x01, 0x00, 0x01, 0x02}, make([]byte, 258)...)},
		{"length 70000", Data, make([]byte, 70000), append([]byte{0x04, 0x01, 0x11, 0x70}, make([]byte, 70000)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodePackage(tt.typ, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got % x\nwant % x", got[:min(16, len(got))], tt.want[:min(16, len(tt.want))])
			}
		})
	}
	if _, err := EncodePackage(Data, make([]byte, MaxBodyLen+1)); !errors.Is(err, ErrPackageTooLarge) {
		t.Fatalf("oversized body: err = %v, want ErrPackageTooLarge", err)
	}
}

func TestParseHeader(t *testing.T) {
	tests := []struct {
		in      []byte
		typ     PackageType
		n       int
		wantErr error
	}{
		{[]byte{0x01, 0x00, 0x00, 0x10}, Handshake, 16, nil},
		{[]byte{0x04, 0x01, 0x02, 0x03}, Data, 0x010203, nil},
		{[]byte{0x05, 0xff, 0xff, 0xff}, Kick, MaxBodyLen, nil},
		{[]byte{0x00, 0x00, 0x00, 0x00}, 0, 0, ErrPackageType},
		{[]byte{0x06, 0x00, 0x00, 0x00}, 0, 0, ErrPackageType},
		{[]byte{'G', 'E', 'T', ' '}, 0, 0, ErrPackageType},
	}
	for _, tt := range tests {
		typ, n, err := ParseHeader(tt.in)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("% x: err = %v, want %v", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || typ != tt.typ || n != tt.n {
			t.Errorf("% x: got (%v, %d, %v), want (%v, %d)", tt.in, typ, n, err, tt.typ, tt.n)
		}
	}
	if _, _, err := ParseHeader([]byte{0x04, 0x00}); err == nil {
		t.Error("short header accepted")
	}
}

type seen struct {
	typ  PackageType
	body string
}

func collect(t *testing.T, d *Decoder, chunks ...[]byte) ([]seen, error) {
	t.Helper()
	var out []seen
	for _, c := range chunks {
		err := d.Feed(c, func(p Package) error {
			out = append(out, seen{p.Type, string(p.Body)}) // copy: body is only valid in the callback
			return nil
		})
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// stream is three packages back to back: handshake-ack, heartbeat, data "hello".
var stream = []byte{
	0x02, 0x00, 0x00, 0x00,
	0x03, 0x00, 0x00, 0x00,
	0x04, 0x00, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o',
}

var streamWant = []seen{{HandshakeAck, ""}, {Heartbeat, ""}, {Data, "hello"}}

func TestDecoderSeveralPackagesInOneRead(t *testing.T) {
	var d Decoder
	got, err := collect(t, &d, stream)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(streamWant) {
		t.Fatalf("got %v, want %v", got, streamWant)
	}
	if d.Buffered() != 0 {
		t.Fatalf("decoder holds %d bytes after whole packages", d.Buffered())
	}
}

func TestDecoderEverySplit(t *testing.T) {
	// Every split of the stream into two reads, and the stream byte by byte.
	for i := 0; i <= len(stream); i++ {
		var d Decoder
		got, err := collect(t, &d, stream[:i], stream[i:])
		if err != nil {
			t.Fatalf("split at %d: %v", i, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(streamWant) {
			t.Fatalf("split at %d: got %v, want %v", i, got, streamWant)
		}
	}
	var d Decoder
	var chunks [][]byte
	for i := range stream {
		chunks = append(chunks, stream[i:i+1])
	}
	got, err := collect(t, &d, chunks...)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(streamWant) {
		t.Fatalf("byte by byte: got %v, %v", got, err)
	}
}

func TestDecoderLargePackageOverManyReads(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 5000) // 50,000 bytes
	pkg, _ := EncodePackage(Data, body)
	var d Decoder
	var got []byte
	calls := 0
	for off := 0; off < len(pkg); off += 1000 {
		err := d.Feed(pkg[off:min(off+1000, len(pkg))], func(p Package) error {
			calls++
			got = append([]byte(nil), p.Body...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 || !bytes.Equal(got, body) {
		t.Fatalf("calls=%d, body equal=%v", calls, bytes.Equal(got, body))
	}
	if d.Buffered() != 0 {
		t.Fatal("decoder kept its buffer after the package completed")
	}
}

func TestDecoderRejectsOversizedHeaderAtOnce(t *testing.T) {
	// A 16 MiB length is refused when its header arrives, before any body.
	var d Decoder
	_, err := collect(t, &d, []byte{0x04, 0xff}, []byte{0xff, 0xff})
	if !errors.Is(err, ErrPackageTooLarge) {
		t.Fatalf("err = %v, want ErrPackageTooLarge", err)
	}
	d = Decoder{MaxBody: 10}
	_, err = collect(t, &d, []byte{0x04, 0x00, 0x00, 0x0b})
	if !errors.Is(err, ErrPackageTooLarge) {
		t.Fatalf("limit 10, length 11: err = %v", err)
	}
	d = Decoder{MaxBody: 10}
	if _, err := collect(t, &d, []byte{0x04, 0x00, 0x00, 0x0a}); err != nil {
		t.Fatalf("limit 10, length 10: %v", err)
	}
}

func TestDecoderRejectsBadType(t *testing.T) {
	var d Decoder
	got, err := collect(t, &d, append(append([]byte{}, stream[:4]...), 0x09, 0, 0, 0))
	if !errors.Is(err, ErrPackageType) {
		t.Fatalf("err = %v, want ErrPackageType", err)
	}
	if len(got) != 1 {
		t.Fatalf("packages before the bad one: %v", got)
	}
}

func TestDecoderStopsOnCallbackError(t *testing.T) {
	var d Decoder
	stop := errors.New("stop")
	n := 0
	err := d.Feed(stream, func(Package) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("err=%v calls=%d", err, n)
	}
}

func BenchmarkDecoderFeed(b *testing.B) {
	msg, _ := EncodeDataPackage(&Message{Type: Request, ID: 7, Route: "chat.chatHandler.send", Body: []byte(`{"content":"hello","target":"*"}`)}, nil)
	buf := bytes.Repeat(msg, 16)
	var d Decoder
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		_ = d.Feed(buf, func(Package) error { return nil })
	}
}

func TestDecoderStalledHeaderHoldsLittleMemory(t *testing.T) {
	// A header announcing 64 KiB then silence must not cost 64 KiB.
	var d Decoder
	if err := d.Feed([]byte{0x04, 0x01, 0x00, 0x00, 'x'}, func(Package) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if c := cap(d.partial); c > 2048 {
		t.Fatalf("partial package holds %d bytes of capacity", c)
	}
}
