package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Handshake result codes, as Pomelo's handshake command uses them.
const (
	CodeOK         = 200 // handshake accepted
	CodeBadRequest = 500 // malformed handshake, or the user hook refused it
	CodeOldClient  = 501 // the client type/version check refused it
)

// ErrHandshakeBody is returned by DecodeHandshakeRequest for a body Pomelo
// refuses with code 500: not JSON, not an object, or without a "sys" that
// JavaScript deems true.
var ErrHandshakeBody = errors.New("protocol: handshake without sys")

// HandshakeRequest is the JSON body of the client's handshake package.
type HandshakeRequest struct {
	Sys  HandshakeClientSys `json:"sys"`
	User json.RawMessage    `json:"user,omitempty"`
}

// HandshakeClientSys is the framework part of the client's handshake.
type HandshakeClientSys struct {
	Type        string `json:"type,omitempty"`    // e.g. "js-websocket", "c-tcp"
	Version     string `json:"version,omitempty"` // client library version
	DictVersion string `json:"dictVersion,omitempty"`
	// ProtoVersion is kept as sent: Pomelo's JS client sends the number 0
	// when it has no protos, libpomelo2 a string or nothing.
	ProtoVersion json.RawMessage `json:"protoVersion,omitempty"`
	RSA          json.RawMessage `json:"rsa,omitempty"`
}

// DecodeHandshakeRequest reads a client's handshake body with the leniency
// of Pomelo 2.2.7 (handler.js parses it, handshake.js checks msg.sys): a body
// that is not a JSON object, or whose sys is missing, null, false, 0 or "",
// is ErrHandshakeBody (answered 500); any other sys is accepted, and of its
// fields only those of the expected JSON type are taken (a dictVersion that
// is not a string is no version). Keys are case-sensitive, as in JavaScript.
func DecodeHandshakeRequest(body []byte) (*HandshakeRequest, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return nil, fmt.Errorf("%w: body is not a JSON object", ErrHandshakeBody)
	}
	sys := top["sys"]
	if !truthy(sys) {
		return nil, ErrHandshakeBody
	}
	req := &HandshakeRequest{User: top["user"]}
	var fields map[string]json.RawMessage
	if sys[0] == '{' && json.Unmarshal(sys, &fields) == nil {
		req.Sys.Type = jsonString(fields["type"])
		req.Sys.Version = jsonString(fields["version"])
		req.Sys.DictVersion = jsonString(fields["dictVersion"])
		req.Sys.ProtoVersion = fields["protoVersion"]
		req.Sys.RSA = fields["rsa"]
	}
	return req, nil
}

