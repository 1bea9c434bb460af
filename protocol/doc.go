// Package protocol implements the Pomelo wire protocol: the package framing
// (1 type byte, 3-byte big-endian body length, body), the message codec carried
// in data packages (flag byte, base-128 message id, route string or 2-byte
// dictionary code, body), the route dictionary and the handshake bodies.
//
// It is byte-for-byte compatible with NetEase's pomelo-protocol, so unmodified
// Pomelo clients (JS, Unity/C#, Go) interoperate with shaddock servers.
//
// The package is pure encoding: it does no I/O, keeps no state besides what a
// Decoder carries between reads, and allocates only where a caller asks for a
// new buffer. It does not know about sessions, handlers or transports.
package protocol
