// Package rpc is the cluster transport: every server's gRPC endpoint (a
// Node), the pool of connections to its peers, the membership view fed by
// the master's registry, and the routing that picks a server of a type for a
// session or key.
//
// Forwarded requests, remote calls and pushes ride one long-lived
// bidirectional stream per peer and kind, multiplexed by sequence number,
// and every stream message is a batch: whatever was queued for the stream
// while its previous message was being sent leaves as one message, so
// gRPC's per-message cost (HTTP/2 frame, writer handoff, envelope) is paid
// per batch. The goroutine that queues onto an idle stream sends, after one
// yield to what is already runnable; nothing waits on a timer, so a lone
// request leaves at once (sendQueue). Replies are batched the same way, and
// a frontend acknowledges pushes cumulatively, so a stream that breaks hands
// what it had not acknowledged to a kick of its sessions. A frontend opens
// a push feed to each peer on its own connection to it, and the peer pushes
// down that feed rather than on a connection of its own: its pushes and its
// replies to the frontend's forwards then share a connection and usually a
// write (see feed.go). Node.BatchStats
// counts messages and items; a node logs the mean batch sizes when it
// closes. Every call carries a deadline (one expiry timer per stream
// enforces those of lazy deadline contexts, not a timer per call); a peer whose connection fails is
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
