package connector

import (
	"context"
	"encoding/json"

	"github.com/shaddock/shaddock/protocol"
)

// handshake answers the client's handshake package on the dispatch worker
// (user hooks may block; the reader must not).
func (s *Session) handshake(body []byte) {
	cfg := &s.srv.cfg
	var req protocol.HandshakeRequest
	if err := json.Unmarshal(body, &req); err != nil || len(body) == 0 || body[0] != '{' {
		s.logger().Info("malformed handshake; refusing", "err", err)
		s.refuse(protocol.CodeBadRequest)
		return
	}
	if cfg.CheckClient != nil && !cfg.CheckClient(req.Sys.Type, req.Sys.Version) {
		s.logger().Info("client refused by version check", "type", req.Sys.Type, "version", req.Sys.Version)
		s.refuse(protocol.CodeOldClient)
		return
	}
	pkg := s.srv.handshakeOK
	if cfg.UserHandshake != nil || req.Sys.DictVersion != "" {
		resp := protocol.HandshakeResponse{
			Code: protocol.CodeOK,
			Sys:  protocol.NewHandshakeServerSys(int(cfg.Heartbeat.Seconds()), cfg.Dictionary, req.Sys.DictVersion),
		}
		if cfg.UserHandshake != nil {
			ctx, cancel := context.WithTimeout(s.srv.ctx, cfg.HandshakeTimeout)
			user, err := cfg.UserHandshake(ctx, s, req.User)
			cancel()
			if err != nil {
				s.logger().Info("handshake refused by user hook", "err", err)
				s.refuse(protocol.CodeBadRequest)
				return
			}
			if user != nil {
				if resp.User, err = json.Marshal(user); err != nil {
					s.logger().Error("handshake user answer cannot be encoded", "err", err)
					s.refuse(protocol.CodeBadRequest)
					return
				}
			}
		}
		var err error
		if pkg, err = protocol.EncodeHandshakeResponse(&resp); err != nil {
			s.logger().Error("handshake answer cannot be encoded", "err", err)
			s.refuse(protocol.CodeBadRequest)
			return
		}
	}
	// Ready for the ack before the answer can reach the client.
	if s.state.CompareAndSwap(stHandshaking, stWaitAck) {
		s.SendPackage(pkg)
	}
}

// refuse answers the handshake with an error code and closes, as Pomelo does.
func (s *Session) refuse(code int) {
	pkg, _ := protocol.EncodeHandshakeResponse(&protocol.HandshakeResponse{Code: code})
	s.enqueueWrite(outbound{b: pkg}, true)
}
