// Package lb tells the load balancer in front of the gates which gates may
// take new clients. The master's two-group rolling update (DESIGN.md §9)
// drains one group's gates at the balancer, waits for their players to
// leave, restarts the group on the new build and enables its gates again;
// this package is the "drain" and "enable" of that sequence, and the
// read-back that shows they happened.
//
// A [Driver] has three methods, Drain, Enable and Status, over a group's
// gates. The balancer knows a gate by its id: HAProxy's server names in the
// backend must be the gate ids of servers.toml. Two drivers exist, chosen by
// [ENV.lb] driver in servers.toml (see [config.LB]):
//
//   - "haproxy" speaks HAProxy's runtime API on its stats socket (a unix
//     socket or host:port, "level admin"): set server BACKEND/ID state
//     drain|ready, read back with show servers state BACKEND. A drained
//     HAProxy server gets no new connections from the moment the command is
//     answered; established ones stay until they end. Health checks go on
//     while drained.
//   - "command" runs the user's shell commands (cloud balancers) with sh -c
//     in the master's working directory and environment, plus the group and
//     its gates: SHADDOCK_LB_ACTION (drain,
//     enable or status), SHADDOCK_GROUP, SHADDOCK_GATES (ids, space
//     separated) and SHADDOCK_GATE_ADDRS (host:port client addresses, same
//     order). statusCommand prints one line per gate, "ID STATE", where
//     STATE is one of the [State] values; blank lines, lines starting with
//     '#' and words after STATE are ignored, and a gate it leaves out is
//     [Unknown]. Without a statusCommand, Status says Unknown for every gate
//     and Drain and Enable trust the commands' exit status.
//
// Drain returns once the balancer reports every gate drained (or in
// maintenance); Enable returns once it reports every gate ready, which for
// HAProxy includes a passing health check: a gate that is enabled but still
// failing its check takes no clients, and the caller must not drain the
// other group before this group can take them. Every call is bounded by its
// context; a context without a deadline gets [DefaultTimeout].
//
// [HAProxyConfig] writes an haproxy.cfg fragment (global stats socket,
// frontend, backend) for an environment's gates, for `master lb haproxy`.
//
// It is not for: deciding when to drain (the master does), waiting for
// players to leave, registry or gate-side draining (the registry's group
// state does that), starting, stopping or reloading HAProxy, or balancing
// anything but gates. Connectors are reached directly by clients and are
// never behind the balancer.
package lb
