package flatjson

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// sample has every kind the fast path fills, names by tag and by field,
// and fields encoding/json ignores.
type sample struct {
	Rid     string `json:"rid"`
	Content string `json:"content,omitempty"`
	From    string
	On      bool   `json:"on"`
	N       int    `json:"n"`
	Small   int8   `json:"small"`
	Port    uint16 `json:"port"`
	Skipped string `json:"-"`
	//lint:ignore SA5008 "-," names the field "-" (encoding/json's documented rule), which the fast path must follow
	Dash string `json:"-,"`
	//lint:ignore U1000 encoding/json ignores unexported fields; so must the fast path
	hidden string
}

// The chat's request, as tools/robot and chatofpomelo's client send it.
type sendRequest struct {
	Rid     string `json:"rid"`
	Content string `json:"content"`
	From    string `json:"from"`
	Target  string `json:"target"`
}

const sendBody = `{"rid":"r3","content":"t=1764578400123456789","from":"u17","target":"*"}`

// same decodes body with the Decoder and with encoding/json, each into a
// value starting as start, and fails unless both give the same value and
// both fail or both succeed.
func same[T any](t *testing.T, d *Decoder[T], body string, start T) {
	t.Helper()
	got, want := start, start
	gotErr := d.Unmarshal([]byte(body), &got)
	wantErr := json.Unmarshal([]byte(body), &want)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%q: error %v, encoding/json %v", body, gotErr, wantErr)
	}
	if wantErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: got %+v, encoding/json %+v", body, got, want)
	}
}

func TestFlatBodiesTakeTheFastPath(t *testing.T) {
	d := For[sample]()
	if !d.flat {
		t.Fatal("sample not flat")
	}
	for _, body := range []string{
		`{}`,
		" \t\r\n{ } \n",
		`{"rid":"r1","content":"hello","From":"u1","on":true,"n":-42,"small":127,"port":65535}`,
		`{ "rid" : "r1" , "on" : false }`,
		`{"rid":"r1","rid":"r2"}`, // the last one wins
		`{"rid":"中文 é 😀"}`,        // valid UTF-8 as it is
		`{"unknown":"x","other":1.5e3,"z":null,"b":true,"f":false,"s":"a\"b\u00e9"}`, // skipped
		`{"-":"dash"}`,
		`{"n":0,"small":-128,"port":0}`,
	} {
		var v sample
		if !d.fast([]byte(body), reflect.ValueOf(&v).Elem()) {
			t.Errorf("%q: fast path gave up", body)
		}
		same(t, d, body, sample{})
	}
}

func TestOtherBodiesDecodeAsEncodingJSON(t *testing.T) {
	d := For[sample]()
	for _, body := range []string{
		``, ` `, `null`, `[]`, `"x"`, `{`, `{"rid"}`, `{"rid":}`, `{"rid":"a",}`, `{"rid":"a"}x`, `{"rid":"a"}{}`,
		`{"rid":"a\nb"}`,            // an escape
		`{"rid":"a` + "\x01" + `"}`, // a control character: invalid JSON
		`{"rid":"bad` + "\xff" + `"}`,
		`{"rid":null}`, `{"n":null}`, // null leaves the field
		`{"RID":"x"}`, `{"from":"x"}`, // match by case folding
		`{"n":1.0}`, `{"n":1e2}`, `{"n":01}`, `{"n":-}`, `{"n":"1"}`,
		`{"small":128}`, `{"port":-1}`, `{"port":65536}`, `{"n":99999999999999999999}`,
		`{"on":1}`, `{"on":tru}`, `{"on":truex}`,
		`{"rid":{"a":1}}`, `{"x":[1,2]}`, `{"x":{"y":1}}`,
		`{"x":"\q"}`, `{"x":"\u12"}`, `{"x":1.}`, `{"x":1e}`, `{"x":--1}`, `{"x":nul}`,
		`{"k\u0069d":"x"}`, // an escaped key
		`{"rïd":"x"}`,      // a non-ASCII key
	} {
		same(t, d, body, sample{})
	}
	// Fields absent from the body keep what they held, as with encoding/json.
	same(t, d, `{"rid":"new"}`, sample{Rid: "old", Content: "kept", N: 7})
	same(t, d, `{"rid":null}`, sample{Rid: "old"})
}

