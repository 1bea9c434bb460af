package connector

import (
	"sync"

	"github.com/shaddock/shaddock/pomelopb"
)

// protoBufPool holds scratch buffers for protobuf-encoded bodies, which
// live only until their package is encoded.
var protoBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// encodeProto appends body (JSON) encoded with the server proto m. A body
// the proto cannot carry (a required field missing, a value of the wrong
// type) goes out empty, as Pomelo sends it then (its encoder returns
// nothing), with a log line: the client decodes an empty message.
func (s *Server) encodeProto(m *pomelopb.Message, route string, body, dst []byte) []byte {
	if len(body) == 0 { // a handler that answered nothing: nothing to encode
		return dst[:0]
	}
	out, err := m.Encode(dst, body)
	if err != nil {
		s.log.Warn("body does not fit the route's server proto; sending it empty", "route", route, "err", err)
		return dst[:0]
	}
	return out
}

// decodeRequestBody returns the JSON a handler reads for a request or
// notify body, in a new buffer (the read buffer is reused). On a route with
// a client proto the body is protobuf, unless it starts with '{': a
// pomelo-protobuf message never does (0x7b would be wire type 3, which it
// never writes), so clients that send JSON on such a route still work.
func (s *Session) decodeRequestBody(route string, body []byte) ([]byte, error) {
	m := s.srv.cfg.Protos.Client(route)
	if m == nil || len(body) > 0 && body[0] == '{' {
		return append([]byte(nil), body...), nil
	}
	return m.Decode(make([]byte, 0, 2*len(body)+16), body)
}
