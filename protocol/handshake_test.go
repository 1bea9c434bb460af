package protocol

import (
	"encoding/json"
	"errors"
	"testing"
)

// handshakeVectors are Pomelo 2.2.7's answers: its own handshake command
// (lib/connectors/commands/handshake.js) run under Node with the same
// dictionary (a.b.c, onX) and protos, by e2e/node/handshake_ref.js; the e2e
// test TestHandshakeMatchesPomeloCommand reruns it and compares.
const (
	refDictVersion  = "S8U4QYewCh6n4iJIeeLghw=="
	refProtoVersion = "XOMWXYfdPpnJ+XRspXT2sg=="
	refProtos       = `{"server":{"onX":{"a":{"option":"required","type":"string","tag":1},"__messages":{},"__tags":{"1":"a"}}},"client":{"a.b.c":{"n":{"option":"optional","type":"uInt32","tag":1},"__messages":{},"__tags":{"1":"n"}}},"version":"XOMWXYfdPpnJ+XRspXT2sg=="}`
	refDict         = `"dict":{"a.b.c":1,"onX":2},"routeToCode":{"a.b.c":1,"onX":2},"codeToRoute":{"1":"a.b.c","2":"onX"},"dictVersion":"S8U4QYewCh6n4iJIeeLghw=="`
)

func refOffer(t testing.TB, heartbeat int, dict, protos bool) HandshakeOffer {
	t.Helper()
	o := HandshakeOffer{Heartbeat: heartbeat}
	if dict {
		d, err := NewDictionary([]string{"a.b.c", "onX"})
		if err != nil {
			t.Fatal(err)
		}
		o.Dict = d
	}
	if protos {
		o.Protos, o.ProtoVersion = json.RawMessage(refProtos), refProtoVersion
	}
	return o
}

