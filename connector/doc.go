// Package connector is the frontend server clients hold their long
// connections to: raw TCP and WebSocket on one port (the first bytes decide),
// optionally under TLS (Config.TLS: TLS over TCP and wss://), the Pomelo
// handshake answered as Pomelo 2.2.7 answers it, Pomelo protobuf bodies
// (Config.Protos: transcoded to and from the JSON handlers read and write),
// heartbeats and kicks, and the sessions that carry a client's identity and
// settings.
//
// Every client message is handed to the configured handler.Func in order
// per session and in parallel across sessions; whether that handler runs
// the route locally or forwards it to a backend is the caller's business
// (the connector keeps no notion of the cluster).
//
// The package is built for many idle connections and slow clients: an idle
// connection holds no read buffer (the reader waits for readability before
// taking a pooled one) and, on Linux, no goroutine either (a session silent
// for a second, or that only heartbeats, waits in a per-server epoll set:
// idle_linux.go), equal session settings share one map, each session's writes go through a bounded queue
// drained by an on-demand writer that batches a client's packages into one
// write (on WebSocket, into one binary frame, which Pomelo's clients decode
// package by package), and a client that stops reading is closed rather
// than allowed to grow memory.
// TLS connections are the exception to the bufferless idle: crypto/tls
// may hold decrypted bytes the socket's readiness does not show, so their
// reader blocks in Read with a pooled buffer, and their writes go to a
// goroutine of their own rather than the shared flusher.
package connector
