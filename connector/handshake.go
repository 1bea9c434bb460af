package connector

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/shaddock/shaddock/protocol"
)

// handshake answers the client's handshake package on the dispatch worker
// (user hooks may block; the reader must not), in the order of Pomelo
// 2.2.7's handshake command: no sys → 500, client check → 501, user hook
// (an error → 500), then the answer (protocol.Handshaker).
func (s *Session) handshake(body []byte) {
	cfg := &s.srv.cfg
	req, err := protocol.DecodeHandshakeRequest(body)
	if err != nil {
		s.logger().Info("malformed handshake; refusing", "err", err)
		s.refuse(protocol.CodeBadRequest)
		return
	}
	if cfg.CheckClient != nil && !cfg.CheckClient(req.Sys.Type, req.Sys.Version) {
		s.logger().Info("client refused by version check", "type", req.Sys.Type, "version", req.Sys.Version)
		s.refuse(protocol.CodeOldClient)
		return
	}
	var user json.RawMessage
	if cfg.UserHandshake != nil {
		ctx, cancel := context.WithTimeout(s.srv.ctx, cfg.HandshakeTimeout)
		answer, err := cfg.UserHandshake(ctx, s, req.User)
		cancel()
		if err != nil {
			s.logger().Info("handshake refused by user hook", "err", err)
			s.refuse(protocol.CodeBadRequest)
			return
		}
		if answer != nil {
			if user, err = marshalCompact(answer); err != nil {
				s.logger().Error("handshake user answer cannot be encoded", "err", err)
				s.refuse(protocol.CodeBadRequest)
				return
			}
		}
	}
	pkg, err := s.srv.handshaker.Answer(req, user)
	if err != nil {
		s.logger().Error("handshake answer cannot be encoded", "err", err)
		s.refuse(protocol.CodeBadRequest)
		return
	}
	// Ready for the ack before the answer can reach the client.
	if s.state.CompareAndSwap(stHandshaking, stWaitAck) {
		s.SendPackage(pkg)
	}
}

// marshalCompact encodes v as JSON.stringify would write it: compact, and
// without encoding/json's escaping of <, > and &.
func marshalCompact(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b.Bytes()); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// refuse answers the handshake with an error code and closes, as Pomelo does.
func (s *Session) refuse(code int) {
	s.enqueueWrite(outbound{b: protocol.EncodeRefusal(code)}, true)
}
