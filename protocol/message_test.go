package protocol

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func testDict(t testing.TB) *Dictionary {
	d, err := NewDictionary([]string{"chat.chatHandler.send", "connector.entryHandler.enter", "gate.gateHandler.queryEntry", "onChat"})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Hand-written vectors from the Pomelo message format:
// flag = type<<1 | routeCompressed (| 0x10 gzip); id base-128, low 7 bits first;
// route as 2-byte code or 1-byte length + UTF-8; then the body.
func TestMessageVectors(t *testing.T) {
	dict := testDict(t)
	tests := []struct {
		name  string
		wire  []byte
		msg   Message
		nodic bool // encode without the dictionary
	}{
		{"request string route", []byte{0x00, 0x01, 0x05, 'a', '.', 'b', '.', 'c', '{', '}'},
			Message{Type: Request, ID: 1, Route: "a.b.c", Body: []byte("{}")}, false},
		{"request id 300", []byte{0x00, 0xac, 0x02, 0x01, 'x'},
			Message{Type: Request, ID: 300, Route: "x", Body: []byte{}}, false},
		{"request id 2^35", []byte{0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x01, 'x'},
			Message{Type: Request, ID: 1 << 35, Route: "x", Body: []byte{}}, false},
		{"request compressed route", []byte{0x01, 0x05, 0x00, 0x02, '{', '}'},
			Message{Type: Request, ID: 5, Route: "connector.entryHandler.enter", RouteCode: 2, Body: []byte("{}")}, false},
		{"request dict route sent as string", append([]byte{0x00, 0x07, 21}, "chat.chatHandler.send"...),
			Message{Type: Request, ID: 7, Route: "chat.chatHandler.send", Body: []byte{}}, true},
		{"notify string route", []byte{0x02, 0x01, 'x', 'h', 'i'},
			Message{Type: Notify, Route: "x", Body: []byte("hi")}, false},
		{"notify compressed route", []byte{0x03, 0x00, 0x01},
			Message{Type: Notify, Route: "chat.chatHandler.send", RouteCode: 1, Body: []byte{}}, false},
		{"response id 127", []byte{0x04, 0x7f, '1'},
			Message{Type: Response, ID: 127, Body: []byte("1")}, false},
		{"response id 128", []byte{0x04, 0x80, 0x01},
			Message{Type: Response, ID: 128, Body: []byte{}}, false},
		{"push compressed", []byte{0x07, 0x00, 0x04, '{', '}'},
			Message{Type: Push, Route: "onChat", RouteCode: 4, Body: []byte("{}")}, false},
		{"push string route", []byte{0x06, 0x05, 'o', 'n', 'A', 'd', 'd'},
			Message{Type: Push, Route: "onAdd", Body: []byte{}}, false},
		{"push empty route", []byte{0x06, 0x00, 'z'},
			Message{Type: Push, Route: "", Body: []byte("z")}, false},
		{"gzip response", []byte{0x14, 0x03, 0x1f, 0x8b},
			Message{Type: Response, ID: 3, Gzip: true, Body: []byte{0x1f, 0x8b}}, false},
		{"utf-8 route", []byte{0x02, 0x04, 'r', 0xc3, 0xa9, '.'},
			Message{Type: Notify, Route: "ré.", Body: []byte{}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := dict
			if tt.nodic {
				d = nil
			}
			got, err := DecodeMessage(tt.wire, dict)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.msg) {
				t.Fatalf("decode:\n got %+v\nwant %+v", got, tt.msg)
			}
			enc, err := AppendMessage(nil, &tt.msg, d)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if !bytes.Equal(enc, tt.wire) {
				t.Fatalf("encode:\n got % x\nwant % x", enc, tt.wire)
			}
			if n := MessageLen(&tt.msg, d); n != len(tt.wire) {
				t.Fatalf("MessageLen = %d, want %d", n, len(tt.wire))
			}
			pkg, err := EncodeDataPackage(&tt.msg, d)
			if err != nil || !bytes.Equal(pkg[HeaderLen:], tt.wire) || pkg[0] != byte(Data) || cap(pkg) != len(pkg) {
				t.Fatalf("data package: % x (cap %d), %v", pkg, cap(pkg), err)
			}
		})
	}
}

