// Package rpc is the cluster transport: every server's gRPC endpoint (a
// Node), the pool of connections to its peers, the membership view fed by
// the master's registry, and the routing that picks a server of a type for a
// session or key.
//
// Forwarded requests, remote calls and pushes ride one long-lived
// bidirectional stream per peer and kind, multiplexed by sequence number, so
// the per-message cost is one protobuf message rather than a new HTTP/2
// stream. Every call carries a deadline; a peer whose connection fails is
// marked down and left out of routing until it comes back, so calls to it
// fail at once with a clear error instead of waiting.
//
// Servers are named by instance (Instance: id and epoch): requests for a
// predecessor of a server never reach its successor. A push that cannot be
// delivered kicks its sessions (KickEventually). Keys of stateful types are
// placed where they are held (Place).
//
// The package does not know what a connector or a chat room is: frontends
// and backends plug their behaviour in as handler functions.
package rpc
