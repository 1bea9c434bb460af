package client

import (
	"errors"
	"fmt"
)

// Errors a Client ends with; Err and failed calls wrap them (test with
// errors.Is). A server that closes the connection in an orderly way ends the
// client with an error wrapping io.EOF.
var (
	// ErrClosed: Close was called.
	ErrClosed = errors.New("client: closed")
	// ErrHeartbeatTimeout: nothing arrived from the server for twice its
	// heartbeat interval.
	ErrHeartbeatTimeout = errors.New("client: heartbeat timeout")
)

// KickedError ends a client the server kicked; Reason is the kick body's
// "reason" (or the raw body when it is not the usual JSON).
type KickedError struct {
	Reason string
}

// Error names the reason the server gave.
func (e *KickedError) Error() string {
	return fmt.Sprintf("client: kicked by the server: %q", e.Reason)
}

// HandshakeError is a handshake answer with a code other than 200.
type HandshakeError struct {
	Code int
}

// Error names the code and, for Pomelo's codes, what it means.
func (e *HandshakeError) Error() string {
	switch e.Code {
	case 500:
		return "client: handshake refused with code 500 (bad handshake, or refused by the server)"
	case 501:
		return "client: handshake refused with code 501 (client type or version too old)"
	}
	return fmt.Sprintf("client: handshake refused with code %d", e.Code)
}