// jsonString returns the string a JSON string literal holds, "" for any
// other JSON value.
func jsonString(raw json.RawMessage) string {
	if len(raw) < 2 || raw[0] != '"' {
		return ""
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// truthy reports whether JavaScript deems the JSON value true: everything
// but null, false, 0 and "" (and a missing value).
func truthy(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0, string(raw) == "null", string(raw) == "false", string(raw) == `""`:
		return false
	case raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9':
		f, err := strconv.ParseFloat(string(raw), 64)
		return err != nil || f != 0
	}
	return true
}

// HandshakeOffer is what a server's handshake answers are made of: the
// options of Pomelo's connector (heartbeat, useDict, useProtobuf).
type HandshakeOffer struct {
	// Heartbeat is the interval in seconds; 0 leaves it out of the answer
	// (Pomelo's connector without a heartbeat option), and the client sends
	// no heartbeats.
	Heartbeat int
	// Dict is the route dictionary; nil leaves the dictionary out (useDict
	// off).
	Dict *Dictionary
	// Protos is the object sent as sys.protos, {"server":…,"client":…,
	// "version":…}, and ProtoVersion its version; nil Protos leaves protobuf
	// out (useProtobuf off).
	Protos       json.RawMessage
	ProtoVersion string
}

// Handshaker answers client handshakes field for field as Pomelo 2.2.7's
// handshake command does (lib/connectors/commands/handshake.js):
//
//	{"code":200,"sys":{"heartbeat":H,
//	  "dict":D,"routeToCode":D,"codeToRoute":C,"dictVersion":V,   unless the client holds V
//	  "useDict":true,                                             with a dictionary
//	  "protos":P,                                                 unless the client holds P's version
//	  "useProto":true},                                           with protos
//	 "user":U}                                                    when the user hook answers
//
// The four answers without a user part are encoded once and shared. It is
// immutable and safe for concurrent use.
type Handshaker struct {
	offer HandshakeOffer
	sys   [4][]byte // sys objects; index bit 0: dictionary left out, bit 1: protos left out
	pkgs  [4][]byte // the answer packages without a user part
}

// NewHandshaker encodes the answers for o.
func NewHandshaker(o HandshakeOffer) (*Handshaker, error) {
	if o.Protos != nil && !json.Valid(o.Protos) {
		return nil, errors.New("protocol: handshake protos are not JSON")
	}
	h := &Handshaker{offer: o}
	for i := range h.sys {
		h.sys[i] = h.appendSys(nil, i&1 != 0, i&2 != 0)
		pkg, err := h.encode(h.sys[i], nil)
		if err != nil {
			return nil, err
		}
		h.pkgs[i] = pkg
	}
	return h, nil
}

func (h *Handshaker) appendSys(b []byte, dictHeld, protosHeld bool) []byte {
	b = append(b, '{')
	sep := func() {
		if len(b) > 1 {
			b = append(b, ',')
		}
	}
	if h.offer.Heartbeat > 0 {
		b = append(b, `"heartbeat":`...)
		b = strconv.AppendInt(b, int64(h.offer.Heartbeat), 10)
	}
	if d := h.offer.Dict; d != nil {
		if !dictHeld {
			sep()
			b = append(b, `"dict":`...)
			b = d.AppendJSON(b)
			b = append(b, `,"routeToCode":`...)
			b = d.AppendJSON(b)
			b = append(b, `,"codeToRoute":`...)
			b = d.AppendCodesJSON(b)
			b = append(b, `,"dictVersion":`...)
			b = strconv.AppendQuote(b, d.Version()) // base64: nothing to escape
		}
		sep()
		b = append(b, `"useDict":true`...)
	}
	if h.offer.Protos != nil {
		if !protosHeld {
			sep()
			b = append(b, `"protos":`...)
			b = append(b, h.offer.Protos...)
		}
		sep()
		b = append(b, `"useProto":true`...)
	}
	return append(b, '}')
}

// encode makes the answer package for a sys object and a user part.
func (h *Handshaker) encode(sys, user []byte) ([]byte, error) {
	n := len(`{"code":200,"sys":}`) + len(sys)
	if user != nil {
		n += len(`,"user":`) + len(user)
	}
	if n > MaxBodyLen {
		return nil, fmt.Errorf("%w: handshake answer of %d bytes", ErrBodyTooLarge, n)
	}
	pkg := make([]byte, HeaderLen, HeaderLen+n)
	PutHeader(pkg, Handshake, n)
	pkg = append(pkg, `{"code":200,"sys":`...)
	pkg = append(pkg, sys...)
	if user != nil {
		pkg = append(pkg, `,"user":`...)
		pkg = append(pkg, user...)
	}
	return append(pkg, '}'), nil
}

// Answer returns the handshake package accepting req. user is the JSON of
// the user hook's answer, nil for none; as in Pomelo, a value JavaScript
// deems false (null, false, 0, "") is left out. The dictionary and the
// protos are left out when the client holds their current versions. An
// answer without a user part is shared: callers must not modify it.
func (h *Handshaker) Answer(req *HandshakeRequest, user json.RawMessage) ([]byte, error) {
	i := 0
	if d := h.offer.Dict; d != nil && req.Sys.DictVersion != "" && req.Sys.DictVersion == d.Version() {
		i |= 1
	}
	if v := h.offer.ProtoVersion; h.offer.Protos != nil && v != "" && jsonString(req.Sys.ProtoVersion) == v {
		i |= 2
	}
	if !truthy(user) {
		return h.pkgs[i], nil
	}
	return h.encode(h.sys[i], user)
}

// EncodeRefusal returns the handshake package refusing a client with code
// (CodeBadRequest or CodeOldClient): {"code":N}, as Pomelo sends before it
// closes the connection.
func EncodeRefusal(code int) []byte {
	body := strconv.AppendInt([]byte(`{"code":`), int64(code), 10)
	pkg, _ := EncodePackage(Handshake, append(body, '}'))
	return pkg
}

// HandshakeResponse is the JSON body of the server's handshake package, as
// a client decodes it.
type HandshakeResponse struct {
	Code int                 `json:"code"`
	Sys  *HandshakeServerSys `json:"sys,omitempty"`
	User json.RawMessage     `json:"user,omitempty"`
}

// HandshakeServerSys is the framework part of the server's answer, as a
// client decodes it. Pomelo sends the dictionary under several names for
// different client generations.
type HandshakeServerSys struct {
	Heartbeat   int               `json:"heartbeat,omitempty"` // seconds; 0 means no heartbeats
	Dict        *Dictionary       `json:"dict,omitempty"`
	RouteToCode *Dictionary       `json:"routeToCode,omitempty"`
	CodeToRoute map[string]string `json:"codeToRoute,omitempty"`
	DictVersion string            `json:"dictVersion,omitempty"`
	UseDict     bool              `json:"useDict,omitempty"`
	Protos      json.RawMessage   `json:"protos,omitempty"`
	UseProto    bool              `json:"useProto,omitempty"`
}

// KickBody is the JSON body of a kick package.
type KickBody struct {
	Reason string `json:"reason"`
}

// EncodeKick returns a kick package with the given reason.
func EncodeKick(reason string) []byte {
	body, _ := json.Marshal(KickBody{Reason: reason}) // a string field cannot fail
	pkg, _ := EncodePackage(Kick, body)
	return pkg
}
