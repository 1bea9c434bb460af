package protocol

import (
	"encoding/json"
	"fmt"
)

// Handshake result codes, as Pomelo's handshake command uses them.
const (
	CodeOK         = 200 // handshake accepted
	CodeBadRequest = 500 // malformed handshake, or the user hook refused it
	CodeOldClient  = 501 // the client type/version check refused it
)

// HandshakeRequest is the JSON body of the client's handshake package.
type HandshakeRequest struct {
	Sys  HandshakeClientSys `json:"sys"`
	User json.RawMessage    `json:"user,omitempty"`
}

// HandshakeClientSys is the framework part of the client's handshake.
type HandshakeClientSys struct {
	Type         string          `json:"type,omitempty"`    // e.g. "js-websocket", "c-tcp"
	Version      string          `json:"version,omitempty"` // client library version
	DictVersion  string          `json:"dictVersion,omitempty"`
	ProtoVersion json.RawMessage `json:"protoVersion,omitempty"`
	RSA          json.RawMessage `json:"rsa,omitempty"`
}

// HandshakeResponse is the JSON body of the server's handshake package.
type HandshakeResponse struct {
	Code int                 `json:"code"`
	Sys  *HandshakeServerSys `json:"sys,omitempty"`
	User json.RawMessage     `json:"user,omitempty"`
}

// HandshakeServerSys is the framework part of the server's answer. Pomelo
// sends the dictionary under several names for different client generations;
// all of them are filled.
type HandshakeServerSys struct {
	Heartbeat   int               `json:"heartbeat,omitempty"` // seconds; 0 means no heartbeats
	Dict        *Dictionary       `json:"dict,omitempty"`
	RouteToCode *Dictionary       `json:"routeToCode,omitempty"`
	CodeToRoute map[string]string `json:"codeToRoute,omitempty"`
	DictVersion string            `json:"dictVersion,omitempty"`
	UseDict     bool              `json:"useDict,omitempty"`
	Protos      json.RawMessage   `json:"protos,omitempty"`
}

// NewHandshakeServerSys fills the sys part for a heartbeat interval in
// seconds and a dictionary (nil for none). When the client already holds the
// dictionary version, the dictionary itself is left out.
func NewHandshakeServerSys(heartbeat int, dict *Dictionary, clientDictVersion string) *HandshakeServerSys {
	sys := &HandshakeServerSys{Heartbeat: heartbeat}
	if dict.Len() > 0 {
		sys.UseDict = true
		sys.DictVersion = dict.Version()
		if clientDictVersion != dict.Version() {
			sys.Dict, sys.RouteToCode = dict, dict
			sys.CodeToRoute = make(map[string]string, dict.Len())
			for i, r := range dict.routes {
				sys.CodeToRoute[fmt.Sprint(i+1)] = r
			}
		}
	}
	return sys
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

// EncodeHandshakeResponse returns a handshake package carrying r.
func EncodeHandshakeResponse(r *HandshakeResponse) ([]byte, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("protocol: encode handshake response: %w", err)
	}
	return EncodePackage(Handshake, body)
}
