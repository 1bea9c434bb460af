package flatjson

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// encSample has every kind, omitempty, names by tag and by field, and
// fields encoding/json leaves out.
type encSample struct {
	Msg    string `json:"msg"`
	From   string `json:"from,omitempty"`
	Target string
	On     bool `json:"on,omitempty"`
	N      int  `json:"n"`
	Small  int8 `json:"small,omitempty"`
	Port   uint16
	Skip   string `json:"-"`
	//lint:ignore U1000 encoding/json leaves unexported fields out; so must the fast path
	hidden string
}

// The chat's push body.
type chatPush struct {
	Msg    string `json:"msg"`
	From   string `json:"from"`
	Target string `json:"target"`
}

// sameEncoding fails unless the Encoder and json.Marshal give the same
// bytes, or both fail.
func sameEncoding(t *testing.T, e *Encoder, v any) {
	t.Helper()
	got, gotErr := e.Marshal(v)
	want, wantErr := json.Marshal(v)
	if (gotErr == nil) != (wantErr == nil) || !bytes.Equal(got, want) {
		t.Fatalf("%#v: %s (%v), json.Marshal %s (%v)", v, got, gotErr, want, wantErr)
	}
}

func TestEncodeAsMarshal(t *testing.T) {
	e := NewEncoder(reflect.TypeFor[encSample]())
	if !e.flat {
		t.Fatal("encSample not flat")
	}
	for _, v := range []encSample{
		{},
		{Msg: "hello", From: "u1", Target: "*", On: true, N: -42, Small: -128, Port: 65535, Skip: "x", hidden: "y"},
		{Msg: "中文 é 😀"},
		{Msg: `a"b`}, {Msg: `a\b`}, {Msg: "a\nb"}, {Msg: "<b>&"}, {Msg: "\u2028"}, {Msg: "bad\xff"}, {Msg: "\ufffd"},
	} {
		sameEncoding(t, e, v)
		sameEncoding(t, e, &v)
	}
	sameEncoding(t, e, (*encSample)(nil))
	sameEncoding(t, e, "not the encoder's type")
}

type selfMarshaled struct{ S string }

func (selfMarshaled) MarshalJSON() ([]byte, error) { return []byte(`"self"`), nil }

type textField struct{ C lower }

type lower string

func (l lower) MarshalText() ([]byte, error) { return []byte(strings.ToLower(string(l))), nil }

func TestEncodeLeavesCustomTypesToMarshal(t *testing.T) {
	for _, v := range []any{selfMarshaled{"x"}, textField{"ABC"}} {
		e := NewEncoder(reflect.TypeOf(v))
		if e.flat {
			t.Errorf("%T took the fast path", v)
		}
		sameEncoding(t, e, v)
	}
}

func TestEncodersCachePerType(t *testing.T) {
	var es Encoders
	for _, v := range []any{chatPush{"m", "f", "t"}, &chatPush{"m", "f", "t"}, encSample{N: 1}, map[string]int{"a": 1}, nil, []byte("x"), 7} {
		got, gotErr := es.Marshal(v)
		want, wantErr := json.Marshal(v)
		if (gotErr == nil) != (wantErr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("%#v: %s, json.Marshal %s", v, got, want)
		}
	}
	n := 0
	es.m.Range(func(any, any) bool { n++; return true })
	if n != 5 { // chatPush (value and pointer share one), encSample, map, []byte, int
		t.Fatalf("%d encoders cached, want 5", n)
	}
}

func TestEncodeChatPushAllocatesOnce(t *testing.T) {
	var es Encoders
	v := &chatPush{Msg: "t=1764578400123456789", From: "u17", Target: "*"}
	es.Marshal(v)
	if n := testing.AllocsPerRun(100, func() { es.Marshal(v) }); n > 1 {
		t.Fatalf("%v allocations per push body, want 1 (the bytes)", n)
	}
}

func FuzzSameAsMarshal(f *testing.F) {
	f.Add("hello", "u1", "*", true, int64(-3), uint16(80))
	f.Add("<&>", "\u2028", "a\"b\\", false, int64(0), uint16(0))
	f.Add("bad\xff", "中文", "", true, int64(1<<40), uint16(65535))
	e := NewEncoder(reflect.TypeFor[encSample]())
	f.Fuzz(func(t *testing.T, msg, from, target string, on bool, n int64, port uint16) {
		v := encSample{Msg: msg, From: from, Target: target, On: on, N: int(n), Small: int8(n), Port: port}
		sameEncoding(t, e, v)
		sameEncoding(t, e, &v)
	})
}

func BenchmarkEncodeChatPush(b *testing.B) {
	v := &chatPush{Msg: "t=1764578400123456789", From: "u17", Target: "*"}
	b.Run("flatjson", func(b *testing.B) {
		var es Encoders
		b.ReportAllocs()
		for b.Loop() {
			es.Marshal(v)
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			json.Marshal(v)
		}
	})
}
