// Package backend runs game logic away from the connections: it serves the
// client messages frontends forward to it and the remotes other servers
// call, and gives handlers the session service (push, kick, bind on the
// frontend holding a session) and the channel service (named groups of
// users, pushed to with one message per frontend). Both name sessions by
// frontend instance (Target), and channels drop the members whose sessions
// are gone on their own.
//
// It owns no sockets to clients and knows nothing of the Pomelo protocol;
// everything reaches the clients through their frontends over the Cluster
// interface.
package backend
