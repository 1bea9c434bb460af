package pomelopb

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// The vectors below are what NetEase's pomelo-protobuf 0.4.0 (the codec of
// Pomelo 2.2.7) produces under Node 20 for the same protos and objects:
// its parse, its encode, its decode, and Pomelo's version
// (md5(JSON.stringify(client)+JSON.stringify(server)), base64).
const testServerProtos = `{
  "onChat": {"required string msg": 1, "required string from": 2, "required string target": 3},
  "rich": {"optional uInt32 n": 1, "optional sInt32 s": 2, "optional int32 i": 3, "optional float f": 4, "optional double d": 5,
           "repeated uInt32 ns": 6, "repeated string names": 7, "repeated Item items": 8, "optional Point p": 9, "repeated float fs": 10, "optional string big": 300,
           "message Item": {"required string name": 1, "optional uInt32 count": 2}},
  "message Point": {"required sInt32 x": 1, "required sInt32 y": 2}
}`

const testHandshake = `{"server":{"onChat":{"msg":{"option":"required","type":"string","tag":1},"from":{"option":"required","type":"string","tag":2},"target":{"option":"required","type":"string","tag":3},"__messages":{},"__tags":{"1":"msg","2":"from","3":"target"}},"rich":{"n":{"option":"optional","type":"uInt32","tag":1},"s":{"option":"optional","type":"sInt32","tag":2},"i":{"option":"optional","type":"int32","tag":3},"f":{"option":"optional","type":"float","tag":4},"d":{"option":"optional","type":"double","tag":5},"ns":{"option":"repeated","type":"uInt32","tag":6},"names":{"option":"repeated","type":"string","tag":7},"items":{"option":"repeated","type":"Item","tag":8},"p":{"option":"optional","type":"Point","tag":9},"fs":{"option":"repeated","type":"float","tag":10},"big":{"option":"optional","type":"string","tag":300},"__messages":{"Item":{"name":{"option":"required","type":"string","tag":1},"count":{"option":"optional","type":"uInt32","tag":2},"__messages":{},"__tags":{"1":"name","2":"count"}}},"__tags":{"1":"n","2":"s","3":"i","4":"f","5":"d","6":"ns","7":"names","8":"items","9":"p","10":"fs","300":"big"}},"message Point":{"x":{"option":"required","type":"sInt32","tag":1},"y":{"option":"required","type":"sInt32","tag":2},"__messages":{},"__tags":{"1":"x","2":"y"}}},"client":{},"version":"eXAIvyO3BUL+zUBmEgYrpg=="}`

var vectors = []struct {
	route, json, hex, decoded string
}{
	{"onChat", `{"msg":"héllo \"x\"","from":"a","target":"*"}`, "0a0a68c3a96c6c6f202278221201611a012a", ""},
	{"rich", `{"n":300,"s":-5,"i":-1,"f":1.5,"d":-0.1,"ns":[1,200,3],"names":["a","b"],"items":[{"name":"x","count":2},{"name":"y"}],"p":{"x":-3,"y":4},"fs":[0.5,2],"big":"zz"}`,
		"08ac0210091801250000c03f299a9999999999b9bf300301c801033a01613a016242050a0178100242030a01794a040805100855020000003f00000040e212027a7a", ""},
	{"rich", `{"items":[], "n": 12.7}`, "080c", `{"n":12}`},
}