func TestMessageDecodeErrors(t *testing.T) {
	dict := testDict(t)
	tests := []struct {
		name string
		wire []byte
		want error
	}{
		{"empty", []byte{}, ErrTruncated},
		{"type 4", []byte{0x08, 0x01}, ErrMessageType},
		{"type 7", []byte{0x0e}, ErrMessageType},
		{"reserved bit 5", []byte{0x20, 0x01, 0x01, 'x'}, ErrMessageFlag},
		{"reserved bit 7", []byte{0x80}, ErrMessageFlag},
		{"id missing", []byte{0x00}, ErrTruncated},
		{"id unterminated", []byte{0x00, 0x80, 0x80}, ErrTruncated},
		{"id overflow", []byte{0x04, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, ErrIDOverflow},
		{"id eleven bytes", []byte{0x04, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x81, 0x00}, ErrIDOverflow},
		{"route length missing", []byte{0x02}, ErrTruncated},
		{"route shorter than length", []byte{0x02, 0x05, 'a', 'b'}, ErrTruncated},
		{"route code half", []byte{0x03, 0x00}, ErrTruncated},
		{"route code unknown", []byte{0x03, 0x00, 0x63}, ErrRouteCode},
		{"route code zero", []byte{0x03, 0x00, 0x00}, ErrRouteCode},
		{"compressed flag on response", []byte{0x05, 0x01}, ErrMessageFlag},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeMessage(tt.wire, dict); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := DecodeMessage([]byte{0x03, 0x00, 0x01}, nil); !errors.Is(err, ErrRouteCode) {
		t.Fatalf("compressed route without dictionary: %v", err)
	}
}

func TestMessageEncodeErrors(t *testing.T) {
	long := string(bytes.Repeat([]byte("r"), 256))
	if _, err := AppendMessage(nil, &Message{Type: Notify, Route: long}, nil); !errors.Is(err, ErrRouteTooLong) {
		t.Fatalf("long route: %v", err)
	}
	if _, err := AppendMessage(nil, &Message{Type: 4}, nil); !errors.Is(err, ErrMessageType) {
		t.Fatalf("type 4: %v", err)
	}
	if _, err := EncodeDataPackage(&Message{Type: Push, Body: make([]byte, MaxBodyLen)}, nil); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("huge body: %v", err)
	}
}

func TestGunzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(bytes.Repeat([]byte("a"), 100000))
	zw.Close()
	if _, err := Gunzip(buf.Bytes(), 64<<10); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("bomb: %v", err)
	}
	out, err := Gunzip(buf.Bytes(), 100000)
	if err != nil || len(out) != 100000 {
		t.Fatalf("got %d bytes, %v", len(out), err)
	}
	if _, err := Gunzip([]byte("not gzip"), 100); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestDictionary(t *testing.T) {
	d := testDict(t)
	if c, ok := d.Code("onChat"); !ok || c != 4 {
		t.Fatalf("Code(onChat) = %d, %v", c, ok)
	}
	if r, ok := d.Route(1); !ok || r != "chat.chatHandler.send" {
		t.Fatalf("Route(1) = %q, %v", r, ok)
	}
	if _, ok := d.Route(5); ok {
		t.Fatal("Route(5) exists")
	}
	if _, err := NewDictionary([]string{"a", "a"}); err == nil {
		t.Fatal("duplicate route accepted")
	}
	if _, err := NewDictionary([]string{""}); err == nil {
		t.Fatal("empty route accepted")
	}
	d2, _ := NewDictionary([]string{"chat.chatHandler.send", "connector.entryHandler.enter", "gate.gateHandler.queryEntry", "onChat"})
	d3, _ := NewDictionary([]string{"onChat"})
	if d.Version() != d2.Version() || d.Version() == d3.Version() {
		t.Fatal("version does not follow content")
	}
	var nilDict *Dictionary
	if _, ok := nilDict.Code("x"); ok || nilDict.Len() != 0 {
		t.Fatal("nil dictionary is not empty")
	}
}

func BenchmarkDecodeMessage(b *testing.B) {
	dict := testDict(b)
	wire, _ := AppendMessage(nil, &Message{Type: Request, ID: 1234, Route: "chat.chatHandler.send", Body: []byte(`{"content":"hello","target":"*"}`)}, dict)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeMessage(wire, dict); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeDataPackage(b *testing.B) {
	dict := testDict(b)
	m := &Message{Type: Push, Route: "onChat", Body: []byte(`{"msg":"hello","from":"u1","target":"*"}`)}
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendDataPackage(buf[:0], m, dict)
	}
}

func TestDictionaryFromServerJSON(t *testing.T) {
	var resp HandshakeResponse
	if err := json.Unmarshal([]byte(`{"code":200,"sys":{"heartbeat":3,"dict":{"a.b.c":2,"onX":1}}}`), &resp); err != nil {
		t.Fatal(err)
	}
	if c, ok := resp.Sys.Dict.Code("a.b.c"); !ok || c != 2 {
		t.Fatalf("decoded dictionary: code %d %v", c, ok)
	}
	for _, bad := range []string{`{"a":1,"b":1}`, `{"a":0}`, `{"a":2}`, `[1]`} {
		var d Dictionary
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
