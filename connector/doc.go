// Package connector is the frontend server clients hold their long
// connections to: raw TCP and WebSocket on one port (the first bytes decide),
// the Pomelo handshake, heartbeats and kicks, and the sessions that carry a
// client's identity and settings.
//
// Every client message is handed to the configured handler.Func in order
// per session and in parallel across sessions; whether that handler runs
// the route locally or forwards it to a backend is the caller's business
// (the connector keeps no notion of the cluster).
//
// The package is built for many idle connections and slow clients: an idle
// connection holds no read buffer (the reader waits for readability before
// taking a pooled one), each session's writes go through a bounded queue
// drained by an on-demand writer that batches frames into one write, and a
// client that stops reading is closed rather than allowed to grow memory.
package connector