func TestTypesLeftToEncodingJSON(t *testing.T) {
	type inner struct{ A string }
	type embedded struct {
		inner
		B string
	}
	type float struct{ F float64 }
	type quoted struct {
		N int `json:"n,string"`
	}
	type twice struct { // one JSON name, two fields: encoding/json's dominance rules decide
		A string `json:"B"`
		B string
	}
	type unicodeName struct {
		K string `json:"K"` // the Kelvin sign, which folds to k
	}
	type slice struct{ S []string }
	type withText struct {
		C upper `json:"c"`
	}
	for name, flat := range map[string]bool{
		"embedded": For[embedded]().flat,
		"float":    For[float]().flat,
		"string":   For[quoted]().flat,
		"twice":    For[twice]().flat,
		"unicode":  For[unicodeName]().flat,
		"slice":    For[slice]().flat,
		"map":      For[map[string]string]().flat,
		"pointer":  For[*sendRequest]().flat,
		"text":     For[withText]().flat,
		"own":      For[ownJSON]().flat,
	} {
		if flat {
			t.Errorf("%s: took the fast path", name)
		}
	}
	// They still decode, by encoding/json.
	var q quoted
	if err := For[quoted]().Unmarshal([]byte(`{"n":"12"}`), &q); err != nil || q.N != 12 {
		t.Fatalf("quoted: %+v, %v", q, err)
	}
	same(t, For[embedded](), `{"A":"a","B":"b"}`, embedded{})
	same(t, For[twice](), `{"B":"b"}`, twice{})
	// Types with their own decoding keep it.
	same(t, For[withText](), `{"c":"abc"}`, withText{})
	same(t, For[ownJSON](), `{"s":"abc"}`, ownJSON{})
	var w withText
	if err := For[withText]().Unmarshal([]byte(`{"c":"abc"}`), &w); err != nil || w.C != "ABC" {
		t.Fatalf("UnmarshalText bypassed: %+v %v", w, err)
	}
}

// upper is a string decoded by its own UnmarshalText.
type upper string

func (u *upper) UnmarshalText(b []byte) error { *u = upper(strings.ToUpper(string(b))); return nil }

// ownJSON decodes itself.
type ownJSON struct {
	S string `json:"s"`
}

func (o *ownJSON) UnmarshalJSON(b []byte) error { o.S = "own:" + string(b); return nil }

func TestChatRequestAllocatesItsStringsOnly(t *testing.T) {
	d := For[sendRequest]()
	body := []byte(sendBody)
	var v sendRequest
	allocs := testing.AllocsPerRun(100, func() {
		if err := d.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 4 {
		t.Fatalf("%v allocations per decode, want at most 4 (one per string)", allocs)
	}
	if v != (sendRequest{Rid: "r3", Content: "t=1764578400123456789", From: "u17", Target: "*"}) {
		t.Fatalf("decoded %+v", v)
	}
}

func FuzzSameAsEncodingJSON(f *testing.F) {
	for _, s := range []string{
		sendBody, `{}`, `{"rid":"a","n":-1,"small":3,"port":9,"on":true,"From":"x"}`,
		`{"RID":"x"}`, `{"x":1.5e-3}`, `{"rid":"a\u0041"}`, `{"n":1e2}`, `{"rid":null}`, ` {"on":false} `,
	} {
		f.Add([]byte(s))
	}
	ds := For[sample]()
	dr := For[sendRequest]()
	f.Fuzz(func(t *testing.T, body []byte) {
		same(t, ds, string(body), sample{})
		same(t, ds, string(body), sample{Rid: "old", N: 1, On: true})
		same(t, dr, string(body), sendRequest{})
	})
}

func BenchmarkDecodeChatRequest(b *testing.B) {
	body := []byte(sendBody)
	b.Run("flatjson", func(b *testing.B) {
		d := For[sendRequest]()
		b.ReportAllocs()
		for b.Loop() {
			var v sendRequest
			if err := d.Unmarshal(body, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v sendRequest
			if err := json.Unmarshal(body, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