func testProtos(t testing.TB) *Protos {
	t.Helper()
	p, err := Parse([]byte(testServerProtos), []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseMatchesPomelo(t *testing.T) {
	p := testProtos(t)
	if got := string(p.HandshakeJSON()); got != testHandshake {
		t.Fatalf("handshake protos\n got %s\nwant %s", got, testHandshake)
	}
	if p.Version() != "eXAIvyO3BUL+zUBmEgYrpg==" {
		t.Fatalf("version %s", p.Version())
	}
	// Whitespace and formatting of the files do not change the version.
	compact, _ := Parse([]byte(strings.Join(strings.Fields(testServerProtos), " ")), []byte("{ }"))
	if compact.Version() != p.Version() {
		t.Fatal("version depends on formatting")
	}
	// Pomelo with useProtobuf and no protos files: version "" and empty protos.
	none, err := Parse(nil, nil)
	if err != nil || none.Version() != "" || string(none.HandshakeJSON()) != `{"server":{},"client":{},"version":""}` {
		t.Fatalf("no protos: %q %s %v", none.Version(), none.HandshakeJSON(), err)
	}
}

func TestEncodeDecodeMatchPomelo(t *testing.T) {
	p := testProtos(t)
	for _, v := range vectors {
		m := p.Server(v.route)
		got, err := m.Encode(nil, []byte(v.json))
		if err != nil {
			t.Fatalf("encode %s: %v", v.json, err)
		}
		if hex.EncodeToString(got) != v.hex {
			t.Fatalf("encode %s\n got %x\nwant %s", v.json, got, v.hex)
		}
		want := v.decoded
		if want == "" {
			want = v.json
		}
		dec, err := m.Decode(nil, got)
		if err != nil {
			t.Fatalf("decode %x: %v", got, err)
		}
		if string(dec) != want {
			t.Fatalf("decode %x\n got %s\nwant %s", got, dec, want)
		}
	}
}

// The client side reads the handshake's parsed form back into the same
// protos: same version, same bytes.
func TestParseHandshake(t *testing.T) {
	p, err := ParseHandshake([]byte(testHandshake))
	if err != nil {
		t.Fatal(err)
	}
	if p.Version() != "eXAIvyO3BUL+zUBmEgYrpg==" {
		t.Fatalf("version %q", p.Version())
	}
	for _, v := range vectors {
		got, err := p.Server(v.route).Encode(nil, []byte(v.json))
		if err != nil || hex.EncodeToString(got) != v.hex {
			t.Fatalf("encode %s: %x %v", v.json, got, err)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	p := testProtos(t)
	for _, c := range []struct {
		route, body string
		want        error
	}{
		{"onChat", `{"msg":"a","from":"b"}`, ErrRequired},
		{"onChat", `{"msg":"a","from":"b","target":null}`, ErrRequired},
		{"onChat", `{"msg":1,"from":"b","target":"c"}`, ErrValue},
		{"rich", `{"n":-1}`, ErrValue},
		{"rich", `{"n":true}`, ErrValue},
		{"rich", `{"ns":7}`, ErrValue},
		{"rich", `{"p":{"x":1}}`, ErrRequired},
		{"rich", `{"n":1e300}`, ErrValue},
		{"rich", `[1]`, ErrValue},
		{"rich", `{"n":1`, ErrJSON},
		{"rich", `{"n":1} x`, ErrJSON},
		{"rich", `{"zz":[1,{"a":tru}]}`, ErrJSON},
		{"rich", `{"names":["a\x01"]}`, ErrJSON},
	} {
		if _, err := p.Server(c.route).Encode(nil, []byte(c.body)); !errors.Is(err, c.want) {
			t.Errorf("encode %s %s: %v, want %v", c.route, c.body, err, c.want)
		}
	}
	// Unknown keys are skipped, null is a missing value, escapes are decoded.
	got, err := p.Server("rich").Encode(nil, []byte(` { "zz" : {"a":[1,2.5e3,"x",null,true,false,{}]}, "p": null, "big":"\u00e9\ud83d\ude00\ud800\n" } `))
	if err != nil {
		t.Fatal(err)
	}
	if want := "e2120ac3a9f09f9880efbfbd0a"; hex.EncodeToString(got) != want {
		t.Fatalf("got %x want %s", got, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	p := testProtos(t)
	m := p.Server("rich")
	for _, b := range []string{
		"58",                     // tag 11: no such field
		"0a",                     // truncated varint of n... (tag 1 with nothing after)
		"3a05616263",             // string longer than the body
		"25000000",               // float cut short
		"3005",                   // 5 packed elements missing
		"ffffffffffffffffffff01", // key overflows 64 bits
		"2500 00c07f",            // NaN float
	} {
		raw, _ := hex.DecodeString(strings.ReplaceAll(b, " ", ""))
		if out, err := m.Decode(nil, raw); err == nil {
			t.Errorf("decode %s = %s, want an error", b, out)
		}
	}
	// A repeated field in several places is one array; a scalar repeated
	// keeps its last value, at the place it first appeared.
	raw, _ := hex.DecodeString("3a01610801" + "3a0162" + "0802")
	out, err := m.Decode(nil, raw)
	if err != nil || string(out) != `{"names":["a","b"],"n":2}` {
		t.Fatalf("got %s %v", out, err)
	}
}

func TestParseRefusesWhatPomeloMangles(t *testing.T) {
	for _, c := range []struct{ protos, want string }{
		{`{"r":{"required uInt64 a":1}}`, "cannot encode"},
		{`{"r":{"required bool a":1}}`, "cannot encode"},
		{`{"r":{"required Foo a":1}}`, "cannot encode"},
		{`{"r":{"required string a":1,"optional string b":1}}`, "tag 1 used by a and b"},
		{`{"r":{"required string a":1,"optional uInt32 a":2}}`, "defined twice"},
		{`{"r":{"required string":1}}`, "neither"},
		{`{"r":{"requird string a":1}}`, "neither"},
		{`{"r":{"required string a":0}}`, "not an integer"},
		{`{"r":{"required string a":1.5}}`, "not an integer"},
		{`{"r":{"required string a":"1"}}`, "not an integer"},
		{`{"r":[1]}`, "JSON object"},
		{`[1]`, "JSON object"},
		// A nested message is visible to its container's fields only.
		{`{"r":{"message X":{"required string a":1},"required Y y":1},"message Y":{"required X x":1}}`, "cannot encode"},
	} {
		_, err := Parse([]byte(c.protos), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%s) = %v, want %q", c.protos, err, c.want)
		}
	}
}

// Fields of a nested message find top-level "message X" entries, as
// pomelo-protobuf looks them up.
func TestGlobalMessageFromNested(t *testing.T) {
	p, err := Parse([]byte(`{"r":{"message X":{"required Y y":1},"required X x":1},"message Y":{"required uInt32 v":1}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Server("r").Encode(nil, []byte(`{"x":{"y":{"v":5}}}`))
	if err != nil || hex.EncodeToString(got) != "0a040a020805" {
		t.Fatalf("got %x %v", got, err)
	}
}