func TestHandshakeAnswersMatchPomelo(t *testing.T) {
	for _, c := range []struct {
		name         string
		heartbeat    int
		dict, protos bool
		hello        string
		user         string
		want         string
	}{
		{"new", 30, true, true, `{"sys":{"type":"js-websocket","protoVersion":0}}`, "",
			`{"code":200,"sys":{"heartbeat":30,` + refDict + `,"useDict":true,"protos":` + refProtos + `,"useProto":true}}`},
		{"cachedDict", 30, true, true, `{"sys":{"dictVersion":"` + refDictVersion + `"}}`, "",
			`{"code":200,"sys":{"heartbeat":30,"useDict":true,"protos":` + refProtos + `,"useProto":true}}`},
		{"cachedProtos", 30, true, true, `{"sys":{"protoVersion":"` + refProtoVersion + `"}}`, "",
			`{"code":200,"sys":{"heartbeat":30,` + refDict + `,"useDict":true,"useProto":true}}`},
		{"cachedBoth", 30, true, true, `{"sys":{"dictVersion":"` + refDictVersion + `","protoVersion":"` + refProtoVersion + `"}}`, "",
			`{"code":200,"sys":{"heartbeat":30,"useDict":true,"useProto":true}}`},
		{"cachedBothEscaped", 30, true, true, `{"sys":{"dictVersion":"` + refDictVersion + `","protoVersion":"XOMWXYfdPpnJ+XRspXT2sg\u003d\u003d"}}`, "",
			`{"code":200,"sys":{"heartbeat":30,"useDict":true,"useProto":true}}`},
		{"noHeartbeat", 0, true, false, `{"sys":{}}`, "",
			`{"code":200,"sys":{` + refDict + `,"useDict":true}}`},
		{"nothing", 0, false, false, `{"sys":{}}`, "", `{"code":200,"sys":{}}`},
		{"sysString", 3, false, false, `{"sys":"x"}`, "", `{"code":200,"sys":{"heartbeat":3}}`},
		{"user", 3, false, false, `{"sys":{},"user":{"a":1}}`, `{"motd":"hi <&>","n":[1,2]}`,
			`{"code":200,"sys":{"heartbeat":3},"user":{"motd":"hi <&>","n":[1,2]}}`},
		{"userFalsy", 3, false, false, `{"sys":{}}`, `0`, `{"code":200,"sys":{"heartbeat":3}}`},
		{"userEmpty", 3, false, false, `{"sys":{}}`, `{}`, `{"code":200,"sys":{"heartbeat":3},"user":{}}`},
		{"dictVersionNumber", 0, true, false, `{"sys":{"dictVersion":5}}`, "",
			`{"code":200,"sys":{` + refDict + `,"useDict":true}}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, err := NewHandshaker(refOffer(t, c.heartbeat, c.dict, c.protos))
			if err != nil {
				t.Fatal(err)
			}
			req, err := DecodeHandshakeRequest([]byte(c.hello))
			if err != nil {
				t.Fatal(err)
			}
			var user json.RawMessage
			if c.user != "" {
				user = json.RawMessage(c.user)
			}
			pkg, err := h.Answer(req, user)
			if err != nil {
				t.Fatal(err)
			}
			typ, n, err := ParseHeader(pkg)
			if err != nil || typ != Handshake || n != len(pkg)-HeaderLen {
				t.Fatalf("package %q: %v", pkg, err)
			}
			if body := string(pkg[HeaderLen:]); body != c.want {
				t.Fatalf("answer\n got %s\nwant %s", body, c.want)
			}
		})
	}
	if got := string(EncodeRefusal(CodeBadRequest)[HeaderLen:]); got != `{"code":500}` {
		t.Errorf("refusal %s", got)
	}
	if got := string(EncodeRefusal(CodeOldClient)[HeaderLen:]); got != `{"code":501}` {
		t.Errorf("refusal %s", got)
	}
}

// The dictionary's version is Pomelo's: md5(JSON.stringify(dict)), base64.
func TestDictionaryVersionMatchesPomelo(t *testing.T) {
	d, _ := NewDictionary([]string{"a.b.c", "onX"})
	if d.Version() != refDictVersion {
		t.Fatalf("version %s, want %s", d.Version(), refDictVersion)
	}
	// Keys JavaScript lists first (array indices) come first in the JSON
	// and hence in the version input.
	d2, _ := NewDictionary([]string{"b.c.d", "12"})
	if got := string(d2.AppendJSON(nil)); got != `{"12":2,"b.c.d":1}` {
		t.Fatalf("dict JSON %s", got)
	}
	if got := string(d2.AppendCodesJSON(nil)); got != `{"1":"b.c.d","2":"12"}` {
		t.Fatalf("codes JSON %s", got)
	}
}

// What Pomelo refuses with 500: no object, no sys, or a sys that
// JavaScript deems false; keys are case-sensitive.
func TestDecodeHandshakeRequest(t *testing.T) {
	for _, bad := range []string{``, `x`, `null`, `[]`, `"s"`, `1`, `{}`, `{"sys":null}`, `{"sys":false}`,
		`{"sys":0}`, `{"sys":-0.0}`, `{"sys":""}`, `{"SYS":{}}`, `{"sys":{}`} {
		if _, err := DecodeHandshakeRequest([]byte(bad)); !errors.Is(err, ErrHandshakeBody) {
			t.Errorf("%q: %v, want ErrHandshakeBody", bad, err)
		}
	}
	for _, good := range []string{`{"sys":{}}`, `{"sys":1}`, `{"sys":[]}`, `{"sys":true}`, `{"sys":"0"}`, ` {"sys":{"type":7}} `} {
		if _, err := DecodeHandshakeRequest([]byte(good)); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
	req, err := DecodeHandshakeRequest([]byte(`{"sys":{"type":"c","version":"0.3","dictVersion":"v","protoVersion":0,"rsa":{}},"user":{"x":1}}`))
	if err != nil || req.Sys.Type != "c" || req.Sys.Version != "0.3" || req.Sys.DictVersion != "v" ||
		string(req.Sys.ProtoVersion) != "0" || string(req.User) != `{"x":1}` {
		t.Fatalf("%+v %v", req, err)
	}
}

// The answers without a user part are shared, so a handshake allocates
// only what decoding the client's JSON takes.
func BenchmarkHandshake(b *testing.B) {
	h, err := NewHandshaker(refOffer(b, 30, true, true))
	if err != nil {
		b.Fatal(err)
	}
	hello := []byte(`{"sys":{"type":"js-websocket","version":"0.0.1","protoVersion":"` + refProtoVersion + `","rsa":{}},"user":{}}`)
	b.ReportAllocs()
	for b.Loop() {
		req, err := DecodeHandshakeRequest(hello)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := h.Answer(req, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// libpomelo2 (NetEase's C client, also under its C# and Java bindings)
// asserts on the answer in tcp__on_handshake_resp: with useDict,
// dictVersion, routeToCode and codeToRoute come all together or not at
// all, and afterwards it must hold a dictionary (sent now or cached); with
// useProto, the protos' version, server and client likewise. An answer
// with dictVersion alone aborted it. Every answer, for every client state,
// passes those checks here.
func TestAnswersPassLibpomelo2Assertions(t *testing.T) {
	h, err := NewHandshaker(refOffer(t, 30, true, true))
	if err != nil {
		t.Fatal(err)
	}
	for _, hello := range []string{
		`{"sys":{"type":"linux","version":"0.3.5"}}`,
		`{"sys":{"dictVersion":"` + refDictVersion + `"}}`,
		`{"sys":{"protoVersion":"` + refProtoVersion + `"}}`,
		`{"sys":{"dictVersion":"` + refDictVersion + `","protoVersion":"` + refProtoVersion + `"}}`,
		`{"sys":{"dictVersion":"old","protoVersion":"old"}}`,
	} {
		req, _ := DecodeHandshakeRequest([]byte(hello))
		pkg, err := h.Answer(req, nil)
		if err != nil {
			t.Fatal(err)
		}
		var a struct {
			Code int `json:"code"`
			Sys  map[string]json.RawMessage
		}
		if err := json.Unmarshal(pkg[HeaderLen:], &a); err != nil || a.Code != 200 || a.Sys == nil {
			t.Fatalf("%s: answer %s: %v", hello, pkg[HeaderLen:], err)
		}
		_, ver := a.Sys["dictVersion"]
		_, r2c := a.Sys["routeToCode"]
		_, c2r := a.Sys["codeToRoute"]
		clientHasDict := req.Sys.DictVersion == refDictVersion
		if ver != r2c || r2c != c2r || !ver && !clientHasDict {
			t.Errorf("%s: dictionary fields dictVersion %v routeToCode %v codeToRoute %v (client cached: %v): libpomelo2 asserts",
				hello, ver, r2c, c2r, clientHasDict)
		}
		var protos map[string]json.RawMessage
		if raw, ok := a.Sys["protos"]; ok {
			json.Unmarshal(raw, &protos)
		}
		_, pv := protos["version"]
		_, ps := protos["server"]
		_, pc := protos["client"]
		clientHasProtos := string(req.Sys.ProtoVersion) == `"`+refProtoVersion+`"`
		if pv != ps || ps != pc || !pv && !clientHasProtos {
			t.Errorf("%s: protos fields version %v server %v client %v (client cached: %v): libpomelo2 asserts", hello, pv, ps, pc, clientHasProtos)
		}
	}
}
