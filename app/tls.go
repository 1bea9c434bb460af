package app

import (
	"crypto/tls"
	"fmt"

	"github.com/shaddock/shaddock/config"
)

// clientTLS loads the certificate and key servers.toml gives a frontend
// (tlsCert, tlsKey; paths relative to the working directory, which is base
// when the master starts the server), or returns nil when it has none.
// Errors name the file and line of the server's entry.
func clientTLS(configPath string, s config.Server) (*tls.Config, error) {
	if s.TLSCert == "" && s.TLSKey == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(s.TLSCert, s.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("%s:%d: %s: tlsCert %q, tlsKey %q: %w", configPath, s.Line, s.ID, s.TLSCert, s.TLSKey, err)
	}
	// HTTP/1.1 only: the WebSocket upgrade is an HTTP/1.1 request.
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}, nil
}
